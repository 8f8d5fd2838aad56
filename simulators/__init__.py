"""Machine simulators. The fleet simulator (`python -m simulators.fleet`) lands with its own issue."""
