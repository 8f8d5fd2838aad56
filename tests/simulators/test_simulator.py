"""The fleet simulator offline: the command line, determinism, labels, random fault scheduling, plausible
physics, one-line errors and the plot command."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulators.fleet import offline
from simulators.fleet.config import SimConfig, fleet_types, parse_mix
from simulators.fleet.engine import Simulator
from simulators.fleet.faults import FAULT_TYPES

ROOT = Path(__file__).resolve().parents[2]
START = 1_795_392_000.0


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulators.fleet", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_help() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "--broker" in result.stdout and "--out" in result.stdout and "bearing_wear" in result.stdout
    plot = run("plot", "--help")
    assert plot.returncode == 0 and "--machine" in plot.stdout


@pytest.mark.parametrize("ext", [".parquet", ".csv"])
def test_same_seed_and_arguments_give_byte_identical_files(tmp_path: Path, ext: str) -> None:
    args = ["--machines", "5", "--duration", "3h", "--seed", "7", "--fault-rate", "6"]
    paths = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}{ext}"
        result = run(*args, "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert "wrote 54,000 readings of 5 machines" in result.stdout
        paths.append(out)
    assert digest(paths[0]) == digest(paths[1])
    faults = [offline.faults_path_for(p) for p in paths]
    assert digest(faults[0]) == digest(faults[1])
    readings, table = offline.read(paths[0])
    assert len(table) > 0  # a high rate, so the fault table is not trivially empty
    other = tmp_path / f"c{ext}"
    assert run(*args[:-3], "8", *args[-2:], "--out", str(other)).returncode == 0  # seed 8
    assert digest(other) != digest(paths[0])
    assert len(readings) == 5 * 3 * 3600


def test_readings_layout(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(fleet_types(5), seed=1, duration_s=600, interval_s=2.0))
    readings, _ = offline.frames(sim)
    assert list(readings.columns) == ["timestamp", "machine_id", "machine_type", "temperature", "vibration",
                                      "pressure", "fault_id", "fault_type", "fault_kind"]
    assert len(readings) == 5 * 300
    ids = ["pump-001", "compressor-001", "pump-002", "motor-001", "pump-003"]
    assert readings["machine_id"].iloc[:5].tolist() == ids  # time order, fleet order within a timestamp
    for mid in ids:
        ts = readings.loc[readings["machine_id"] == mid, "timestamp"].to_numpy()
        assert np.array_equal(ts, START + 2.0 * np.arange(300))
    assert dict(zip(readings["machine_id"], readings["machine_type"], strict=True))["motor-001"] == "motor"
    assert parse_mix("pump=1,motor=2") == ["motor", "pump", "motor"]
    # quantised like real sensors: 0.1 degC, 0.01 mm/s, 0.01 bar
    for sensor, step in (("temperature", 0.1), ("vibration", 0.01), ("pressure", 0.01)):
        v = readings[sensor].to_numpy()
        assert np.allclose(v / step, np.round(v / step), atol=1e-6)


def test_the_ambient_sensor_adds_a_column_and_changes_nothing_else(tmp_path: Path) -> None:
    base = dict(types=fleet_types(3), seed=2, duration_s=6 * 3600, interval_s=10.0, fault_rate_per_day=4.0)
    plain, plain_faults = offline.frames(Simulator(SimConfig(**base)))  # type: ignore[arg-type]
    sim = Simulator(SimConfig(**base, ambient_sensor=True))  # type: ignore[arg-type]
    with_ambient, faults = offline.frames(sim)
    assert sim.sensors == ("temperature", "vibration", "pressure", "ambient")
    assert list(with_ambient.columns) == [*plain.columns[:6], "ambient", *plain.columns[6:]]
    pd.testing.assert_frame_equal(with_ambient.drop(columns="ambient"), plain)
    pd.testing.assert_frame_equal(faults, plain_faults)
    # the air around the machine: below its temperature, slow (no step over 1 degC in 10 s), 0.1 degC steps
    for mid, one in with_ambient.groupby("machine_id"):
        air = one["ambient"].to_numpy()
        assert air.min() > 0 and air.max() < 40, mid
        assert np.abs(np.diff(air)).max() < 1.0, mid
        assert (air < one["temperature"].to_numpy() + 1.0).mean() > 0.99, mid
    assert np.allclose(with_ambient["ambient"] * 10, np.round(with_ambient["ambient"] * 10), atol=1e-6)
    out = tmp_path / "a.csv"
    assert run("--machines", "2", "--duration", "1h", "--ambient-sensor", "--out", str(out)).returncode == 0
    assert "ambient" in offline.read(out)[0].columns


def test_normal_only_mode_has_no_faults(tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    result = run("--machines", "6", "--duration", "12h", "--interval", "5s", "--normal-only", "--fault-rate", "50",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    readings, faults = offline.read(out)
    assert faults.empty
    assert (readings[["fault_id", "fault_type", "fault_kind"]] == "").all().all()
    assert not readings[["temperature", "vibration", "pressure"]].isna().any().any()


@pytest.fixture(scope="module")
def random_faults() -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = Simulator(SimConfig(fleet_types(40), seed=5, duration_s=4 * 86400, interval_s=30.0,
                              fault_rate_per_day=1.0))
    return offline.frames(sim)


def test_random_scheduling_produces_every_fault_type(random_faults: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    readings, faults = random_faults
    assert set(faults["type"]) == set(FAULT_TYPES)
    assert set(faults.loc[faults["kind"] == "sensor", "sensor"]) == {"temperature", "vibration", "pressure"}
    assert faults.loc[faults["kind"] == "machine", "sensor"].isna().all()
    assert set(faults.loc[faults["type"] == "cavitation", "machine_type"]) == {"pump"}
    labelled = set(readings.loc[readings["fault_id"] != "", "fault_type"])
    assert labelled == set(FAULT_TYPES)
    # about `rate` faults per machine-day (fewer: one fault at a time, an hour apart)
    per_machine_day = len(faults) / (40 * 4)
    assert 0.4 < per_machine_day < 1.2
    assert faults["fault_id"].is_unique and not faults["forced"].any()


def test_faults_of_one_machine_never_overlap(random_faults: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, faults = random_faults
    for _, f in faults.sort_values("start").groupby("machine_id"):
        assert (f["start"].to_numpy()[1:] >= f["end"].to_numpy()[:-1] + 3600).all()


def test_signals_are_physical_not_white_noise() -> None:
    sim = Simulator(SimConfig(fleet_types(8), seed=2, duration_s=2 * 86400, interval_s=10.0, normal_only=True))
    readings, _ = offline.frames(sim)
    means = {}
    for mid, df in readings.groupby("machine_id"):
        t, v, p = (df[s].to_numpy() for s in ("temperature", "vibration", "pressure"))
        assert np.corrcoef(t[:-1], t[1:])[0, 1] > 0.95, mid  # a thermal time constant, not noise
        running, stopped = v > 0.5, v < 0.3
        assert running.mean() > 0.4 and stopped.mean() > 0.01, mid  # duty cycles: starts and stops are normal
        assert np.corrcoef(v, p)[0, 1] > 0.5, mid  # speed moves vibration and pressure together
        assert t[running].mean() > t[stopped].mean() + 3, mid  # running machines are warmer
        means[mid] = (df["machine_type"].iloc[0], t.mean(), v[running].mean(), p[running].mean())
    by_type = {k: [m for m in means.values() if m[0] == k] for k in ("pump", "compressor", "motor")}
    assert min(m[1] for m in by_type["compressor"]) > max(m[1] for m in by_type["pump"])  # discharge is hot
    assert min(m[3] for m in by_type["compressor"]) > 5.0 > max(m[3] for m in by_type["pump"])
    assert max(m[3] for m in by_type["motor"]) < 3.5
    assert len({round(m[2], 4) for m in means.values()}) == len(means)  # no two units alike


def test_noise_seed_keeps_the_machines_and_changes_their_days() -> None:
    def run(noise_seed: int | None) -> tuple[Simulator, pd.DataFrame]:
        sim = Simulator(SimConfig(fleet_types(4), seed=5, noise_seed=noise_seed, duration_s=86400, interval_s=10.0,
                                  normal_only=True))
        return sim, offline.frames(sim)[0]

    (same_sim, same), (other_sim, other) = run(None), run(9)
    assert same_sim.fleet.noise_v.tolist() == other_sim.fleet.noise_v.tolist()  # the same units
    assert same_sim.fleet.vib_bg.tolist() == other_sim.fleet.vib_bg.tolist()
    assert not np.allclose(same["vibration"].to_numpy(), other["vibration"].to_numpy())  # on other days
    for mid, df in same.groupby("machine_id"):  # with the same character: each unit's running vibration level
        o = other[other["machine_id"] == mid]
        a, b = df["vibration"][df["vibration"] > 0.5].median(), o["vibration"][o["vibration"] > 0.5].median()
        assert abs(a - b) < 0.25 * a, mid
    assert run(5)[1].equals(same)  # --noise-seed equal to --seed is the default


@pytest.mark.parametrize(("args", "message"), [
    (["--duration", "abc", "--out", "x.parquet"], "--duration: found 'abc', expected a duration"),
    (["--out", "x.txt"], "expected a file name ending in .parquet or .csv"),
    (["--fault", "machine=pump-001,type=melt,start=1h", "--out", "x.csv"], "type: found 'melt'"),
    (["--fault", "machine=pump-099,type=leak,start=1h", "--out", "x.csv"], "machine: found 'pump-099'"),
    (["--normal-only", "--fault", "machine=pump-001,type=leak,start=1h", "--out", "x.csv"], "--normal-only"),
    (["--fault", "machine=pump-001,type=leak,start=1h,duration=5h", "--fault",
      "machine=pump-001,type=stuck,start=2h", "--out", "x.csv"], "overlapping"),
    (["--broker", "http://localhost"], "expected mqtt://HOST:PORT"),
    (["--interval", "0s", "--out", "x.csv"], "--interval"),
])
def test_bad_input_is_a_one_line_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "simulators.fleet", *args], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env={"PYTHONPATH": str(ROOT)}, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0


def test_plot_draws_one_machine_with_its_faults(tmp_path: Path) -> None:
    data = tmp_path / "week.parquet"
    made = run("--machines", "2", "--duration", "2d", "--interval", "10s", "--fault-rate", "0", "--out", str(data),
               "--fault", "machine=pump-001,type=bearing_wear,start=12h,duration=20h",
               "--fault", "machine=pump-001,type=stuck,start=3h,duration=2h,sensor=pressure")
    assert made.returncode == 0, made.stderr
    png = tmp_path / "pump.png"
    result = run("plot", str(data), "--machine", "pump-001", "--out", str(png))
    assert result.returncode == 0, result.stderr
    head = png.read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n" and 10_000 < png.stat().st_size < 300_000
    missing = run("plot", str(data), "--machine", "pump-009", "--out", str(png))
    assert missing.returncode == 2 and "found 'pump-009'" in missing.stderr


def test_the_documented_fault_table_lists_every_fault_type() -> None:
    doc = (ROOT / "docs" / "simulator.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")[2].strip() for line in doc.splitlines()
            if line.startswith("| `")}
    assert {t: rows.get(t, "").split()[0] if rows.get(t) else None for t in FAULT_TYPES} == {
        t: ft.kind for t, ft in FAULT_TYPES.items()}
