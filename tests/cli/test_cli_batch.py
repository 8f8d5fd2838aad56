"""train -> score -> evaluate driven as a user would, in subprocesses, on generated files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.support import synthetic
from tests.support.cli import pdm

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--window", "16", "--hidden", "8", "--latent", "4", "--epochs", "3", "--max-train-windows", "3000"]


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, result.stderr  # other lines may only be logged warnings
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training CSVs (one per machine, one with spaces in its column names is not needed here), a labelled test
    file with a machine column as a semicolon CSV with decimal commas, and a trained model."""
    ws = tmp_path_factory.mktemp("cli")
    for m, (f, _) in synthetic.fleet(2, 2000, seed=1).items():
        f.drop(columns="label").to_csv(ws / f"{m}.csv", index=False)
    test = synthetic.fleet(2, 1500, seed=2, fault_kinds=("vibration_step",), fault_len=400)
    frame = pd.concat([f.assign(machine_id=m) for m, (f, _) in test.items()], ignore_index=True)
    frame["fault"] = frame.pop("label").map({0: "", 1: "vibration_step"})
    frame.to_csv(ws / "test.csv", sep=";", decimal=",", index=False)
    result = pdm("train", "--data", ws / "pump-000.csv", "--data", ws / "pump-001.csv", "--out", ws / "models/pump",
                 *SMALL)
    assert result.returncode == 0, result.stderr
    assert "now current" in result.stdout and "threshold" in result.stdout
    return ws


def test_train_writes_a_current_version_with_a_baseline(workspace: Path) -> None:
    name_dir = workspace / "models/pump"
    version = name_dir / (name_dir / "current").read_text().strip()
    assert (version / "model.keras").is_file() and (version / "baseline" / "manifest.json").is_file()
    config = json.loads((version / "config.json").read_text())
    assert config["params"]["window"] == 16 and config["params"]["machine_column"] == "machine_id"


def test_score_keeps_every_row_in_input_order(workspace: Path) -> None:
    shuffled = pd.read_csv(workspace / "test.csv", sep=";", decimal=",").sample(frac=1.0, random_state=3)
    shuffled.to_parquet(workspace / "shuffled.parquet")
    out = workspace / "scores.csv"
    result = pdm("score", "--model", workspace / "models/pump", "--data", workspace / "shuffled.parquet", "--out", out)
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(out)
    assert len(scores) == len(shuffled)
    assert scores["timestamp"].tolist() == shuffled["timestamp"].tolist()
    assert scores["machine_id"].tolist() == shuffled["machine_id"].tolist()
    assert list(scores.columns) == ["timestamp", "machine_id", "score", "threshold", "is_anomaly",
                                    "contrib_temperature", "contrib_vibration", "contrib_pressure"]
    assert scores["score"].isna().sum() == 2 * 15  # window 16: 15 rows per machine without a full window
    assert not scores.loc[scores["score"].isna(), "is_anomaly"].any()


def test_evaluate_reports_gru_and_baseline_and_plots(workspace: Path) -> None:
    png, figures = workspace / "eval.png", workspace / "eval.json"
    result = pdm("evaluate", "--model", workspace / "models/pump", "--data", workspace / "test.csv",
                 "--label-column", "fault", "--plot", png, "--json", figures)
    assert result.returncode == 0, result.stderr
    assert "GRU autoencoder" in result.stdout and "z-score baseline" in result.stdout
    data = json.loads(figures.read_text())
    for name in ("GRU autoencoder", "z-score baseline"):
        assert data[name]["faults"] == 1 and data[name]["machines"] == 2
        assert data[name]["by_type"]["vibration_step"]["faults"] == 1
    assert data["grace_s"] == 32.0
    assert png.stat().st_size > 10_000


def test_spaces_in_column_names_and_explicit_features(tmp_path: Path) -> None:
    frame, _ = synthetic.machine_frame(900, seed=5)
    frame = frame.drop(columns="label").rename(columns={"timestamp": "Sample Time", "temperature": "Bearing Temp",
                                                        "vibration": "Motor Vib", "pressure": "Outlet P"})
    frame["Sample Time"] = pd.to_datetime(frame["Sample Time"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    frame["Comment"] = "ok"
    frame.to_csv(tmp_path / "unit 7.csv", index=False)
    result = pdm("train", "--data", tmp_path / "unit 7.csv", "--out", tmp_path / "m", "--timestamp-column",
                 "Sample Time", "--features", "Bearing Temp,Motor Vib", *SMALL)
    assert result.returncode == 0, result.stderr
    result = pdm("score", "--model", tmp_path / "m", "--data", tmp_path / "unit 7.csv", "--out", tmp_path / "s.csv")
    assert result.returncode == 0, result.stderr
    assert {"contrib_Bearing Temp", "contrib_Motor Vib"} <= set(pd.read_csv(tmp_path / "s.csv").columns)


@pytest.mark.parametrize("case", ["missing_column", "non_numeric", "no_timestamp", "too_few_rows", "bad_model",
                                  "no_file", "no_label_column"])
def test_bad_input_is_one_line_and_nonzero(case: str, workspace: Path, tmp_path: Path) -> None:
    good = pd.read_csv(workspace / "pump-000.csv")
    model = workspace / "models/pump"
    data = tmp_path / "data.csv"
    if case == "missing_column":
        good.drop(columns="pressure").to_csv(data, index=False)
        one_line_error(pdm("score", "--model", model, "--data", data, "--out", tmp_path / "o.csv"),
                       "missing ['pressure']")
    elif case == "non_numeric":
        good.assign(vibration=good.vibration.astype(str).where(good.index != 7, "ERR")).to_csv(data, index=False)
        one_line_error(pdm("score", "--model", model, "--data", data, "--out", tmp_path / "o.csv"),
                       "'vibration' is not numeric", "'ERR'", "row 7")
    elif case == "no_timestamp":
        good.drop(columns="timestamp").to_csv(data, index=False)
        one_line_error(pdm("train", "--data", data, "--out", tmp_path / "m", *SMALL), "no timestamp column")
    elif case == "too_few_rows":
        good.head(10).to_csv(data, index=False)
        one_line_error(pdm("score", "--model", model, "--data", data, "--out", tmp_path / "o.csv"),
                       "too few rows", "window=16")
    elif case == "bad_model":
        (tmp_path / "broken").mkdir()
        one_line_error(pdm("score", "--model", tmp_path / "broken", "--data", workspace / "pump-000.csv", "--out",
                           tmp_path / "o.csv"), "not a model directory")
    elif case == "no_file":
        one_line_error(pdm("score", "--model", model, "--data", tmp_path / "nope.csv", "--out", tmp_path / "o.csv"),
                       "no such file")
    else:
        one_line_error(pdm("evaluate", "--model", model, "--data", workspace / "test.csv", "--label-column", "lbl"),
                       "label column 'lbl' not found")


def test_mixed_files_keep_their_own_machine_ids(tmp_path: Path) -> None:
    from pdm.commands.common import load_data

    pd.DataFrame({"timestamp": [0.0, 0.0], "machine_id": ["m1", "m2"], "x": [1.0, 2.0]}).to_csv(tmp_path / "fleet.csv",
                                                                                            index=False)
    pd.DataFrame({"timestamp": [0.0], "x": [3.0]}).to_csv(tmp_path / "m3.csv", index=False)
    frame = load_data([tmp_path / "fleet.csv", tmp_path / "m3.csv"], "machine_id")
    assert frame["machine_id"].tolist() == ["m1", "m2", "m3"]


@pytest.mark.parametrize(("flag", "value", "needle"), [("--stride", "foo", "--stride 'foo'"),
                                                       ("--alarm-k", "121", "expected k <= n"),
                                                       ("--target-false-alarm-rate", "2", "between 0 and 1")])
def test_bad_hyperparameters_are_one_line(flag: str, value: str, needle: str, workspace: Path,
                                          tmp_path: Path) -> None:
    one_line_error(pdm("train", "--data", workspace / "pump-000.csv", "--out", tmp_path / "m", *SMALL, flag, value),
                   needle)


def test_train_pca_and_evaluate_it(workspace: Path) -> None:
    result = pdm("train", "--detector", "pca", "--data", workspace / "pump-000.csv", "--data",
                 workspace / "pump-001.csv", "--out", workspace / "models/pca")
    assert result.returncode == 0, result.stderr
    name_dir = workspace / "models/pca"
    version = name_dir / (name_dir / "current").read_text().strip()
    assert json.loads((version / "config.json").read_text())["detector"] == "pca_t2q"
    assert (version / "pca.json").is_file() and (version / "baseline" / "manifest.json").is_file()
    figures = workspace / "pca-figures.json"
    result = pdm("evaluate", "--model", name_dir, "--data", workspace / "test.csv", "--label-column", "fault",
                 "--json", figures)
    assert result.returncode == 0, result.stderr
    reported = json.loads(figures.read_text())
    assert reported["PCA T²+Q"]["faults"] >= 1 and "z-score baseline" in reported


def test_train_with_a_reference_sensor_and_info_names_it(tmp_path: Path) -> None:
    data = synthetic.fleet(1, 2000, seed=3)["pump-000"][0].drop(columns="label")
    data["ambient"] = 18.0 + 0.001 * (data["timestamp"] - data["timestamp"].iloc[0])
    data["temperature"] += data["ambient"]
    data.to_csv(tmp_path / "pump-000.csv", index=False)
    result = pdm("train", "--detector", "pca", "--data", tmp_path / "pump-000.csv", "--out", tmp_path / "m",
                 "--reference", "temperature=ambient")
    assert result.returncode == 0, result.stderr
    assert "reference temperature scored as temperature - ambient" in result.stdout
    info = pdm("info", tmp_path / "m")
    assert "reference  temperature scored as temperature - ambient" in info.stdout
    assert "ambient [degC]" in info.stdout
    one_line_error(pdm("train", "--detector", "pca", "--data", tmp_path / "pump-000.csv", "--out", tmp_path / "x",
                       "--reference", "temperature"), "expected SENSOR=REFERENCE")
    one_line_error(pdm("train", "--detector", "pca", "--data", tmp_path / "pump-000.csv", "--out", tmp_path / "x",
                       "--reference", "temperature=outdoor"), "found ['outdoor'], expected sensors of the model")
