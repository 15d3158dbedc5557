"""Uploaded model files: what they are and whether they may be loaded, decided without loading
them (issue 17, items 1 and 2). Standard library only: the API runs it on every upload before
any model code could run, and the sandboxed loader runs it again before it loads a file.

`scan_model_file(path, filename, limits)` identifies the format from the bytes (the name only
separates `.weights.h5` from `.h5`) and returns a `ScanResult`, or raises `ModelRefused` whose
`loc` names the member or layer at fault and whose `status` is the HTTP status to answer with:

- `.keras` (a zip): the archive is bounded from its central directory first
  (`runspec.archive.inspect_zip`: member count, expanded sizes, ratio, no traversal names, no
  symlinks); only `metadata.json`, `config.json`, `model.weights.h5` and `assets/...` may be
  in it. `metadata.json`'s `keras_version` says which Keras wrote it (3.x: Keras 3; 2.x:
  tf-keras), because `tf_keras.models.load_model` cannot read a Keras 3 file and the loader
  must pick the matching library. `config.json` is checked by `scan_config`.
- a SavedModel directory as a `.zip`: bounded the same way; `saved_model.pb` at the root or
  in one top folder. Its graph is checked for file and Python ops in the sandbox (it needs
  protobuf, which the API does not load).
- `.tflite`: the flatbuffer's file identifier `TFL3` at bytes 4..8 (measurement only).
- HDF5 (`\\x89HDF\\r\\n\\x1a\\n`): a full model is refused (Keras ignores `safe_mode` for HDF5,
  CVE-2025-9905) with how to re-save; `.weights.h5` holds no architecture and is refused
  until an architecture file can be sent with it.

`scan_config` walks every `{"class_name": ..., "module": ...}` object of `config.json` (Keras's
serialization format, keras.io/guides/serialization_and_saving) against allowlists: layer classes
of `keras.layers` that run no user code (`LAYER_CLASSES`), the models (`MODEL_CLASSES`), the
objects that configure layers (`CONFIG_CLASSES`) and the modules they come from
(`ALLOWED_MODULES`). Refused: `Lambda` (CVE-2024-3660), `TFSMLayer` (CVE-2026-1462),
framework-wrapping layers, any module outside keras / tf_keras (CVE-2025-1550), a
`registered_name` other than the class's own (a custom object registered by the user), any
function reference (`__lambda__`, `function` objects) and strings naming a Python module
function such as `os.system`. `compile_config` is skipped: it is never deserialized (the
loader passes `compile=False`).
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from runspec.archive import ArchiveRefused, Limits, inspect_zip

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
TFLITE_IDENTIFIER = b"TFL3"
MAX_CONFIG_BYTES = 16 << 20  # config.json / metadata.json are read whole: bound them first
# ... and what parsing them may build: every `[`, `{`, `,` and `:` outside strings is one Python
# object or pointer more (a 220 kB upload of 15 MiB of `[],` made json.loads take +402 MB in the
# API). Keras applications write ~100 per layer: ResNet152 52,385, EfficientNetB7 81,192.
MAX_CONFIG_TOKENS = 1_000_000
_STRING = re.compile(rb'"[^"]*"')
MAX_MEMBERS = 4096  # a SavedModel's variables are sharded; assets may be many small files
MAX_CONFIG_DEPTH = 200

# Formats (the `format` column) and Keras flavours (the `keras_flavour` column).
KERAS = "keras"
SAVED_MODEL = "saved_model"
TFLITE = "tflite"
MODEL_FORMATS = (KERAS, SAVED_MODEL, TFLITE)
KERAS3 = "keras3"
TF_KERAS = "tf_keras"
# The sandboxed checker writes a Keras 3 upload's tf-keras copy under this name in its working
# directory; the API stores it beside the upload (`tf_keras_copy_filename`).
COPY_NAME = "tf_keras_copy.keras"


def tf_keras_copy_filename(filename: str) -> str:
    """Where a Keras 3 upload's tf-keras copy is stored, relative to the artifact root, given the
    upload's own stored `filename` ("models/ab12.keras" → "models/ab12.tf-keras.keras")."""
    stem = filename[: -len(".keras")] if filename.endswith(".keras") else filename
    return f"{stem}.tf-keras.keras"


# Layer classes of keras.layers (Keras 3.15 and tf-keras 2.21, keras.io/api/layers) whose
# computation is fixed by Keras: no user function, no file, no other framework. Not listed on
# purpose: Lambda (runs a pickled or source function), TFSMLayer (loads a SavedModel from a
# path), TorchModuleWrapper / JaxLayer / FlaxLayer (wrap foreign code), Layer and RNN cells
# given as user classes. `tests/models/test_allowlist.py` checks every name exists in keras.
LAYER_CLASSES = frozenset(
    """
    InputLayer Dense EinsumDense Activation Embedding Masking Identity
    Conv1D Conv2D Conv3D Conv1DTranspose Conv2DTranspose Conv3DTranspose
    SeparableConv1D SeparableConv2D DepthwiseConv1D DepthwiseConv2D
    MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D AveragePooling3D
    GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D
    GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D
    MaxPool1D MaxPool2D MaxPool3D AvgPool1D AvgPool2D AvgPool3D
    BatchNormalization LayerNormalization GroupNormalization UnitNormalization
    Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianDropout GaussianNoise
    AlphaDropout ActivityRegularization
    Reshape Flatten RepeatVector Permute Cropping1D Cropping2D Cropping3D
    UpSampling1D UpSampling2D UpSampling3D ZeroPadding1D ZeroPadding2D ZeroPadding3D
    Concatenate Average Maximum Minimum Add Subtract Multiply Dot
    ReLU Softmax LeakyReLU PReLU ELU ThresholdedReLU
    Rescaling Normalization Resizing CenterCrop
    """.split()
)
MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
# Objects that configure layers: initializers, regularizers, constraints, dtype policies and
# the serialization format's own tokens (keras/src/saving/serialization_lib.py).
CONFIG_CLASSES = frozenset(
    """
    GlorotUniform GlorotNormal HeUniform HeNormal LecunUniform LecunNormal Zeros Ones Constant
    RandomUniform RandomNormal TruncatedNormal VarianceScaling Orthogonal Identity
    L1 L2 L1L2 OrthogonalRegularizer MaxNorm MinMaxNorm NonNeg UnitNorm
    DTypePolicy FloatDTypePolicy Policy InputSpec
    __tuple__ __keras_tensor__ __numpy__ __bytes__ __ellipsis__ __slice__ __tensor__
    """.split()
)
ALLOWED_MODULES = frozenset(
    {
        "keras",
        "keras.layers",
        "keras.models",
        "keras.initializers",
        "keras.regularizers",
        "keras.constraints",
        "keras.mixed_precision",
        "keras.dtype_policies",
        "keras.src.models.functional",
        "keras.src.models.sequential",
        "keras.src.models.model",
        "keras.engine.functional",
        "keras.engine.sequential",
        "keras.engine.training",
        "tf_keras",
        "tf_keras.layers",
        "tf_keras.models",
        "tf_keras.src.engine.functional",
        "tf_keras.src.engine.sequential",
        "tf_keras.src.engine.training",
    }
)
# Tokens that stand for Python code in Keras's format: a lambda's bytecode, a function by name.
FUNCTION_CLASSES = frozenset({"__lambda__", "function", "__function__"})
REFUSED_LAYERS = {
    "Lambda": "a Lambda layer runs a Python function stored in the file (CVE-2024-3660)",
    "TFSMLayer": "a TFSMLayer loads a SavedModel from a path on the server (CVE-2026-1462)",
    "TorchModuleWrapper": "it wraps PyTorch code",
    "JaxLayer": "it wraps a JAX function",
    "FlaxLayer": "it wraps a Flax module",
}
# A string naming a function of a module that is not a model's business (e.g. "os.system").
_CODE_REFERENCE = re.compile(
    r"^\s*(os|sys|posix|nt|subprocess|builtins|__builtin__|shutil|importlib|pickle|marshal|socket|"
    r"ctypes|runpy|code|pty|io|pathlib)\.[A-Za-z_]"
)
KERAS_MEMBERS = frozenset({"metadata.json", "config.json", "model.weights.h5"})
H5_RESAVE = 'load it where you trust it and re-save it as Keras v3: model.save("m.keras")'


class ModelRefused(ValueError):
    """An upload that must not be kept or loaded. `loc` is the path of what is at fault below the
    file (e.g. ("config.json", "layers", 3)); `status` the HTTP status (413 for size, else 422)."""

    def __init__(self, loc: tuple[Any, ...], message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.loc = loc
        self.status = status


@dataclass(frozen=True)
class ScanResult:
    """What the static scan found: `format` (MODEL_FORMATS), `keras_flavour` (KERAS3, TF_KERAS
    or None), `keras_version` from metadata.json, `model_class` (Functional/Sequential) and
    `layers` (class names in config order, nested models flattened) for Keras files."""

    format: str
    keras_flavour: str | None = None
    keras_version: str | None = None
    model_class: str | None = None
    layers: list[str] = field(default_factory=list)


def model_limits(max_expanded_bytes: int, max_ratio: float | None = 1000.0) -> Limits:
    """Bounds of an uploaded model archive (OPTIBOARD_MAX_MODEL_BYTES expanded)."""
    return Limits(
        max_expanded_bytes=max_expanded_bytes,
        max_members=MAX_MEMBERS,
        max_ratio=max_ratio,
        setting="OPTIBOARD_MAX_MODEL_BYTES",
    )


def scan_model_file(path: Path, filename: str, limits: Limits) -> ScanResult:
    """Identify and statically check an uploaded model file (see the module docstring).

    `filename` is the client's name (used only to tell `.weights.h5` from `.h5` and in
    messages). Raises ModelRefused; reads at most the zip directory and two JSON members.
    """
    with path.open("rb") as f:
        head = f.read(16)
    if not head:
        raise ModelRefused((), "the file is empty (0 bytes): upload the model file itself")
    if head.startswith(HDF5_MAGIC):
        if filename.lower().endswith(".weights.h5"):
            raise ModelRefused(
                (),
                "a .weights.h5 file holds weights without the architecture; upload the whole model "
                'as a .keras file instead: model.save("m.keras") (weights with a separate '
                "architecture file are not accepted yet)",
            )
        raise ModelRefused(
            (),
            "HDF5 (.h5) model files are refused: Keras ignores safe_mode when it loads them, so a "
            f"layer in the file could run code on the server (CVE-2025-9905); {H5_RESAVE}",
        )
    if len(head) >= 8 and head[4:8] == TFLITE_IDENTIFIER:
        return ScanResult(format=TFLITE)
    if head.startswith(ZIP_MAGIC) or head.startswith(b"PK\x05\x06"):
        return _scan_zip(path, limits)
    raise ModelRefused(
        (),
        "not a model file optiboard accepts: expected a Keras v3 .keras file, a SavedModel "
        "directory as a .zip, or a .tflite file (its bytes match none of them)",
    )


def _scan_zip(path: Path, limits: Limits) -> ScanResult:
    try:
        members = inspect_zip(path, limits)
    except ArchiveRefused as exc:
        status = 413 if "expands to more than" in str(exc) else 422
        raise ModelRefused((), str(exc), status=status) from exc
    except ValueError as exc:
        raise ModelRefused((), str(exc)) from exc
    names = {m.name for m in members}
    if "config.json" in names or "metadata.json" in names:
        return _scan_keras(path, names)
    if saved_model_root(names) is not None:
        return ScanResult(format=SAVED_MODEL)
    raise ModelRefused(
        (),
        "a zip that is neither a Keras v3 .keras file (config.json, metadata.json) nor a SavedModel "
        "directory (saved_model.pb at its root or in one folder)",
    )


def saved_model_root(names: set[str]) -> str | None:
    """The folder of a zipped SavedModel ("" for the root), or None if there is none."""
    if "saved_model.pb" in names:
        return ""
    roots = {n.split("/", 1)[0] for n in names if n.count("/") == 1 and n.endswith("/saved_model.pb")}
    return f"{roots.pop()}/" if len(roots) == 1 else None


def json_tokens(raw: bytes) -> int:
    """How many `[`, `{`, `,` and `:` stand outside strings in the JSON text `raw`: an upper
    bound on the objects and pointers `json.loads` builds from it (each value, key, list or
    dict costs at least one of them), counted without parsing, in C (~0.1 s for 16 MiB)."""
    if b"\\" in raw:  # escaped backslashes, then escaped quotes, so every quote left delimits
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    bare = _STRING.sub(b"", raw)
    return bare.count(b"[") + bare.count(b"{") + bare.count(b",") + bare.count(b":")


def _read_json(zf: zipfile.ZipFile, name: str) -> Any:
    """The member `name` parsed, its size and what parsing it builds bounded first.

    Raises ModelRefused (422) naming the member: too large, too many values, unreadable (a bad
    CRC-32, a corrupt deflate stream, a truncated member) or not JSON."""
    info = zf.getinfo(name)
    if info.file_size > MAX_CONFIG_BYTES:
        raise ModelRefused((name,), f"{name} is {info.file_size:,} bytes; at most {MAX_CONFIG_BYTES:,} are read")
    try:
        raw = zf.read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise ModelRefused((name,), f"{name} cannot be read from the archive: {exc}") from exc
    tokens = json_tokens(raw)
    if tokens > MAX_CONFIG_TOKENS:
        raise ModelRefused(
            (name,),
            f"{name} holds {tokens:,} JSON values; at most {MAX_CONFIG_TOKENS:,} are parsed "
            "(a Keras model of 800 layers writes about 80,000)",
        )
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ModelRefused((name,), f"{name} is not valid JSON ({type(exc).__name__})") from exc


def _scan_keras(path: Path, names: set[str]) -> ScanResult:
    for name in sorted(names):
        if name not in KERAS_MEMBERS and not name.startswith("assets/"):
            raise ModelRefused((name,), f"unexpected member {name!r} in a .keras file")
    for required in ("metadata.json", "config.json", "model.weights.h5"):
        if required not in names:
            raise ModelRefused((required,), f"a .keras file must hold {required}; this one does not")
    with zipfile.ZipFile(path) as zf:
        metadata = _read_json(zf, "metadata.json")
        config = _read_json(zf, "config.json")
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    if not isinstance(version, str) or not re.fullmatch(r"[23]\.\d+(\.\d+)?\S*", version):
        raise ModelRefused(("metadata.json", "keras_version"), f"unknown keras_version {version!r}")
    flavour = KERAS3 if version.startswith("3.") else TF_KERAS
    model_class, layers = scan_config(config)
    return ScanResult(
        format=KERAS, keras_flavour=flavour, keras_version=version, model_class=model_class, layers=layers
    )


def scan_config(config: Any) -> tuple[str, list[str]]:
    """Check a `.keras` file's config.json; returns the top model class and the layer classes
    (nested models' layers flattened, in config order).

    Raises ModelRefused with `loc` ("config.json", "layers", i, ["layers", j, ...]) naming the
    layer, or ("config.json", <key path>) for an object outside a layer.
    """
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ModelRefused(("config.json",), "config.json does not describe a Keras model")
    top = config["class_name"]
    module = config.get("module")
    if top not in MODEL_CLASSES or (module is not None and module not in ALLOWED_MODULES):
        raise ModelRefused(
            ("config.json", "class_name"),
            f"a subclassed model (class {top!r} from module {module!r}): its code is not in the "
            "file and optiboard runs no user code, so it cannot be loaded or optimized; rebuild it "
            "with the Sequential or Functional API (keras.Model(inputs, outputs)) and save that",
        )
    layers: list[str] = []
    _check_model(config, ("config.json",), layers)
    return top, layers


def _check_model(model: dict[str, Any], loc: tuple[Any, ...], out: list[str]) -> None:
    cfg = model.get("config")
    layer_list = cfg.get("layers") if isinstance(cfg, dict) else None
    if not isinstance(cfg, dict) or not isinstance(layer_list, list):
        raise ModelRefused(loc, f"model {model.get('class_name')!r} lists no layers")
    for key, value in model.items():  # build_config, inbound_nodes (deserialized by Keras too)
        if key not in ("class_name", "config", "compile_config"):
            _walk(value, (*loc, key), depth=0)
    for key, value in cfg.items():
        if key != "layers" and key != "compile_config":
            _walk(value, (*loc, key), depth=0)
    for i, layer in enumerate(layer_list):
        here = (*loc, "layers", i)
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
            raise ModelRefused(here, "a layer entry without a class_name")
        cls = layer["class_name"]
        name = (layer.get("config") or {}).get("name") if isinstance(layer.get("config"), dict) else None
        what = f"layer {i} ({name!r}, class {cls!r})"
        _check_object(layer, here, what)
        if layer.get("module") is None:  # Keras writes None for classes defined in __main__
            raise ModelRefused(
                here, f"{what} comes from no Keras module: a custom class, whose code is not in the file"
            )
        if cls in MODEL_CLASSES:
            _check_model(layer, here, out)
            continue
        if cls not in LAYER_CLASSES:
            why = REFUSED_LAYERS.get(cls, "it is not one of the Keras layers optiboard allows (custom code)")
            raise ModelRefused(here, f"{what} is refused: {why}")
        out.append(cls)
        for key, value in layer.items():
            if key != "class_name":
                _walk(value, (*here, key), depth=0, what=what)


def _check_object(obj: dict[str, Any], loc: tuple[Any, ...], what: str) -> None:
    cls = obj.get("class_name")
    module = obj.get("module")
    registered = obj.get("registered_name")
    if cls in FUNCTION_CLASSES or (isinstance(registered, str) and registered in FUNCTION_CLASSES):
        raise ModelRefused(loc, f"{what} holds a function reference ({cls!r}): functions in a model file are code")
    if module is not None and module not in ALLOWED_MODULES:
        raise ModelRefused(loc, f"{what} names module {module!r}; only keras and tf_keras modules are allowed")
    if registered is not None and registered != cls:
        raise ModelRefused(
            loc, f"{what} is a custom object (registered_name {registered!r}); only Keras's own classes are loaded"
        )


def _walk(value: Any, loc: tuple[Any, ...], *, depth: int, what: str = "config.json") -> None:
    if depth > MAX_CONFIG_DEPTH:
        raise ModelRefused(loc, f"{what}: nested more than {MAX_CONFIG_DEPTH} levels deep")
    if isinstance(value, str):
        if _CODE_REFERENCE.match(value):
            raise ModelRefused(loc, f"{what} names {value!r}: a reference to Python code, not a Keras object")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, (*loc, i), depth=depth + 1, what=what)
        return
    if not isinstance(value, dict):
        return
    if "class_name" in value or "module" in value:
        cls = value.get("class_name")
        _check_object(value, loc, what)
        if cls in MODEL_CLASSES or cls in LAYER_CLASSES:
            pass  # e.g. a layer inside a wrapper's config: checked as an object, walked below
        elif cls not in CONFIG_CLASSES:
            why = REFUSED_LAYERS.get(str(cls), "not a Keras object optiboard allows")
            raise ModelRefused(loc, f"{what} holds an object of class {cls!r}: {why}")
    for key, item in value.items():
        if key == "class_name":
            continue
        _walk(item, (*loc, key), depth=depth + 1, what=what)


def member_names_are_safe(names: list[str]) -> bool:
    """True if no name could leave an extraction folder (used again right before extracting)."""
    return all(
        n and "\\" not in n and "\x00" not in n and not n.startswith("/") and ".." not in PurePosixPath(n).parts
        for n in names
    )
