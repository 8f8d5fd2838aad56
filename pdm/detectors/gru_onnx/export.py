"""Export the recurrent autoencoder to ONNX (``model.onnx``), written by pdm from the Keras weights, and verify it.

tf2onnx unrolls the recurrence into ``Loop`` + ``MatMul`` nodes (3-4 ms for one window); pdm writes ONNX's native
``GRU`` / ``LSTM`` operators instead (and an unrolled form for large batches): see
`pdm.detectors.gru_onnx.graph` for the graph and `pdm.detectors.gru_onnx.weights` for the Keras -> ONNX weight
mapping.

Every export is verified before it is returned: ONNX Runtime's reconstruction of a seeded sample (batches that run
both forms of the graph) must equal the Keras model's to ``1e-5``, else `pdm.errors.ExportError`. A few sample
windows and Keras's output on them are stored in the file's metadata, with the SHA-256 of the ``model.keras`` it
came from, so a loader without TensorFlow can check that the file is the model it claims to be
(`pdm.engines.onnx_engine.OnnxEngine.from_file`).
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import numpy as np

from pdm.detectors.gru_onnx.graph import SPLIT_BATCH, build_onnx
from pdm.detectors.gru_onnx.weights import extract_weights
from pdm.engines.onnx_engine import META, ONNX_FORMAT, PROBE_TOLERANCE, OnnxEngine
from pdm.errors import ExportError

logger = logging.getLogger(__name__)

PROBE_WINDOWS = 5


def _encode(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def tile_windows(windows: np.ndarray, n: int) -> np.ndarray:
    """``n`` windows repeating ``windows`` in order (``windows`` non-empty).

    >>> tile_windows(np.arange(2.0).reshape(2, 1, 1), 5).ravel().tolist()
    [0.0, 1.0, 0.0, 1.0, 0.0]
    """
    reps = -(-n // len(windows))
    return np.ascontiguousarray(np.tile(windows, (reps, 1, 1))[:n])


def export_onnx(model: Any, *, keras_sha256: str = "", sample: np.ndarray | None = None,
                tolerance: float = PROBE_TOLERANCE, split_batch: int = SPLIT_BATCH, seed: int = 0) -> bytes:
    """Export a Keras autoencoder to ONNX and verify it; returns the serialized model.

    ``sample`` (B, T, F) windows to verify on (default: seeded standard-normal windows, the scale of scaled sensor
    data), repeated as needed so that batches of 1, ``split_batch - 1``, ``split_batch`` and ``2 * split_batch + 1``
    windows (both forms of the graph) are compared with ``model.predict``. Raises `pdm.errors.ExportError` if
    ONNX Runtime's reconstruction differs from Keras's by more than ``tolerance`` anywhere. ``keras_sha256`` binds
    the file to the ``model.keras`` it was exported from.
    """
    weights = extract_weights(model)
    shape = (weights.window, weights.n_features)
    if sample is None:
        sample = np.random.default_rng(seed).standard_normal((2 * split_batch + 1, *shape))
    sample = np.asarray(sample, dtype=np.float32)
    if sample.ndim != 3 or sample.shape[1:] != shape or len(sample) == 0:
        raise ExportError(f"found a sample of shape {sample.shape}, expected (batch >= 1, {shape[0]}, {shape[1]})")
    sample = tile_windows(sample, max(len(sample), 2 * split_batch + 1))
    reference = np.asarray(model.predict(sample, verbose=0), dtype=np.float32)
    probe = sample[:PROBE_WINDOWS]
    metadata = {
        META["format"]: ONNX_FORMAT, META["cell"]: weights.cell, META["window"]: str(weights.window),
        META["n_features"]: str(weights.n_features), META["hidden"]: str(weights.hidden),
        META["latent"]: str(weights.latent), META["layers"]: str(weights.layers), META["keras_sha256"]: keras_sha256,
        META["split_batch"]: str(split_batch), META["probe_shape"]: ",".join(map(str, probe.shape)),
        META["probe_input"]: _encode(probe), META["probe_output"]: _encode(reference[: len(probe)]),
    }
    data = build_onnx(weights, metadata, split_batch=split_batch)
    engine = OnnxEngine(data, workers=1)
    for n in sorted({1, max(1, split_batch - 1), max(1, split_batch), len(sample)}):
        diff = float(np.max(np.abs(engine.reconstruct(sample[:n]) - reference[:n])))
        if not diff <= tolerance:
            raise ExportError(f"ONNX export of {model.name!r}: found a max |difference| of {diff:.3g} from Keras on "
                              f"{n} sample windows, expected <= {tolerance:g}; keep scoring with Keras "
                              "(engine='keras') and report this model's configuration")
    logger.info("exported %s to ONNX (%d bytes), verified on %d windows", model.name, len(data), len(sample))
    return data
