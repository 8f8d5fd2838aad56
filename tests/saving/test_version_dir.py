"""`VersionDir`: the manifest covers every file of a version, companions included; typed reads; one-step writes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import BaseModel

from pdm.detectors.base import Detector
from pdm.detectors.zscore import RobustZScoreDetector
from pdm.errors import ChecksumMismatchError, CorruptModelError
from pdm.saving import VersionDir, read_manifest, sha256_file, write_json, write_manifest, write_version


class Point(BaseModel):
    x: float


def write_points(directory: Path) -> None:
    write_json(directory / "a.json", {"x": 1.0})
    write_json(directory / "b.json", {"x": "not a number"})


@pytest.fixture
def version(tmp_path: Path) -> Path:
    """A version with two JSON files, a binary one and a companion ``sub/`` holding one file."""
    def write(directory: Path) -> None:
        write_points(directory)
        (directory / "blob.bin").write_bytes(b"\x00\x01")

    return write_version(tmp_path / "m", write, companions={"sub": lambda d: write_json(d / "c.json", {"x": 3.0})})


def test_the_manifest_lists_every_file_and_companions_have_their_own(version: Path) -> None:
    assert set(read_manifest(version).files) == {"a.json", "b.json", "blob.bin", "sub/c.json", "sub/manifest.json"}
    assert set(read_manifest(version / "sub").files) == {"c.json"}
    vd = VersionDir.open(version.parent)  # through `current`
    assert vd.directory == version and vd.name == version.name
    assert vd.sha256("blob.bin") == sha256_file(version / "blob.bin")
    assert vd.has_sub("sub") and not vd.has_sub("a.json")
    assert vd.sub("sub").read_json("c.json", Point) == Point(x=3.0)


def test_typed_reads_name_the_file(version: Path) -> None:
    vd = VersionDir.open(version)
    assert vd.read_json("a.json", Point) == Point(x=1.0)
    assert vd.read_object("a.json") == {"x": 1.0}
    with pytest.raises(CorruptModelError, match=r"b\.json: is not valid: x: "):
        vd.read_json("b.json", Point)
    assert vd.read_optional_json("later.json", Point) is None  # not listed: a version saved before it existed
    with pytest.raises(CorruptModelError, match=r"later\.json: is missing"):
        vd.read_json("later.json", Point)
    with pytest.raises(CorruptModelError, match=r"later\.json: is missing"):
        vd.require("a.json", "later.json")


@pytest.mark.parametrize("where", ["top.json", "sub/added.json", "sub/deeper/added.json"])
def test_a_file_the_manifest_does_not_list_is_refused(version: Path, where: str) -> None:
    path = version / where
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"x": 9.0})
    with pytest.raises(CorruptModelError, match=rf"{where}: is not listed in manifest\.json"):
        VersionDir.open(version)


def test_a_listed_optional_file_may_not_be_removed(version: Path) -> None:
    (version / "blob.bin").unlink()
    with pytest.raises(CorruptModelError, match=r"blob\.bin: is missing"):
        VersionDir.open(version)


def test_a_skippable_file_is_kept_aside_not_raised(version: Path) -> None:
    (version / "blob.bin").write_bytes(b"changed")
    vd = VersionDir.open(version, skippable=["blob.bin"])
    assert isinstance(vd.skipped["blob.bin"], ChecksumMismatchError) and not vd.has("blob.bin")
    with pytest.raises(ChecksumMismatchError, match=r"blob\.bin"):
        vd.path("blob.bin")
    (version / "a.json").write_text('{"x": 2.0}')  # skippable covers only the files it names
    with pytest.raises(ChecksumMismatchError, match=r"a\.json"):
        VersionDir.open(version, skippable=["blob.bin"])


def test_a_companion_manifest_that_disagrees_with_the_version_is_refused(version: Path) -> None:
    write_json(version / "sub" / "c.json", {"x": 4.0})
    write_manifest(version / "sub")  # the companion re-signed, the version's manifest not
    with pytest.raises(ChecksumMismatchError, match=r"sub/c\.json"):
        VersionDir.open(version)
    write_manifest(version)  # now the version agrees with the files, and the companion's manifest too
    assert VersionDir.open(version).sub("sub").read_json("c.json", Point) == Point(x=4.0)
    manifest = json.loads((version / "sub" / "manifest.json").read_text())
    manifest["files"]["c.json"] = "0" * 64
    (version / "sub" / "manifest.json").write_text(json.dumps(manifest))
    write_manifest(version)
    with pytest.raises(ChecksumMismatchError, match=r"c\.json: has another SHA-256 in sub/manifest\.json"):
        VersionDir.open(version).sub("sub")


def test_a_crash_in_a_companion_writes_nothing(tmp_path: Path) -> None:
    def crash(directory: Path) -> None:
        raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="simulated"):
        write_version(tmp_path / "m", write_points, companions={"sub": crash})
    assert [p.name for p in (tmp_path / "m").iterdir()] == []


# ------------------------------------------------------------------------- a detector's required and optional files
@pytest.fixture
def saved(zscore: RobustZScoreDetector, tmp_path: Path) -> Path:
    return zscore.save(tmp_path / "pump")


@pytest.mark.parametrize("name", ["config.json", "scaler.json", "threshold.json", "alarm.json", "training.json",
                                  "evaluation.json"])
def test_a_required_file_removed_with_its_manifest_entry_is_refused(saved: Path, name: str) -> None:
    (saved / name).unlink()
    write_manifest(saved)  # as if it had been saved without it
    with pytest.raises(CorruptModelError, match=rf"{name}: is missing"):
        Detector.load(saved)


def test_an_optional_file_removed_with_its_manifest_entry_loads(saved: Path) -> None:
    (saved / "calibration.json").unlink()
    write_manifest(saved)
    assert Detector.load(saved).calibration_summary_ is None


def test_save_writes_extra_files_in_the_same_version(zscore: RobustZScoreDetector, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pdm.saving.model_dir"):
        version = zscore.save(tmp_path / "pump", companions={"baseline": zscore}, make_current=False,
                              extra_files=lambda d: (d / "report.json").write_text("{}"))
    assert [r.getMessage() for r in caplog.records].count(f"wrote model version {version}") == 1
    assert zscore.version_dir_ == version and not (tmp_path / "pump" / "current").exists()
    files = set(read_manifest(version).files)
    assert {"report.json", "config.json", "baseline/config.json", "baseline/manifest.json"} <= files
    vd = VersionDir.open(version)
    assert isinstance(Detector.load(vd.sub("baseline")), RobustZScoreDetector)
    assert vd.read_object("report.json") == {}
