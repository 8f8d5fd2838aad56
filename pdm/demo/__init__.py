"""``python -m pdm demo``: a local broker, the shipped models, the simulator with injected faults, a live view."""
