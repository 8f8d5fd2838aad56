"""``python -m pdm retrain`` and ``python -m pdm models`` as a user (or a scheduler) runs them: exit codes,
one-line errors, the lock, listing and rollback, the --every loop stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pdm.detectors.zscore import RobustZScoreDetector
from pdm.retrain import RetrainOptions, from_frame, retrain
from pdm.retrain.lock import model_lock
from pdm.retrain.report import REPORT_JSON
from pdm.saving import current_version, ordered_versions
from tests.support.cli import command, pdm
from tests.support.retrain import SMALL, fleet

ROOT = Path(__file__).resolve().parents[2]


def in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``pdm.cli.main`` in this process (no start-up cost), as a CompletedProcess."""
    import argparse

    from pdm import cli
    from pdm.commands import models, retrain

    build = cli.build_parser

    def with_commands() -> argparse.ArgumentParser:
        parser = build()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, module in (("retrain", retrain), ("models", models)):
            if name not in sub.choices:
                module.register(sub)
        return parser

    monkeypatch.setattr(cli, "build_parser", with_commands)
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(map(str, args)), code, out, err)


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "history.parquet"
    fleet(4000, 2).to_parquet(path)
    return path


@pytest.fixture
def zscore_models(zscore: RobustZScoreDetector, tmp_path: Path) -> Path:
    """models/pump with two versions (a train, then a promoted retrain), the second current."""
    name_dir = tmp_path / "models" / "pump"
    for report in (None, {"decision": {"promote": True}, "challenger": {"init": "scratch"}}):
        def write(tmp: Path, report: dict[str, object] | None = report) -> None:
            if report:
                (tmp / REPORT_JSON).write_text(json.dumps(report))
        zscore.save(name_dir, extra_files=write)
        time.sleep(0.01)
    return name_dir


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, data_file: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "models" / "pump"
    one_line_error(pdm("retrain", "--model", model), 2, "neither --data nor --recorder")  # the real process

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return in_process(monkeypatch, capsys, *args)

    one_line_error(run("retrain", "--model", model, "--data", tmp_path / "nope.csv"), 2, "nope.csv", "no such file")
    one_line_error(run("retrain", "--model", model, "--data", data_file, "--tolerance", "1.5"), 2, "--tolerance 1.5")
    one_line_error(run("retrain", "--model", model, "--data", data_file, "--holdout", "3"), 2, "--holdout")
    one_line_error(run("retrain", "--model", model, "--data", data_file, "--every", "5s"), 2, "--every 5s")
    one_line_error(run("retrain", "--model", model, "--data", data_file, "--margin-before", "soon"), 2,
                   "--margin-before: found 'soon'")
    one_line_error(run("retrain", "--model", model, "--data", data_file, "--init", "finetune"), 2,
                   "--init finetune: found no champion")
    one_line_error(run("retrain", "--model", model, "--data", data_file, "--machine", "pump-999"), 2,
                   "--machine: found ['pump-999']")
    one_line_error(run("models", tmp_path / "nope"), 2, "does not exist")
    assert ordered_versions(model) == []


def test_a_second_retrain_fails_fast_while_the_lock_is_held(zscore_models: Path, data_file: Path) -> None:
    before = ordered_versions(zscore_models)
    with model_lock(zscore_models):
        started = time.monotonic()
        result = pdm("retrain", "--model", zscore_models, "--data", data_file)
        one_line_error(result, 4, "another retrain or rollback holds", ".retrain.lock", f"pid {os.getpid()}")
        assert time.monotonic() - started < 60
        one_line_error(pdm("models", zscore_models, "--rollback"), 4, "another retrain or rollback holds")
    assert ordered_versions(zscore_models) == before and current_version(zscore_models) == before[-1]


def test_models_lists_versions_and_rolls_back(zscore_models: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    first, second = ordered_versions(zscore_models)

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return in_process(monkeypatch, capsys, *args)

    listing = pdm("models", zscore_models.parent)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].startswith("pump (2 version(s))")
    assert any(ln.startswith(f"  {first}") and " train " in ln for ln in lines)
    assert any(ln.startswith(f"* {second}") and "promoted" in ln for ln in lines)
    as_json = json.loads(run("models", zscore_models, "--json").stdout)
    assert [v["current"] for v in as_json["pump"]] == [False, True]
    back = pdm("models", zscore_models, "--rollback")
    assert back.returncode == 0 and f"current {second} -> {first} (verified)" in back.stdout
    assert current_version(zscore_models) == first
    one_line_error(run("models", zscore_models, "--rollback"), 2, "no version before")
    one_line_error(run("models", zscore_models, "--rollback", "20200101T000000Z"), 2, "not a saved version")


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    name_dir = tmp_path_factory.mktemp("cli-champion") / "pump"
    # trained on the same days as `data_file`: a champion that knows the held-out data, against which a one-epoch
    # challenger on 8 % of it is worse on false alarms
    retrain(from_frame(fleet(4000, 2)), name_dir, RetrainOptions(overrides=dict(SMALL)))
    return name_dir


@pytest.mark.slow
def test_exit_codes_promoted_0_and_kept_3(champion: Path, data_file: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(champion, tmp_path / "models" / "pump"))
    before = current_version(model)
    common = ["--margin-before", "1m", "--margin-after", "1m"]
    kept = pdm("retrain", "--model", model, "--data", data_file, "--holdout", "0.92", "--epochs", "1", *common)
    assert kept.returncode == 3, kept.stdout + kept.stderr
    assert "decision  CHAMPION KEPT: false alarms" in kept.stdout and "(not current)" in kept.stdout
    assert "screened" not in kept.stdout  # labelled data (a 'fault' column): not screened by default
    assert current_version(model) == before and len(ordered_versions(model)) == 2
    promoted = pdm("retrain", "--model", model, "--data", data_file, "--force", "--keep", "1", *common)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert "decision  PROMOTED" in promoted.stdout and "(now current)" in promoted.stdout
    assert "pruned" in promoted.stdout and len(ordered_versions(model)) == 1 != before
    assert "Traceback" not in promoted.stderr and "training" in promoted.stderr  # plain log lines, not a terminal


@pytest.mark.slow
def test_every_loop_runs_then_stops_cleanly_on_sigterm(champion: Path, data_file: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(champion, tmp_path / "models" / "pump"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(command("retrain", "--model", model, "--data", data_file, "--every", "1h", "--force",
                                    "--no-screen"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while len(ordered_versions(model)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert len(ordered_versions(model)) == 2, "the first run did not finish"
        time.sleep(2.0)  # now sleeping until the next run
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "decision  PROMOTED" in out and "next retrain in" in err and "stopped" in err


def test_trust_champion_reaches_the_options() -> None:
    import argparse

    from pdm.commands.retrain_args import add_arguments, options_from

    p = argparse.ArgumentParser()
    add_arguments(p)
    base = ["--model", "models/pump", "--data", "x.parquet"]
    assert options_from(p.parse_args(base)).trust_champion is False
    assert options_from(p.parse_args([*base, "--trust-champion"])).trust_champion is True
