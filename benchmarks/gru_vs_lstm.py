"""GRU vs LSTM autoencoders of the same width, side by side on the same simulated fleet data, several seeds.

For each seed s, both cells see the same fleet and the same seed (a paired comparison):

1. ``simulators.fleet --normal-only`` over ``--train-days`` (training) and, with the same fleet seed, random faults
   over train + test span; only the rows after the training span are judged (as ``evaluate_on_simulator.py``).
   The fleet seed is ``--data-seed + s`` (``--same-data``: ``--data-seed`` for every s).
2. ``GRUAutoencoderDetector(cell=...)`` with the ``pdm train`` defaults except the size flags below, and the z-score
   baseline beside it (as ``pdm train``); saved as a model version (``model.keras`` + verified ``model.onnx``).
   Time per epoch: the median of epochs 2.. (epoch 1 also traces the graph); epochs run under early stopping.
3. ``python -m pdm evaluate`` on the test span: `pdm.evaluation` figures for the model and the baseline.
4. Speed of each saved model's scoring engine (``reconstruct``, as ``engine_throughput.py``): the compiled Keras
   engine in this process, the ONNX engine in a child process that never imports TensorFlow; windows/s at
   ``--batch`` (best of ``--repeats``) and the median of ``--latency-calls`` one-window calls, GRU and LSTM
   interleaved so load from other processes hits both, in ``--speed-rounds`` rounds (best kept).
5. Training speed with the cells' epochs interleaved (the quality runs of step 2 run minutes apart, so their
   seconds per epoch also measure the other load on the machine at the time).

Reports mean, sample SD and range over seeds, and the paired LSTM - GRU difference with a 95% t interval; writes
``build/gru_vs_lstm.json``, ``build/gru_vs_lstm.md`` and ``docs/gru_vs_lstm.png``.

    .venv/bin/python benchmarks/gru_vs_lstm.py [--seeds 3] [--machines 4] [--train-days 1.5] [--test-days 1]
        [--max-train-windows 10000] [--epochs 30] [--reuse] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400.0
CELLS = ("gru", "lstm")
FEATURES = ["temperature", "vibration", "pressure"]
# key, label, format, lower is better (None: neither)
METRICS: list[tuple[str, str, str, bool | None]] = [
    ("params", "parameters", ",.0f", None),
    ("epoch_s", "training s/epoch, in the quality run", ".2f", True),
    ("epoch_s_paired", "training s/epoch, epochs interleaved", ".2f", True),
    ("epochs_run", "epochs run (early stopping)", ".1f", None),
    ("validation_loss", "best validation loss (MSE)", ".4f", True),
    ("keras_wps", "windows/s, compiled Keras, batch 512", ",.0f", False),
    ("onnx_wps", "windows/s, ONNX, batch 512", ",.0f", False),
    ("keras_latency_ms", "one window, compiled Keras (ms)", ".3f", True),
    ("onnx_latency_ms", "one window, ONNX (ms)", ".3f", True),
    ("event_recall", "event recall (machine faults)", ".3f", False),
    ("false_alarms_per_machine_day", "false alarms per machine-day", ".3f", True),
    ("median_delay_min", "median detection delay (min)", ".0f", True),
    ("f1", "pointwise F1", ".3f", False),
]
QUALITY = {"event_recall", "false_alarms_per_machine_day", "median_delay_min", "f1"}


def sh(*args: object, log: Path | None = None) -> None:
    cmd = [sys.executable, *map(str, args)]
    print("$", " ".join(cmd[1:]), flush=True)
    if log is None:
        subprocess.run(cmd, check=True, cwd=ROOT)  # noqa: S603 - our own commands
        return
    with open(log, "w") as out:
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=out)  # noqa: S603


def make_data(args: argparse.Namespace, fleet_seed: int) -> tuple[Path, Path]:
    import pandas as pd

    d = args.out / f"data-{fleet_seed}"
    train, full, test = d / "train.parquet", d / "full.parquet", d / "test.parquet"
    if args.reuse and train.exists() and test.exists():
        return train, test
    d.mkdir(parents=True, exist_ok=True)
    mix = f"{args.type}={args.machines}"
    sh("-m", "simulators.fleet", "--mix", mix, "--duration", f"{args.train_days * 24:g}h", "--normal-only",
       "--seed", fleet_seed, "--out", train, "--quiet")
    sh("-m", "simulators.fleet", "--mix", mix, "--duration", f"{(args.train_days + args.test_days) * 24:g}h",
       "--fault-rate", args.fault_rate, "--seed", fleet_seed, "--out", full, "--quiet")
    data = pd.read_parquet(full)
    start = data["timestamp"].min() + args.train_days * DAY
    data[data["timestamp"] >= start].reset_index(drop=True).to_parquet(test)
    return train, test


def train_and_evaluate(args: argparse.Namespace, cell: str, seed: int, train: Path, test: Path) -> dict[str, Any]:
    """Train one model, save it, judge it with `pdm evaluate`; the run's figures (cached in runs/*.json)."""
    import keras
    import pandas as pd

    from pdm.detectors.gru import GRUAutoencoderDetector
    from pdm.detectors.zscore import RobustZScoreDetector

    name = f"{cell}-s{seed}"
    cache, model_dir = args.out / "runs" / f"{name}.json", args.out / "models" / name
    if args.reuse and cache.exists() and (model_dir / "current").exists():
        run = dict(json.loads(cache.read_text()))
        if "validation_windows" not in run:  # cached by an earlier version of this script
            version = model_dir / (model_dir / "current").read_text().strip()
            run["validation_windows"] = json.loads((version / "evaluation.json").read_text())["validation_windows"]
        return run
    keras.backend.clear_session()
    frame = pd.read_parquet(train)
    common: dict[str, Any] = {"features": FEATURES, "machine_column": "machine_id"}
    sizes = {k: getattr(args, k) for k in ("window", "hidden", "latent", "max_train_windows", "epochs", "patience")}
    det = GRUAutoencoderDetector(cell=cell, seed=seed, **sizes, **common)  # type: ignore[arg-type]
    ends: list[float] = []
    t0 = time.perf_counter()
    det.fit(frame, progress=lambda epoch, epochs, figures: ends.append(time.perf_counter()))
    fit_s = time.perf_counter() - t0
    baseline = RobustZScoreDetector(seed=seed, **common).fit(frame)
    det.save(model_dir, companions={"baseline": baseline})
    e = det.evaluation_
    figures = args.out / "runs" / f"{name}-evaluate.json"
    sh("-m", "pdm", "evaluate", "--model", model_dir, "--data", test, "--label-column", "fault_type",
       "--kind-column", "fault_kind", "--json", figures, log=args.out / "runs" / f"{name}-evaluate.txt")
    quality = json.loads(figures.read_text())
    run = {"cell": cell, "seed": seed, "params": int(det.model_.count_params()), "epochs_run": e["epochs_run"],
           "best_epoch": e["best_epoch"], "train_windows": e["train_windows"],
           "validation_windows": e["validation_windows"],
           "epoch_s": statistics.median(np.diff(ends)) if len(ends) > 1 else None,
           "fit_s": fit_s, "validation_loss": e["validation_loss"], "threshold": det.threshold_.value,
           "model": quality["GRU autoencoder"], "baseline": quality["z-score baseline"]}
    cache.write_text(json.dumps(run, indent=1))
    print(f"{name}: {run['params']} params, {run['epochs_run']} epochs, {run['epoch_s']:.2f} s/epoch, fit "
          f"{fit_s:.0f} s; detected {run['model']['detected']}/{run['model']['faults']}, false alarms "
          f"{run['model']['false_alarms']}", flush=True)
    return run


def measure(fn: Callable[[np.ndarray], Any], x: np.ndarray, *, repeats: int, calls: int) -> dict[str, float]:
    """Windows/s at batch len(x) (best of ``repeats``) and the median of ``calls`` one-window calls (ms)."""
    one = np.ascontiguousarray(x[:1])
    for _ in range(2):  # compile / allocate
        fn(x)
        fn(one)
    best = min(_timed(fn, x) for _ in range(repeats))
    lat = statistics.median(_timed(fn, one) for _ in range(calls))
    return {"wps": len(x) / best, "latency_ms": lat * 1e3}


def _timed(fn: Callable[[np.ndarray], Any], x: np.ndarray) -> float:
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


def speed_windows(args: argparse.Namespace) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((args.batch, args.window, len(FEATURES))).astype(np.float32)


def onnx_child(spec_path: str, out_path: str) -> None:
    """The ONNX side, in a process that never imports TensorFlow (as on an edge gateway)."""
    sys.path.insert(0, str(ROOT))
    from pdm.detectors.base import Detector

    spec = json.loads(Path(spec_path).read_text())
    args = argparse.Namespace(**spec["args"])
    x, out = speed_windows(args), dict[str, Any]()
    for name, path in spec["models"].items():
        engine = Detector.load(path, engine="onnx").engine_  # type: ignore[attr-defined]
        out[name] = measure(engine.reconstruct, x, repeats=args.repeats, calls=args.latency_calls)
    out["_tf_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    Path(out_path).write_text(json.dumps(out))


def measure_speed(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    """Both engines for every model, GRU and LSTM interleaved, in ``--speed-rounds`` rounds (each: compiled Keras
    here, then ONNX in a child process); keeps each model's best windows/s and lowest median latency."""
    from pdm.detectors.base import Detector

    models = {f"{r['cell']}-s{r['seed']}": str(args.out / "models" / f"{r['cell']}-s{r['seed']}") for r in runs}
    x = speed_windows(args)
    engines = {name: Detector.load(path, engine="keras").engine_ for name, path in models.items()}  # type: ignore[attr-defined]
    spec, out = args.out / "onnx-spec.json", args.out / "onnx-speed.json"
    spec.write_text(json.dumps({"models": models, "args": {k: getattr(args, k) for k in
                                                           ("batch", "window", "repeats", "latency_calls")}}))
    best: dict[tuple[str, str], dict[str, float]] = {}
    for i in range(args.speed_rounds):
        figs = {("keras", n): measure(e.reconstruct, x, repeats=args.repeats, calls=args.latency_calls)
                for n, e in engines.items()}
        sh(__file__, "--onnx-child", spec, out)
        onnx_figs = json.loads(out.read_text())
        if onnx_figs.pop("_tf_modules"):
            raise SystemExit("the ONNX child process imported TensorFlow or Keras: its timings are not an edge's")
        figs |= {("onnx", n): f for n, f in onnx_figs.items()}
        for k, f in figs.items():
            b = best.setdefault(k, dict(f))
            b["wps"], b["latency_ms"] = max(b["wps"], f["wps"]), min(b["latency_ms"], f["latency_ms"])
        print(f"speed round {i + 1}/{args.speed_rounds}: " + "; ".join(
            f"{e} {n} {f['wps']:,.0f} w/s {f['latency_ms']:.3f} ms" for (e, n), f in figs.items()), flush=True)
    for r in runs:
        for engine in ("keras", "onnx"):
            f = best[engine, f"{r['cell']}-s{r['seed']}"]
            r[f"{engine}_wps"], r[f"{engine}_latency_ms"] = f["wps"], f["latency_ms"]


def measure_training_speed(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    """Seconds per training epoch with the cells' epochs interleaved (GRU, LSTM, LSTM, GRU, ...), so other load
    on the machine hits both alike: per seed, the product's model (`build_autoencoder`, Adam, MSE, batch 256) of
    each cell on as many windows as the quality run fitted, one untimed epoch each, then ``--train-speed-epochs``
    timed epochs each; adds the median as ``epoch_s_paired``. The data are random windows: the work per epoch
    does not depend on the values."""
    import keras

    from pdm.detectors.gru import build_autoencoder

    by = {(r["cell"], r["seed"]): r for r in runs}
    for seed in sorted({r["seed"] for r in runs}):
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        n_fit, n_val = by["gru", seed]["train_windows"], by["gru", seed]["validation_windows"]
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n_fit + n_val, args.window, len(FEATURES))).astype(np.float32)
        fit, val = x[n_val:], (x[:n_val], x[:n_val])
        models = {}
        for cell in CELLS:
            models[cell] = build_autoencoder(args.window, len(FEATURES), hidden=args.hidden, latent=args.latent,
                                             layers=1, dropout=0.0, cell=cell)
            models[cell].compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
            models[cell].fit(fit, fit, epochs=1, batch_size=256, verbose=0, validation_data=val)  # trace
        times: dict[str, list[float]] = {c: [] for c in CELLS}
        for i in range(args.train_speed_epochs):
            for cell in CELLS if i % 2 == 0 else CELLS[::-1]:
                t0 = time.perf_counter()
                models[cell].fit(fit, fit, epochs=1, batch_size=256, verbose=0, validation_data=val)
                times[cell].append(time.perf_counter() - t0)
        for cell in CELLS:
            by[cell, seed]["epoch_s_paired"] = statistics.median(times[cell])
        print(f"training s/epoch, interleaved, seed {seed}: " + ", ".join(
            f"{c} {' '.join(f'{t:.1f}' for t in times[c])}" for c in CELLS), flush=True)


def value(run: dict[str, Any], key: str, source: str = "model") -> float | None:
    if key in QUALITY:
        q = run[source]
        v = q["median_delay_s"] / 60 if key == "median_delay_min" and q["median_delay_s"] is not None else q.get(key)
        return None if v is None else float(v)
    return None if run.get(key) is None else float(run[key])


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric: each cell's values by seed, mean, SD, range; the paired LSTM - GRU difference with a 95% t
    interval (``resolved``: the interval excludes 0); for speeds also the GRU/LSTM ratio by seed."""
    from scipy import stats

    seeds = sorted({r["seed"] for r in runs})
    by = {(r["cell"], r["seed"]): r for r in runs}
    out: dict[str, Any] = {}
    for key, *_ in METRICS:
        entry: dict[str, Any] = {}
        for cell in CELLS:
            vals = [value(by[cell, s], key) for s in seeds]
            got = [v for v in vals if v is not None]
            entry[cell] = {"by_seed": vals, "mean": statistics.fmean(got) if got else None,
                           "sd": statistics.stdev(got) if len(got) > 1 else None,
                           "min": min(got, default=None), "max": max(got, default=None)}
        diffs = [b - a for a, b in zip(entry["gru"]["by_seed"], entry["lstm"]["by_seed"], strict=True)
                 if a is not None and b is not None]
        if len(diffs) > 1:
            mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
            half = float(stats.t.ppf(0.975, len(diffs) - 1)) * sd / len(diffs) ** 0.5
            entry["diff"] = {"mean": mean, "ci95": [mean - half, mean + half],
                             "resolved": bool(mean - half > 0 or mean + half < 0)}
        if key.endswith(("wps", "latency_ms", "epoch_s", "epoch_s_paired")):
            entry["gru_over_lstm"] = [a / b for a, b in zip(entry["gru"]["by_seed"], entry["lstm"]["by_seed"],
                                                            strict=True) if a and b]
        if key in QUALITY:
            base = [value(by["gru", s], key, "baseline") for s in seeds]
            entry["baseline_mean"] = statistics.fmean([v for v in base if v is not None]) if any(
                v is not None for v in base) else None
        out[key] = entry
    for cell in CELLS:
        out[f"faults_{cell}"] = [sum(by[cell, s]["model"][k] for s in seeds) for k in ("detected", "faults")]
    out["faults_baseline"] = [sum(by["gru", s]["baseline"][k] for s in seeds) for k in ("detected", "faults")]
    return out


def _f(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def table(summary: dict[str, Any], n_seeds: int) -> str:
    lines = [f"| figure ({n_seeds} seeds: mean ± SD [min, max]) | GRU | LSTM | LSTM - GRU, paired (95% CI) | "
             "resolved | GRU / LSTM |", "|---|---|---|---|---|---|"]
    for key, label, spec, _ in METRICS:
        e = summary[key]
        cells = [f"{_f(e[c]['mean'], spec)} ± {_f(e[c]['sd'], spec)} [{_f(e[c]['min'], spec)}, "
                 f"{_f(e[c]['max'], spec)}]" for c in CELLS]
        d = e.get("diff")
        diff = f"{_f(d['mean'], spec)} ({_f(d['ci95'][0], spec)} to {_f(d['ci95'][1], spec)})" if d else "-"
        ratio = e.get("gru_over_lstm")
        ratio_s = f"{statistics.fmean(ratio):.2f}x [{min(ratio):.2f}, {max(ratio):.2f}]" if ratio else ""
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {diff} | {'yes' if d and d['resolved'] else 'no'} "
                     f"| {ratio_s} |")
    g, ls, b = summary["faults_gru"], summary["faults_lstm"], summary["faults_baseline"]
    base = ", ".join(f"{label} {_f(summary[k]['baseline_mean'], spec)}" for k, label, spec, _ in METRICS
                     if k in QUALITY)
    lines += ["", f"Machine faults detected over all seeds: GRU {g[0]}/{g[1]}, LSTM {ls[0]}/{ls[1]}; z-score baseline "
              f"on the same data {b[0]}/{b[1]} ({base})."]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 5, figsize=(19, 9.5))
    colors = {"gru": "#1f77b4", "lstm": "#ff7f0e"}
    for ax in axes.flat[len(METRICS):]:
        ax.axis("off")
    for ax, (key, label, _, lower) in zip(axes.flat, METRICS, strict=False):
        e = summary[key]
        for i, cell in enumerate(CELLS):
            s = e[cell]
            if s["mean"] is None:
                continue
            ax.bar(i, s["mean"], color=colors[cell], alpha=0.75, width=0.6,
                   yerr=[[s["mean"] - s["min"]], [s["max"] - s["mean"]]], capsize=6)
            pts = [v for v in s["by_seed"] if v is not None]
            ax.scatter(i + np.linspace(-0.12, 0.12, len(pts)), pts, color="black", s=12, zorder=3)
        if e.get("baseline_mean") is not None:
            ax.axhline(e["baseline_mean"], color="gray", linestyle="--", linewidth=1, label="z-score baseline")
            ax.legend(fontsize=7, loc="lower right")
        d = e.get("diff")
        note = "" if lower is None else (" (lower is better)" if lower else " (higher is better)")
        ax.set_title(label + note, fontsize=9)
        ax.set_xticks([0, 1], ["GRU", "LSTM"])
        if d:
            ax.set_xlabel(f"LSTM - GRU, paired 95% CI: {d['ci95'][0]:.3g} to {d['ci95'][1]:.3g}"
                          + (" *" if d["resolved"] else ""), fontsize=8)
        ax.margins(y=0.15)
    fig.suptitle(title + "\nbars: mean over seeds, whiskers: min-max, dots: seeds; * = paired 95% CI excludes 0",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (model seeds 0..n-1)")
    p.add_argument("--type", default="pump", choices=["pump", "compressor", "motor"])
    p.add_argument("--machines", type=int, default=4)
    p.add_argument("--train-days", type=float, default=1.5)
    p.add_argument("--test-days", type=float, default=1.0)
    p.add_argument("--fault-rate", type=float, default=3.0, help="random faults per machine-day")
    p.add_argument("--data-seed", type=int, default=20, help="fleet seed of model seed 0 (then +1 per seed)")
    p.add_argument("--same-data", action="store_true", help="one fleet (--data-seed) for every seed")
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--max-train-windows", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=30, help="at most; early stopping with --patience")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--batch", type=int, default=512, help="windows per throughput call")
    p.add_argument("--repeats", type=int, default=5, help="timed batch calls, best kept")
    p.add_argument("--latency-calls", type=int, default=1000, help="one-window calls, median")
    p.add_argument("--speed-rounds", type=int, default=3, help="speed rounds over all models; best kept")
    p.add_argument("--train-speed-epochs", type=int, default=3,
                   help="timed training epochs per cell and seed, interleaved")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "gru_vs_lstm")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "gru_vs_lstm.png")
    p.add_argument("--reuse", action="store_true", help="reuse generated data and trained runs (speed re-measured)")
    p.add_argument("--report-only", action="store_true", help="redraw table and plot from the JSON")
    p.add_argument("--onnx-child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.onnx_child:
        onnx_child(*args.onnx_child)
        return 0
    sys.path.insert(0, str(ROOT))
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    if args.report_only:
        result = json.loads(json_path.read_text())
    else:
        from pdm.tf_import import import_tensorflow_quietly

        import_tensorflow_quietly()
        logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices from the export's checks
        started, load0 = time.monotonic(), os.getloadavg()[0]
        (args.out / "runs").mkdir(parents=True, exist_ok=True)
        runs = []
        for seed in range(args.seeds):
            train, test = make_data(args, args.data_seed + (0 if args.same_data else seed))
            for cell in CELLS if seed % 2 == 0 else CELLS[::-1]:  # alternate which cell trains first
                runs.append(train_and_evaluate(args, cell, seed, train, test))
        measure_speed(args, runs)
        measure_training_speed(args, runs)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "onnx_child"}
        result = {"config": config, "runs": runs, "summary": summarise(runs),
                  "minutes": (time.monotonic() - started) / 60, "load_average": [load0, os.getloadavg()[0]],
                  "cpus": os.cpu_count()}
        json_path.write_text(json.dumps(result, indent=1))
    c = result["config"]
    title = (f"GRU vs LSTM autoencoder (window {c['window']}, hidden {c['hidden']}, latent {c['latent']}): "
             f"{c['seeds']} seeds x {c['machines']} {c['type']}s, {c['train_days']:g} d train / {c['test_days']:g} d "
             f"test{', one fleet' if c['same_data'] else ', one fleet per seed'}")
    setup = (f"Training: at most {c['max_train_windows']:,} windows, {c['epochs']} epochs (patience {c['patience']}); "
             f"fault rate {c['fault_rate']:g} per machine-day; speed: batch {c['batch']}, best of {c['repeats']} x "
             f"{c['speed_rounds']} rounds, latency median of {c['latency_calls']} calls. Quality runs: "
             f"{sum(r['fit_s'] for r in result['runs']) / 60:.0f} min of training in all.")
    text = f"{title}\n\n{setup}\n\n{table(result['summary'], c['seeds'])}"
    md_path.write_text(text)
    plot(result["summary"], Path(c["plot"]), title)
    print(f"\n{text}\n{len(result['runs'])} runs (this invocation: {result['minutes']:.0f} min); 1-min load average "
          f"{result['load_average'][0]:.1f} -> {result['load_average'][1]:.1f} on {result['cpus']} CPUs\n"
          f"table -> {md_path}, {json_path}; plot -> {c['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
