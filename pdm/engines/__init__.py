"""Scoring engines: turn a batch of windows (B, T, F) into reconstructions, fast.

Every engine has one method, ``reconstruct(windows) -> np.ndarray`` of the same shape, and must match the Keras
model's own output to 1e-5 (``warm_up()`` is optional). Two implementations:

- `pdm.engines.keras_compiled.CompiledKerasEngine`: the Keras model compiled with XLA (imports TensorFlow).
- `pdm.engines.onnx_engine.OnnxEngine`: ONNX Runtime on ``model.onnx``, written at every save by
  `pdm.detectors.gru_onnx.export` (no TensorFlow at run time).

`pdm.engines.choice` picks one for a saved model from the ``engine`` setting ("auto", "onnx", "keras").
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Engine(Protocol):
    def reconstruct(self, windows: np.ndarray) -> np.ndarray: ...


def window_errors(windows: np.ndarray, reconstructed: np.ndarray) -> np.ndarray:
    """Per-sensor mean squared reconstruction error of each window: (B, T, F) -> (B, F)."""
    diff = windows - reconstructed
    return np.asarray(np.mean(diff * diff, axis=1, dtype=np.float64))
