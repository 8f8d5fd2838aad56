"""Fuzzed telemetry payloads for the decoder benchmark (`benchmarks/fuzz_decoder.py`), the daemon's fuzz stream
(`tests/daemon/test_faults_live.py`, `benchmarks/daemon_faults.py`): random bytes, mutated valid batches, extreme
numbers, NaN/Infinity literals, huge integers, deep nesting, odd unicode ids, and valid batches with edge values.
Reproducible: ``payloads(n, seed)``."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator

KNOWN_REASONS = {"bad_topic", "not_json", "too_deep", "schema", "missing_field", "bad_field", "out_of_range",
                 "bad_timestamp", "clock_skew", "too_long", "machine_mismatch", "topic_mismatch"}
TS = 1_795_406_400.0
SENSORS = ("temperature", "vibration", "pressure")
EXTREMES: list[object] = [1e39, -1e39, 3.4028235e38, -0.0, 1e308, -1e308, 1e12, 1e12 + 1, 5e-324, 10**400, 2**64,
                          True, None, "61.2", "", [], {}, float("nan"), float("inf")]
LITERALS = ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 500, "-0", "1E400"]
ODD_IDS = ["", ".", "..", "pump 7", "pump/7", "\u00e9t\u00e9", "\u0000", "x" * 65, "\u202epump", "pump\n",
           "\uff30\uff35\uff2d\uff30"]


def valid(rng: random.Random) -> dict[str, object]:
    n = rng.randint(1, 60)
    rows = [{"ts": TS + i, **{s: (None if rng.random() < 0.05 else rng.uniform(-100, 100)) for s in SENSORS}}
            for i in range(n)]
    return {"schema": 1, "machine_id": "pump-007", "machine_type": "pump", "seq": rng.randint(0, 10**6),
            "readings": rows}


def extreme(rng: random.Random) -> object:
    return copy.deepcopy(rng.choice(EXTREMES))  # a new [] or {} each time: never a circular payload


def mutated(rng: random.Random) -> bytes:
    obj = valid(rng)
    rows = obj["readings"]
    assert isinstance(rows, list)
    for _ in range(rng.randint(1, 3)):
        row = rng.choice([r for r in rows if isinstance(r, dict)])
        target = rng.choice(["value", "ts", "top", "drop", "row"])
        if target == "value":
            row[rng.choice(SENSORS)] = extreme(rng)
        elif target == "ts":
            row["ts"] = rng.choice([extreme(rng), rng.uniform(-1e20, 1e20), TS * 1000, 0.0])
        elif target == "top":
            obj[rng.choice(["seq", "machine_type", "machine_id", "schema", "readings"])] = \
                rng.choice([extreme(rng), *ODD_IDS, "x" * rng.randint(0, 1000)])
        elif target == "drop":
            row.pop(rng.choice(["ts", *SENSORS]), None)
        else:
            rows.append(extreme(rng))
    text = json.dumps(obj)
    if rng.random() < 0.3:
        text = text.replace('"ts": 1795406400.0', f'"ts": {rng.choice(LITERALS)}', 1)
    raw = text.encode()
    if rng.random() < 0.3:  # byte-level damage
        at = rng.randrange(len(raw) + 1)
        raw = raw[:at] + rng.randbytes(rng.randint(0, 8)) + raw[at + rng.randint(0, 8):]
    return raw


def nested(rng: random.Random) -> bytes:
    depth = rng.choice([10, 100, 900, 1000, 5000, 100_000])
    inner = "[" * depth + "1" + "]" * depth
    return rng.choice([inner, '{"a":' * depth + "1" + "}" * depth,
                       f'{{"machine_id": "m", "ts": {TS}, "temperature": {inner}, "vibration": 1, "pressure": 1}}'
                       ]).encode()


def odd_id(rng: random.Random) -> bytes:
    mid = rng.choice([*ODD_IDS, "".join(chr(rng.randint(0, 0x2FFFF)) for _ in range(rng.randint(0, 70)))])
    return json.dumps({"machine_id": mid, "ts": TS, "temperature": 1, "vibration": 2, "pressure": 3}).encode()


def benign(rng: random.Random) -> bytes:
    """A valid batch with edge values that are accepted (-0.0, the smallest float, the bound, null)."""
    obj = valid(rng)
    rows = obj["readings"]
    assert isinstance(rows, list)
    rng.choice(rows)[rng.choice(SENSORS)] = rng.choice([-0.0, 5e-324, 1e12, -1e12, None, 10**12])
    return json.dumps(obj).encode()


MAKERS = [(0.40, mutated), (0.20, lambda r: r.randbytes(r.randint(0, 400))), (0.05, nested), (0.20, odd_id),
          (0.15, benign)]


def payloads(n: int, seed: int) -> Iterator[bytes]:
    """``n`` fuzzed payloads, made one at a time (deep ones are large)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible fuzzing, not cryptography
    for _ in range(n):
        x = rng.random()
        for weight, make in MAKERS:
            if x < weight:
                yield make(rng)
                break
            x -= weight
        else:
            yield mutated(rng)
