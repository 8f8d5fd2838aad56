"""The autoencoder's weights read from a Keras model into ONNX's recurrent-operator layout (NumPy only).

Weight mapping (Keras 3 -> ONNX):

- GRU: Keras's kernel columns are ``[z | r | h]``, the same order as ONNX's ``W[zrh]``; ``W = kernel.T``,
  ``R = recurrent_kernel.T``. Keras's ``reset_after=True`` applies the reset gate after the recurrent matmul and its
  bias, which is ONNX's ``linear_before_reset=1``; the bias ``(2, 3H)`` is ``[input bias; recurrent bias]``, which
  is ONNX's ``B = [Wb[zrh], Rb[zrh]]``.
- LSTM: Keras's columns are ``[i | f | c | o]``, ONNX's are ``[i | o | f | c]``; the single Keras bias goes to
  ``Wb`` and ``Rb`` is zero.

Only the architecture `pdm.detectors.gru.build_autoencoder` makes is accepted (tanh / sigmoid activations, biases,
forward direction, layer names); anything else raises `pdm.errors.ExportError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pdm.errors import ExportError


@dataclass(frozen=True)
class RecurrentLayer:
    """One recurrent layer in ONNX layout: ``W`` (1, G*H, in), ``R`` (1, G*H, H), ``B`` (1, 2*G*H); G = 3 or 4."""

    W: np.ndarray
    R: np.ndarray
    B: np.ndarray


@dataclass(frozen=True)
class AutoencoderWeights:
    """The autoencoder's weights, read from Keras once; everything the ONNX graph needs."""

    cell: str
    window: int
    n_features: int
    hidden: int
    latent: int
    encoder: list[RecurrentLayer]
    decoder: list[RecurrentLayer]
    latent_kernel: np.ndarray  # (H, L)
    latent_bias: np.ndarray  # (L,)
    out_kernel: np.ndarray  # (H, F)
    out_bias: np.ndarray  # (F,)

    @property
    def layers(self) -> int:
        return len(self.encoder)


def _layer(model: Any, name: str) -> Any:
    try:
        return model.get_layer(name)
    except ValueError:
        raise ExportError(f"found no layer {name!r} in model {model.name!r} (layers "
                          f"{[lay.name for lay in model.layers]}), expected the pdm autoencoder") from None


def _check_config(layer: Any, expected: dict[str, Any]) -> None:
    config = layer.get_config()
    for key, value in expected.items():
        if config.get(key) != value:
            raise ExportError(f"layer {layer.name!r}: found {key}={config.get(key)!r}, expected {value!r} "
                              "(the ONNX export supports the pdm autoencoder as build_autoencoder makes it)")


def _recurrent(layer: Any, cell: str, return_sequences: bool) -> RecurrentLayer:
    expected: dict[str, Any] = {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
                                "go_backwards": False, "stateful": False, "return_sequences": return_sequences,
                                "return_state": False}
    if cell == "gru":
        expected["reset_after"] = True
    _check_config(layer, expected)
    kernel, recurrent, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
    if cell == "gru":  # Keras z, r, h == ONNX z, r, h; bias rows: input, recurrent
        return RecurrentLayer(kernel.T[None], recurrent.T[None], bias.reshape(1, -1))
    h = recurrent.shape[0]
    order = np.concatenate([np.arange(g * h, (g + 1) * h) for g in (0, 3, 1, 2)])  # Keras i,f,c,o -> ONNX i,o,f,c
    b = np.concatenate([bias[order], np.zeros_like(bias)])
    return RecurrentLayer(kernel[:, order].T[None], recurrent[:, order].T[None], b[None])


def extract_weights(model: Any) -> AutoencoderWeights:
    """Read the weights of a `pdm.detectors.gru.build_autoencoder` model (GRU or LSTM, any number of layers)."""
    rnn_types = {"GRU": "gru", "LSTM": "lstm"}
    first = _layer(model, "encoder_0")
    cell = rnn_types.get(type(first).__name__)
    if cell is None:
        raise ExportError(f"layer 'encoder_0' is a {type(first).__name__}, expected GRU or LSTM")
    names = {lay.name for lay in model.layers}
    layers = 0
    while f"encoder_{layers}" in names:
        layers += 1
    expected = {"window", "input_noise", "latent", "repeat", "reconstruction",
                *(f"{part}_{i}" for part in ("encoder", "decoder") for i in range(layers))}
    if not expected >= names >= expected - {"input_noise"}:
        raise ExportError(f"found layers {sorted(names)}, expected {sorted(expected)} (input_noise optional)")
    for i in range(layers):
        for part in ("encoder", "decoder"):
            found = type(_layer(model, f"{part}_{i}")).__name__
            if rnn_types.get(found) != cell:
                raise ExportError(f"layer {part}_{i} is a {found}, expected {type(first).__name__} like encoder_0")
    encoder = [_recurrent(_layer(model, f"encoder_{i}"), cell, i < layers - 1) for i in range(layers)]
    decoder = [_recurrent(_layer(model, f"decoder_{i}"), cell, True) for i in range(layers)]
    dense = {}
    for name in ("latent", "reconstruction"):
        lay = _layer(model, name)
        _check_config(lay, {"activation": "linear", "use_bias": True})
        kernel, bias = (np.asarray(w, dtype=np.float32) for w in lay.get_weights())
        dense[name] = (kernel, bias)
    repeat = _layer(model, "repeat")
    _, window, n_features = (int(d) if d is not None else None for d in model.input_shape)
    if window is None or n_features is None or repeat.get_config().get("n") != window:
        raise ExportError(f"found input shape {model.input_shape} and RepeatVector n={repeat.get_config().get('n')},"
                          " expected a fixed window repeated window times")
    hidden = encoder[0].R.shape[2]
    return AutoencoderWeights(cell=cell, window=window, n_features=n_features, hidden=hidden,
                              latent=dense["latent"][0].shape[1], encoder=encoder, decoder=decoder,
                              latent_kernel=dense["latent"][0], latent_bias=dense["latent"][1],
                              out_kernel=dense["reconstruction"][0], out_bias=dense["reconstruction"][1])


