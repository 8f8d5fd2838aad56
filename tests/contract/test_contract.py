"""The MQTT contract in code (pdm.contract) against the examples of docs/mqtt-contract.md, and every kind of
invalid topic or payload against its typed error."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pdm import contract
from pdm.contract.errors import (
    ContractError,
    FieldValueError,
    MachineMismatchError,
    MissingFieldError,
    NotJSONError,
    SchemaVersionError,
    TopicError,
    TopicMismatchError,
)
from pdm.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "mqtt-contract.md"
SHARED = ROOT.parent / "shared" / "mqtt-contract.md"
T = contract.Topics()

# The examples of the contract document, copied verbatim (the batch's "..." replaced by a second reading).
SINGLE = '{"machine_id": "pump-007", "ts": 1795406400.0, "temperature": 61.2, "vibration": 2.31, "pressure": 4.02}'
BATCH = """{"schema": 1, "machine_id": "pump-007", "machine_type": "pump", "seq": 1042,
 "readings": [{"ts": 1795406400.0, "temperature": 61.2, "vibration": 2.31, "pressure": 4.02},
              {"ts": 1795406401.0, "temperature": 61.3, "vibration": null, "pressure": 4.01}]}"""
TRUTH = """{"schema": 1, "machine_id": "pump-007", "ts": 1795406400.0, "event": "start", "fault": "bearing_wear",
 "kind": "machine", "sensor": null, "fault_id": "pump-007-3"}"""
MAINTENANCE = """{"schema": 1, "machine_id": "pump-007", "from": 1795406400.0, "until": 1795410000.0,
 "reason": "bearing swap", "by": "operator-name"}"""
ALERT = """{"schema": 1, "alert_id": "pump-007-1795406400000", "machine_id": "pump-007", "event": "raised",
 "ts": 1795406400.0, "window_start": 1795406337.0, "window_end": 1795406400.0, "score": 0.91, "threshold": 0.42,
 "severity": "critical", "contributions": {"vibration": 0.71, "temperature": 0.22, "pressure": 0.07},
 "model": {"name": "pump", "version": "20261123T051200Z"}, "instance": "scorer-0"}"""
STATE = """{"schema": 1, "machine_id": "pump-007", "state": "alert", "since": 1795406400.0,
 "alert_id": "pump-007-1795406400000", "score": 0.91, "threshold": 0.42,
 "model": {"name": "pump", "version": "20261123T051200Z"}, "instance": "scorer-0", "ts": 1795406460.0}"""
STATUS = """{"schema": 1, "state": "online", "service": "scorer", "instance": "scorer-0", "version": "0.1.0",
 "model": {"name": "pump", "version": "20261123T051200Z"}, "started_at": 1795406000.0}"""
REJECTED = """{"schema": 1, "ts": 1795406400.0, "topic": "pdm/v1/telemetry/pump-007", "reason": "missing_field",
 "detail": "telemetry: found no key 'pressure'", "payload_excerpt": "{\\"machine_id\\": \\"pump-007\\"}"}"""

EXAMPLES = {
    "pdm/v1/telemetry/pump-007": [SINGLE, BATCH],
    "pdm/v1/truth/pump-007": [TRUTH],
    "pdm/v1/maintenance/pump-007": [MAINTENANCE],
    "pdm/v1/alerts/pump-007": [ALERT],
    "pdm/v1/state/pump-007": [STATE],
    "pdm/v1/status/scorer/scorer-0": [STATUS],
    "pdm/v1/rejected": [REJECTED],
}


def obj(text: str, **changes: Any) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(text)
    d.update(changes)
    return {k: v for k, v in d.items() if v is not DROP}


DROP = object()


@pytest.mark.parametrize(("topic", "payload"), [(t, p) for t, ps in EXAMPLES.items() for p in ps])
def test_each_contract_example_validates(topic: str, payload: str) -> None:
    parsed = contract.parse_message(T, topic, payload.encode())
    assert parsed is not None


def test_the_documented_examples_in_the_project_copy_validate() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    kinds = ["telemetry", "telemetry", "truth", "maintenance", "alerts", "state", "status", "alerts"]
    assert len(blocks) == len(kinds)
    parsed = []
    for kind, block in zip(kinds, blocks, strict=True):
        text = block.replace(", ...]", "]")
        info = "status/scorer/scorer-0" if kind == "status" else f"{kind}/pump-007"
        parsed.append(contract.parse_message(T, f"pdm/v1/{info}", text))
        assert parsed[-1] is not None
    machine_alert, sensor_alert = parsed[4], parsed[7]
    assert (machine_alert.kind, machine_alert.sensor) == ("machine", None)
    assert (sensor_alert.kind, sensor_alert.sensor, sensor_alert.problem) == ("sensor", "temperature", "spikes")


@pytest.mark.skipif(not SHARED.is_file(), reason="../shared/mqtt-contract.md is not beside the repository")
def test_project_copy_of_the_contract_has_not_drifted() -> None:
    assert DOC.read_text().startswith(SHARED.read_text())


def test_parsed_values_are_the_payloads_values() -> None:
    single = contract.parse_telemetry(SINGLE, machine_id="pump-007")
    assert not single.batch and single.seq is None
    assert single.ts.tolist() == [1795406400.0]
    assert single.values.tolist() == [[61.2, 2.31, 4.02]]
    batch = contract.parse_telemetry(BATCH, machine_id="pump-007")
    assert batch.batch and batch.seq == 1042 and batch.machine_type == "pump" and len(batch) == 2
    assert batch.values[1, 0] == 61.3 and np.isnan(batch.values[1, 1])
    alert = contract.parse_alert(ALERT, machine_id="pump-007")
    assert alert.contributions["vibration"] == 0.71 and alert.model.version == "20261123T051200Z"
    maint = contract.parse_maintenance(MAINTENANCE)
    assert maint is not None and maint.from_ == 1795406400.0 and maint.until == 1795410000.0


def test_built_payloads_round_trip() -> None:
    payload = contract.encode_batch("motor-01", 7, [10.0, 11.0],
                                    {"temperature": [50.5, 50.6], "vibration": [1.0, 1.1], "pressure": [2.0, None]},
                                    machine_type="motor")
    d = json.loads(payload)
    assert d == {"schema": 1, "machine_id": "motor-01", "machine_type": "motor", "seq": 7, "readings": [
        {"ts": 10.0, "temperature": 50.5, "vibration": 1.0, "pressure": 2.0},
        {"ts": 11.0, "temperature": 50.6, "vibration": 1.1, "pressure": None}]}
    single = json.loads(contract.encode_reading("motor-01", 10.0, {"temperature": float("nan"), "vibration": 1.0,
                                                                   "pressure": 2.0}))
    assert single == {"machine_id": "motor-01", "ts": 10.0, "temperature": None, "vibration": 1.0, "pressure": 2.0}
    status = contract.parse_status(STATUS)
    offline = json.loads(status.offline().encode())
    assert offline == {**json.loads(STATUS), "state": "offline"}
    for text, parse in ((TRUTH, contract.parse_truth), (ALERT, contract.parse_alert), (STATE, contract.parse_state)):
        assert json.loads(parse(text).encode()) == json.loads(text)  # type: ignore[operator]
    assert json.loads(contract.parse_maintenance(MAINTENANCE).encode()) == json.loads(MAINTENANCE)  # type: ignore[union-attr]


def test_topics_build_and_parse() -> None:
    t = contract.Topics("plant/a/pdm")
    assert t.telemetry("pump-007") == "plant/a/pdm/telemetry/pump-007"
    assert t.status("simulator", "sim-0") == "plant/a/pdm/status/simulator/sim-0"
    assert t.rejected() == "plant/a/pdm/rejected"
    assert t.subscription("truth") == "plant/a/pdm/truth/+"
    assert t.parse("plant/a/pdm/alerts/m.1_x-2") == contract.TopicInfo("alerts", machine_id="m.1_x-2")
    assert t.parse("plant/a/pdm/rejected") == contract.TopicInfo("rejected")
    assert t.machine_of("plant/a/pdm/telemetry/" + "a" * 64) == "a" * 64


@pytest.mark.parametrize("topic", [
    "pdm/v2/telemetry/pump-007",       # other prefix
    "pdm/v1/telemetry/pump 007",       # space in MACHINE
    "pdm/v1/telemetry/" + "a" * 65,    # too long
    "pdm/v1/telemetry/",               # empty MACHINE
    "pdm/v1/telemetry/pump/007",       # extra level
    "pdm/v1/readings/pump-007",        # unknown kind
    "pdm/v1/status/scorer",            # status without instance
    "pdm/v1/rejected/x",
])
def test_invalid_topics_raise_topic_error(topic: str) -> None:
    with pytest.raises(TopicError, match="found"):
        T.parse(topic)


@pytest.mark.parametrize("prefix", ["", "/pdm", "pdm/", "pdm/+", "pdm/#", "a//b"])
def test_invalid_prefix_raises(prefix: str) -> None:
    with pytest.raises(TopicError):
        contract.Topics(prefix)


def test_builders_refuse_invalid_machine_ids() -> None:
    with pytest.raises(TopicError):
        T.telemetry("pump/007")
    with pytest.raises(FieldValueError):
        contract.encode_reading("pump 7", 1.0, {})


def test_shard_rule_is_crc32_mod_n() -> None:
    ids = [f"pump-{i:03d}" for i in range(200)]
    for n in (1, 3, 8):
        shards = [contract.shard_of(m, n) for m in ids]
        assert shards == [zlib.crc32(m.encode()) % n for m in ids]
        assert all((contract.owns(m, s, n) and not contract.owns(m, (s + 1) % n, n)) or n == 1
                   for m, s in zip(ids, shards, strict=True))
    assert contract.shard_of("pump-007", 4) == 1  # zlib.crc32(b"pump-007") == 0x2B524CB1 == 726813873
    assert set(contract.shard_of(m, 4) for m in ids) == {0, 1, 2, 3}


def test_alert_id_is_machine_and_window_end_in_ms() -> None:
    assert contract.alert_id("pump-007", 1795406400.0) == "pump-007-1795406400000"
    assert contract.alert_id("m", 1795406400.123) == "m-1795406400123"


TELEMETRY = "pdm/v1/telemetry/pump-007"
BAD_PAYLOADS: list[tuple[str, str, bytes | str | dict[str, Any], type[ContractError], str]] = [
    ("not json", TELEMETRY, b"{machine_id: pump}", NotJSONError, "not JSON"),
    ("not utf-8", TELEMETRY, b'{"machine_id": "\xff"}', NotJSONError, "not UTF-8"),
    ("json list", TELEMETRY, "[1, 2]", NotJSONError, "found a JSON list"),
    ("empty", TELEMETRY, b"", NotJSONError, "not JSON"),
    ("schema 2", TELEMETRY, obj(BATCH, schema=2), SchemaVersionError, "found schema 2, expected 1"),
    ("schema true", TELEMETRY, obj(BATCH, schema=True), SchemaVersionError, "found schema True"),
    ("no machine_id", TELEMETRY, obj(SINGLE, machine_id=DROP), MissingFieldError, "'machine_id'"),
    ("no ts", TELEMETRY, obj(SINGLE, ts=DROP), MissingFieldError, "'ts'"),
    ("sensor key absent", TELEMETRY, obj(SINGLE, pressure=DROP), MissingFieldError, "'pressure'"),
    ("string value", TELEMETRY, obj(SINGLE, vibration="2.31"), FieldValueError, "found '2.31', expected a finite"),
    ("bool value", TELEMETRY, obj(SINGLE, vibration=True), FieldValueError, "found True"),
    ("NaN literal", TELEMETRY, SINGLE.replace("2.31", "NaN"), FieldValueError, "found nan"),
    ("negative ts", TELEMETRY, obj(SINGLE, ts=-1.0), FieldValueError, "ts: found -1.0"),
    ("other machine", TELEMETRY, obj(SINGLE, machine_id="pump-008"), MachineMismatchError,
     "found 'pump-008', expected 'pump-007'"),
    ("bad machine id", TELEMETRY, obj(SINGLE, machine_id="pump 7"), FieldValueError, "found 'pump 7'"),
    ("empty readings", TELEMETRY, obj(BATCH, readings=[]), FieldValueError, "non-empty list"),
    ("batch NaN literal", TELEMETRY, BATCH.replace("2.31", "NaN"), FieldValueError, "reading 0: vibration: found nan"),
    ("batch infinity", TELEMETRY, BATCH.replace("4.01", "Infinity"), FieldValueError, "reading 1: pressure: found inf"),
    ("batch string value", TELEMETRY, BATCH.replace("61.3", '"61.3"'), FieldValueError,
     "reading 1: temperature: found '61.3'"),
    ("batch bool ts", TELEMETRY, BATCH.replace("1795406401.0", "true"), FieldValueError, "reading 1: ts: found True"),
    ("batch null ts", TELEMETRY, BATCH.replace("1795406401.0", "null"), FieldValueError, "reading 1: ts: found None"),
    ("reading not object", TELEMETRY, obj(BATCH, readings=[1]), FieldValueError, "reading 0: found a int"),
    ("batch sensor absent", TELEMETRY, obj(BATCH, readings=[{"ts": 1.0, "temperature": 1.0, "vibration": 1.0}]),
     MissingFieldError, "reading 0: found no key 'pressure'"),
    ("negative seq", TELEMETRY, obj(BATCH, seq=-1), FieldValueError, "seq: found -1"),
    ("float seq", TELEMETRY, obj(BATCH, seq=1.0), FieldValueError, "seq: found 1.0"),
    ("truth no schema", "pdm/v1/truth/pump-007", obj(TRUTH, schema=DROP), SchemaVersionError, "no 'schema'"),
    ("truth bad event", "pdm/v1/truth/pump-007", obj(TRUTH, event="begin"), FieldValueError,
     "event: found 'begin', expected 'start' or 'end'"),
    ("truth sensor kind without sensor", "pdm/v1/truth/pump-007", obj(TRUTH, kind="sensor"), FieldValueError,
     "found null with kind 'sensor'"),
    ("truth machine kind with sensor", "pdm/v1/truth/pump-007", obj(TRUTH, sensor="vibration"), FieldValueError,
     "expected null"),
    ("truth no fault_id", "pdm/v1/truth/pump-007", obj(TRUTH, fault_id=DROP), MissingFieldError, "'fault_id'"),
    ("truth other machine", "pdm/v1/truth/pump-007", obj(TRUTH, machine_id="x"), MachineMismatchError, "'x'"),
    ("maintenance until before from", "pdm/v1/maintenance/pump-007", obj(MAINTENANCE, until=1.0), FieldValueError,
     "expected until > from"),
    ("maintenance no from", "pdm/v1/maintenance/pump-007", obj(MAINTENANCE, **{"from": DROP}), MissingFieldError,
     "'from'"),
    ("alert wrong id", "pdm/v1/alerts/pump-007", obj(ALERT, alert_id="pump-007-1"), FieldValueError,
     "expected 'pump-007-1795406400000'"),
    ("alert shares", "pdm/v1/alerts/pump-007", obj(ALERT, contributions={"vibration": 0.5}), FieldValueError,
     "sum to 1"),
    ("alert negative share", "pdm/v1/alerts/pump-007", obj(ALERT, contributions={"a": -0.5, "b": 1.5}),
     FieldValueError, "contributions.a: found -0.5"),
    ("alert string score", "pdm/v1/alerts/pump-007", obj(ALERT, score="0.9"), FieldValueError,
     "score: found '0.9', expected a valid number"),
    ("alert model missing version", "pdm/v1/alerts/pump-007", obj(ALERT, model={"name": "pump"}), MissingFieldError,
     "'model.version'"),
    ("state unknown", "pdm/v1/state/pump-007", obj(STATE, state="broken"), FieldValueError, "state: found 'broken'"),
    ("state alert without id", "pdm/v1/state/pump-007", obj(STATE, alert_id=None), FieldValueError,
     "found null with state 'alert'"),
    ("status bad state", "pdm/v1/status/scorer/scorer-0", obj(STATUS, state="up"), FieldValueError, "found 'up'"),
    ("status other instance", "pdm/v1/status/scorer/scorer-1", STATUS, TopicMismatchError,
     "found 'scorer-0', expected 'scorer-1'"),
    ("rejected long excerpt", "pdm/v1/rejected", obj(REJECTED, payload_excerpt="x" * 201), FieldValueError,
     "found 201 bytes"),
]


@pytest.mark.parametrize(("topic", "payload", "error", "message"), [b[1:] for b in BAD_PAYLOADS],
                         ids=[b[0] for b in BAD_PAYLOADS])
def test_invalid_payload_raises_its_typed_error(topic: str, payload: bytes | str | dict[str, Any],
                                                error: type[ContractError], message: str) -> None:
    raw = json.dumps(payload) if isinstance(payload, dict) else payload
    with pytest.raises(error, match=re.escape(message)) as info:
        contract.parse_message(T, topic, raw)
    assert isinstance(info.value, DataError)
    assert "\n" not in str(info.value)


def test_error_reasons_are_distinct_codes() -> None:
    codes = {e.reason for e in (TopicError, NotJSONError, SchemaVersionError, MissingFieldError, FieldValueError,
                                MachineMismatchError, TopicMismatchError)}
    assert codes == {"bad_topic", "not_json", "schema", "missing_field", "bad_field", "machine_mismatch",
                     "topic_mismatch"}


def test_telemetry_rules_null_is_dropout_extras_are_counted() -> None:
    msg = contract.parse_telemetry(obj(SINGLE, vibration=None, rpm=1480, note="x"))
    assert np.isnan(msg.values[0, 1]) and msg.extra_fields == 2
    # a model that needs only two sensors accepts a reading without the third
    two = contract.parse_telemetry(obj(SINGLE, pressure=DROP), sensors=("temperature", "vibration"))
    assert two.values.tolist() == [[61.2, 2.31]]
    batch = contract.parse_telemetry(BATCH.replace('"pressure": 4.01}', '"pressure": 4.01, "rpm": 1480, "x": "y"}'))
    assert batch.extra_fields == 2 and batch.values[1, 2] == 4.01
    nan_in_a_dict = obj(BATCH, readings=[{"ts": 1.0, "temperature": float("nan"), "vibration": 1.0, "pressure": 1.0}])
    with pytest.raises(FieldValueError, match="temperature: found nan"):
        contract.parse_telemetry(nan_in_a_dict)
    # telemetry may omit schema; the batch example carries it
    assert contract.parse_telemetry(obj(BATCH, schema=DROP)).seq == 1042


def test_empty_maintenance_payload_clears() -> None:
    assert contract.parse_maintenance(b"") is None
    assert contract.parse_message(T, "pdm/v1/maintenance/pump-007", b"") is None


def test_rejected_build_cuts_the_excerpt_to_200_bytes_of_utf8() -> None:
    payload = ("é" * 150).encode()  # 300 bytes
    r = contract.Rejected.build("pdm/v1/telemetry/x", "not_json", "detail", payload, ts=5.0)
    assert len(r.payload_excerpt.encode()) <= 200 and r.payload_excerpt == "é" * 100
    assert contract.parse_rejected(r.encode()).payload_excerpt == "é" * 100
    raw = contract.Rejected.build("t", "not_json", "d", b"\xff" * 300, ts=5.0)
    assert 0 < len(raw.payload_excerpt.encode()) <= 200


def test_scores_payloads_are_not_specified() -> None:
    with pytest.raises(TopicError, match="scores"):
        contract.parse_message(T, "pdm/v1/scores/pump-007", b"{}")
