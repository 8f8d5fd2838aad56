"""The ONNX Runtime engine: equal to Keras, written on every save, refused when bad, and free of TensorFlow."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdm import saving
from pdm.detectors.base import Detector
from pdm.detectors.frames import sliding_windows
from pdm.detectors.gru import GRUAutoencoderDetector, build_autoencoder
from pdm.detectors.gru_onnx.graph import SPLIT_BATCH
from pdm.engines.keras_compiled import CompiledKerasEngine
from pdm.engines.onnx_engine import ONNX_FILE, OnnxEngine
from pdm.errors import ChecksumMismatchError, CorruptModelError, DataError, EngineMismatchError, ExportError
from tests.conftest import SENSORS, normal_fleet

ROOT = Path(__file__).resolve().parents[2]


def random_model(cell: str, window: int, sensors: int, *, layers: int = 1, hidden: int, latent: int,  # type: ignore[no-untyped-def]
                 seed: int = 0):
    """An untrained autoencoder with every weight random, biases included (Keras initialises biases to zero, which
    would hide a wrong bias mapping)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_autoencoder(window, sensors, hidden=hidden, latent=latent, layers=layers, dropout=0.0, cell=cell)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.4, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("shape", [
    # cell, window, sensors, layers, hidden, latent
    ("gru", 8, 3, 1, 6, 3),
    ("gru", 12, 1, 2, 5, 4),
    ("gru", 5, 4, 1, 4, 9),  # latent wider than hidden
    ("lstm", 8, 3, 1, 6, 3),
    ("lstm", 10, 2, 2, 7, 2),
])
def test_onnx_reconstruction_equals_keras(shape: tuple[str, int, int, int, int, int]) -> None:
    from pdm.detectors.gru_onnx.export import export_onnx

    cell, window, sensors, layers, hidden, latent = shape
    model = random_model(cell, window, sensors, layers=layers, hidden=hidden, latent=latent)
    engine = OnnxEngine(export_onnx(model), workers=2, split_min=8)
    x = np.random.default_rng(1).normal(0.0, 1.5, (2 * SPLIT_BATCH + 3, window, sensors)).astype(np.float32)
    reference = model.predict(x, verbose=0)  # Keras's own output
    # 1 and odd small batches run the native RNN operators; from SPLIT_BATCH on the unrolled form; 2*SPLIT+3 is
    # also cut across two worker sessions
    for n in (1, 3, SPLIT_BATCH - 1, SPLIT_BATCH, len(x)):
        got = engine.reconstruct(x[:n])
        assert got.shape == (n, window, sensors)
        np.testing.assert_allclose(got, reference[:n], atol=1e-5, rtol=0)
    engine.close()


def test_export_refuses_a_wrong_weight_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    from pdm.detectors.gru_onnx import export as onnx_export
    from pdm.detectors.gru_onnx.weights import AutoencoderWeights, RecurrentLayer

    real = onnx_export.extract_weights

    def swapped_gates(model):  # type: ignore[no-untyped-def]
        w = real(model)
        layer = w.encoder[0]
        h = w.hidden
        order = np.r_[h : 2 * h, 0:h, 2 * h : 3 * h]  # z and r exchanged
        wrong = RecurrentLayer(layer.W[:, order], layer.R[:, order], layer.B)
        return AutoencoderWeights(**{**w.__dict__, "encoder": [wrong]})

    monkeypatch.setattr(onnx_export, "extract_weights", swapped_gates)
    with pytest.raises(ExportError, match="max \\|difference\\|"):
        onnx_export.export_onnx(random_model("gru", 6, 2, hidden=4, latent=2))


def test_export_refuses_another_architecture() -> None:
    import keras

    from pdm.detectors.gru_onnx.export import export_onnx

    inputs = keras.Input(shape=(6, 2))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ExportError, match="encoder_0"):
        export_onnx(model)


# ------------------------------------------------------------------ the detector: save, load, refuse, fall back
@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[GRUAutoencoderDetector, Path, np.ndarray]:
    """A tiny trained detector, its saved version directory, and scaled windows to score."""
    fleet = normal_fleet(2, 1500, seed=3)
    det = GRUAutoencoderDetector(window=16, hidden=8, latent=4, epochs=2, max_train_windows=2000, alarm_k=3,
                                 alarm_n=5, alarm_m=5, jit_compile=False, seed=0).fit(fleet)  # no XLA: faster test
    version_dir = det.save(tmp_path_factory.mktemp("models") / "pump")
    x = det.scaler_.transform(fleet["pump-001"][SENSORS].to_numpy(), "pump-001")
    windows = np.ascontiguousarray(sliding_windows(x, det.window)[:200], dtype=np.float32)
    return det, version_dir, windows


def copy_version(version_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "pump" / version_dir.name
    shutil.copytree(version_dir, target)
    return target


def rewrite_manifest(version_dir: Path) -> None:
    """Make the manifest match the files again (as if the bad file had been saved like that)."""
    saving.write_manifest(version_dir)


def test_save_writes_onnx_in_the_manifest(saved: tuple[GRUAutoencoderDetector, Path, np.ndarray]) -> None:
    _, version_dir, _ = saved
    files = json.loads((version_dir / "manifest.json").read_text())["files"]
    assert ONNX_FILE in files and "model.keras" in files
    assert files[ONNX_FILE] == saving.sha256_file(version_dir / ONNX_FILE)


@pytest.mark.parametrize("engine", ["auto", "onnx", "keras"])
def test_loaded_engines_score_like_the_trained_detector(engine: str,
                                                        saved: tuple[GRUAutoencoderDetector, Path, np.ndarray]) -> None:
    det, version_dir, windows = saved
    loaded = Detector.load(version_dir.parent, engine=engine)
    assert isinstance(loaded.engine_, CompiledKerasEngine if engine == "keras" else OnnxEngine)  # type: ignore[attr-defined]
    for batch in (windows, windows[:1], windows[:77]):
        scores, shares = loaded.score_windows(batch)
        ref_scores, ref_shares = det.score_windows(batch)  # the fitted detector scores with Keras
        np.testing.assert_allclose(scores, ref_scores, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(shares, ref_shares, atol=1e-4)


def test_unknown_engine_is_refused(saved: tuple[GRUAutoencoderDetector, Path, np.ndarray]) -> None:
    with pytest.raises(DataError, match="engine='tf'"):
        Detector.load(saved[1], engine="tf")


def _corrupt_onnx(version_dir: Path) -> None:
    data = bytearray((version_dir / ONNX_FILE).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\0" * 64
    (version_dir / ONNX_FILE).write_bytes(bytes(data))


def refused_by_onnx_and_skipped_by_auto(version_dir: Path, error: type[Exception], match: str,
                                        caplog: pytest.LogCaptureFixture) -> Detector:
    """Loading with engine "onnx" raises ``error``; "auto" loads with Keras and a warning naming model.onnx."""
    with pytest.raises(error, match=match):
        Detector.load(version_dir, engine="onnx")
    with caplog.at_level(logging.WARNING):
        det = Detector.load(version_dir, engine="auto")
    assert isinstance(det.engine_, CompiledKerasEngine)  # type: ignore[attr-defined]
    assert any("model.onnx" in r.getMessage() and "Keras" in r.getMessage() for r in caplog.records)
    return det


def test_changed_onnx_is_refused_and_auto_falls_back(saved: tuple[GRUAutoencoderDetector, Path, np.ndarray],
                                                      tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    version_dir = copy_version(saved[1], tmp_path)
    _corrupt_onnx(version_dir)
    det = refused_by_onnx_and_skipped_by_auto(version_dir, ChecksumMismatchError, r"model\.onnx", caplog)
    scores, _ = det.score_windows(saved[2][:5])
    np.testing.assert_allclose(scores, saved[0].score_windows(saved[2][:5])[0], atol=1e-5, rtol=1e-5)


def test_auto_still_refuses_other_changed_files(saved: tuple[GRUAutoencoderDetector, Path, np.ndarray],
                                                tmp_path: Path) -> None:
    version_dir = copy_version(saved[1], tmp_path)
    _corrupt_onnx(version_dir)
    (version_dir / "threshold.json").write_text("{}")
    with pytest.raises(ChecksumMismatchError, match=r"threshold\.json"):
        Detector.load(version_dir, engine="auto")


@pytest.mark.parametrize("damage", ["garbage", "other_shape", "other_keras", "missing"])
def test_bad_onnx_with_a_matching_manifest(damage: str, saved: tuple[GRUAutoencoderDetector, Path, np.ndarray],
                                           tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pdm.detectors.gru_onnx.export import export_onnx

    version_dir = copy_version(saved[1], tmp_path)
    path = version_dir / ONNX_FILE
    if damage == "garbage":
        path.write_bytes(b"not an onnx model" * 10)
    elif damage == "other_shape":  # pdm's export, claiming the right model.keras, but for another window
        keras_sha = saving.sha256_file(version_dir / "model.keras")
        path.write_bytes(export_onnx(random_model("gru", 12, 3, hidden=8, latent=4), keras_sha256=keras_sha))
    elif damage == "other_keras":  # another model's export of the same shape, bound to its own model.keras
        path.write_bytes(export_onnx(random_model("gru", 16, 3, hidden=8, latent=4), keras_sha256="0" * 64))
    else:
        path.unlink()
    rewrite_manifest(version_dir)
    expected = {"garbage": CorruptModelError, "other_shape": EngineMismatchError,
                "other_keras": EngineMismatchError, "missing": CorruptModelError}[damage]
    refused_by_onnx_and_skipped_by_auto(version_dir, expected, r"model\.onnx", caplog)


def test_onnx_added_after_saving_is_refused_and_auto_falls_back(
        saved: tuple[GRUAutoencoderDetector, Path, np.ndarray], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    version_dir = copy_version(saved[1], tmp_path)
    data = (version_dir / ONNX_FILE).read_bytes()
    (version_dir / ONNX_FILE).unlink()
    rewrite_manifest(version_dir)
    (version_dir / ONNX_FILE).write_bytes(data)  # the right file, but not covered by the manifest
    refused_by_onnx_and_skipped_by_auto(version_dir, CorruptModelError, r"model\.onnx: is not listed in manifest\.json",
                                        caplog)


@pytest.mark.parametrize("engine", ["auto", "onnx", "keras"])
@pytest.mark.parametrize("name", ["model.keras", "envelope.json"])
def test_the_grus_required_files_are_required(name: str, engine: str,
                                              saved: tuple[GRUAutoencoderDetector, Path, np.ndarray],
                                              tmp_path: Path) -> None:
    version_dir = copy_version(saved[1], tmp_path)
    (version_dir / name).unlink()
    rewrite_manifest(version_dir)  # as if it had been saved without it
    with pytest.raises(CorruptModelError, match=rf"{name}: is missing"):
        Detector.load(version_dir, engine=engine)


def test_other_model_with_the_right_keras_sha_fails_its_probe(saved: tuple[GRUAutoencoderDetector, Path, np.ndarray],
                                                              tmp_path: Path) -> None:
    """The probe recorded at export is checked too: an ONNX file whose weights were swapped after export (its
    metadata kept) does not reproduce it."""
    import onnx

    version_dir = copy_version(saved[1], tmp_path)
    path = version_dir / ONNX_FILE
    model = onnx.load(path)
    for init in model.graph.initializer:
        if init.name == "out_bias":
            bias = onnx.numpy_helper.to_array(init) + np.float32(1e-3)
            init.CopyFrom(onnx.numpy_helper.from_array(bias, "out_bias"))
    path.write_bytes(model.SerializeToString())
    rewrite_manifest(version_dir)
    with pytest.raises(EngineMismatchError, match="recorded at export"):
        Detector.load(version_dir, engine="onnx")


def test_resave_after_onnx_load_keeps_both_files(saved: tuple[GRUAutoencoderDetector, Path, np.ndarray],
                                                 tmp_path: Path) -> None:
    det = Detector.load(saved[1], engine="onnx")
    new_dir = det.save(tmp_path / "pump")
    for name in ("model.keras", ONNX_FILE):
        assert (new_dir / name).read_bytes() == (saved[1] / name).read_bytes()
    assert isinstance(Detector.load(new_dir, engine="onnx").engine_, OnnxEngine)  # type: ignore[attr-defined]


def test_zscore_ignores_the_engine(tmp_path: Path) -> None:
    from pdm.detectors.zscore import RobustZScoreDetector

    fleet = normal_fleet(1, 600, seed=4)
    version_dir = RobustZScoreDetector(alarm_k=3, alarm_n=5, alarm_m=5).fit(fleet).save(tmp_path / "z")
    frame = next(iter(fleet.values()))
    expected = Detector.load(version_dir).score(frame, machine_id="pump-000")
    got = Detector.load(version_dir, engine="onnx").score(frame, machine_id="pump-000")
    pd.testing.assert_series_equal(got, expected)


SCRIPT = """
import json, sys
import numpy as np
from pdm.detectors import Detector
det = Detector.load(sys.argv[1], engine=sys.argv[2])
windows = np.asarray(json.loads(sys.argv[3]), dtype=np.float32)
scores, _ = det.score_windows(windows)
print(json.dumps({"engine": type(det.engine_).__name__, "scores": scores.tolist(),
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))}))
"""


@pytest.mark.parametrize("engine", ["onnx", "auto"])
def test_onnx_engine_imports_no_tensorflow(engine: str, saved: tuple[GRUAutoencoderDetector, Path, np.ndarray]) -> None:
    det, version_dir, windows = saved
    batch = windows[:3]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(version_dir), engine, json.dumps(batch.tolist())],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["engine"] == "OnnxEngine"
    assert out["loaded"] == []
    np.testing.assert_allclose(out["scores"], det.score_windows(batch)[0], atol=1e-5, rtol=1e-5)
