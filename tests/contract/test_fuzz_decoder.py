"""Fuzzing the decoder (issue 14) with hypothesis: random bytes, mutated valid telemetry batches, extreme numbers
(1e39, -0.0, 1e308, NaN and Infinity literals, huge integers), deep nesting and odd unicode ids. Whatever comes in,
``parse_telemetry`` and the other parsers either return a valid message whose numbers are finite and within the
contract's bounds, or raise a `ContractError` with a known reason code: never any other exception.

Bounded and reproducible: derandomized, no example database, a few thousand examples in all (about 10 s).
``benchmarks/fuzz_decoder.py`` runs 100,000 payloads and prints the counts by reason."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdm import contract
from pdm.contract.errors import ContractError

KNOWN_REASONS = {"bad_topic", "not_json", "too_deep", "schema", "missing_field", "bad_field", "out_of_range",
                 "bad_timestamp", "clock_skew", "too_long", "machine_mismatch", "topic_mismatch"}
T = contract.Topics()
TS = 1_795_406_400.0
SENSORS = ("temperature", "vibration", "pressure")
FUZZ = settings(max_examples=600, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

EXTREMES = [1e39, -1e39, 3.4028235e38, -0.0, 0.0, 1e308, -1e308, 1e12, 1e12 + 1, 5e-324, 10**400, -(10**30), 2**63,
            2**64, True, None, "61.2", "", [], {}, [1.0], {"v": 1}]
LITERALS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 500, "-0", "1E400", "0.0e-99999"]
ODD_IDS = ["", ".", "..", "pump 7", "pump/7", "pump+", "pump#", "\u00e9t\u00e9", "\u0000", "\ud800", "x" * 65,
           "\u202epump", "pump\n", "\uff10", "\uff30\uff35\uff2d\uff30"]


def check_telemetry(payload: bytes | str, machine_id: str | None) -> None:
    """The property: a valid, bounded `Telemetry`, or a `ContractError` with a known reason."""
    try:
        msg = contract.parse_telemetry(payload, machine_id)
    except ContractError as exc:
        assert exc.reason in KNOWN_REASONS, exc.reason
        assert "\n" not in str(exc) and len(str(exc)) < 2000
        return
    assert contract.is_valid_name(msg.machine_id)
    assert machine_id is None or msg.machine_id == machine_id
    assert msg.ts.dtype == np.float64 and msg.values.dtype == np.float64 and msg.values.shape == (len(msg), 3)
    assert np.isfinite(msg.ts).all() and (msg.ts >= contract.MIN_TS).all() and (msg.ts < contract.MAX_TS).all()
    finite = msg.values[~np.isnan(msg.values)]
    assert np.isfinite(finite).all() and (np.abs(finite) <= contract.MAX_ABS_VALUE).all()
    assert msg.machine_type is None or (isinstance(msg.machine_type, str) and len(msg.machine_type) <= 200)
    assert msg.seq is None or 0 <= msg.seq <= 2**63 - 1


def check_any(topic: str, payload: bytes | str) -> None:
    """Every parser by topic: a message (or ``None`` for a cleared maintenance), or a known `ContractError`."""
    try:
        msg = contract.parse_message(T, topic, payload)
    except ContractError as exc:
        assert exc.reason in KNOWN_REASONS, exc.reason
        return
    if isinstance(msg, contract.Message):
        for value in contract.model_dict(msg).values():
            if isinstance(value, float):
                assert math.isfinite(value)


def batch_obj(n: int, values: list[float | None]) -> dict[str, Any]:
    rows = [{"ts": TS + i, **{s: values[(i * 3 + j) % len(values)] for j, s in enumerate(SENSORS)}} for i in range(n)]
    return {"schema": 1, "machine_id": "pump-007", "machine_type": "pump", "seq": 7, "readings": rows}


extremes = st.sampled_from(EXTREMES).map(copy.deepcopy)  # a new [] or {} each time: never a circular payload
valid_batches = st.builds(batch_obj, st.integers(1, 5),
                          st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=1, max_size=6))


@st.composite
def mutated_batches(draw: st.DrawFn) -> bytes:
    """A valid batch with a few fields replaced by extremes, removed, or its text cut and spliced."""
    obj = draw(valid_batches)
    rows = obj["readings"]
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(["value", "ts", "top", "drop", "row"]))
        row = draw(st.sampled_from([r for r in rows if isinstance(r, dict)]))  # the first rows stay objects
        if target == "value":
            row[draw(st.sampled_from(SENSORS))] = draw(extremes)
        elif target == "ts":
            row["ts"] = draw(st.one_of(extremes, st.floats(-1e20, 1e20)))
        elif target == "top":
            obj[draw(st.sampled_from(["seq", "machine_type", "machine_id", "schema", "readings"]))] = \
                draw(st.one_of(extremes, st.sampled_from(ODD_IDS), st.text(max_size=30)))
        elif target == "drop":
            row.pop(draw(st.sampled_from(["ts", *SENSORS])), None)
        else:
            rows.append(draw(extremes))
    text = json.dumps(obj)  # NaN and Infinity literals when a float is nan or inf
    if draw(st.booleans()):  # a literal JSON does not produce from Python values
        text = text.replace("61", draw(st.sampled_from(LITERALS)), 1).replace("\"ts\": 1795406401.0",
                                                                           f"\"ts\": {draw(st.sampled_from(LITERALS))}")
    raw = text.encode()
    if draw(st.booleans()):  # byte-level damage: cut, splice random bytes
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(max_size=8)) + raw[at + draw(st.integers(0, 8)):]
    return raw


@st.composite
def nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 5000))
    kind = draw(st.sampled_from(["array", "object", "in_field", "in_readings"]))
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    inner = "[" * depth + "1" + "]" * depth
    if kind == "in_field":
        return f'{{"machine_id": "pump-007", "ts": {TS}, "temperature": {inner}, "vibration": 1, "pressure": 1}}'
    return f'{{"machine_id": "pump-007", "readings": [{{"ts": {TS}, "temperature": 1, "vibration": {inner}}}]}}'


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([None, "pump-007"]))
def test_random_bytes(payload: bytes, machine_id: str | None) -> None:
    check_telemetry(payload, machine_id)


@FUZZ
@given(mutated_batches(), st.sampled_from([None, "pump-007"]))
def test_mutated_valid_batches(payload: bytes, machine_id: str | None) -> None:
    check_telemetry(payload, machine_id)


@settings(FUZZ, max_examples=200)
@given(nested())
def test_deep_nesting(payload: str) -> None:
    check_telemetry(payload, None)
    check_any("pdm/v1/state/pump-007", payload)


@FUZZ
@given(st.one_of(st.sampled_from(ODD_IDS), st.text(max_size=70)), st.sampled_from(["telemetry", "state", "alerts"]))
def test_odd_unicode_ids(machine: str, kind: str) -> None:
    body = json.dumps({"schema": 1, "machine_id": machine, "ts": TS, "temperature": 1.0, "vibration": 2.0,
                       "pressure": 3.0, "state": "normal", "since": TS, "instance": "scorer-0"})
    check_any(f"pdm/v1/{kind}/{machine}", body)
    check_telemetry(body, None)


@settings(FUZZ, max_examples=400)
@given(st.sampled_from(["telemetry", "truth", "maintenance", "alerts", "state"]),
       st.dictionaries(st.sampled_from(["schema", "machine_id", "ts", "since", "from", "until", "reason", "by",
                                        "state", "event", "alert_id", "score", "contributions", "instance", "model",
                                        "window_start", "window_end", "severity", "threshold", "fault", "kind"]),
                       st.one_of(extremes, st.sampled_from(ODD_IDS), st.floats(allow_nan=True),
                                 st.text(max_size=20)), max_size=12))
def test_every_parser_on_random_objects(kind: str, obj: dict[str, Any]) -> None:
    check_any(f"pdm/v1/{kind}/pump-007", json.dumps(obj, default=str))


def test_the_strategies_reach_both_outcomes() -> None:
    """The fuzzed batches are not all rejected: the property is checked on accepted messages too."""
    accepted = contract.parse_telemetry(json.dumps(batch_obj(3, [1.0, None, -0.0])).encode())
    assert len(accepted) == 3 and accepted.values[0, 2] == 0.0
    for literal in LITERALS[:5]:
        payload = f'{{"machine_id": "m", "ts": {TS}, "temperature": {literal}, "vibration": 1, "pressure": 1}}'
        try:
            contract.parse_telemetry(payload)
        except ContractError as exc:
            assert exc.reason in {"bad_field", "out_of_range"}
        else:
            raise AssertionError(f"{literal} was accepted")
