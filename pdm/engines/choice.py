"""Choosing the scoring engine of a saved model: the ``engine`` setting, ``"auto"`` (default), ``"onnx"`` or
``"keras"``.

- ``"onnx"``: ONNX Runtime on ``model.onnx`` (`pdm.engines.onnx_engine`); neither TensorFlow nor Keras is imported.
  A missing, corrupted or mismatched file is refused with a `pdm.errors.CorruptModelError` (or its subclasses
  `pdm.errors.ChecksumMismatchError`, `pdm.errors.EngineMismatchError`); so is a machine without ``onnxruntime``.
- ``"keras"``: the compiled Keras engine on ``model.keras`` (imports TensorFlow).
- ``"auto"``: ``"onnx"`` when it loads, else ``"keras"`` with a logged warning saying why.

>>> check_engine_setting("auto")
'auto'
>>> check_engine_setting("tf")
Traceback (most recent call last):
...
pdm.errors.DataError: found engine='tf', expected one of 'auto', 'onnx', 'keras'
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pdm.engines import Engine
from pdm.engines.onnx_engine import ONNX_FILE, ONNX_FIX, OnnxEngine
from pdm.errors import CorruptModelError, DataError
from pdm.saving import sha256_file

logger = logging.getLogger(__name__)

EngineSetting = Literal["auto", "onnx", "keras"]
ENGINE_SETTINGS: tuple[EngineSetting, ...] = ("auto", "onnx", "keras")


def check_engine_setting(engine: str) -> EngineSetting:
    """The setting itself, or `pdm.errors.DataError` for an unknown one."""
    if engine not in ENGINE_SETTINGS:
        raise DataError(f"found engine={engine!r}, expected one of {', '.join(map(repr, ENGINE_SETTINGS))}")
    return engine


def load_onnx_engine(directory: Path, *, window: int, n_features: int, keras_file: str | None,
                     workers: int | None = None) -> OnnxEngine:
    """The checked ONNX engine of a (verified) version directory; ``keras_file`` names the ``.keras`` file beside
    it that ``model.onnx`` must have been exported from (None: not checked)."""
    path = directory / ONNX_FILE
    if not path.is_file():
        raise CorruptModelError(path, "is missing (saved by a pdm without the ONNX engine?)", ONNX_FIX)
    try:
        import onnxruntime  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise CorruptModelError(path, "needs onnxruntime, which is not installed",
                                "pip install onnxruntime==1.32.0 (see requirements.txt), or use engine='keras'") \
            from None
    keras_sha = sha256_file(directory / keras_file) if keras_file is not None else None
    return OnnxEngine.from_file(path, window=window, n_features=n_features, keras_sha256=keras_sha,
                                workers=workers)


def choose_engine(directory: Path, engine: str, *, window: int, n_features: int, keras_file: str,
                  load_keras: Callable[[], Engine], workers: int | None = None) -> Engine:
    """The scoring engine for ``engine`` (see the module docstring); ``load_keras()`` loads the Keras one."""
    setting = check_engine_setting(engine)
    if setting != "keras":
        try:
            onnx_engine = load_onnx_engine(directory, window=window, n_features=n_features, keras_file=keras_file,
                                           workers=workers)
        except CorruptModelError as exc:
            if setting == "onnx":
                raise
            logger.warning("engine auto: not using the ONNX engine (%s); scoring with Keras instead", exc)
        else:
            logger.info("scoring %s with the ONNX Runtime engine (%d workers)", directory, onnx_engine.workers)
            return onnx_engine
    return load_keras()
