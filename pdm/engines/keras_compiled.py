"""The compiled TensorFlow scoring path: one ``tf.function`` (XLA when ``jit_compile``) per batch-size bucket.

``model.predict`` costs ~70 ms per call and eager ``model(x)`` runs the GRU loop step by step in Python (measured
by ``benchmarks/scoring_throughput.py``). This engine traces the forward pass once per power-of-two batch size,
padding the last chunk, so a micro-batch of any size reuses a compiled graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pdm.tf_import import import_tensorflow_quietly


class CompiledKerasEngine:
    """Reconstructs windows with a compiled forward pass of a Keras model."""

    def __init__(self, model: Any, *, jit_compile: bool = True, max_batch: int = 256, min_batch: int = 1) -> None:
        import_tensorflow_quietly()
        import tensorflow as tf

        self.model = model
        self.max_batch = max_batch
        self.min_batch = min_batch
        self._forward = tf.function(lambda x: model(x, training=False), jit_compile=jit_compile)

    def _bucket(self, n: int) -> int:
        size = self.min_batch
        while size < n:
            size *= 2
        return min(size, self.max_batch)

    def reconstruct(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        out = np.empty(windows.shape, dtype=np.float32)
        for start in range(0, len(windows), self.max_batch):
            chunk = windows[start : start + self.max_batch]
            b = len(chunk)
            size = self._bucket(b)
            if size != b:
                padded = np.zeros((size, *chunk.shape[1:]), dtype=np.float32)
                padded[:b] = chunk
                chunk = padded
            else:
                chunk = np.ascontiguousarray(chunk)
            out[start : start + b] = self._forward(chunk).numpy()[:b]
        return out

    def warm_up(self) -> None:
        """Compile every bucket now rather than on the first real batch."""
        shape = self.model.input_shape[1:]
        size = self.min_batch
        while True:
            self.reconstruct(np.zeros((size, *shape), dtype=np.float32))
            if size >= self.max_batch:
                break
            size *= 2
