"""The ONNX graph of the recurrent autoencoder: two exact forms of the same maths, chosen by batch size.

``If batch < split_batch`` (default 48) the *native* form runs: ONNX's own ``GRU`` / ``LSTM`` operators, one kernel
per layer for the whole sequence, which has the least per-step overhead (best for one window)::

    window (B,T,F) -> Transpose (T,B,F) -> encoder RNN x layers -> last state (1,B,H) -> latent MatMul+Add (1,B,L)
      -> Expand (T,B,L) [RepeatVector] -> decoder RNN x layers -> Squeeze -> MatMul+Add (T,B,F) -> Transpose

Otherwise the *unrolled* form runs: every time step written out as ``MatMul``, ``Sigmoid``, ``Tanh`` and element-wise
nodes (about 13 per step). Per node it costs more, but at large batches its vectorised activations and large GEMMs
beat the native kernels (measured 1.3-1.6x at batch 128-512, `benchmarks/engine_throughput.py`), and it exploits
the structure: the decoder's first input is the same latent vector at every step, so its input projection
``latent @ W.T + bias`` is computed once per window instead of once per step. (Folding the latent ``Dense`` into
that projection too would cost more: H x 3H multiply-adds instead of H x L + L x 3H when L < H.)

Both forms are checked against Keras at export (`pdm.detectors.gru_onnx.export`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pdm.detectors.gru_onnx.weights import AutoencoderWeights, RecurrentLayer

OPSET = 17  # GRU/LSTM v14, Split/Squeeze v13: ONNX Runtime 1.13 (2022) and later read it
IR_VERSION = 8  # the IR version that goes with opset 17
SPLIT_BATCH = 48  # below: native RNN operators; from here: the unrolled form


class _Builder:
    """Collects nodes and initializers with unique names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._count = 0
        self._consts: dict[str, str] = {}

    def const(self, name: str, value: np.ndarray) -> str:
        if name not in self._consts:
            self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
            self._consts[name] = name
        return name

    def ints(self, *values: int) -> str:
        return self.const("ints_" + "_".join(map(str, values)), np.array(values, dtype=np.int64))

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> list[str]:
        self._count += 1
        outs = [f"{op_type.lower()}_{self._count}_{i}" for i in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, inputs, outs, **attrs))
        return outs

    def one(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        return self.op(op_type, inputs, **attrs)[0]


# ------------------------------------------------------------------ native form
def _native(b: _Builder, w: AutoencoderWeights, window: str) -> str:
    op_type = "GRU" if w.cell == "gru" else "LSTM"
    extra = {"linear_before_reset": 1} if w.cell == "gru" else {}

    def rnn(prefix: str, x: str, layer: RecurrentLayer, last_only: bool) -> str:
        names = [x, b.const(f"{prefix}_W", layer.W), b.const(f"{prefix}_R", layer.R), b.const(f"{prefix}_B", layer.B)]
        y, y_h = b.op(op_type, names, 2, hidden_size=w.hidden, **extra)[:2]
        if last_only:
            return y_h  # (1, B, H)
        return b.one("Squeeze", [y, b.ints(1)])  # (T, 1, B, H) -> (T, B, H)

    x = b.one("Transpose", [window], perm=[1, 0, 2])
    for i, layer in enumerate(w.encoder):
        x = rnn(f"encoder_{i}", x, layer, last_only=i == w.layers - 1)
    latent = b.one("Add", [b.one("MatMul", [x, b.const("latent_kernel", w.latent_kernel)]),
                           b.const("latent_bias", w.latent_bias)])
    x = b.one("Expand", [latent, b.ints(w.window, 1, 1)])  # (T, B, L)
    for i, layer in enumerate(w.decoder):
        x = rnn(f"decoder_{i}", x, layer, last_only=False)
    out = b.one("Add", [b.one("MatMul", [x, b.const("out_kernel", w.out_kernel)]), b.const("out_bias", w.out_bias)])
    return b.one("Transpose", [out], perm=[1, 0, 2])


# ------------------------------------------------------------------ unrolled form (batch-major, (B, ...) per step)
def _gates(cell: str, hidden: int) -> tuple[int, list[int]]:
    """Width of the sigmoid gate block and the split of it: GRU [z, r], LSTM (ONNX order) [i, o, f]."""
    return (2 * hidden, [hidden, hidden]) if cell == "gru" else (3 * hidden, [hidden, hidden, hidden])


def _input_projection(b: _Builder, prefix: str, cell: str, layer: RecurrentLayer, x: str) -> tuple[str, str]:
    """Pre-activations contributed by the input ``x`` (any leading dims): sigmoid block and candidate block, with
    every bias that is added outside the reset gate folded in."""
    h = layer.R.shape[2]
    s, _ = _gates(cell, h)
    W, B = layer.W[0], layer.B[0]
    g = W.shape[0]
    wb, rb = B[:g], B[g:]
    bias_s = wb[:s] + rb[:s]
    bias_c = wb[s:] if cell == "gru" else wb[s:] + rb[s:]  # GRU: the recurrent candidate bias sits inside r * (.)
    ps = b.one("Add", [b.one("MatMul", [x, b.const(f"{prefix}_Ws", W[:s].T)]), b.const(f"{prefix}_bs", bias_s)])
    pc = b.one("Add", [b.one("MatMul", [x, b.const(f"{prefix}_Wc", W[s:].T)]), b.const(f"{prefix}_bc", bias_c)])
    return ps, pc


def _steps(b: _Builder, x: str, window: int) -> list[str]:
    """(B, T, G) -> T tensors (B, G)."""
    parts = b.op("Split", [x, b.ints(*([1] * window))], window, axis=1)
    return [b.one("Squeeze", [p, b.ints(1)]) for p in parts]


def _unrolled_layer(b: _Builder, prefix: str, cell: str, layer: RecurrentLayer, *, ps: list[str],
                    pc: list[str]) -> list[str]:
    """The hidden state after each step, given each step's input pre-activations (``ps``, ``pc``)."""
    h_size = layer.R.shape[2]
    s, split = _gates(cell, h_size)
    R, B = layer.R[0], layer.B[0]
    rs, rc = b.const(f"{prefix}_Rs", R[:s].T), b.const(f"{prefix}_Rc", R[s:].T)
    rbc = b.const(f"{prefix}_rbc", B[R.shape[0] + s :]) if cell == "gru" else ""  # inside the reset gate
    sizes = b.ints(*split)
    outs: list[str] = []
    h = c = ""
    for t in range(len(ps)):
        first = t == 0  # the state starts at zero: no recurrent matmul
        pre = ps[t] if first else b.one("Add", [ps[t], b.one("MatMul", [h, rs])])
        gates = b.op("Split", [b.one("Sigmoid", [pre]), sizes], len(split), axis=-1)
        if cell == "gru":
            z, r = gates
            hh = rbc if first else b.one("Add", [b.one("MatMul", [h, rc]), rbc])
            n = b.one("Tanh", [b.one("Add", [pc[t], b.one("Mul", [r, hh])])])
            h = b.one("Sub", [n, b.one("Mul", [z, n])]) if first else \
                b.one("Add", [n, b.one("Mul", [z, b.one("Sub", [h, n])])])  # (1 - z) n + z h
        else:
            i, o, f = gates
            g = b.one("Tanh", [pc[t] if first else b.one("Add", [pc[t], b.one("MatMul", [h, rc])])])
            ig = b.one("Mul", [i, g])
            c = ig if first else b.one("Add", [b.one("Mul", [f, c]), ig])
            h = b.one("Mul", [o, b.one("Tanh", [c])])
        outs.append(h)
    return outs


def _stack(b: _Builder, states: list[str]) -> str:
    """T tensors (B, H) -> (B, T, H)."""
    axis = b.ints(1)
    return b.one("Concat", [b.one("Unsqueeze", [s, axis]) for s in states], axis=1)


def _unrolled(b: _Builder, w: AutoencoderWeights, window: str) -> str:
    x = window
    states: list[str] = []
    for i, layer in enumerate(w.encoder):
        ps, pc = _input_projection(b, f"u_encoder_{i}", w.cell, layer, x)
        states = _unrolled_layer(b, f"u_encoder_{i}", w.cell, layer, ps=_steps(b, ps, w.window),
                                 pc=_steps(b, pc, w.window))
        if i < w.layers - 1:
            x = _stack(b, states)
    latent = b.one("Add", [b.one("MatMul", [states[-1], b.const("latent_kernel", w.latent_kernel)]),
                           b.const("latent_bias", w.latent_bias)])  # (B, L)
    ps, pc = _input_projection(b, "u_decoder_0", w.cell, w.decoder[0], latent)  # once: the same at every step
    states = _unrolled_layer(b, "u_decoder_0", w.cell, w.decoder[0], ps=[ps] * w.window, pc=[pc] * w.window)
    for i, layer in enumerate(w.decoder[1:], start=1):
        ps, pc = _input_projection(b, f"u_decoder_{i}", w.cell, layer, _stack(b, states))
        states = _unrolled_layer(b, f"u_decoder_{i}", w.cell, layer, ps=_steps(b, ps, w.window),
                                 pc=_steps(b, pc, w.window))
    seq = _stack(b, states)  # (B, T, H)
    return b.one("Add", [b.one("MatMul", [seq, b.const("out_kernel", w.out_kernel)]),
                         b.const("out_bias", w.out_bias)])


# ------------------------------------------------------------------ the model
def build_onnx(w: AutoencoderWeights, metadata: dict[str, str] | None = None,
               split_batch: int = SPLIT_BATCH) -> bytes:
    """The serialized ONNX model: input ``window`` (batch, T, F) float32, output ``reconstruction`` (same shape).
    ``split_batch`` <= 1 keeps only the unrolled form; a huge value only the native one."""
    import onnx
    from onnx import TensorProto, helper

    io_shape: list[Any] = ["batch", w.window, w.n_features]
    window = "window"
    outer = _Builder()
    branches = []
    for form in (_native, _unrolled):
        b = _Builder()
        b.inits = outer.inits  # initializers live in the main graph; subgraphs see them by name
        b._consts = outer._consts
        b._count = outer._count
        out = form(b, w, window)
        outer._count = b._count
        branches.append(helper.make_graph(b.nodes, form.__name__.strip("_"), [],
                                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, io_shape)]))
    batch = outer.one("Gather", [outer.one("Shape", [window]), outer.const("zero", np.array(0, dtype=np.int64))])
    small = outer.one("Less", [batch, outer.const("split_batch", np.array(split_batch, dtype=np.int64))])
    outer.nodes.append(helper.make_node("If", [small], ["reconstruction"], then_branch=branches[0],
                                        else_branch=branches[1]))
    graph = helper.make_graph(outer.nodes, f"{w.cell}_autoencoder",
                              [helper.make_tensor_value_info(window, TensorProto.FLOAT, io_shape)],
                              [helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, io_shape)],
                              outer.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pdm",
                              ir_version=IR_VERSION)
    helper.set_model_props(model, metadata or {})
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())
