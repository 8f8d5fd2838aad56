"""Telemetry payloads: a single reading or a batch (one message per machine per publish interval).

Parsing returns arrays ready for a model: ``ts`` (n,) and ``values`` (n, sensors), ``NaN`` where a sensor's value
was ``null`` (dropout). A needed sensor whose key is absent makes the message invalid; extra fields are counted and
ignored. Bounds (`pdm.contract.limits`): every value within ``max_abs_value`` (``out_of_range``), every ``ts`` from
2000 to before 2100 (``bad_timestamp``) and, when the consumer asks (``max_clock_skew_s``), near its receive time
(``clock_skew``); ``machine_type`` at most 200 characters (``too_long``). What is returned is finite (or ``NaN``
for a null) and within those bounds.

>>> msg = parse_telemetry(encode_batch("pump-007", 5, [1795406400.0, 1795406401.0], {"temperature": [61.2, 61.3],
...                       "vibration": [2.3, float("nan")], "pressure": [4.0, 4.1]}), machine_id="pump-007")
>>> msg.seq, msg.ts.tolist(), msg.values[1].tolist()
(5, [1795406400.0, 1795406401.0], [61.3, nan, 4.1])
>>> from pdm.contract.errors import ContractError
>>> try:
...     parse_telemetry(b'{"machine_id": "pump-007", "ts": 1795406400.0, "temperature": 61.2, "vibration": 2.3,'
...                     b' "pressure": 3.4028235e38}')
... except ContractError as exc:
...     print(exc.reason)
out_of_range
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pdm.contract._decode import SCHEMA, Payload, check_machine_id, check_schema, decode_object, is_number, short
from pdm.contract.errors import FieldValueError, MissingFieldError, OutOfRangeError, TimestampError
from pdm.contract.limits import (
    MAX_ABS_VALUE,
    MAX_INT,
    TS_RANGE,
    check_clock_skew,
    check_text,
    check_times,
    iso,
    plausible_time,
)

SENSORS: tuple[str, ...] = ("temperature", "vibration", "pressure")
AMBIENT = "ambient"  # optional: the air temperature at the machine, a reference for its temperature
UNITS = {"temperature": "degC", "vibration": "mm/s RMS", "pressure": "bar", AMBIENT: "degC"}
_TOP_LEVEL = frozenset({"schema", "machine_id", "machine_type", "seq", "readings"})


@dataclass(frozen=True, eq=False)
class Telemetry:
    """One parsed telemetry message (a single reading is a batch of one with ``batch=False`` and no ``seq``)."""

    machine_id: str
    ts: np.ndarray  # (n,) float64, epoch seconds
    values: np.ndarray  # (n, len(sensors)) float64, NaN where the value was null
    sensors: tuple[str, ...]
    seq: int | None = None
    machine_type: str | None = None
    batch: bool = True
    extra_fields: int = 0  # unknown keys seen (ignored, counted)

    def __len__(self) -> int:
        return len(self.ts)


def _null_if_nan(values: Sequence[float | None]) -> list[float | None]:
    return [None if v is None or math.isnan(v) else float(v) for v in values]


def encode_reading(machine_id: str, ts: float, values: Mapping[str, float | None]) -> bytes:
    """A single-reading payload (``NaN`` or ``None`` becomes ``null``)."""
    check_machine_id(machine_id, "telemetry", None)
    obj: dict[str, Any] = {"machine_id": machine_id, "ts": float(ts)}
    for name, v in values.items():
        obj[name] = None if v is None or math.isnan(v) else float(v)
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def encode_batch(machine_id: str, seq: int, ts: Sequence[float], values: Mapping[str, Sequence[float | None]],
                 machine_type: str | None = None) -> bytes:
    """A batch payload: ``values`` maps each sensor to one value per timestamp (``NaN``/``None`` -> ``null``)."""
    check_machine_id(machine_id, "telemetry", None)
    names = list(values)
    columns = [_null_if_nan(values[n]) for n in names]
    if any(len(c) != len(ts) for c in columns):
        raise FieldValueError(f"telemetry batch: found sensor columns of lengths {[len(c) for c in columns]}, "
                              f"expected {len(ts)} values each (one per timestamp)")
    rows = zip(*columns, strict=True) if names else ((),) * len(ts)
    readings = [{"ts": float(t), **dict(zip(names, row, strict=True))} for t, row in zip(ts, rows, strict=True)]
    obj: dict[str, Any] = {"schema": SCHEMA, "machine_id": machine_id}
    if machine_type is not None:
        obj["machine_type"] = machine_type
    obj["seq"] = int(seq)
    obj["readings"] = readings
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _reading(row: object, i: int | None, sensors: Sequence[str], out_values: np.ndarray, what: str, *,
             max_abs: float) -> float:
    where = what if i is None else f"{what} reading {i}"
    if not isinstance(row, dict):
        raise FieldValueError(f"{where}: found a {type(row).__name__}, expected a JSON object")
    if "ts" not in row:
        raise MissingFieldError(f"{where}: found no key 'ts', expected epoch seconds")
    ts = row["ts"]
    if not is_number(ts) or ts < 0:
        raise FieldValueError(f"{where}: ts: found {short(ts)}, expected epoch seconds (a finite number >= 0)")
    for j, name in enumerate(sensors):
        if name not in row:
            raise MissingFieldError(f"{where}: found no key {name!r}, expected every sensor of {list(sensors)} "
                                    "(null when the sensor has no value)")
        v = row[name]
        if v is None:
            out_values[j] = np.nan
        elif not is_number(v):
            raise FieldValueError(f"{where}: {name}: found {short(v)}, expected a finite number or null")
        elif not -max_abs <= v <= max_abs:  # exact for integers of any size: nothing is converted first
            raise OutOfRangeError(f"{where}: {name}: found {short(v)}, expected a number within +-{max_abs:g} "
                                  "(a larger value is not a measurement; null when the sensor has no value)")
        else:
            out_values[j] = v
    if not plausible_time(ts):
        raise TimestampError(f"{where}: ts: found {short(ts)} ({iso(ts)}), "
                             f"expected {TS_RANGE}")
    return float(ts)


def parse_telemetry(payload: Payload, machine_id: str | None = None, sensors: Sequence[str] = SENSORS, *,
                    max_abs_value: float = MAX_ABS_VALUE, now: float | None = None,
                    max_clock_skew_s: float | None = None) -> Telemetry:
    """Validate a single reading or a batch. ``machine_id`` is the topic's MACHINE (checked when given);
    ``sensors`` are the keys the consumer needs (each must be present, ``null`` allowed).

    ``max_abs_value`` bounds every sensor value (``out_of_range`` beyond). With ``max_clock_skew_s``, every ``ts``
    must be within that many seconds of ``now`` (the receive time; default: the clock now), ``clock_skew``
    otherwise; ``None`` (the default) does not check it. Timestamps before 2000 or from 2100 on are always
    ``bad_timestamp``."""
    what = "telemetry"
    obj = decode_object(payload, what)
    check_schema(obj, what, required=False)
    mid = check_machine_id(obj.get("machine_id"), what, machine_id) if "machine_id" in obj else None
    if mid is None:
        raise MissingFieldError(f"{what}: found no key 'machine_id', expected the machine id (equal to the topic's)")
    machine_type = obj.get("machine_type")
    if machine_type is not None:
        if not isinstance(machine_type, str):
            raise FieldValueError(f"{what}: machine_type: found {short(machine_type)}, expected a string")
        check_text(machine_type, f"{what}: machine_type")
    sensors = tuple(sensors)
    if "readings" not in obj:
        values = np.empty((1, len(sensors)))
        ts = _reading(obj, None, sensors, values[0], what, max_abs=max_abs_value)
        extra = len(obj.keys() - _TOP_LEVEL - {"ts", *sensors})
        msg = Telemetry(mid, np.array([ts]), values, sensors, None, machine_type, False, extra)
        return _skew_checked(msg, what, now, max_clock_skew_s)
    seq = obj.get("seq")
    if seq is not None and (type(seq) is not int or seq < 0):
        raise FieldValueError(f"{what}: seq: found {short(seq)}, expected an integer >= 0")
    if seq is not None and seq > MAX_INT:
        raise OutOfRangeError(f"{what}: seq: found {short(seq)}, expected an integer <= {MAX_INT} (int64)")
    rows = obj["readings"]
    if not isinstance(rows, list) or not rows:
        raise FieldValueError(f"{what}: readings: found {short(rows)}, expected a non-empty list of readings")
    fast = _fast_rows(rows, sensors, max_abs_value)
    if fast is not None:
        ts_arr, values, extra = fast
        check_times(ts_arr, what)
    else:  # slow path: reading by reading, to say exactly what is wrong
        values = np.empty((len(rows), len(sensors)))
        ts_arr = np.array([_reading(r, i, sensors, values[i], what, max_abs=max_abs_value) for i, r in enumerate(rows)])
        known = {"ts", *sensors}
        extra = sum(len(r.keys() - known) for r in rows)
    extra += len(obj.keys() - _TOP_LEVEL)
    msg = Telemetry(mid, ts_arr, values, sensors, seq, machine_type, True, extra)
    return _skew_checked(msg, what, now, max_clock_skew_s)


def _skew_checked(msg: Telemetry, what: str, now: float | None, max_clock_skew_s: float | None) -> Telemetry:
    if max_clock_skew_s is not None:
        check_clock_skew(msg.ts, what, time.time() if now is None else now, max_clock_skew_s)
    return msg


_NUMBER_TYPES = frozenset({int, float})
_VALUE_TYPES = frozenset({int, float, type(None)})


def _fast_rows(rows: list[Any], sensors: tuple[str, ...], max_abs: float,
               ) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Arrays for a well-formed batch in a few C-level passes; ``None`` when anything is off (the slow path then
    finds and names the problem). The timestamps' range is left to the caller."""
    try:
        ts_list = [r["ts"] for r in rows]
        flat = [r[s] for r in rows for s in sensors]
        n_keys = sum(map(len, rows))
    except (KeyError, TypeError):
        return None
    if not set(map(type, ts_list)) <= _NUMBER_TYPES or not set(map(type, flat)) <= _VALUE_TYPES:
        return None
    try:
        ts = np.array(ts_list, dtype=np.float64)
        values = np.array(flat, dtype=np.float64).reshape(len(rows), len(sensors))
    except OverflowError:  # an integer beyond float64
        return None
    finite = np.isfinite(values)
    if not (np.isfinite(ts).all() and (ts >= 0).all()) or int((~finite).sum()) != flat.count(None):
        return None  # a NaN or infinity that was not a null
    if (np.abs(values) > max_abs).any():  # NaN (a null) compares False
        return None
    return ts, values, n_keys - len(rows) * (1 + len(sensors))
