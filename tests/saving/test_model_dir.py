"""Model directories: atomic versions, the current pointer, and rejection of every kind of damage."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pdm import saving
from pdm.detectors.base import Detector
from pdm.detectors.zscore import RobustZScoreDetector
from pdm.errors import ChecksumMismatchError, CorruptModelError, ModelLoadError, UnsupportedFormatError
from pdm.saving import model_dir


@pytest.fixture
def saved(zscore: RobustZScoreDetector, tmp_path: Path) -> Path:
    return zscore.save(tmp_path / "pump")


def test_layout_and_current_pointer(saved: Path) -> None:
    name_dir = saved.parent
    assert (name_dir / "current").read_text().strip() == saved.name
    files = {p.name for p in saved.iterdir()}
    assert {"manifest.json", "config.json", "scaler.json", "threshold.json", "alarm.json", "training.json",
            "evaluation.json"} <= files
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["format_version"] == saving.FORMAT_VERSION
    assert set(manifest["files"]) == files - {"manifest.json"}
    config = json.loads((saved / "config.json").read_text())
    assert config["detector"] == "robust_zscore"
    assert {f["name"]: f["unit"] for f in config["features"]} == {
        "temperature": "degC", "vibration": "mm/s", "pressure": "bar"}
    assert {"pdm", "numpy", "pandas", "python"} <= set(config["versions"])


def test_load_by_name_or_version_gives_identical_scores(saved: Path, zscore: RobustZScoreDetector,
                                                        train_fleet: dict[str, pd.DataFrame]) -> None:
    frame = train_fleet["pump-001"]
    expected = zscore.score(frame, machine_id="pump-001")
    for path in (saved.parent, saved):
        loaded = Detector.load(path)
        assert isinstance(loaded, RobustZScoreDetector)
        pd.testing.assert_series_equal(loaded.score(frame, machine_id="pump-001"), expected)


def test_second_save_becomes_current_and_keeps_the_first(saved: Path, zscore: RobustZScoreDetector) -> None:
    second = zscore.save(saved.parent)
    assert second != saved and saved.is_dir()
    assert model_dir.versions(saved.parent) == sorted([saved.name, second.name])
    assert model_dir.resolve_version_dir(saved.parent) == second
    model_dir.set_current(saved.parent, saved.name)
    assert model_dir.resolve_version_dir(saved.parent) == saved


def test_crash_mid_save_leaves_previous_current_intact(saved: Path, zscore: RobustZScoreDetector,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    name_dir = saved.parent

    def crash(self: Detector, directory: Path) -> None:
        (directory / "partial.bin").write_bytes(b"half")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(RobustZScoreDetector, "_save_core", crash)
    with pytest.raises(OSError, match="simulated"):
        zscore.save(name_dir)
    assert model_dir.versions(name_dir) == [saved.name]
    assert (name_dir / "current").read_text().strip() == saved.name
    assert not [p for p in name_dir.iterdir() if p.name.startswith(".tmp-")]
    assert Detector.load(name_dir).threshold_ == zscore.threshold_


def test_tampered_file_fails_its_checksum(saved: Path) -> None:
    path = saved / "threshold.json"
    data = json.loads(path.read_text())
    data["value"] *= 10  # valid JSON, wrong content
    path.write_text(json.dumps(data))
    with pytest.raises(ChecksumMismatchError, match=r"threshold\.json.*SHA-256"):
        Detector.load(saved)


def test_truncated_file_is_rejected(saved: Path) -> None:
    path = saved / "scaler.json"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ChecksumMismatchError, match=r"scaler\.json"):
        Detector.load(saved)


def test_missing_file_is_named(saved: Path) -> None:
    (saved / "alarm.json").unlink()
    with pytest.raises(CorruptModelError, match=r"alarm\.json: is missing"):
        Detector.load(saved)


def test_newer_format_asks_for_an_upgrade(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["format_version"] = saving.FORMAT_VERSION + 1
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UnsupportedFormatError, match="upgrade pdm"):
        Detector.load(saved)


def test_unreadable_manifest_is_named(saved: Path) -> None:
    (saved / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptModelError, match=r"manifest\.json: cannot be read as JSON"):
        Detector.load(saved)


def test_invalid_json_content_is_named_even_with_matching_checksum(saved: Path) -> None:
    # Someone edits a file and re-signs the manifest: schema validation still catches nonsense.
    (saved / "alarm.json").write_text(json.dumps({"k": 9, "n": 2, "m": 1}))
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["files"]["alarm.json"] = saving.sha256_file(saved / "alarm.json")
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptModelError, match=r"alarm\.json: is not valid"):
        Detector.load(saved)


def test_current_naming_a_missing_version(saved: Path) -> None:
    (saved.parent / "current").write_text("20200101T000000Z\n")
    with pytest.raises(CorruptModelError, match="not a saved version"):
        Detector.load(saved.parent)


def test_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a model directory"):
        Detector.load(tmp_path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        Detector.load(tmp_path / "nope")


def test_loading_with_the_wrong_class_is_refused(saved: Path) -> None:
    from pdm.detectors.gru import GRUAutoencoderDetector

    with pytest.raises(ModelLoadError, match="holds a RobustZScoreDetector"):
        GRUAutoencoderDetector.load(saved)


def test_stale_temporaries_are_cleaned_by_the_next_save(saved: Path, zscore: RobustZScoreDetector) -> None:
    import os

    stale = saved.parent / ".tmp-crashed"
    stale.mkdir()
    os.utime(stale, (0, 0))
    zscore.save(saved.parent)
    assert not stale.exists()


def test_file_left_out_of_the_manifest_is_refused(saved: Path) -> None:
    # Without its manifest entry a threshold.json edited after saving would load unchecked (threshold 1e9).
    manifest = json.loads((saved / "manifest.json").read_text())
    del manifest["files"]["threshold.json"]
    (saved / "manifest.json").write_text(json.dumps(manifest))
    path = saved / "threshold.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "value": 1e9}))
    with pytest.raises(CorruptModelError, match=r"threshold\.json: is not listed in manifest\.json"):
        Detector.load(saved)
