"""Fine-tuning: a GRU autoencoder fitted starting from another model's weights instead of random ones.

Everything else is the ordinary `GRUAutoencoderDetector.fit`: scaling refitted on the new data, the normal
envelope recomputed, training windows, early stopping on validation loss, calibration on the held-back tail. The
saved model is an ordinary ``gru_autoencoder`` (same config, same loader); only its starting point differed.

The architecture (window, sizes, layers, cell, dropout, input noise, number of sensors) must be the starting
model's: `check_compatible` says what differs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from pdm.detectors.base import Progress
from pdm.detectors.gru import MODEL_FILE, GRUAutoencoderDetector
from pdm.errors import DataError
from pdm.tf_import import import_tensorflow_quietly

logger = logging.getLogger(__name__)

ARCHITECTURE = ("window", "hidden", "latent", "layers", "cell", "dropout", "input_noise")


def check_compatible(champion: GRUAutoencoderDetector, params: Mapping[str, Any], features: list[str]) -> None:
    """Raise a `DataError` naming the first architecture parameter that differs from ``champion``'s."""
    for name in ARCHITECTURE:
        if name in params and params[name] != getattr(champion, name):
            raise DataError(f"--init finetune: found {name}={params[name]!r}, expected the champion's "
                            f"{getattr(champion, name)!r} (fine-tuning keeps the architecture; use --init scratch)")
    if list(features) != list(champion.feature_names):
        raise DataError(f"--init finetune: found sensors {list(features)}, expected the champion's "
                        f"{list(champion.feature_names)} in that order (use --init scratch)")


class FineTunedGRU(GRUAutoencoderDetector):
    """A `GRUAutoencoderDetector` whose training starts from a copy of ``start_model_`` (set with `start_from`)."""

    def start_from(self, champion: GRUAutoencoderDetector) -> FineTunedGRU:
        """Start from ``champion``'s Keras model: in memory, or read from its version directory (verified when it
        was loaded) when it was loaded with another scoring engine."""
        model = getattr(champion, "model_", None)
        if model is None:
            import_tensorflow_quietly()
            import keras

            model = keras.saving.load_model(champion.version_dir_ / MODEL_FILE, compile=False, safe_mode=True)
        self.start_model_ = model
        return self

    def _start_model(self, n_features: int) -> Any:
        import_tensorflow_quietly()
        import keras

        if not hasattr(self, "start_model_"):
            raise DataError("FineTunedGRU.fit: found no starting model, expected start_from(champion) first")
        model = keras.models.clone_model(self.start_model_)
        model.set_weights(self.start_model_.get_weights())
        return model

    def _fit_core(self, segments: list[np.ndarray], progress: Progress | None) -> dict[str, Any]:
        return {**super()._fit_core(segments, progress), "init": "finetune"}
