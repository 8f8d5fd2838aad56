"""Scoring throughput and one-window latency: model.predict vs CompiledKerasEngine (XLA and plain graph).

Untrained default-size autoencoder (window 64, 3 features, hidden 64, latent 16): the computation is the same as a
trained one. All engines are measured in the same run, so ratios are comparable even on a noisy shared machine.

    .venv/bin/python benchmarks/scoring_throughput.py [--cell lstm] [--batch 512] [--repeats 5] [--latency-calls 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

WINDOW, FEATURES, TOLERANCE = 64, 3, 1e-5


@dataclass
class Result:
    name: str
    compile_s: float  # first batch call + first one-window call (tracing / XLA compilation)
    throughput: float  # windows/s, best of repeats
    spread: float  # median / best batch time: well above 1.1 means the timings were noisy
    latency_s: float  # median of one-window calls
    max_diff: float  # max abs difference from model.predict (0 for model.predict itself)


def measure(name: str, fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, single: np.ndarray, *, repeats: int,
            calls: int, reference: tuple[np.ndarray, np.ndarray] | None) -> tuple[Result, np.ndarray, np.ndarray]:
    t0 = time.perf_counter()
    out_batch = fn(x)
    out_single = fn(single)
    compile_s = time.perf_counter() - t0
    fn(x)  # one more untimed call of each shape, so any lazy second-call work is not counted
    fn(single)
    times = [_timed(fn, x) for _ in range(repeats)]
    best = min(times)
    latency = statistics.median(_timed(fn, single) for _ in range(calls))
    diff = 0.0
    if reference is not None:
        diff = max(float(np.max(np.abs(out_batch - reference[0]))), float(np.max(np.abs(out_single - reference[1]))))
    return Result(name, compile_s, len(x) / best, statistics.median(times) / best, latency, diff), out_batch, out_single


def _timed(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> float:
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


def _rate(v: float) -> str:
    return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batch", type=int, default=512, help="windows per throughput call (default 512)")
    parser.add_argument("--repeats", type=int, default=5, help="timed batch calls; the best is kept (default 5)")
    parser.add_argument("--latency-calls", type=int, default=50, help="timed one-window calls; median (default 50)")
    parser.add_argument("--cell", choices=("gru", "lstm"), default="gru", help="recurrent cell (default gru)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make `pdm` importable
    import keras
    import tensorflow as tf

    from pdm.detectors.gru import build_autoencoder
    from pdm.engines.keras_compiled import CompiledKerasEngine

    keras.utils.set_random_seed(0)
    model = build_autoencoder(WINDOW, FEATURES, hidden=64, latent=16, layers=1, dropout=0.0, cell=args.cell)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, WINDOW, FEATURES)).astype(np.float32)
    single = x[:1].copy()
    print(f"{args.cell.upper()} autoencoder T={WINDOW} F={FEATURES} H=64 latent=16; batch {args.batch}, best of "
          f"{args.repeats}; latency median of {args.latency_calls} one-window calls")
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"1-min load average before {os.getloadavg()[0]:.2f}")

    engines: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
        ("model.predict", lambda w: np.asarray(model.predict(w, verbose=0))),
        ("engine XLA (jit_compile=True)", CompiledKerasEngine(model, jit_compile=True).reconstruct),
        ("engine graph (jit_compile=False)", CompiledKerasEngine(model, jit_compile=False).reconstruct),
    ]
    results: list[Result] = []
    reference: tuple[np.ndarray, np.ndarray] | None = None
    for name, fn in engines:
        result, out_batch, out_single = measure(name, fn, x, single, repeats=args.repeats, calls=args.latency_calls,
                                                  reference=reference)
        reference = reference or (out_batch, out_single)
        results.append(result)

    print(f"\n{'engine':<34}{'compile s':>10}{'windows/s':>11}{'spread':>8}{'1 window ms':>13}{'max |diff|':>12}")
    for r in results:
        print(f"{r.name:<34}{r.compile_s:>10.2f}{r.throughput:>11.0f}{r.spread:>8.2f}{r.latency_s * 1e3:>13.2f}"
              f"{r.max_diff:>12.2e}")
    base = results[0]
    print()
    for r in results[1:]:
        print(f"{r.name}: {_rate(r.throughput)} windows/s, {r.throughput / base.throughput:.1f}x model.predict; "
              f"one window {r.latency_s * 1e3:.2f} ms, {base.latency_s / r.latency_s:.0f}x faster")
    print("spread = median/best of the batch repeats (above ~1.1: noisy, e.g. another process on the 2 cores)")

    bad = [r for r in results if not r.max_diff <= TOLERANCE]
    for r in bad:
        print(f"FAIL: {r.name} differs from model.predict by {r.max_diff:.2e} > {TOLERANCE:g}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
