"""Typed errors. Every message says what was found, what was expected, and how to fix it.

>>> err = NotFittedError("GRUAutoencoderDetector is not fitted: call fit(frames) or load(path) first")
>>> isinstance(err, ValueError) and isinstance(err, AttributeError)
True
"""

from __future__ import annotations

from pathlib import Path


class PdmError(Exception):
    """Base class of every error raised on purpose by pdm."""


class NotFittedError(PdmError, ValueError, AttributeError):
    """A detector was used before `fit` or `load`."""


class DataError(PdmError, ValueError):
    """Input data cannot be used: missing or non-numeric column, no timestamp, too few rows, ..."""


class FeatureMismatchError(DataError):
    """The data's sensor columns do not match the ones the model was trained on."""


class ModelLoadError(PdmError):
    """A model directory cannot be loaded. Names the offending file and the fix."""

    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}; {fix}")


class CorruptModelError(ModelLoadError):
    """A file of a model directory is missing, truncated or not valid."""


class ChecksumMismatchError(CorruptModelError):
    """A file's SHA-256 does not match the manifest: the file was changed after it was saved."""


class UnsupportedFormatError(ModelLoadError):
    """The model directory was written by a newer (or unknown) format version."""


class EngineMismatchError(CorruptModelError):
    """A scoring engine's file (``model.onnx``) does not belong to the model beside it: other shapes, another
    ``model.keras``, or outputs that differ from the ones recorded when it was exported."""


class ExportError(PdmError, RuntimeError):
    """A model cannot be exported to a fast engine (ONNX): unsupported architecture, or the export's output
    differs from the Keras model's beyond the tolerance."""
