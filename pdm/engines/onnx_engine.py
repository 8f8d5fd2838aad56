"""The ONNX Runtime scoring engine: no TensorFlow, no Keras (only ``onnxruntime`` and NumPy are imported).

Rules:

- Each ONNX Runtime session runs on one thread (``intra_op_num_threads=1``): GRU-sized matmuls do not scale across
  threads (see ../shared/performance-notes.md), so cores are used by running *several chunks at once* instead. A
  batch of at least ``2 * split_min`` windows is cut into at least ``workers`` chunks (of at most ``max_chunk``
  windows), each run by a worker thread on its own session (ONNX Runtime releases the GIL while it runs); smaller
  batches run on the caller's thread, which is what a one-window call needs.
- `OnnxEngine.from_file` refuses a file that is not the model it claims to be, with a typed error: unreadable or not
  ONNX (`pdm.errors.CorruptModelError`), not written by pdm's exporter, other window or sensor count, exported from
  another ``model.keras``, or not reproducing the Keras reconstruction recorded in it at export time to ``1e-5``
  (`pdm.errors.EngineMismatchError`).
"""

from __future__ import annotations

import base64
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pdm.errors import CorruptModelError, EngineMismatchError

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
ONNX_FORMAT = "pdm-autoencoder-onnx/1"
PROBE_TOLERANCE = 1e-5
META = {k: f"pdm.{k}" for k in ("format", "cell", "window", "n_features", "hidden", "latent", "layers",
                                "keras_sha256", "split_batch", "probe_input", "probe_output", "probe_shape")}
ONNX_FIX = "re-save the model with this pdm (its save writes model.onnx), or load it with engine='keras'"


def available_cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _session(model: bytes) -> Any:
    import onnxruntime as ort  # type: ignore[import-untyped]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


class OnnxEngine:
    """Reconstructs windows (B, T, F) with ONNX Runtime; see the module docstring for the threading rule.

    ``workers`` (default: the CPUs this process may use) sessions of one thread each; a batch of at least
    ``2 * split_min`` windows is cut into chunks of at most ``max_chunk`` (and at least ``split_min``) windows run
    on the workers at once."""

    def __init__(self, model: bytes, *, workers: int | None = None, split_min: int = 16,
                 max_chunk: int = 512) -> None:
        self.workers = max(1, workers if workers is not None else available_cores())
        self.split_min = max(1, split_min)
        self.max_chunk = max(self.split_min, max_chunk)
        self._sessions = [_session(model) for _ in range(self.workers)]
        self._input = self._sessions[0].get_inputs()[0].name
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="onnx") if self.workers > 1 else None
        self.metadata: dict[str, str] = dict(self._sessions[0].get_modelmeta().custom_metadata_map)

    def _run(self, index: int, windows: np.ndarray) -> np.ndarray:
        return np.asarray(self._sessions[index % self.workers].run(None, {self._input: windows})[0])

    def reconstruct(self, windows: np.ndarray) -> np.ndarray:
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        n = len(windows)
        if n == 0:
            return windows.copy()
        parts = max(-(-n // self.max_chunk), self.workers if self._pool is not None else 1)
        parts = min(parts, max(1, n // self.split_min))
        if parts == 1:
            return self._run(0, windows)
        bounds = np.linspace(0, n, parts + 1).astype(int)
        chunks = [windows[bounds[i] : bounds[i + 1]] for i in range(parts)]
        if self._pool is None:
            return np.concatenate([self._run(0, c) for c in chunks])
        return np.concatenate(list(self._pool.map(self._run, range(parts), chunks)))

    def warm_up(self) -> None:
        """Run every session once on a small and a large batch (ONNX Runtime allocates buffers on first use)."""
        shape = self._sessions[0].get_inputs()[0].shape[1:]
        for i in range(self.workers):
            self._run(i, np.zeros((1, *shape), dtype=np.float32))
            self._run(i, np.zeros((self.split_min, *shape), dtype=np.float32))

    def close(self) -> None:
        """Stop the worker threads (the sessions are freed with the engine)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    @classmethod
    def from_file(cls, path: Path | str, *, window: int, n_features: int, keras_sha256: str | None = None,
                  workers: int | None = None) -> OnnxEngine:
        """Load and check ``model.onnx`` (see the module docstring); ``keras_sha256`` is the ``model.keras`` beside
        it, which the file must have been exported from."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorruptModelError(path, f"cannot be read ({exc.strerror or exc})", ONNX_FIX) from None
        try:
            engine = cls(data, workers=workers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types for a bad file
            raise CorruptModelError(path, f"cannot be loaded by ONNX Runtime ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''})", ONNX_FIX) from None
        engine.check(path, window=window, n_features=n_features, keras_sha256=keras_sha256)
        return engine

    def check(self, path: Path, *, window: int, n_features: int, keras_sha256: str | None) -> None:
        """Raise `pdm.errors.EngineMismatchError` unless this model is pdm's export of the expected model."""
        meta = self.metadata
        if meta.get(META["format"]) != ONNX_FORMAT:
            raise EngineMismatchError(path, f"found format {meta.get(META['format'])!r}, expected {ONNX_FORMAT!r}",
                                      ONNX_FIX)
        found = (meta.get(META["window"]), meta.get(META["n_features"]))
        if found != (str(window), str(n_features)):
            raise EngineMismatchError(path, f"found window {found[0]} and {found[1]} sensors, expected window "
                                      f"{window} and {n_features} sensors", ONNX_FIX)
        if keras_sha256 is not None and meta.get(META["keras_sha256"]) != keras_sha256:
            raise EngineMismatchError(path, f"was exported from a model.keras with SHA-256 "
                                      f"{meta.get(META['keras_sha256'])!r}, expected {keras_sha256!r} (the one "
                                      "beside it)", ONNX_FIX)
        try:
            shape = tuple(int(d) for d in meta[META["probe_shape"]].split(","))
            probe = _decode(meta[META["probe_input"]], shape)
            expected = _decode(meta[META["probe_output"]], shape)
            if len(probe) == 0 or probe.shape[1:] != (window, n_features):
                raise ValueError(f"probe shape {shape}")
        except (KeyError, ValueError) as exc:
            raise EngineMismatchError(path, f"has no readable probe ({type(exc).__name__}: {exc})", ONNX_FIX) from None
        split = int(meta.get(META["split_batch"], "1"))
        reps = -(-max(split, 1) // len(probe))  # run the probe through both forms of the graph
        big, big_expected = np.tile(probe, (reps, 1, 1)), np.tile(expected, (reps, 1, 1))
        diff = max(float(np.max(np.abs(self._run(0, probe) - expected))),
                   float(np.max(np.abs(self._run(0, big) - big_expected))))
        if not diff <= PROBE_TOLERANCE:
            raise EngineMismatchError(path, f"found a max |difference| of {diff:.3g} from the Keras reconstruction "
                                      f"recorded at export, expected <= {PROBE_TOLERANCE:g}", ONNX_FIX)


def _decode(text: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4").reshape(shape).astype(np.float32)
