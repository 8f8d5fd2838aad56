"""Scoring engines side by side: model.predict, the compiled Keras engine (XLA) and the ONNX Runtime engine.

Untrained default-size autoencoder (window 64, 3 sensors, hidden 64, latent 16; random weights: the computation is
the same as a trained one's). The Keras engines run in this process; the ONNX engines run in a child process that
never imports TensorFlow (as on an edge gateway), in the same run. Figures: windows/s at one large batch (best of
``--repeats``), the median of ``--latency-calls`` one-window calls (fewer for model.predict, ~70 ms a call), and the
ratios to model.predict and to the FLOP limit (cores x measured single-thread float32 GEMM rate / FLOPs per window).

    .venv/bin/python benchmarks/engine_throughput.py [--cell lstm] [--batch 512] [--repeats 5] [--latency-calls 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WINDOW, FEATURES, HIDDEN, LATENT = 64, 3, 64, 16
TOLERANCE = 1e-5


def flops_per_window(cell: str, *, window: int = WINDOW, features: int = FEATURES, hidden: int = HIDDEN,
                     latent: int = LATENT, decoder_projection_once: bool = False) -> int:
    """Multiply-adds x 2 of the matmuls (activations and element-wise work not counted), one layer each side."""
    g = (3 if cell == "gru" else 4) * hidden  # gate width
    encoder = 2 * window * (features + hidden) * g
    decoder_input = 2 * latent * g * (1 if decoder_projection_once else window)
    decoder = decoder_input + 2 * window * hidden * g
    return encoder + 2 * hidden * latent + decoder + 2 * window * hidden * features


def measure(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, repeats: int, calls: int) -> dict[str, Any]:
    single = np.ascontiguousarray(x[:1])
    out_batch, out_single = fn(x), fn(single)  # compile / allocate
    fn(x)
    fn(single)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(x)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    lat = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn(single)
        lat.append(time.perf_counter() - t0)
    return {"throughput": len(x) / min(times), "spread": statistics.median(times) / min(times),
            "per_cpu_s": len(x) / min(cpu),
            "latency_s": statistics.median(lat), "calls": calls, "out_batch": out_batch, "out_single": out_single}


def gemm_rate(repeats: int = 20) -> float:
    """Single-thread float32 GEMM rate (FLOP/s) of ONNX Runtime's MatMul at the GRU's shape (512x64 . 64x192)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((64, 192)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                                  ir_version=8).SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    x = rng.standard_normal((512 * 16, 64)).astype(np.float32)
    sess.run(None, {"x": x})
    best = min(_timed(lambda: sess.run(None, {"x": x})) for _ in range(repeats))
    return 2 * x.shape[0] * 64 * 192 / best


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def child(onnx_path: str, data_path: str, repeats: int, calls: int, out_path: str) -> None:
    """The ONNX side, in a process without TensorFlow."""
    sys.path.insert(0, str(ROOT))
    from pdm.engines.onnx_engine import OnnxEngine, available_cores

    model = Path(onnx_path).read_bytes()
    data = np.load(data_path)
    x = data["x"]
    cores = available_cores()
    engines: list[tuple[str, Any]] = [("ONNX engine, 1 worker", OnnxEngine(model, workers=1))]
    if cores > 1:
        engines.append((f"ONNX engine, {cores} workers", OnnxEngine(model, workers=cores)))
    if cores > 1:  # the alternative shape: one session whose operators use every core
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = cores
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        engines.append((f"ONNX, 1 session x {cores} threads",
                        lambda w, s=sess: np.asarray(s.run(None, {"window": w})[0])))
    results = {}
    for name, engine in engines:
        fn = engine.reconstruct if hasattr(engine, "reconstruct") else engine
        r = measure(fn, x, repeats=repeats, calls=calls)
        r["max_diff"] = max(float(np.max(np.abs(r.pop("out_batch") - data["ref_batch"]))),
                            float(np.max(np.abs(r.pop("out_single") - data["ref_single"]))))
        results[name] = r
    sweep: dict[str, dict[str, float]] = {}
    for name, engine in engines[:2]:  # windows/s by batch size (the daemon's micro-batches vary)
        for n in (1, 8, 16, 32, 64, 128, 256, 1024, 4096):
            xb = np.ascontiguousarray(np.resize(x, (n, *x.shape[1:])))
            engine.reconstruct(xb)
            best = min(_timed(lambda xb=xb, e=engine: e.reconstruct(xb)) for _ in range(max(3, min(50, 2048 // n))))
            sweep.setdefault(str(n), {})[name] = n / best
    results["_sweep"] = sweep
    for form in ("native", "unrolled"):  # each form of the graph alone, one worker
        engine = OnnxEngine(Path(onnx_path).with_name(f"{form}.onnx").read_bytes(), workers=1)
        r = measure(engine.reconstruct, x, repeats=repeats, calls=calls)
        del r["out_batch"], r["out_single"]
        results[f"form: {form}"] = r
    results["_meta"] = {"cores": cores, "gemm_flops_1_thread": gemm_rate(), "modules_tf": sorted(
        m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))}
    Path(out_path).write_text(json.dumps(results))


def _rate(v: float) -> str:
    return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batch", type=int, default=512, help="windows per throughput call (default 512)")
    parser.add_argument("--repeats", type=int, default=5, help="timed batch calls; the best is kept (default 5)")
    parser.add_argument("--latency-calls", type=int, default=1000, help="one-window calls, median (default 1000)")
    parser.add_argument("--predict-calls", type=int, default=50,
                        help="one-window calls of model.predict (~70 ms each; default 50)")
    parser.add_argument("--cell", choices=("gru", "lstm"), default="gru", help="recurrent cell (default gru)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), int(args.child[3]), args.child[4])
        return 0

    sys.path.insert(0, str(ROOT))
    import keras
    import onnxruntime
    import tensorflow as tf

    from pdm.detectors.gru import build_autoencoder
    from pdm.detectors.gru_onnx.export import export_onnx
    from pdm.detectors.gru_onnx.graph import build_onnx
    from pdm.detectors.gru_onnx.weights import extract_weights
    from pdm.engines.keras_compiled import CompiledKerasEngine

    keras.utils.set_random_seed(0)
    model = build_autoencoder(WINDOW, FEATURES, hidden=HIDDEN, latent=LATENT, layers=1, dropout=0.0, cell=args.cell)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, WINDOW, FEATURES)).astype(np.float32)
    print(f"{args.cell.upper()} autoencoder T={WINDOW} F={FEATURES} H={HIDDEN} latent={LATENT}; batch {args.batch}, "
          f"best of {args.repeats}; latency: median of {args.latency_calls} one-window calls "
          f"({args.predict_calls} for model.predict)")
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, onnxruntime {onnxruntime.__version__}, numpy "
          f"{np.__version__}, {os.cpu_count()} CPUs, 1-min load average before {os.getloadavg()[0]:.2f}")

    t0 = time.perf_counter()
    onnx_model = export_onnx(model)
    export_s = time.perf_counter() - t0
    results: dict[str, dict[str, Any]] = {}
    for name, fn, calls in (("model.predict", lambda w: np.asarray(model.predict(w, verbose=0)), args.predict_calls),
                            ("compiled Keras engine (XLA)", CompiledKerasEngine(model, jit_compile=True).reconstruct,
                             args.latency_calls)):
        results[name] = measure(fn, x, repeats=args.repeats, calls=calls)
    ref = results["model.predict"]
    ref_batch, ref_single = ref.pop("out_batch"), ref.pop("out_single")
    ref["max_diff"] = 0.0
    xla = results["compiled Keras engine (XLA)"]
    xla["max_diff"] = max(float(np.max(np.abs(xla.pop("out_batch") - ref_batch))),
                          float(np.max(np.abs(xla.pop("out_single") - ref_single))))

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, data_path, out_path = Path(tmp, "model.onnx"), Path(tmp, "data.npz"), Path(tmp, "out.json")
        onnx_path.write_bytes(onnx_model)
        weights = extract_weights(model)
        Path(tmp, "native.onnx").write_bytes(build_onnx(weights, split_batch=2**62))
        Path(tmp, "unrolled.onnx").write_bytes(build_onnx(weights, split_batch=0))
        np.savez(data_path, x=x, ref_batch=ref_batch, ref_single=ref_single)
        subprocess.run([sys.executable, __file__, "--child", str(onnx_path), str(data_path), str(args.repeats),  # noqa: S603
                        str(args.latency_calls), str(out_path)], check=True)
        child_results = json.loads(out_path.read_text())
    meta = child_results.pop("_meta")
    forms = {k: child_results.pop(k) for k in list(child_results) if k.startswith("form:")}
    sweep = child_results.pop("_sweep")
    results.update(child_results)

    flops = flops_per_window(args.cell)
    flops_once = flops_per_window(args.cell, decoder_projection_once=True)
    peak = meta["cores"] * meta["gemm_flops_1_thread"]
    limit = peak / flops_once
    print(f"ONNX export + verification: {export_s:.2f} s; TensorFlow modules in the ONNX process: "
          f"{len(meta['modules_tf'])}")
    print(f"work per window: {flops / 1e6:.2f} MFLOP ({flops_once / 1e6:.2f} with the decoder's input projection "
          f"once); GEMM {meta['gemm_flops_1_thread'] / 1e9:.0f} GFLOP/s on 1 thread x {meta['cores']} cores -> "
          f"FLOP limit {_rate(limit)} windows/s")
    print(f"\n{'engine':<30}{'windows/s':>11}{'x predict':>10}{'of limit':>9}{'spread':>8}{'w/CPU-s':>9}"
          f"{'1 window ms':>13}{'x predict':>10}{'max |diff|':>12}")
    base = results["model.predict"]
    for name, r in results.items():
        print(f"{name:<30}{r['throughput']:>11.0f}{r['throughput'] / base['throughput']:>10.1f}"
              f"{r['throughput'] / limit:>9.0%}{r['spread']:>8.2f}{r['per_cpu_s']:>9.0f}{r['latency_s'] * 1e3:>13.3f}"
              f"{base['latency_s'] / r['latency_s']:>10.0f}{r['max_diff']:>12.2e}")
    print("\neach form of the ONNX graph alone, one worker (model.onnx picks the native form below batch 48):")
    for name, r in forms.items():
        print(f"  {name[6:]:<10} {_rate(r['throughput'])} windows/s at batch {args.batch}, "
              f"one window {r['latency_s'] * 1e3:.3f} ms")
    names = list(next(iter(sweep.values())))
    print("\nONNX engine windows/s by batch size: " + "; ".join(
        f"{n}: " + " / ".join(_rate(sweep[n][k]) for k in names) for n in sweep) + f"  ({' / '.join(names)})")
    print("spread = median/best of the batch repeats (above ~1.1: noisy, e.g. another process on the cores); "
          "w/CPU-s = windows per CPU-second of this process (all its threads; less sensitive to other load)")
    print(f"1-min load average after: {os.getloadavg()[0]:.2f}")
    bad = [n for n, r in results.items() if not r["max_diff"] <= TOLERANCE]
    for n in bad:
        print(f"FAIL: {n} differs from model.predict by {results[n]['max_diff']:.2e} > {TOLERANCE:g}", file=sys.stderr)
    if meta["modules_tf"]:
        print(f"FAIL: the ONNX process imported {meta['modules_tf'][:3]}", file=sys.stderr)
    return 1 if bad or meta["modules_tf"] else 0


if __name__ == "__main__":
    sys.exit(main())
