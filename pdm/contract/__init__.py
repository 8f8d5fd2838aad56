"""The MQTT contract (docs/mqtt-contract.md, schema 1) in code: topics, payload builders and validators.

No TensorFlow here: the simulator, the scoring daemon and tools all import this. Every validation failure is a
:class:`~pdm.contract.errors.ContractError` subclass whose ``reason`` is a short code for ``PREFIX/rejected`` and whose
message says what was found and what was expected:

- ``TopicError`` (``bad_topic``): not a contract topic, or an invalid MACHINE.
- ``NotJSONError`` (``not_json``): not UTF-8 JSON, or not a JSON object.
- ``SchemaVersionError`` (``schema``): ``schema`` missing (telemetry may omit it) or not 1.
- ``MissingFieldError`` (``missing_field``): a required key (a needed sensor included) is absent.
- ``FieldValueError`` (``bad_field``): wrong type or value.
- ``MachineMismatchError`` (``machine_mismatch``): ``machine_id`` differs from the topic's;
  ``TopicMismatchError`` (``topic_mismatch``) for a status's service/instance.

The bounds on untrusted input (`pdm.contract.limits`), each with its own reason: ``too_deep`` (a `NotJSONError`),
``out_of_range``, ``bad_timestamp``, ``clock_skew`` and ``too_long`` (`FieldValueError` subclasses). Retained
states can be signed (`sign_state`, `verify_state`; ``bad_signature``).

>>> topics = Topics("pdm/v1")
>>> msg = parse_message(topics, "pdm/v1/telemetry/pump-007",
...               b'{"machine_id": "pump-007", "ts": 1795406400.0, "temperature": 61.2, "vibration": null, '
...               b'"pressure": 4}')
>>> msg.machine_id, msg.values.tolist()
('pump-007', [[61.2, nan, 4.0]])
>>> try:
...     parse_message(topics, "pdm/v1/telemetry/pump-008", b'{"machine_id": "pump-007", "ts": 1795406400.0}')
... except ContractError as exc:
...     print(type(exc).__name__, exc.reason)
MachineMismatchError machine_mismatch
"""

from __future__ import annotations

from collections.abc import Callable

from pdm.contract._decode import SCHEMA, Payload, decode_object
from pdm.contract.errors import ContractError, TopicError
from pdm.contract.limits import MAX_ABS_VALUE, MAX_REASON, MAX_TEXT, MAX_TS, MIN_TS
from pdm.contract.messages import (
    EXCERPT_BYTES,
    Alert,
    Maintenance,
    Message,
    ModelRef,
    Rejected,
    State,
    Status,
    TruthEvent,
    alert_id,
    model_dict,
    parse_alert,
    parse_maintenance,
    parse_rejected,
    parse_state,
    parse_status,
    parse_truth,
)
from pdm.contract.signing import STATE_KEY_ENV, sign_state, state_key, verify_state
from pdm.contract.telemetry import AMBIENT, SENSORS, UNITS, Telemetry, encode_batch, encode_reading, parse_telemetry
from pdm.contract.topics import (
    DEFAULT_PREFIX,
    NAME_PATTERN,
    NAME_RULE,
    TopicInfo,
    Topics,
    check_name,
    is_valid_name,
    owns,
    redact_url,
    shard_of,
)

__all__ = [
    "AMBIENT",
    "DEFAULT_PREFIX",
    "EXCERPT_BYTES",
    "MAX_ABS_VALUE",
    "MAX_REASON",
    "MAX_TEXT",
    "MAX_TS",
    "MIN_TS",
    "NAME_PATTERN",
    "NAME_RULE",
    "SCHEMA",
    "SENSORS",
    "STATE_KEY_ENV",
    "UNITS",
    "Alert",
    "ContractError",
    "Maintenance",
    "Message",
    "ModelRef",
    "Payload",
    "Rejected",
    "State",
    "Status",
    "Telemetry",
    "TopicInfo",
    "Topics",
    "TruthEvent",
    "alert_id",
    "check_name",
    "decode_object",
    "encode_batch",
    "encode_reading",
    "is_valid_name",
    "model_dict",
    "owns",
    "parse_alert",
    "parse_maintenance",
    "parse_message",
    "parse_rejected",
    "parse_state",
    "parse_status",
    "parse_telemetry",
    "parse_truth",
    "redact_url",
    "shard_of",
    "sign_state",
    "state_key",
    "verify_state",
]


def parse_message(topics: Topics, topic: str, payload: Payload) -> Telemetry | Message | None:
    """Validate any contract message by its topic (``None``: an empty maintenance payload, which clears it).

    ``scores`` payloads are not specified by the contract and raise :class:`~pdm.contract.errors.TopicError`."""
    info = topics.parse(topic)
    if info.kind == "status":
        return parse_status(payload, info.service, info.instance)
    if info.kind == "rejected":
        return parse_rejected(payload)
    parser = _BY_KIND.get(info.kind)
    if parser is None:
        raise TopicError(f"topic: found {topic[:200]!r} ({info.kind}), expected a topic whose payload the contract "
                         "specifies")
    return parser(payload, info.machine_id)


_BY_KIND: dict[str, Callable[[Payload, str | None], Telemetry | Message | None]] = {
    "telemetry": parse_telemetry,
    "truth": parse_truth,
    "maintenance": parse_maintenance,
    "alerts": parse_alert,
    "state": parse_state,
}
