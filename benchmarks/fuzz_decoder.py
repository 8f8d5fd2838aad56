"""Fuzzing the contract's decoder: 100,000 payloads (random bytes, mutated valid telemetry batches, extreme numbers,
NaN/Infinity literals, huge integers, deep nesting, odd unicode ids) through ``parse_telemetry``; prints how many
were accepted and rejected by reason, the crashes (any exception that is not a `ContractError` with a known reason,
or an accepted message with a non-finite or out-of-bounds number: must be 0), and payloads/s against valid
batches parsed in the same run (the baseline).

    .venv/bin/python benchmarks/fuzz_decoder.py [--payloads 100000] [--seed 0]

Exits 1 when there was a crash (the first few are printed with their payload).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pdm import contract  # noqa: E402 - after making the repository importable
from pdm.contract.errors import ContractError  # noqa: E402
from tests.support.fuzz import KNOWN_REASONS, payloads, valid  # noqa: E402


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
