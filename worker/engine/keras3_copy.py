"""A faithful tf-keras copy of a Keras 3 model (issue 17, item 4), made in the sandboxed checker.

tfmot 0.8 (pruning, QAT, clustering) works only on tf-keras models, and tf-keras cannot read a
Keras 3 `.keras` file ("parent module tf_keras.src.models.functional cannot be imported",
measured here with Keras 3.15 and tf-keras 2.21). So an uploaded Keras 3 model is rebuilt once,
at upload time, as a tf-keras model:

1. each layer's Keras 3 config is translated to the tf-keras form: serialized objects
   (initializers, regularizers, constraints) lose the Keras 3 `module` / `registered_name` keys,
   a dtype policy object becomes its name, an InputLayer's `batch_shape` becomes
   `batch_input_shape` (keras/src/saving/serialization_lib.py vs tf_keras's
   generic_utils.deserialize_keras_object); keys the tf-keras class does not take are dropped
   only when they hold a default (None, False, 0, empty), otherwise the copy is refused naming
   the layer and the key;
2. the graph is called again layer by layer, following the Keras 3 config's `inbound_nodes`
   (`keras_history` = (layer, node index, tensor index)); a nested Sequential or Functional
   model is **flattened**: its layers are called inline in the outer graph (renamed
   `<model>_<layer>` where a name would repeat), because tfmot's quantize_annotate_model
   refuses a model inside a model (quantization/keras/quantize.py) while the flat graph
   computes the same function;
3. every layer's weights (trainable and not: BatchNormalization's moving statistics) are copied
   from the Keras 3 layer the copy was built from, shapes checked;
4. both models run on the same seeded random batch and the outputs must agree within
   `RTOL * (1 + max |y|)`; otherwise the copy is refused with the difference.

`tf_keras_copy(model)` returns (copy, max_abs_diff) or raises `CopyRefused` with the reason the
preflight shows. Only Keras's own layer classes are rebuilt (the upload scan allowed no others).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import tf_keras

RTOL = 1e-4
BATCH = 8
SEED = 1234
# Keras 3 class names whose tf-keras class has another name.
RENAMED = {"Functional": "Model"}
MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})


class CopyRefused(ValueError):
    """The model has no faithful tf-keras copy; the message says which layer and why."""


# --- configs ---------------------------------------------------------------------------


def _is_serialized(obj: Any) -> bool:
    return isinstance(obj, dict) and "class_name" in obj and "config" in obj


def _translate(value: Any, where: str = "") -> Any:
    """A Keras 3 config value in the tf-keras form (recursively); `where` names the layer for
    a refusal."""
    if _is_serialized(value):
        if value["class_name"] in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
            return value["config"].get("name", "float32")
        if value["class_name"] == "__keras_tensor__":
            return value  # resolved by the graph walk
        config = _translate(value["config"], where)
        cls = _object_class(value["class_name"])
        if cls is not None and isinstance(config, dict):
            config = _fit_kwargs(cls, config, f"{where}: {value['class_name']}")
        return {"class_name": value["class_name"], "config": config}
    if isinstance(value, dict):
        return {k: _translate(v, where) for k, v in value.items() if k not in ("module", "registered_name")}
    if isinstance(value, list):
        return [_translate(v, where) for v in value]
    return value


def _object_class(name: str) -> type | None:
    """The tf-keras initializer, regularizer or constraint class of this name, if any."""
    for module in (tf_keras.initializers, tf_keras.regularizers, tf_keras.constraints):
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            return cls
    return None


def _fit_kwargs(cls: type, config: dict[str, Any], where: str) -> dict[str, Any]:
    """`config` without the keys `cls` does not take; refused if such a key holds a non-default."""
    accepted = _accepted_keys(cls)
    if accepted is None:
        return config
    config = dict(config)
    for key in [k for k in config if k not in accepted]:
        if not _is_default(config[key]):
            raise CopyRefused(f"{where} sets {key}={config[key]!r}, which tf-keras's {cls.__name__} does not have")
        del config[key]
    return config


def _is_default(value: Any) -> bool:
    return value is None or value is False or value == 0 or value in ((), [], {}, "")


def _layer_from_config(cls_name: str, config: dict[str, Any], name: str) -> Any:
    cls = getattr(tf_keras.layers, RENAMED.get(cls_name, cls_name), None)
    if cls is None or not isinstance(cls, type):
        raise CopyRefused(f"layer {name} ({cls_name}) has no tf-keras equivalent")
    config = _fit_kwargs(cls, config, f"layer {name} ({cls_name})")
    try:
        return cls.from_config(config)
    except Exception as exc:  # what tf-keras raises for a config it cannot take
        raise CopyRefused(f"layer {name} ({cls_name}) could not be rebuilt in tf-keras: {exc}") from None


def _accepted_keys(cls: type) -> set[str] | None:
    """The keyword arguments a layer class takes (its __init__ and its bases' up to Layer), or
    None when it takes **kwargs that are not passed to Layer."""
    keys: set[str] = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape", "batch_input_shape"}
    keys |= {"batch_size", "activity_regularizer", "autocast", "input_length"}
    for klass in cls.__mro__:
        if klass in (tf_keras.layers.Layer, object):
            break
        try:
            params = inspect.signature(klass.__init__).parameters
        except (TypeError, ValueError):
            return None
        keys |= {p for p in params if p not in ("self", "args", "kwargs")}
    return keys


def _input_layer(config: dict[str, Any]) -> Any:
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if shape is None:
        raise CopyRefused(f"input {config.get('name')} has no shape")
    return tf_keras.Input(
        batch_shape=tuple(shape),
        dtype=_translate(config.get("dtype", "float32")),
        sparse=bool(config.get("sparse", False)),
        name=config.get("name"),
    )


# --- graph -----------------------------------------------------------------------------


class _Graph:
    """The flat tf-keras graph being built: layer names in use, and for each Keras 3 layer path
    ("block/inner" for a layer of the nested model "block") the tf-keras layer made from it."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.made: dict[str, Any] = {}

    def layer(self, entry: dict[str, Any], path: str, prefix: str) -> Any:
        cls, config = entry["class_name"], dict(entry["config"])
        name = config.get("name", "?")
        unique = name if name not in self.names else f"{prefix}{name}"
        while unique in self.names:
            unique = f"{unique}_"
        config["name"] = unique
        layer = _layer_from_config(cls, _translate(config, f"layer {path}"), path)
        self.names.add(unique)
        self.made[path] = layer
        return layer


def _call_model(entry: dict[str, Any], inputs: Any, graph: _Graph, path: str) -> Any:
    """Call the layers of the serialized model `entry` inline on `inputs` (tf-keras tensors);
    its outputs. Nested models inside it are flattened the same way."""
    cls, config = entry["class_name"], entry["config"]
    prefix = f"{path.replace('/', '_')}_" if path else ""
    if cls == "Sequential":
        x = inputs
        for inner in config.get("layers", []):
            if inner["class_name"] == "InputLayer":
                continue
            name = inner["config"].get("name", "?")
            where = f"{path}/{name}" if path else name
            if inner["class_name"] in MODEL_CLASSES:
                x = _call_model(inner, x, graph, where)
            else:
                x = graph.layer(inner, where, prefix)(x)
        return x
    if cls not in ("Functional", "Model"):
        raise CopyRefused(f"model {config.get('name')} ({cls}) is not Sequential or Functional")
    tensors: dict[tuple[str, int, int], Any] = {}
    given = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    endpoints = _endpoints(config["input_layers"])
    if len(given) != len(endpoints):
        raise CopyRefused(f"model {config.get('name')} takes {len(endpoints)} inputs, called with {len(given)}")
    tensors.update(zip(endpoints, given, strict=True))
    pending: list[tuple[Any, str, int, dict[str, Any]]] = []
    for inner in config["layers"]:
        if inner["class_name"] == "InputLayer":
            continue
        name = inner["config"].get("name") or inner.get("name", "?")
        where = f"{path}/{name}" if path else name
        nodes = inner.get("inbound_nodes", [])
        if inner["class_name"] in MODEL_CLASSES:
            if len(nodes) != 1:
                raise CopyRefused(f"the nested model {where} is called {len(nodes)} times; only once is supported")
            pending.append((inner, where, 0, nodes[0]))
        else:
            layer = graph.layer(inner, where, prefix)
            pending += [(layer, where, i, node) for i, node in enumerate(nodes)]
    # Call each node once its inputs exist (the config lists layers in topological order, but a
    # shared layer's later nodes may wait for layers listed after it).
    while pending:
        waiting = []
        for layer, where, index, node in pending:
            try:
                args = _resolve(node.get("args", []), tensors)
                kwargs = _resolve(node.get("kwargs", {}), tensors)
            except KeyError:
                waiting.append((layer, where, index, node))
                continue
            if isinstance(layer, dict):  # a nested model: flattened into this graph
                given = sorted(k for k, v in kwargs.items() if v is not None)
                if given:
                    raise CopyRefused(f"the nested model {where} is called with {given}")
                outputs = _call_model(layer, args[0] if len(args) == 1 else args, graph, where)
                key = layer["config"].get("name") or layer.get("name")
            else:
                outputs = layer(*args, **kwargs)
                key = where.rsplit("/", 1)[-1]
            flat = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for j, tensor in enumerate(flat):
                tensors[(key, index, j)] = tensor
        if len(waiting) == len(pending):
            names = ", ".join(sorted({where for _, where, _, _ in waiting}))
            raise CopyRefused(f"the graph could not be rebuilt: the inputs of {names} never appear")
        pending = waiting
    outputs = [tensors[e] for e in _endpoints(config["output_layers"])]
    return outputs[0] if len(outputs) == 1 else outputs


def _model_inputs(entry: dict[str, Any]) -> list[Any]:
    cls, config = entry["class_name"], entry["config"]
    if cls == "Sequential":
        layers = config.get("layers", [])
        if layers and layers[0]["class_name"] == "InputLayer":
            return [_input_layer(layers[0]["config"])]
        if config.get("build_input_shape"):
            return [tf_keras.Input(batch_shape=tuple(config["build_input_shape"]))]
        raise CopyRefused(f"the Sequential model {config.get('name')} has no input shape")
    by_name = {e["config"].get("name"): e for e in config["layers"] if e["class_name"] == "InputLayer"}
    return [_input_layer(by_name[name]["config"]) for name, _, _ in _endpoints(config["input_layers"])]


def _history(obj: Any) -> tuple[str, int, int] | None:
    if isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__":
        name, node, index = obj["config"]["keras_history"]
        return str(name), int(node), int(index)
    return None


def _resolve(obj: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    history = _history(obj)
    if history is not None:
        if history not in tensors:
            raise KeyError(history)
        return tensors[history]
    if isinstance(obj, list):
        return [_resolve(v, tensors) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, tensors) for v in obj)
    if isinstance(obj, dict):
        return {k: _resolve(v, tensors) for k, v in obj.items()}
    return obj


def _endpoints(spec: Any) -> list[tuple[str, int, int]]:
    """`input_layers` / `output_layers`: one [name, node, index] or a list of them."""
    if spec and isinstance(spec[0], str):
        spec = [spec]
    return [(str(n), int(i), int(j)) for n, i, j in spec]


# --- weights and the check ---------------------------------------------------------------


def _keras3_layers(model: Any, prefix: str = "") -> dict[str, Any]:
    """Every layer of a Keras 3 model by path, nested models' layers included."""
    out: dict[str, Any] = {}
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if type(layer).__name__ == "InputLayer":
            continue
        if type(layer).__name__ in MODEL_CLASSES:
            out.update(_keras3_layers(layer, f"{path}/"))
        else:
            out[path] = layer
    return out


def _copy_weights(model: Any, made: dict[str, Any]) -> None:
    source = _keras3_layers(model)
    if set(source) != set(made):
        missing = sorted(set(source) ^ set(made))
        raise CopyRefused(f"the tf-keras copy's layers differ from the model's at {', '.join(missing[:5])}")
    for path, layer in source.items():
        weights = [np.asarray(w) for w in layer.get_weights()]
        twin = made[path]
        theirs = twin.get_weights()
        if [w.shape for w in weights] != [np.shape(w) for w in theirs]:
            raise CopyRefused(
                f"layer {path}: weight shapes {[w.shape for w in weights]} differ from the tf-keras "
                f"layer's {[np.shape(w) for w in theirs]}"
            )
        twin.set_weights(weights)


def _probe_batch(model: Any) -> list[np.ndarray]:
    rng = np.random.default_rng(SEED)
    batch = []
    for tensor in model.inputs:
        shape = tuple(BATCH if d is None else int(d) for d in tensor.shape)
        dtype = np.dtype(str(getattr(tensor.dtype, "name", tensor.dtype)))
        if np.issubdtype(dtype, np.integer):
            batch.append(rng.integers(0, 2, size=shape).astype(dtype))
        else:
            batch.append(rng.normal(size=shape).astype(dtype))
    return batch


def tf_keras_copy(model: Any) -> tuple[Any, float]:
    """The tf-keras copy of a loaded Keras 3 Sequential or Functional `model`, and the largest
    absolute difference of their outputs on a seeded random batch of `BATCH` examples.

    Raises CopyRefused naming the layer (and key or weight) that has no faithful copy, or the
    difference when the outputs disagree beyond `RTOL * (1 + max |y|)`."""
    entry = {"class_name": type(model).__name__, "config": model.get_config()}
    if entry["class_name"] not in MODEL_CLASSES:
        raise CopyRefused(f"a subclassed model ({entry['class_name']}) cannot be rebuilt from its config")
    graph = _Graph()
    inputs = _model_inputs(entry)
    outputs = _call_model(entry, inputs[0] if len(inputs) == 1 else inputs, graph, "")
    copy = tf_keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=entry["config"].get("name"))
    _copy_weights(model, graph.made)
    batch = _probe_batch(model)
    ours = [np.asarray(y) for y in _as_list(model(batch if len(batch) > 1 else batch[0], training=False))]
    theirs = [np.asarray(y) for y in _as_list(copy(batch if len(batch) > 1 else batch[0], training=False))]
    if [y.shape for y in ours] != [y.shape for y in theirs]:
        raise CopyRefused(
            f"the tf-keras copy's outputs have shapes {[y.shape for y in theirs]}, not {[y.shape for y in ours]}"
        )
    diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(ours, theirs, strict=True))
    scale = 1.0 + max(float(np.max(np.abs(a))) if a.size else 0.0 for a in ours)
    if not np.isfinite(diff) or diff > RTOL * scale:
        raise CopyRefused(f"the tf-keras copy's outputs differ from the model's by up to {diff:.3g} on a test batch")
    return copy, diff


def _as_list(outputs: Any) -> list[Any]:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
