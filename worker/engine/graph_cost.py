"""What a .tflite graph costs, read from the file alone: ops by type with their multiply-
accumulates, the ops an int8 conversion left in float, and a microcontroller RAM/flash estimate.

The file is read with LiteRT's generated flatbuffer reader (`ai_edge_litert.schema_py_generated`,
the TFLite schema); only the main subgraph (0) is analysed. Shapes are the stored ones (batch 1
for converted Keras models).

MACs per op (one multiply-accumulate = one multiply + one add), from tensor shapes; the formulas
are those of Howard et al., "MobileNets" (arXiv:1704.04861, §3.1, eqs. 2 and 4) written per
output element:
- CONV_2D: prod(output shape) × Kh × Kw × Cin_per_group (filter [Cout, Kh, Kw, Cin/groups]);
- DEPTHWISE_CONV_2D: prod(output shape) × Kh × Kw (filter [1, Kh, Kw, Cout]);
- TRANSPOSE_CONV: prod(input shape) × Kh × Kw × Cout (every input element scatters a kernel;
  filter [Cout, Kh, Kw, Cin]);
- FULLY_CONNECTED: prod(output shape) × in_features (weights [out, in]);
- BATCH_MATMUL: prod(output shape) × K (K = last axis of the first input, before adj_x).
Every other op counts 0 MACs (element-wise, pooling, reshapes: no multiply-accumulate).
Biases, activations and requantisation are not counted.

Microcontroller estimate, in the manner of Edge Impulse's RAM/flash figures for TFLite Micro:
flash = the model file's bytes (the flatbuffer is placed in flash as is; the interpreter's code
is not counted); RAM = the tensor arena's activations = the peak, over the op order, of the sum
of the bytes of the non-constant tensors live at that op. A tensor is live from the op that
produces it (from the start for graph inputs) to the last op that reads it (to the end for graph
outputs; variable tensors the whole time). This is the lower bound any arena planner (TFLM's
GreedyMemoryPlanner packs to it or slightly above) must reserve; kernel scratch buffers (im2col),
the interpreter's own structures and alignment padding are not included.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as fb

OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
# Bytes per element; sub-byte types (INT4, INT2, UINT4) are packed but count 1 byte here.
TYPE_BYTES = {
    fb.TensorType.FLOAT32: 4,
    fb.TensorType.FLOAT16: 2,
    fb.TensorType.BFLOAT16: 2,
    fb.TensorType.FLOAT64: 8,
    fb.TensorType.INT32: 4,
    fb.TensorType.UINT32: 4,
    fb.TensorType.INT64: 8,
    fb.TensorType.UINT64: 8,
    fb.TensorType.INT16: 2,
    fb.TensorType.UINT16: 2,
    fb.TensorType.COMPLEX64: 8,
    fb.TensorType.COMPLEX128: 16,
}
FLOAT_TYPES = {fb.TensorType.FLOAT32, fb.TensorType.FLOAT16, fb.TensorType.BFLOAT16, fb.TensorType.FLOAT64}


@dataclass(frozen=True)
class GraphOp:
    """One operator of subgraph 0, in execution order: its builtin name, input dtype (of input
    0), MACs, and its input/output tensor indices (-1 = an omitted optional input)."""

    name: str
    dtype: str
    macs: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    float_compute: bool  # input 0 and output 0 are floating point


@dataclass(frozen=True)
class _Tensor:
    shape: tuple[int, ...]
    type: int
    constant: bool
    variable: bool

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * TYPE_BYTES.get(self.type, 1)


def _op_name(model: fb.Model, op: fb.Operator) -> str:
    code = model.OperatorCodes(op.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())  # schema v3a: the larger is right
    if builtin == fb.BuiltinOperator.CUSTOM:
        return f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}"
    return OP_NAMES.get(builtin, str(builtin))


def _macs(name: str, ins: list[_Tensor | None], outs: list[_Tensor]) -> int:
    def size(t: _Tensor | None) -> int:
        return int(np.prod(t.shape, dtype=np.int64)) if t is not None else 0

    out = outs[0] if outs else None
    w = ins[1] if len(ins) > 1 else None
    if out is None or w is None or not w.shape:
        return 0
    if name == "CONV_2D" and len(w.shape) == 4:
        return size(out) * w.shape[1] * w.shape[2] * w.shape[3]
    if name == "DEPTHWISE_CONV_2D" and len(w.shape) == 4:
        return size(out) * w.shape[1] * w.shape[2]
    if name == "FULLY_CONNECTED":
        return size(out) * w.shape[-1]
    if name == "TRANSPOSE_CONV" and len(ins) > 2 and ins[2] is not None and len(ins[1].shape) == 4:
        wt = ins[1]  # TRANSPOSE_CONV inputs: output_shape, weights, input
        return size(ins[2]) * wt.shape[1] * wt.shape[2] * wt.shape[0]
    if name == "BATCH_MATMUL" and ins[0] is not None and ins[0].shape:
        return size(out) * ins[0].shape[-1]
    return 0


class Graph:
    """Subgraph 0 of a .tflite file: its ops in order and its tensors. Raises ValueError when the
    bytes are not a TFLite flatbuffer (identifier "TFL3") or have no subgraph."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ValueError("not a TFLite flatbuffer (identifier TFL3 missing)")
        model = fb.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("the .tflite file has no subgraph")
        g = model.Subgraphs(0)
        self.tensors: list[_Tensor] = []
        for i in range(g.TensorsLength()):
            t = g.Tensors(i)
            buf = model.Buffers(t.Buffer())
            constant = buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1)
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            self.tensors.append(_Tensor(shape, t.Type(), constant, bool(t.IsVariable())))
        self.inputs = tuple(int(i) for i in g.InputsAsNumpy()) if g.InputsLength() else ()
        self.outputs = tuple(int(i) for i in g.OutputsAsNumpy()) if g.OutputsLength() else ()
        self.ops: list[GraphOp] = []
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            ins = tuple(int(i) for i in op.InputsAsNumpy()) if op.InputsLength() else ()
            outs = tuple(int(i) for i in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            in_t = [self.tensors[i] if i >= 0 else None for i in ins]
            out_t = [self.tensors[i] for i in outs if i >= 0]
            name = _op_name(model, op)
            first = in_t[0] if in_t else None
            self.ops.append(
                GraphOp(
                    name=name,
                    dtype=TYPE_NAMES.get(first.type, str(first.type)) if first is not None else "none",
                    macs=_macs(name, in_t, out_t),
                    inputs=ins,
                    outputs=outs,
                    float_compute=first is not None
                    and first.type in FLOAT_TYPES
                    and bool(out_t)
                    and out_t[0].type in FLOAT_TYPES,
                )
            )

    @classmethod
    def read(cls, path: Path) -> Graph:
        return cls(Path(path).read_bytes())

    def op_profile(self, time_share: dict[str, float] | None = None) -> list[dict[str, Any]]:
        """Ops grouped by (type, input dtype), most MACs first: [{op, count, macs, time_share,
        dtype}]. `time_share` (op type → fraction of invoke time) where the runtime profiled it;
        None otherwise (LiteRT's Python interpreter exposes no per-op profiler)."""
        count: Counter[tuple[str, str]] = Counter()
        macs: Counter[tuple[str, str]] = Counter()
        for op in self.ops:
            count[(op.name, op.dtype)] += 1
            macs[(op.name, op.dtype)] += op.macs
        rows = [
            {
                "op": name,
                "count": n,
                "macs": int(macs[(name, dtype)]),
                "time_share": (time_share or {}).get(name),
                "dtype": dtype,
            }
            for (name, dtype), n in count.items()
        ]
        return sorted(rows, key=lambda r: (-r["macs"], -r["count"], r["op"]))

    def float_ops(self) -> list[str]:
        """Names (execution order, repeats kept once) of ops that compute in floating point: input
        0 and output 0 float. QUANTIZE/DEQUANTIZE at an int8 model's edges are not among them."""
        return list(dict.fromkeys(op.name for op in self.ops if op.float_compute))

    def total_macs(self) -> int:
        return sum(op.macs for op in self.ops)

    def arena_bytes(self) -> int:
        """Peak, over the op order, of the bytes of simultaneously live non-constant tensors (see
        the module docstring for the liveness rule). 0 for a graph without ops."""
        n = len(self.ops)
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for i in self.inputs:
            first[i] = 0
        for k, op in enumerate(self.ops):
            for t in op.outputs:
                if t >= 0:
                    first.setdefault(t, k)
                    last[t] = max(last.get(t, k), k)
            for t in op.inputs:
                if t >= 0:
                    first.setdefault(t, k)
                    last[t] = max(last.get(t, k), k)
        for t in self.outputs:
            last[t] = n - 1
        live = np.zeros(max(n, 1), dtype=np.int64)
        for t, start in first.items():
            tensor = self.tensors[t]
            if tensor.constant:
                continue
            lo, hi = (0, n - 1) if tensor.variable else (start, last.get(t, start))
            live[lo : hi + 1] += tensor.nbytes
        return int(live.max()) if n else 0
