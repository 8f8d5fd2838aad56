"""GRU (or LSTM) sequence autoencoder: learns to reconstruct windows of normal sensor history.

Architecture: recurrent encoder -> Dense latent -> RepeatVector -> recurrent decoder -> Dense per step (a plain
``Dense`` on the 3-D tensor, which Keras 3 runs as one matmul, unlike ``TimeDistributed``).

The score (`pdm.detectors.gru_terms`): with ``center_windows`` (default) the autoencoder sees each window with every
sensor's window mean removed, so it learns the machine's *dynamics* and a level it never saw (a warmer day, a load
it did not meet in training) does not throw it off; levels are scored by the envelope term (each sensor's training
range) and the sensor-relations term (`pdm.detectors.relations`: each sensor's window mean against what the other
sensors' means predict), both widened by what held-out parts of the history showed (`pdm.detectors.ranges`), so a
history too short to cover the operating range gives wider ranges and a warning, not an alarm flood. Every term is
in the sensor's own normal units, so the contributions blame the sensor that behaves unusually for itself.

Short histories (a few hundred rows): the training stride drops to 1 so every window is used, and when the
held-back parts hold fewer than 100 windows the calibration windows may overlap the fitting rows (reported in
``training_summary_["warnings"]``). Use a shorter ``window`` (16-32) so enough windows exist; a clear fault still
stands far above the threshold.

Size: about 400 lines, one model's parameters, training, score terms and files; the score terms' arithmetic is
`pdm.detectors.gru_terms`, the ONNX export `pdm.detectors.gru_onnx`.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pdm.detectors.base import Detector, Progress
from pdm.detectors.calibration import ThresholdMethod
from pdm.detectors.fitting import RETRAIN_HINT, SHORT_HISTORY_ROWS
from pdm.detectors.frames import sliding_windows
from pdm.detectors.gru_terms import ENVELOPE_FILE, LevelTerms, read_level_terms
from pdm.detectors.ranges import coverage_warning, time_blocks
from pdm.detectors.relations import RELATIONS_FILE, SensorRelations, read_relations
from pdm.detectors.scaling import ScalingMode
from pdm.engines import Engine, window_errors
from pdm.engines.choice import choose_engine
from pdm.engines.onnx_engine import ONNX_FILE
from pdm.errors import CorruptModelError, DataError
from pdm.saving import VersionDir, sha256_file, write_json
from pdm.tf_import import import_tensorflow_quietly

logger = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
INPUT_CLIP = 50.0  # scaled units: the largest magnitude the autoencoder is fed (centred windows)
MIN_LEVEL_ROWS = SHORT_HISTORY_ROWS  # fewer fitting rows: the envelope and relations terms do not score (warned)


def build_autoencoder(window: int, n_features: int, *, hidden: int, latent: int, layers: int, dropout: float,
                      cell: str, input_noise: float = 0.0) -> Any:
    """The Keras model (not compiled). ``input_noise`` > 0 makes it a denoising autoencoder (noise in training only)."""
    import_tensorflow_quietly()
    import keras

    rnn = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[cell]
    inputs = keras.Input(shape=(window, n_features), name="window")
    x = keras.layers.GaussianNoise(input_noise, name="input_noise")(inputs) if input_noise > 0 else inputs
    for i in range(layers):
        x = rnn(hidden, return_sequences=i < layers - 1, dropout=dropout, name=f"encoder_{i}")(x)
    z = keras.layers.Dense(latent, name="latent")(x)
    x = keras.layers.RepeatVector(window, name="repeat")(z)
    for i in range(layers):
        x = rnn(hidden, return_sequences=True, dropout=dropout, name=f"decoder_{i}")(x)
    outputs = keras.layers.Dense(n_features, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name=f"{cell}_autoencoder")


class GRUAutoencoderDetector(Detector):
    """Recurrent autoencoder detector. A high score means anomalous.

    Hyper-parameters (defaults in brackets): ``window`` [64] readings per window; ``stride`` ["auto"] between
    training windows (auto: 1, or larger so at most ``max_train_windows`` [20000] are used); ``hidden`` [64] and
    ``latent`` [16] sizes; ``layers`` [1] recurrent layers in encoder and decoder; ``dropout`` [0.0];
    ``input_noise`` [0.0] standard deviation of Gaussian noise on the scaled inputs in training (a denoising
    autoencoder); ``center_windows`` [True] the autoencoder sees windows without their means (module docstring);
    ``envelope`` [True] also scores leaving each sensor's training range, weighed by ``envelope_weight`` [8.0];
    ``relations_weight`` [8.0] weight of each sensor's squared departure from what the other sensors predict (0
    turns the term off); ``despike`` [True] holds single-reading spikes as missing (`pdm.detectors.spikes`: a
    broken sensor must not make a minute of windows look like a machine fault); ``score_reduction`` ["mean"] sums
    the sensors' terms, "max" takes the largest;
    ``cell`` ["gru"] or "lstm"; ``epochs`` [50], ``batch_size`` [256], ``learning_rate`` [1e-3];
    ``patience`` [3] epochs without validation improvement before early stopping (0 disables);
    ``validation_fraction`` [0.1] of training windows; ``jit_compile`` [True] for the XLA scoring path. The common
    parameters (features, scaling, calibration, alarm rule, seed) are documented in `pdm.detectors.base`.
    """

    kind = "gru_autoencoder"
    required_files = (MODEL_FILE, ENVELOPE_FILE)  # model.onnx and relations.json are optional (older versions)
    relations_: SensorRelations | None  # fitted (None: a model saved before the term existed)

    def __init__(
        self,
        *,
        window: int = 64,
        stride: int | Literal["auto"] = "auto",
        max_train_windows: int = 20_000,
        hidden: int = 64,
        latent: int = 16,
        layers: int = 1,
        dropout: float = 0.0,
        input_noise: float = 0.0,
        center_windows: bool = True,
        envelope: bool = True,
        envelope_weight: float = 8.0,
        relations_weight: float = 8.0,
        score_reduction: Literal["mean", "max"] = "mean",
        cell: Literal["gru", "lstm"] = "gru",
        epochs: int = 50,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        patience: int = 3,
        validation_fraction: float = 0.1,
        jit_compile: bool = True,
        features: Sequence[str] | None = None,
        timestamp_column: str | None = None,
        machine_column: str | None = "machine_id",
        units: Mapping[str, str] | None = None,
        references: Mapping[str, str] | None = None,
        scaling: ScalingMode = "per_machine",
        max_gap_factor: float = 5.0,
        calibration_fraction: float = 0.2,
        threshold_method: ThresholdMethod = "declustered",
        target_false_alarm_rate: float = 1e-4,
        target_alarms_per_day: float = 0.05,
        alarm_k: int | None = None,
        alarm_n: int | None = None,
        alarm_m: int | None = None,
        alarm_clear: float = 0.5,
        machine_thresholds: bool = False,
        despike: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(
            features=features, timestamp_column=timestamp_column, machine_column=machine_column, units=units,
            references=references,
            scaling=scaling, max_gap_factor=max_gap_factor, calibration_fraction=calibration_fraction,
            threshold_method=threshold_method, target_false_alarm_rate=target_false_alarm_rate,
            target_alarms_per_day=target_alarms_per_day,
            alarm_k=alarm_k, alarm_n=alarm_n, alarm_m=alarm_m, alarm_clear=alarm_clear,
            machine_thresholds=machine_thresholds,
            despike=despike, seed=seed,
        )
        self.window = window
        self.stride = stride
        self.max_train_windows = max_train_windows
        self.hidden = hidden
        self.latent = latent
        self.layers = layers
        self.dropout = dropout
        self.input_noise = input_noise
        self.center_windows = center_windows
        self.envelope = envelope
        self.envelope_weight = envelope_weight
        self.relations_weight = relations_weight
        self.score_reduction = score_reduction
        self.cell = cell
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.jit_compile = jit_compile

    @property
    def window_length(self) -> int:
        return self.window

    def _check_params(self) -> None:
        super()._check_params()
        if self.cell not in ("gru", "lstm"):
            raise DataError(f"found cell={self.cell!r}, expected 'gru' or 'lstm'")
        for name in ("window", "hidden", "latent", "layers", "epochs", "batch_size", "max_train_windows"):
            if int(getattr(self, name)) < 1:
                raise DataError(f"found {name}={getattr(self, name)}, expected >= 1")
        if self.window < 2:
            raise DataError(f"found window={self.window}, expected >= 2 for a sequence model")
        if self.stride != "auto" and int(self.stride) < 1:
            raise DataError(f"found stride={self.stride!r}, expected 'auto' or >= 1")
        if not 0 <= self.dropout < 1:
            raise DataError(f"found dropout={self.dropout}, expected 0 <= dropout < 1")
        if not 0 <= self.validation_fraction < 1:
            raise DataError(f"found validation_fraction={self.validation_fraction}, expected 0 <= fraction < 1")
        for name in ("relations_weight", "envelope_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise DataError(f"found {name}={value}, expected a finite number >= 0")

    def _versions(self) -> dict[str, str]:
        """Versions of the model stack, read from the installed distributions (imports nothing; a package that is
        not installed, e.g. TensorFlow on an edge gateway, is left out)."""
        from importlib.metadata import PackageNotFoundError, version

        found = {}
        for name, dists in (("keras", ["keras"]), ("tensorflow", ["tensorflow", "tensorflow-cpu"]),
                            ("onnx", ["onnx"]), ("onnxruntime", ["onnxruntime"])):
            for dist in dists:
                try:
                    found[name] = version(dist)
                    break
                except PackageNotFoundError:
                    continue
        return {**super()._versions(), **found}

    # ----------------------------------------------------------------- training
    def _training_windows(self, segments: list[np.ndarray]) -> tuple[np.ndarray, int]:
        total = sum(len(s) - self.window + 1 for s in segments)
        stride = max(1, math.ceil(total / self.max_train_windows)) if self.stride == "auto" else int(self.stride)
        windows = np.concatenate([sliding_windows(s, self.window, stride) for s in segments]).astype(np.float32)
        return self._model_input(windows), stride

    def _model_input(self, windows: np.ndarray) -> np.ndarray:
        """What the autoencoder sees: the windows, without each sensor's window mean when ``center_windows``, and
        clipped to +-`INPUT_CLIP` scaled units (a reading far outside anything normal is the level terms' to score;
        the network is never fed values it cannot represent)."""
        if not self.center_windows:
            return windows
        centred = windows - windows.mean(axis=1, keepdims=True)
        return np.asarray(np.clip(centred, -INPUT_CLIP, INPUT_CLIP), dtype=np.float32)

    def _fit_ranges(self, segments: list[np.ndarray]) -> None:
        """The sensor relations (numpy only), from the scaled fitting segments, widened by held-out parts."""
        self.relations_ = SensorRelations.fit(segments, self.window)

    @property
    def short_history(self) -> bool:
        """As `Detector.short_history`, by the rows this model's level terms were fitted on (off when short)."""
        self._check_fitted()
        return not self.terms_.level

    def _fit_warnings(self, features: list[str]) -> list[str]:
        if not self.terms_.level:
            return [f"short history (fewer than {MIN_LEVEL_ROWS} fitting rows): the sensors' operating range and "
                    f"relations cannot be learned from it, so leaving them is not scored, only the dynamics are; "
                    f"{RETRAIN_HINT}"]
        inputs_only = set((self.references or {}).values())
        ignored = [f for f, i in zip(features, self.terms_.ignored or [], strict=False) if i and f not in inputs_only]
        found = [f"not scored, constant in training (its normal behaviour is unknown): {ignored}" if ignored else None,
                 coverage_warning(features, self.terms_.outside or [0.0] * len(features)) if self.envelope else None,
                 coverage_warning(features, self.relations_.outside or [0.0] * len(features), "relations")
                 if self.relations_ is not None and self.relations_weight > 0 else None]
        return [w for w in found if w is not None]

    def _start_model(self, n_features: int) -> Any:
        """The Keras model training starts from: a new one (`pdm.retrain.finetune` starts from another's weights)."""
        return build_autoencoder(self.window, n_features, hidden=self.hidden, latent=self.latent, layers=self.layers,
                                 dropout=self.dropout, cell=self.cell, input_noise=self.input_noise)

    def _fit_core(self, segments: list[np.ndarray], progress: Progress | None) -> dict[str, Any]:
        self._fit_ranges(segments)
        x, stride = self._training_windows(segments)
        rng = np.random.default_rng(self.seed)
        x = x[rng.permutation(len(x))]
        n_val = int(len(x) * self.validation_fraction) if len(x) >= 20 else 0
        x_val, x_fit = x[:n_val], x[n_val:]
        figures = self._train(x_fit, x_val, progress)
        errors = np.concatenate([window_errors(x_fit[i : i + 4096], self.engine_.reconstruct(x_fit[i : i + 4096]))
                                 for i in range(0, len(x_fit), 4096)])
        self.terms_ = LevelTerms.fit([np.concatenate(b) for b in time_blocks(segments) if b], errors,
                                     level=sum(len(s) for s in segments) >= MIN_LEVEL_ROWS)
        return {"train_windows": len(x_fit), "validation_windows": n_val, "stride": stride, **figures}

    def _train(self, x_fit: np.ndarray, x_val: np.ndarray, progress: Progress | None) -> dict[str, Any]:
        """Train the autoencoder on model inputs ``x_fit`` (``x_val`` for early stopping) and set it as the model;
        returns the training figures."""
        import_tensorflow_quietly()
        import keras

        keras.utils.set_random_seed(self.seed)
        n_val = len(x_val)
        model = self._start_model(x_fit.shape[2])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate), loss="mse")
        monitor = "val_loss" if n_val else "loss"
        callbacks: list[Any] = [_epoch_logger(self.epochs, progress)]
        if self.patience > 0:
            callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=self.patience,
                                                           restore_best_weights=True))
        held = x_val if n_val else x_fit
        start_loss = float(model.evaluate(held, held, verbose=0, batch_size=self.batch_size))
        logger.info("training %s on %d windows (%d for validation), starting %s %.4g", model.name, len(x_fit), n_val,
                    monitor, start_loss)
        history = model.fit(x_fit, x_fit, epochs=self.epochs, batch_size=self.batch_size, shuffle=True, verbose=0,
                            validation_data=(x_val, x_val) if n_val else None, callbacks=callbacks)
        self._set_model(model)
        hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        best = int(np.argmin(hist[monitor]))
        return {"epochs_run": len(hist["loss"]), "best_epoch": best + 1, "train_loss": hist["loss"][best],
                "validation_loss": hist["val_loss"][best] if "val_loss" in hist else None,
                "start_loss": start_loss, "history": hist}

    def _set_model(self, model: Any) -> None:
        from pdm.engines.keras_compiled import CompiledKerasEngine

        self.model_ = model
        self.engine_: Engine = CompiledKerasEngine(model, jit_compile=self.jit_compile)

    # ----------------------------------------------------------------- scoring
    @property
    def engine_name(self) -> str | None:
        """The scoring engine's class name: ``OnnxEngine`` or ``CompiledKerasEngine`` (`pdm.engines.choice`)."""
        self._check_fitted()
        return type(self.engine_).__name__

    def warm_up(self) -> None:
        """Compile the scoring engine's path for every batch size (engines without one need nothing)."""
        self._check_fitted()
        warm = getattr(self.engine_, "warm_up", None)  # optional in the `pdm.engines.Engine` protocol
        if warm is not None:
            warm()

    def _aggregate(self, errors: np.ndarray) -> np.ndarray:  # type: ignore[override]
        if self.terms_.legacy:
            return np.asarray(errors.max(axis=1) if self.score_reduction == "max" else errors.mean(axis=1))
        if self.score_reduction == "max":
            return np.asarray(errors.max(axis=1) * errors.shape[1])
        return np.asarray(errors.sum(axis=1))

    def _window_errors(self, windows: np.ndarray) -> np.ndarray:
        terms = getattr(self, "terms_", None)
        if terms is None:
            raise DataError(f"{type(self).__name__}._fit_core did not fit the sensor relations and level terms: "
                            "expected it to call self._fit_ranges(segments) and set terms_ (LevelTerms.fit)")
        x = self._model_input(windows)
        errors = window_errors(x, self.engine_.reconstruct(x))
        rel = self.relations_
        use_rel = self.relations_weight > 0 and rel is not None
        if terms.legacy:  # the score of models saved before gru_terms (its module docstring)
            if self.envelope:
                errors += terms.envelope_excess(windows)
            if use_rel and rel is not None and rel.reference is not None:
                errors += self.relations_weight * rel.reference * rel.contributions(windows)
            return errors
        envelope = relations = np.zeros_like(errors)
        if not terms.level:
            return np.asarray(terms.dynamics(errors))
        if self.envelope and self.envelope_weight > 0:
            envelope = self.envelope_weight * terms.envelope_excess(windows)
        if use_rel and rel is not None:
            relations = self.relations_weight * rel.contributions(windows)
        return np.asarray(terms.dynamics(errors) + terms.level_terms(envelope, relations))

    # ----------------------------------------------------------------- persistence
    def _save_core(self, directory: Path) -> None:
        """``model.keras``, ``model.onnx`` (exported from it and verified, `pdm.detectors.gru_onnx.export`) and the
        envelope. A detector loaded without Keras (ONNX engine) copies both model files of the version it came
        from, which were verified when it was loaded."""
        if hasattr(self, "model_"):
            from pdm.detectors.gru_onnx.export import export_onnx

            self.model_.save(directory / MODEL_FILE)
            data = export_onnx(self.model_, keras_sha256=sha256_file(directory / MODEL_FILE), seed=self.seed)
            (directory / ONNX_FILE).write_bytes(data)
        else:
            for name in (MODEL_FILE, ONNX_FILE):
                shutil.copyfile(self.version_dir_ / name, directory / name)
        write_json(directory / ENVELOPE_FILE, self.terms_)
        if self.relations_ is not None:
            write_json(directory / RELATIONS_FILE, self.relations_)

    def _load_core(self, version: VersionDir, engine: str = "auto") -> None:
        """Load the envelope and the scoring engine named by ``engine`` (`pdm.engines.choice`): with ONNX, Keras
        is not loaded (``model_`` stays unset) and TensorFlow is not imported."""
        self.terms_ = read_level_terms(version, len(self.features_))
        if self.terms_.legacy:  # saved before centred windows and per-sensor error levels existed
            self.center_windows = False
        self.relations_ = read_relations(version, len(self.features_))
        keras_path = version.path(MODEL_FILE)
        self.engine_ = choose_engine(version.directory, engine, window=self.window, n_features=len(self.features_),
                                     keras_file=MODEL_FILE, load_keras=lambda: self._load_keras(keras_path))

    def _load_keras(self, path: Path) -> Engine:
        import_tensorflow_quietly()
        import keras

        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # keras raises many types for a bad archive
            raise CorruptModelError(path, f"cannot be loaded by Keras ({type(exc).__name__}: {exc})",
                                    "restore the version from a backup or retrain") from None
        expected = (None, self.window, len(self.features_))
        if tuple(model.input_shape) != expected:
            raise CorruptModelError(path, f"found input shape {tuple(model.input_shape)}, expected {expected}",
                                    "the weights do not belong to this config: retrain")
        self._set_model(model)
        return self.engine_


def _epoch_logger(epochs: int, progress: Progress | None) -> Any:
    """A Keras callback that logs one line per epoch and reports it to ``progress``."""
    import_tensorflow_quietly()
    import keras

    class EpochLogger(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self._t0 = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            figures = " ".join(f"{k}={v:.4g}" for k, v in (logs or {}).items())
            logger.info("epoch %d/%d %s (%.1f s)", epoch + 1, epochs, figures, time.monotonic() - self._t0)
            if progress is not None:
                progress(epoch + 1, epochs, {k: float(v) for k, v in (logs or {}).items()})

    return EpochLogger()
