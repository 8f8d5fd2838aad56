"""Import TensorFlow without its C++ start-up lines (oneDNN, CPU features), which it writes to stderr before its
log level applies. Only code that really needs TensorFlow calls this (training, the Keras scoring engine): the
ONNX engine, the daemon with it, the recorder and the simulator never import TensorFlow."""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger(__name__)
VERBOSE_ENV = "PDM_TF_VERBOSE"  # set to 1 to see TensorFlow's own start-up output (python -m pdm -vv sets it)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 pointed at /dev/null; a no-op when it is already imported.
    An ImportError is logged at debug level and raised again where TensorFlow is really used."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get(VERBOSE_ENV) == "1":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        logger.debug("tensorflow not importable: %s", exc)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
