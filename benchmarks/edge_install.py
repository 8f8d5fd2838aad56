"""The edge-gateway install: scoring with the ONNX engine and no TensorFlow. Size on disk, start time and RSS.

Builds ``build/edge-venv`` with only the packages the daemon needs to score with ONNX Runtime (versions pinned in
requirements.txt): numpy, onnxruntime, pandas, paho-mqtt, pydantic, pydantic-settings, prometheus-client, pyarrow,
scipy. ``pdm`` itself is used from this source tree (``PYTHONPATH``). Then, in fresh processes, times loading a
saved default-size model (window 64, 3 sensors, hidden 64, trained one epoch: speed does not depend on the weights)
and scoring one window, and reads each process's peak RSS: edge venv with ``engine="onnx"``, and the full venv with
``engine="onnx"`` and ``engine="keras"`` for comparison.

    .venv/bin/python benchmarks/edge_install.py [--runs 5] [--keep]     # --keep reuses build/edge-venv
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "build" / "edge-venv"
MODEL = ROOT / "build" / "edge-model"
PACKAGES = ["numpy", "onnxruntime", "pandas", "paho-mqtt", "pydantic", "pydantic-settings", "prometheus-client",
            "pyarrow", "scipy"]

PROBE = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from pdm.detectors import Detector
det = Detector.load(sys.argv[1], engine=sys.argv[2])
t1 = time.perf_counter()
windows = np.zeros((1, det.window_length, len(det.features_)), dtype=np.float32)
scores, _ = det.score_windows(windows)
t2 = time.perf_counter()
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"import_load_s": t1 - t0, "first_score_s": t2 - t1, "engine": type(det.engine_).__name__,
                  "rss_mb": int(hwm) / 1024,
                  "tf": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))[:3]}))
"""


def pinned(names: list[str]) -> list[str]:
    """``name==version`` for each name, from requirements.txt."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        spec = line.split("#")[0].strip()
        if "==" in spec:
            name, version = spec.split("==")
            pins[name.strip().lower()] = version.strip()
    return [f"{n}=={pins[n]}" for n in names]


def dir_size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def build_venv(keep: bool) -> float:
    if keep and (EDGE / "bin" / "python").exists():
        return 0.0
    shutil.rmtree(EDGE, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(EDGE)], check=True)  # noqa: S603 - our own command
    subprocess.run([str(EDGE / "bin" / "pip"), "install", "--quiet", *pinned(PACKAGES)], check=True)  # noqa: S603
    return time.perf_counter() - t0


def save_model() -> None:
    """A default-size GRU detector, one epoch on a small synthetic frame (TensorFlow is needed to train)."""
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from pdm.detectors.gru import GRUAutoencoderDetector

    if (MODEL / "pump" / "current").exists():
        return
    rng = np.random.default_rng(0)
    n = 4000
    t = np.arange(n, dtype=float)
    frame = pd.DataFrame({"timestamp": t, "temperature": 40 + np.sin(t / 300) + rng.normal(0, 0.2, n),
                          "vibration": 2 + rng.normal(0, 0.1, n), "pressure": 3 + rng.normal(0, 0.05, n)})
    GRUAutoencoderDetector(epochs=1, max_train_windows=3000).fit(frame).save(MODEL / "pump")


def probe(python: Path, engine: str) -> dict[str, float | str | list[str]]:
    """One fresh process: wall time from spawn to exit, its peak RSS (VmHWM, MB) and its own timings."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(python), "-c", PROBE, str(MODEL / "pump"), engine],  # noqa: S603
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{python} engine={engine} failed: {err[-2000:]}")
    return {**json.loads(out.strip().splitlines()[-1]), "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per configuration (default 5)")
    parser.add_argument("--keep", action="store_true", help="reuse build/edge-venv if it exists")
    args = parser.parse_args(argv)
    install_s = build_venv(args.keep)
    save_model()
    full = Path(sys.executable)
    edge_mb = dir_size(EDGE) / 1e6
    full_mb = dir_size(Path(sys.prefix)) / 1e6
    print(f"edge venv {EDGE.relative_to(ROOT)}: {edge_mb:.0f} MB on disk ({', '.join(PACKAGES)} and their "
          f"dependencies){f'; installed in {install_s:.0f} s' if install_s else ''}")
    site = next(EDGE.glob("lib/python*/site-packages"))
    largest = sorted(((dir_size(p) / 1e6, p.name) for p in site.iterdir() if p.is_dir()), reverse=True)[:6]
    print("  largest: " + ", ".join(f"{name} {mb:.0f} MB" for mb, name in largest))
    print(f"full venv {Path(sys.prefix).name} (TensorFlow, Keras, ...): {full_mb:.0f} MB on disk")
    print(f"\nload {MODEL.relative_to(ROOT)}/pump and score one window, {args.runs} fresh processes each (median):")
    print(f"{'configuration':<34}{'start->exit s':>14}{'import+load s':>14}{'1st score ms':>13}{'peak RSS MB':>12}"
          "  TF imported")
    rows = []
    for label, python, engine in (("edge venv, engine=onnx", EDGE / "bin" / "python", "onnx"),
                                  ("full venv, engine=onnx", full, "onnx"),
                                  ("full venv, engine=keras", full, "keras")):
        runs = [probe(python, engine) for _ in range(args.runs)]
        med = {k: statistics.median(float(r[k]) for r in runs)  # type: ignore[arg-type]
               for k in ("wall_s", "import_load_s", "first_score_s", "rss_mb")}
        rows.append((label, med))
        print(f"{label:<34}{med['wall_s']:>14.2f}{med['import_load_s']:>14.2f}{med['first_score_s'] * 1e3:>13.1f}"
              f"{med['rss_mb']:>12.0f}  {runs[0]['tf'] or 'no'}")
    edge, keras = rows[0][1], rows[2][1]
    print(f"\nedge (onnx) vs full venv with Keras: {keras['wall_s'] / edge['wall_s']:.1f}x faster start, "
          f"{keras['rss_mb'] / edge['rss_mb']:.1f}x less memory, {full_mb / edge_mb:.1f}x less disk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
