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


class ContractError(DataError):
    """A topic or payload does not follow the MQTT contract (docs/mqtt-contract.md).

    ``reason`` is a short stable code (the ``reason`` of a ``PREFIX/rejected`` dead letter); the message says what
    was found and what was expected.
    """

    reason = "contract"


class TopicError(ContractError):
    """A topic is not one of the contract's topics: wrong prefix, unknown kind, or an invalid machine id."""

    reason = "bad_topic"


class PayloadError(ContractError):
    """A payload does not follow the contract."""

    reason = "bad_payload"


class NotJSONError(PayloadError):
    """A payload is not UTF-8 JSON, or not a JSON object."""

    reason = "not_json"


class SchemaVersionError(PayloadError):
    """A payload's ``schema`` is missing (where required) or is not a version this code understands."""

    reason = "schema"


class MissingFieldError(PayloadError):
    """A required key is absent (a needed sensor's key included; a ``null`` value is not absent)."""

    reason = "missing_field"


class FieldValueError(PayloadError):
    """A field has the wrong type or an invalid value."""

    reason = "bad_field"


class TopicMismatchError(PayloadError):
    """A payload names a different machine, service or instance than its topic."""

    reason = "topic_mismatch"


class MachineMismatchError(TopicMismatchError):
    """A payload's ``machine_id`` differs from the machine id in its topic."""

    reason = "machine_mismatch"


class EngineMismatchError(CorruptModelError):
    """A scoring engine's file (``model.onnx``) does not belong to the model beside it: other shapes, another
    ``model.keras``, or outputs that differ from the ones recorded when it was exported."""


class ExportError(PdmError, RuntimeError):
    """A model cannot be exported to a fast engine (ONNX): unsupported architecture, or the export's output
    differs from the Keras model's beyond the tolerance."""
