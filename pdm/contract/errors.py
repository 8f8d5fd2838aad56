r"""The contract's typed errors: what a topic or payload that breaks the MQTT contract raises.

Each has a short stable ``reason`` code, the ``reason`` of a ``PREFIX/rejected`` dead letter. They are
`pdm.errors.DataError`\ s, so a command prints them as one ``error:`` line like every other input problem.
"""

from __future__ import annotations

from pdm.errors import DataError


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


class TooDeepError(NotJSONError):
    """A payload nests arrays or objects deeper than the contract allows (``MAX_DEPTH``): refused before or while
    decoding, never a crash of the consumer."""

    reason = "too_deep"


class OutOfRangeError(FieldValueError):
    """A number is finite but beyond what a model can use (``|value| > max_abs_value``, e.g. a PLC's float32
    maximum sent for "invalid"), or an integer beyond its field's range."""

    reason = "out_of_range"


class TimestampError(FieldValueError):
    """A timestamp is not a plausible time: before 2000-01-01 or from 2100-01-01 on (a device whose clock was reset,
    milliseconds sent as seconds)."""

    reason = "bad_timestamp"


class ClockSkewError(FieldValueError):
    """A timestamp is further from the receive time than the consumer's ``max_clock_skew_s`` allows."""

    reason = "clock_skew"


class TooLongError(FieldValueError):
    """A string (or a mapping) is longer than the contract's cap for its field."""

    reason = "too_long"


class SignatureError(PayloadError):
    """A signed payload (a retained state) has no signature, or one that the key does not verify."""

    reason = "bad_signature"
