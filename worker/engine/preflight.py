"""The compatibility preflight of an uploaded model (issue 17, item 3), computed in the
sandboxed checker process (`worker.engine.upload_check`), never in the API.

For a Keras model: kind (sequential / functional), inputs and outputs (shape with None for the
batch, dtype; an output is "probabilities" when its layer ends in softmax or sigmoid, else
"logits"), parameter count, nested models (listed; their layers are flattened into `layers`
with a path), and per layer whether pruning, QAT, clustering and full-int8 TFLite conversion
support it: `{"status": "yes" | "fix" | "no", "note": ...}`, where "fix" names the fix
optiboard applies or suggests. `techniques` sums the layers up per technique.

Where tfmot answers, tfmot is asked (tfmot 0.8, tf-keras classes, TF_USE_LEGACY_KERAS=1):
`PruneRegistry.supports`, `Default8BitQuantizeRegistry.supports`, `ClusteringRegistry.supports`
on a tf-keras layer. A Keras 3 layer is looked up by class name in the same registries' tables
(`_LAYERS_WEIGHTS_MAP`, `_layer_quantize_map`): the techniques run on a tf-keras copy whose layer
has that class; clustering's rule that a layer without trainable weights is supported is applied
to the Keras 3 layer's own weights. Hand-written, with sources:
- `INT8_LAYERS`: layers whose TFLite ops have int8 kernels, from the LiteRT quantization spec
  (ai.google.dev/edge/litert/models/quantization_spec) and the converter's lowering of each layer;
  `INT8_TF_OPS`: the same for TensorFlow ops recorded as `TFOpLambda` layers (add, sub, mul);
- BatchNormalization after Conv2D / DepthwiseConv2D / Dense: tfmot's default 8-bit layout
  transforms (`default_8bit_transforms.Conv2DBatchNormQuantize`, `DenseBatchNormQuantize`)
  quantize the pair as one and the TFLite converter folds it into the kernel;
- `PASS_THROUGH`: layers without weights that tfmot's QAT registry does not list; annotating
  them with a quantize config that quantizes nothing (tfmot's documented
  `quantize_annotate_layer(layer, NoOpQuantizeConfig())` pattern) lets QAT proceed;
- nested models: `quantize_annotate_model` refuses a model inside a model
  (quantization/keras/quantize.py): a Keras 3 upload's tf-keras copy is built flat (the fix),
  a nested tf-keras upload cannot take QAT; pruning and clustering clone nested Sequential and
  Functional models recursively (sparsity/keras/prune.py, clustering/keras/cluster.py).
"""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tensorflow as tf
import tf_keras
from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
    ClusteringRegistry,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (
    Default8BitQuantizeRegistry,
)
from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

from runspec.modelfile import ModelRefused, member_names_are_safe, saved_model_root
from worker.engine import tfsetup  # noqa: F401 - logging set up; refuses a TensorFlow loaded with Keras 3

TECHNIQUES = ("prune", "qat", "cluster", "int8")
INT8_LAYERS = frozenset(
    """
    Dense Conv1D Conv2D DepthwiseConv1D DepthwiseConv2D SeparableConv1D SeparableConv2D Conv2DTranspose
    MaxPooling1D MaxPooling2D AveragePooling1D AveragePooling2D MaxPool1D MaxPool2D AvgPool1D AvgPool2D
    GlobalMaxPooling1D GlobalMaxPooling2D GlobalAveragePooling1D GlobalAveragePooling2D
    BatchNormalization Concatenate Add Subtract Multiply Maximum Minimum Average
    Flatten Reshape Permute Dropout SpatialDropout1D SpatialDropout2D GaussianDropout GaussianNoise
    AlphaDropout ActivityRegularization Identity
    ReLU LeakyReLU PReLU ELU Softmax Activation Rescaling Normalization
    ZeroPadding1D ZeroPadding2D Cropping1D Cropping2D UpSampling1D UpSampling2D Resizing CenterCrop
    Embedding
    """.split()
)
# TensorFlow ops that tf-keras records as TFOpLambda layers (a Functional model built with
# `x + 3.0`, `x * y`; MobileNetV3's hard-swish) whose TFLite ops ADD, SUB and MUL have int8
# kernels (LiteRT quantization spec); keyed by the layer's `symbol`.
INT8_TF_OPS = frozenset({"__operators__.add", "math.add", "math.subtract", "math.multiply"})
INT8_ACTIVATIONS = frozenset({"linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "hard_sigmoid", "swish", "silu"})
PASS_THROUGH = frozenset({"Rescaling", "Normalization", "Resizing", "CenterCrop", "Identity", "GaussianNoise"})
BN_FOLDS_AFTER = frozenset({"Conv2D", "DepthwiseConv2D", "Dense"})
# Ops a graph may not hold: they read or write files or run Python (SavedModel uploads).
REFUSED_OPS = frozenset(
    """
    PyFunc PyFuncStateless EagerPyFunc WriteFile ReadFile MatchingFiles ImmutableConst
    WholeFileReader WholeFileReaderV2 TextLineReader TextLineReaderV2 FixedLengthRecordReader
    FixedLengthRecordReaderV2 TFRecordReader TFRecordReaderV2 IdentityReader IdentityReaderV2
    TextLineDataset TFRecordDataset FixedLengthRecordDataset SaveDataset LoadDataset
    WriteSummary WriteScalarSummary WriteImageSummary CreateSummaryFileWriter
    DebugIdentity DebugIdentityV2 DebugIdentityV3 Print PrintV2
    """.split()
)

_QAT_REGISTRY = Default8BitQuantizeRegistry()
_PRUNE_NAMES = {c.__name__ for c in PruneRegistry._LAYERS_WEIGHTS_MAP}
_QAT_NAMES = {c.__name__ for c in _QAT_REGISTRY._layer_quantize_map}
_CLUSTER_NAMES = {c.__name__ for c in ClusteringRegistry._LAYERS_WEIGHTS_MAP} | {"MultiHeadAttention"}


def _verdict(status: str, note: str | None = None) -> dict[str, Any]:
    return {"status": status, "note": note}


def _shape(x: Any) -> list[int | None]:
    return [None if d is None else int(d) for d in tuple(x.shape)]


def _dtype(x: Any) -> str:
    return str(getattr(x.dtype, "name", x.dtype))


def _activation_name(layer: Any) -> str | None:
    if type(layer).__name__ == "Softmax":
        return "softmax"
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    return str(getattr(fn, "__name__", fn))


def _is_model(layer: Any) -> bool:
    return isinstance(layer, tf_keras.Model) or type(layer).__name__ in ("Functional", "Sequential", "Model")


def _previous_class(layer: Any) -> str | None:
    try:
        inbound = layer.input
    except Exception:  # shared or unconnected layer
        return None
    if isinstance(inbound, list | tuple):
        return None
    history = getattr(inbound, "_keras_history", None)
    return type(history[0]).__name__ if history else None


def _flatten(model: Any, prefix: str, rows: list[tuple[str, Any]], nested: list[dict[str, Any]]) -> None:
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if _is_model(layer):
            nested.append({"path": path, "class": type(layer).__name__, "layers": len(layer.layers)})
            _flatten(layer, f"{path}/", rows, nested)
        elif type(layer).__name__ != "InputLayer":
            rows.append((path, layer))


def _prune(layer: Any, cls: str, legacy: bool) -> dict[str, Any]:
    ok = PruneRegistry.supports(layer) if legacy else cls in _PRUNE_NAMES
    if ok:
        return _verdict("yes")
    if not layer.trainable_weights:
        return _verdict(
            "fix",
            "not in tfmot's PruneRegistry and has no weights to prune: optiboard prunes only the other "
            "layers (clone_model with a clone_function) and leaves this one as it is",
        )
    return _verdict("no", f"tfmot's PruneRegistry does not list {cls}; prune_low_magnitude refuses it")


def _qat(layer: Any, cls: str, legacy: bool) -> dict[str, Any]:
    ok = _QAT_REGISTRY.supports(layer) if legacy else cls in _QAT_NAMES
    if cls == "Activation" and _activation_name(layer) not in {"relu", "relu6", "softmax", "linear", "sigmoid", "tanh"}:
        ok = False
    if ok:
        return _verdict("yes")
    if cls == "BatchNormalization":
        before = _previous_class(layer)
        if before in BN_FOLDS_AFTER:
            return _verdict(
                "fix",
                f"folded: tfmot's default 8-bit transforms quantize {before}+BatchNormalization as one "
                "and the TFLite converter folds it into the kernel",
            )
        return _verdict(
            "no",
            f"BatchNormalization after {before or 'its input'} cannot be folded (only after Conv2D, "
            "DepthwiseConv2D or Dense): move it after one, or leave it in float with a pass-through quantize config",
        )
    if cls in PASS_THROUGH:
        return _verdict(
            "fix",
            "optiboard annotates it with a pass-through quantize config (quantize_annotate_layer with a "
            "QuantizeConfig that quantizes nothing) so QAT runs; the layer stays float until conversion",
        )
    return _verdict("no", f"tfmot's default 8-bit QuantizeRegistry does not list {cls}")


def _cluster(layer: Any, cls: str, legacy: bool) -> dict[str, Any]:
    if legacy:
        ok = ClusteringRegistry.supports(layer)
    else:
        ok = not layer.trainable_weights or cls in _CLUSTER_NAMES
    if ok:
        return _verdict("yes")
    return _verdict("no", f"tfmot's ClusteringRegistry does not list {cls}, which has trainable weights")


def _int8(layer: Any, cls: str) -> dict[str, Any]:
    if cls == "TFOpLambda" and getattr(layer, "symbol", None) in INT8_TF_OPS:
        return _verdict("yes", f"tf.{layer.symbol} lowers to a TFLite op with int8 kernels")
    if cls not in INT8_LAYERS:
        return _verdict("no", f"{cls} lowers to TFLite ops without int8 kernels (or that optiboard has not verified)")
    activation = _activation_name(layer)
    if activation is not None and activation not in INT8_ACTIVATIONS:
        return _verdict("no", f"activation {activation!r} has no int8 TFLite kernel")
    if cls == "BatchNormalization":
        return _verdict("fix", "folded into the preceding kernel, or lowered to int8 MUL and ADD")
    return _verdict("yes")


def _summary(rows: list[dict[str, Any]], technique: str, extra_problem: str | None = None) -> dict[str, Any]:
    problems = [f"{r['path']} ({r['class']})" for r in rows if r[technique]["status"] == "no"]
    fixes = [r["path"] for r in rows if r[technique]["status"] == "fix"]
    if problems or extra_problem:
        reasons = [f"unsupported layers: {', '.join(problems)}"] if problems else []
        return {"status": "no", "reason": "; ".join([*reasons, *([extra_problem] if extra_problem else [])])}
    if fixes:
        return {"status": "fix", "reason": f"with a fix for: {', '.join(fixes)}"}
    return {"status": "yes", "reason": None}


def keras_preflight(model: Any, *, legacy: bool) -> dict[str, Any]:
    """The preflight of a loaded Keras model (`legacy`: a tf-keras model, else Keras 3)."""
    kind = type(model).__name__.lower()
    if kind == "model":
        kind = "functional"
    flat: list[tuple[str, Any]] = []
    nested: list[dict[str, Any]] = []
    _flatten(model, "", flat, nested)
    rows = []
    for path, layer in flat:
        cls = type(layer).__name__
        rows.append(
            {
                "path": path,
                "class": cls,
                "params": int(layer.count_params()),
                "prune": _prune(layer, cls, legacy),
                "qat": _qat(layer, cls, legacy),
                "cluster": _cluster(layer, cls, legacy),
                "int8": _int8(layer, cls),
                "tf_keras": legacy or hasattr(tf_keras.layers, cls),
            }
        )
    outputs = []
    for tensor in model.outputs:
        history = getattr(tensor, "_keras_history", None)
        producer = history[0] if history else model.layers[-1]
        while _is_model(producer):
            producer = producer.layers[-1]
        activation = _activation_name(producer)
        outputs.append(
            {
                "shape": _shape(tensor),
                "dtype": _dtype(tensor),
                "activation": activation,
                "kind": "probabilities" if activation in ("softmax", "sigmoid") else "logits",
            }
        )
    paths = ", ".join(n["path"] for n in nested)
    # A Keras 3 model runs as its tf-keras copy, which is built flat (worker.engine.keras3_copy);
    # a tf-keras upload runs as it is, and QAT cannot take it nested.
    nested_note = (
        None
        if not nested
        else f"the nested models ({paths}) are flattened into one Functional graph in optiboard's tf-keras copy"
        if not legacy
        else "tfmot's quantize_annotate_model refuses a model inside a model: flatten the nested models "
        f"({paths}) into one Functional model and upload it again"
    )
    techniques = {t: _summary(rows, t) for t in TECHNIQUES}
    if nested_note:
        qat = techniques["qat"]
        techniques["qat"] = {
            "status": "no" if qat["status"] == "no" or legacy else "fix",
            "reason": "; ".join(x for x in (qat["reason"], nested_note) if x),
        }
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        # the job feeds one array of images or features and reads one vector of class scores
        why = (
            f"optiboard runs models with one input and one output; this one has {len(model.inputs)} "
            f"input{'s' if len(model.inputs) != 1 else ''} and {len(model.outputs)} output"
            f"{'s' if len(model.outputs) != 1 else ''}"
        )
        techniques = {t: {"status": "no", "reason": why} for t in TECHNIQUES}
    return {
        "kind": kind,
        "inputs": [{"shape": _shape(t), "dtype": _dtype(t)} for t in model.inputs],
        "outputs": outputs,
        "params": int(model.count_params()),
        "nested_models": nested,
        "layers": rows,
        "techniques": techniques,
    }


@contextlib.contextmanager
def _as_keras_file(path: Path) -> Iterator[Path]:
    """`path` under a name ending in `.keras`: both Keras libraries choose the format by the
    extension, and an upload is stored as `<id>.part` until it is accepted. A symlink in a new
    private temporary directory (the sandbox's TMPDIR), removed afterwards."""
    if path.suffix == ".keras":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="optiboard-keras-") as tmp:
        link = Path(tmp) / "model.keras"
        link.symlink_to(path.resolve())
        yield link


def keras3_preflight(path: Path, *, copy_to: Path | None = None) -> dict[str, Any]:
    """Load a Keras 3 `.keras` file with Keras 3, safe mode on, uncompiled; its preflight.

    With `copy_to`, also its faithful tf-keras copy (worker.engine.keras3_copy), saved there in
    the Keras v3 format: the techniques run on it. `tf_keras_copy` in the result says whether
    it exists ({"status": "yes", "max_abs_diff", "sha256"}) or why not ({"status": "no",
    "reason"}); without a copy no technique, export or measurement can run, and `techniques`
    says so."""
    import keras

    with _as_keras_file(path) as named:
        model = keras.saving.load_model(named, safe_mode=True, compile=False)
    result = keras_preflight(model, legacy=False)
    if copy_to is not None:
        result["tf_keras_copy"] = _tf_keras_copy(model, copy_to)
        if result["tf_keras_copy"]["status"] == "no":
            why = f"no faithful tf-keras copy: {result['tf_keras_copy']['reason']}"
            result["techniques"] = {t: {"status": "no", "reason": why} for t in TECHNIQUES}
    return result


def _tf_keras_copy(model: Any, out: Path) -> dict[str, Any]:
    import hashlib

    from worker.engine.keras3_copy import CopyRefused, tf_keras_copy

    try:
        copy, diff = tf_keras_copy(model)
    except CopyRefused as exc:
        return {"status": "no", "reason": str(exc)}
    copy.save(out, save_format="keras_v3")
    return {"status": "yes", "max_abs_diff": diff, "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}


def tf_keras_preflight(path: Path) -> dict[str, Any]:
    """Load a tf-keras `.keras` file with tf-keras, safe mode on, uncompiled; its preflight."""
    with _as_keras_file(path) as named:
        model = tf_keras.models.load_model(named, safe_mode=True, compile=False)
    return keras_preflight(model, legacy=True)


def _graph_ops(saved_model: Any) -> set[str]:
    ops: set[str] = set()
    for meta in saved_model.meta_graphs:
        ops.update(node.op for node in meta.graph_def.node)
        for fn in meta.graph_def.library.function:
            ops.update(node.op for node in fn.node_def)
    return ops


def saved_model_preflight(path: Path) -> dict[str, Any]:
    """A zipped SavedModel: its graph's ops checked against REFUSED_OPS and its serving
    signatures read from saved_model.pb, without loading or running the graph."""
    from tensorflow.core.protobuf import saved_model_pb2

    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        root = saved_model_root(names)
        if root is None or not member_names_are_safe(list(names)):
            raise ModelRefused((), "not a SavedModel archive")
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString(zf.read(f"{root}saved_model.pb"))
    ops = _graph_ops(proto)
    refused = sorted(ops & REFUSED_OPS)
    if refused:
        raise ModelRefused(
            ("saved_model.pb",),
            f"the graph uses {', '.join(refused)}: ops that read or write files or run Python are refused",
        )
    signatures = {}
    for meta in proto.meta_graphs:
        for key, sig in meta.signature_def.items():
            if key.startswith("__"):  # __saved_model_init_op: TensorFlow's own, not a model signature
                continue
            signatures[key] = {
                "inputs": {
                    n: {
                        "shape": [None if d.size < 0 else d.size for d in t.tensor_shape.dim],
                        "dtype": tf.dtypes.as_dtype(t.dtype).name,
                    }
                    for n, t in sig.inputs.items()
                },
                "outputs": {
                    n: {
                        "shape": [None if d.size < 0 else d.size for d in t.tensor_shape.dim],
                        "dtype": tf.dtypes.as_dtype(t.dtype).name,
                    }
                    for n, t in sig.outputs.items()
                },
            }
    serving = signatures.get("serving_default") or next(iter(signatures.values()), {"inputs": {}, "outputs": {}})
    no = {"status": "no", "reason": "a SavedModel is converted and measured; Keras techniques need a .keras file"}
    return {
        "kind": "saved_model",
        "inputs": list(serving["inputs"].values()),
        "outputs": list(serving["outputs"].values()),
        "params": None,
        "nested_models": [],
        "layers": [],
        "signatures": signatures,
        "ops": sorted(ops),
        "techniques": {
            "prune": no,
            "qat": no,
            "cluster": no,
            "int8": {"status": "yes", "reason": "post-training quantization at conversion"},
        },
    }


def tflite_preflight(path: Path) -> dict[str, Any]:
    """A .tflite file: inputs, outputs and ops from LiteRT's interpreter (nothing is run)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})

    def details(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"shape": [int(d) for d in x["shape"]], "dtype": x["dtype"].__name__} for x in items]

    no = {"status": "no", "reason": "a .tflite file is measured only (accuracy, size, latency)"}
    return {
        "kind": "tflite",
        "inputs": details(interpreter.get_input_details()),
        "outputs": details(interpreter.get_output_details()),
        "params": None,
        "nested_models": [],
        "layers": [],
        "ops": ops,
        "techniques": {t: no for t in TECHNIQUES},
    }
