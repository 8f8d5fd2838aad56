"""pdm: predictive-maintenance anomaly detection for machine telemetry.

Run ``python -m pdm --help``. Library entry points: `pdm.detectors.GRUAutoencoderDetector`,
`pdm.detectors.RobustZScoreDetector`, `pdm.detectors.Detector.load`. Nothing heavy is imported here.
"""

__version__ = "0.1.0"
