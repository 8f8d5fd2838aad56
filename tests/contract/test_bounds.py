"""The contract's bounds on untrusted input (issue 14): values a float32 model cannot use, implausible and skewed
timestamps, JSON nested too deep, ids that are not safe file names, strings without a cap, broker URLs carrying a
password. Each is a typed error with its own reason code, never an ``inf``, a crash or a silently stored megabyte."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from pdm import contract
from pdm.contract.errors import (
    ClockSkewError,
    ContractError,
    FieldValueError,
    NotJSONError,
    OutOfRangeError,
    TimestampError,
    TooDeepError,
    TooLongError,
    TopicError,
)
from pdm.contract.topics import parse_broker_url

T = contract.Topics()
TS = 1_795_406_400.0  # 2026-11-23T04:00:00Z
SENSORS = ("temperature", "vibration", "pressure")


def reading(ts: Any = TS, **values: Any) -> bytes:
    body = {"machine_id": "pump-007", "ts": ts, "temperature": 61.2, "vibration": 2.3, "pressure": 4.0, **values}
    return json.dumps(body).encode()


def batch(ts: list[Any] | None = None, rows: list[dict[str, Any]] | None = None, **top: Any) -> bytes:
    ts = ts if ts is not None else [TS, TS + 1, TS + 2]
    rows = rows if rows is not None else [{"temperature": 61.0 + i, "vibration": 2.0, "pressure": 4.0}
                                          for i in range(len(ts))]
    body = {"schema": 1, "machine_id": "pump-007", "seq": 3, **top,
            "readings": [{"ts": t, **r} for t, r in zip(ts, rows, strict=True)]}
    return json.dumps(body).encode()


# ---------------------------------------------------------------- values
@pytest.mark.parametrize("text", ["3.4028235e38", "1e39", "-1e13", "1e308", "1" + "0" * 400, "-" + "9" * 30])
def test_values_beyond_the_bound_are_out_of_range_never_inf(text: str) -> None:
    single = reading().replace(b'"pressure": 4.0', b'"pressure": ' + text.encode())
    many = batch().replace(b'"pressure": 4.0}]', b'"pressure": ' + text.encode() + b"}]")
    for payload, where in ((single, "telemetry: pressure"), (many, "telemetry reading 2: pressure")):
        with pytest.raises(OutOfRangeError, match=where) as info:
            contract.parse_telemetry(payload, "pump-007")
        assert info.value.reason == "out_of_range" and isinstance(info.value, FieldValueError)


def test_the_bound_is_inclusive_and_configurable() -> None:
    edge = contract.parse_telemetry(reading(pressure=1e12, temperature=-1e12), "pump-007")
    assert edge.values.tolist() == [[-1e12, 2.3, 1e12]]
    assert contract.MAX_ABS_VALUE == 1e12
    with pytest.raises(OutOfRangeError):
        contract.parse_telemetry(batch(), "pump-007", max_abs_value=10.0)  # temperature 61 > 10
    assert contract.parse_telemetry(reading(pressure=3e38), max_abs_value=1e39).values[0, 2] == 3e38


def test_parsed_values_are_finite_floats_within_the_bound() -> None:
    big = 10**12  # an int exactly at the bound: converted, not overflowed
    msg = contract.parse_telemetry(batch(rows=[{"temperature": big, "vibration": None, "pressure": -0.0}] * 3),
                                   "pump-007")
    assert msg.values.dtype == np.float64 and msg.values[0].tolist()[0] == 1e12 and np.isnan(msg.values[0, 1])
    assert np.isfinite(msg.ts).all()


def test_a_sequence_number_beyond_int64_is_out_of_range() -> None:
    with pytest.raises(OutOfRangeError, match="seq"):
        contract.parse_telemetry(batch(seq=2**64), "pump-007")
    assert contract.parse_telemetry(batch(seq=2**63 - 1)).seq == 2**63 - 1


# ---------------------------------------------------------------- timestamps
@pytest.mark.parametrize("ts", [0.0, 1.0, 946_684_799.0, 1_795_406_400_000.0, 253_402_214_400.0, 4_102_444_800.0,
                                1e300, 10**400])
def test_implausible_timestamps_are_rejected_always(ts: float) -> None:
    for payload in (reading(ts=ts), batch(ts=[TS, ts, TS + 2])):
        with pytest.raises(TimestampError, match="expected epoch seconds from 2000-01-01") as info:
            contract.parse_telemetry(payload, "pump-007")
        assert info.value.reason == "bad_timestamp"


def test_the_time_range_is_2000_to_2099() -> None:
    first, last = 946_684_800.0, 4_102_444_799.5
    assert contract.parse_telemetry(batch(ts=[first, last])).ts.tolist() == [first, last]


def test_a_missing_sensor_is_still_named_before_an_implausible_time() -> None:
    with pytest.raises(ContractError) as info:
        contract.parse_telemetry(b'{"machine_id": "m1", "ts": 5.0, "temperature": 1, "vibration": 2}')
    assert info.value.reason == "missing_field"


def test_clock_skew_is_checked_only_when_asked() -> None:
    now = TS + 3600.0
    assert len(contract.parse_telemetry(batch(), "pump-007")) == 3  # default: no check
    ok = contract.parse_telemetry(batch(), "pump-007", now=now, max_clock_skew_s=3600.0)
    assert len(ok) == 3
    with pytest.raises(ClockSkewError, match=r"reading 0: ts: .* behind the receive time") as info:
        contract.parse_telemetry(batch(), "pump-007", now=now, max_clock_skew_s=60.0)
    assert info.value.reason == "clock_skew"
    with pytest.raises(ClockSkewError, match="ahead of the receive time"):
        contract.parse_telemetry(reading(ts=now + 7200), now=now, max_clock_skew_s=3600.0)


def test_message_times_must_be_before_2100() -> None:
    state = {"schema": 1, "machine_id": "pump-007", "state": "normal", "since": TS, "instance": "scorer-0", "ts": TS}
    for field, value in (("since", 253_402_214_400.0), ("ts", TS * 1000)):
        with pytest.raises(TimestampError, match=f"state: {field}: found"):
            contract.parse_state(json.dumps({**state, field: value}))
    maint = {"schema": 1, "machine_id": "pump-007", "from": TS, "until": 1e300, "reason": "r", "by": "op"}
    with pytest.raises(TimestampError, match="until"):
        contract.parse_maintenance(json.dumps(maint))


# ---------------------------------------------------------------- nesting
@pytest.mark.parametrize("payload", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000,
                                     '{"machine_id": "m", "ts": 1, "x": ' + "[" * 50_000 + "]" * 50_000 + "}"])
def test_deep_nesting_is_too_deep_not_an_internal_error(payload: str) -> None:
    for parse in (contract.parse_telemetry, contract.parse_state, contract.parse_maintenance):
        with pytest.raises(TooDeepError, match="nested deeper") as info:
            parse(payload.encode())
        assert info.value.reason == "too_deep" and isinstance(info.value, NotJSONError)


def test_moderately_deep_values_are_named_in_a_short_message() -> None:
    deep = "[" * 500 + "]" * 500
    with pytest.raises(FieldValueError) as info:
        contract.parse_telemetry(f'{{"machine_id": "m", "ts": {TS}, "temperature": {deep}, "vibration": 1, '
                                 f'"pressure": 1}}')
    assert len(str(info.value)) < 300


# ---------------------------------------------------------------- ids
@pytest.mark.parametrize("name", [".", "..", ".hidden", "...", ".pump-7"])
def test_dot_ids_are_not_machine_ids(name: str) -> None:
    assert not contract.is_valid_name(name)
    with pytest.raises(TopicError, match=r"not starting with '\.'"):
        T.parse(f"pdm/v1/telemetry/{name}")
    with pytest.raises(TopicError):
        T.telemetry(name)
    with pytest.raises(FieldValueError, match="machine_id"):
        contract.parse_telemetry(json.dumps({"machine_id": name, "ts": TS, "temperature": 1, "vibration": 1,
                                             "pressure": 1}))
    with pytest.raises(FieldValueError, match="machine_id"):
        contract.parse_state(json.dumps({"schema": 1, "machine_id": name, "state": "normal", "since": TS,
                                         "instance": "scorer-0", "ts": TS}))


@pytest.mark.parametrize("name", ["pump-007", "a", "A.b", "_x", "-x", "a..b", "x" * 64])
def test_ordinary_ids_stay_valid(name: str) -> None:
    assert contract.is_valid_name(name) and T.parse(T.telemetry(name)).machine_id == name


# ---------------------------------------------------------------- string caps
def test_a_900_kb_machine_type_is_too_long() -> None:
    with pytest.raises(TooLongError, match="machine_type: found 921600 characters, expected at most 200") as info:
        contract.parse_telemetry(batch(machine_type="x" * 900 * 1024), "pump-007")
    assert info.value.reason == "too_long"
    assert contract.parse_telemetry(batch(machine_type="p" * 200)).machine_type == "p" * 200


@pytest.mark.parametrize(("field", "size"), [("reason", 1001), ("by", 201)])
def test_maintenance_texts_are_capped(field: str, size: int) -> None:
    body = {"schema": 1, "machine_id": "pump-007", "from": TS, "until": TS + 60, "reason": "swap", "by": "op"}
    with pytest.raises(TooLongError, match=f"maintenance: {field}: found {size} characters"):
        contract.parse_maintenance(json.dumps({**body, field: "r" * size}))
    assert contract.parse_maintenance(json.dumps({**body, field: "r" * (size - 1)})) is not None


def _alert(**changes: Any) -> dict[str, Any]:
    body = {"schema": 1, "alert_id": contract.alert_id("pump-007", TS), "machine_id": "pump-007", "event": "raised",
            "ts": TS, "window_start": TS - 60, "window_end": TS, "score": 0.9, "threshold": 0.4,
            "severity": "critical", "contributions": {"temperature": 1.0}, "model": {"name": "p", "version": "1"},
            "instance": "scorer-0"}
    return {**body, **changes}


@pytest.mark.parametrize("changes", [{"alert_id": "a" * 201}, {"severity": "s" * 201},
                                     {"model": {"name": "n" * 201, "version": "1"}},
                                     {"contributions": {f"s{i}": 1 / 65 for i in range(65)}},
                                     {"contributions": {"s" * 201: 1.0}}])
def test_alert_texts_and_contributions_are_capped(changes: dict[str, Any]) -> None:
    with pytest.raises(TooLongError):
        contract.parse_alert(json.dumps(_alert(**changes)))
    assert contract.parse_alert(json.dumps(_alert())).severity == "critical"


def test_state_alert_ids_are_capped() -> None:
    body = {"schema": 1, "machine_id": "pump-007", "state": "alert", "since": TS, "alert_id": "x" * 201,
            "instance": "scorer-0", "ts": TS}
    with pytest.raises(TooLongError, match="alert_id"):
        contract.parse_state(json.dumps(body))


def test_a_dead_letter_can_always_be_built_and_is_capped() -> None:
    topic = "pdm/v1/telemetry/" + "x" * 100_000
    r = contract.Rejected.build(topic, "bad_topic", "d" * 50_000, b"{" * 1000, ts=TS)
    assert len(r.topic) == 1024 and len(r.detail) == 1000 and len(r.payload_excerpt) == 200
    assert contract.parse_rejected(r.encode()) == r


def test_error_messages_stay_short_whatever_was_sent() -> None:
    with pytest.raises(TopicError) as info:
        T.parse("pdm/v1/telemetry/" + "y" * 100_000)
    assert len(str(info.value)) < 600
    with pytest.raises(FieldValueError) as info2:
        contract.parse_telemetry(json.dumps({"machine_id": "z" * 100_000, "ts": TS}))
    assert len(str(info2.value)) < 300


# ---------------------------------------------------------------- broker URLs
@pytest.mark.parametrize("url", ["mqtt://alice:s3cret@127.0.0.1:1883", "mqtts://alice:s3cret@broker.example",
                                 "mqtt://alice:s3c@ret@host", "mqtt://:s3cret@host"])
def test_a_broker_url_with_a_password_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(ValueError, match=r"credentials in the URL.*--username.*PDM_MQTT_PASSWORD") as info:
        parse_broker_url(url)
    assert "s3c" not in str(info.value) and "***" in str(info.value)


def test_a_broker_url_with_a_user_only_is_refused_too() -> None:
    with pytest.raises(ValueError, match="credentials in the URL"):
        parse_broker_url("mqtt://alice@127.0.0.1")
    assert parse_broker_url("mqtt://127.0.0.1") == ("127.0.0.1", 1883, False)


def test_redact_url_hides_only_the_password() -> None:
    assert contract.redact_url("mqtt://alice:pw@host:1/x") == "mqtt://alice:***@host:1/x"
    assert contract.redact_url("mqtt://host:1") == "mqtt://host:1"
