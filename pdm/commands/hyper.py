"""The GRU autoencoder's hyper-parameter flags, one definition for ``train`` and ``retrain``."""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from pdm.errors import DataError

# Hyper-parameters exposed as flags; defaults come from GRUAutoencoderDetector's signature (one source of truth).
HYPER: list[tuple[str, Any, str]] = [
    ("window", int, "readings per window"),
    ("stride", str, "stride between training windows, or 'auto'"),
    ("max_train_windows", int, "with stride 'auto': at most this many training windows"),
    ("hidden", int, "recurrent units"),
    ("latent", int, "latent size"),
    ("layers", int, "recurrent layers in encoder and decoder"),
    ("dropout", float, "dropout of the recurrent layers"),
    ("input_noise", float, "Gaussian noise (scaled units) on training inputs: a denoising autoencoder"),
    ("center_windows", bool, "the autoencoder sees windows without their means (levels are scored by the envelope "
     "and relations terms)"),
    ("envelope", bool, "also score how far a window leaves the normal range of each sensor"),
    ("envelope_weight", float, "weight of a squared excess beyond the normal range (scaled units)"),
    ("relations_weight", float, "weight of a squared departure from what the other sensors predict (0: off)"),
    ("despike", bool, "hold single-reading spikes as missing (a broken sensor is not a machine fault)"),
    ("cell", ["gru", "lstm"], "recurrent cell"),
    ("score_reduction", ["mean", "max"], "window score: mean or max of the per-sensor errors"),
    ("epochs", int, "maximum epochs"),
    ("batch_size", int, "training batch size"),
    ("learning_rate", float, "Adam learning rate"),
    ("patience", int, "epochs without validation improvement before stopping early (0: never)"),
    ("scaling", ["per_machine", "global"], "scaling statistics per machine or for the whole fleet"),
    ("calibration_fraction", float, "tail of each frame held back to calibrate the threshold"),
    ("threshold_method", ["pot", "quantile", "declustered"], "label-free threshold method: 'declustered' targets "
     "false alarms per machine-day (clusters of the alarm statistic), the others a share of windows"),
    ("target_false_alarm_rate", float, "target share of normal windows over the threshold (pot, quantile)"),
    ("target_alarms_per_day", float, "target false alarms per machine-day (declustered)"),
    ("alarm_k", int, "raise after k of the last n windows are over the threshold (default: as many windows as "
     "60 s at the data's sampling period)"),
    ("alarm_n", int, "see --alarm-k (default: 120 s of windows)"),
    ("alarm_m", int, "clear after m consecutive quiet windows, also the gap that merges two alarms into one "
     "(default: 4 hours of windows)"),
    ("alarm_clear", float, "a window is quiet under this share of the threshold (hysteresis)"),
    ("machine_thresholds", bool, "a threshold of its own for every machine whose history allows one"),
    ("max_gap_factor", float, "a gap over this many median periods restarts the window"),
    ("seed", int, "random seed"),
]


def add_hyper_arguments(parser: argparse.ArgumentParser, title: str, *, defaults: bool) -> None:
    """One flag per `HYPER` entry in a group named ``title``: defaulting to `GRUAutoencoderDetector`'s own
    defaults (``defaults``), or to ``None``, meaning "not given"."""
    from pdm.detectors.gru import GRUAutoencoderDetector

    signature = inspect.signature(GRUAutoencoderDetector.__init__).parameters
    group = parser.add_argument_group(title)
    for name, kind, text in HYPER:
        flag, default = "--" + name.replace("_", "-"), signature[name].default if defaults else None
        if isinstance(kind, list):
            group.add_argument(flag, choices=kind, default=default, help=text)
        elif kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            group.add_argument(flag, type=kind, default=default, help=text)


def hyper_values(args: argparse.Namespace) -> dict[str, Any]:
    """The hyper-parameter flags' values by parameter name (``None`` where not given), ``stride`` checked."""
    values = {name: getattr(args, name) for name, _, _ in HYPER}
    stride = values["stride"]
    if stride is not None and stride != "auto":
        if not str(stride).isdigit() or int(stride) < 1:
            raise DataError(f"found --stride {stride!r}, expected 'auto' or a whole number >= 1")
        values["stride"] = int(stride)
    return values
