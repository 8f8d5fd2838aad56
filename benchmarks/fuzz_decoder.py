"""Fuzzing the contract's decoder: 100,000 payloads (random bytes, mutated valid telemetry batches, extreme numbers,
NaN/Infinity literals, huge integers, deep nesting, odd unicode ids) through ``parse_telemetry``; prints how many
were accepted and rejected by reason, the crashes (any exception that is not a `ContractError` with a known reason,
or an accepted message with a non-finite or out-of-bounds number: must be 0), and payloads/s against valid
batches parsed in the same run (the baseline).

    /work/main/.venv/bin/python benchmarks/fuzz_decoder.py [--payloads 100000] [--seed 0]

Exits 1 when there was a crash (the first few are printed with their payload).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pdm import contract  # noqa: E402 - after making the repository importable
from pdm.contract.errors import ContractError  # noqa: E402

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


def bounded(msg: contract.Telemetry) -> bool:
    finite = msg.values[~np.isnan(msg.values)]
    return bool(np.isfinite(msg.ts).all() and (msg.ts >= contract.MIN_TS).all() and (msg.ts < contract.MAX_TS).all()
                and (np.abs(finite) <= contract.MAX_ABS_VALUE).all() and contract.is_valid_name(msg.machine_id))


def run(items: Iterable[bytes]) -> tuple[Counter[str], list[tuple[str, bytes]], float, int]:
    """Counts by outcome, the crashes, seconds spent parsing (generation excluded), bytes parsed."""
    counts: Counter[str] = Counter()
    crashes: list[tuple[str, bytes]] = []
    seconds, size = 0.0, 0
    for payload in items:
        size += len(payload)
        t = time.perf_counter()
        try:
            msg = contract.parse_telemetry(payload)
        except ContractError as exc:
            counts[exc.reason] += 1
            if exc.reason not in KNOWN_REASONS:
                crashes.append((f"unknown reason {exc.reason!r}", payload))
        except Exception as exc:
            counts["CRASH"] += 1
            crashes.append((f"{type(exc).__name__}: {exc}", payload))
        else:
            counts["accepted"] += 1
            if not bounded(msg):
                counts["CRASH"] += 1
                crashes.append(("accepted a message outside the bounds", payload))
        finally:
            seconds += time.perf_counter() - t
    return counts, crashes, seconds, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payloads", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed + 1)  # noqa: S311
    n_base = min(args.payloads, 20_000)
    base_counts, _, base_s, _ = run(json.dumps(valid(rng)).encode() for _ in range(n_base))
    counts, crashes, seconds, size = run(payloads(args.payloads, args.seed))
    n = args.payloads
    print(f"{n} fuzzed payloads ({size / 1e6:.1f} MB), seed {args.seed}\n")
    print(f"{'outcome':<16}{'payloads':>10}{'share':>9}")
    for reason, k in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"{reason:<16}{k:>10}{k / n:>9.1%}")
    rate, base_rate = n / seconds, n_base / base_s
    print(f"\ncrashes: {len(crashes)}")
    print(f"fuzzed: {rate:,.0f} payloads/s; valid batches (baseline, {base_counts['accepted']} accepted): "
          f"{base_rate:,.0f} payloads/s; ratio {rate / base_rate:.2f}")
    for what, payload in crashes[:5]:
        print(f"  {what}\n    payload: {payload[:200]!r}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
