"""Uploaded .npz datasets: bounded before they are opened, validated by streaming, loaded with
their labels mapped to classes 0..K-1. numpy and the standard library only (the API calls
`validate_npz`; the worker calls `load_npz`); `allow_pickle` is never on.

Order of the checks (nothing is decompressed before step 2 has passed):

1. `runspec.archive.inspect_zip`: member count, names, no symlinks, stored/deflate only, the
   total *expanded* size from the zip's central directory against `max_expanded_bytes`
   (`OPTIBOARD_MAX_DATASET_BYTES`), and the expansion ratio of every member.
2. Each member's `.npy` header (a few hundred bytes): a plain numeric dtype (no objects, so no
   pickle), the shape, and header size + shape x itemsize equal to the member's declared size.
3. The arrays' values, read in chunks of `CHUNK_BYTES` straight from the zip stream (the API's
   memory does not grow with the dataset): x finite; labels integers (integral floats
   accepted) forming the classes described below.

Labels (issue 14, fault 6: never a phantom class):
- without a label map, the labels of `y_train` must be exactly 0..K-1, each occurring at least
  once (K = the number of distinct labels); `1..K` or `{0, 1, 3}` are refused, naming y_train and
  the labels found;
- with an optional `classes` array of K distinct integers (scikit-learn's
  `LabelEncoder.classes_`), class i is the label value `classes[i]`: every label must be listed
  and every listed value must occur in y_train; the worker trains on the class indices;
- an optional `class_names` array of K strings names the classes (without `classes`, the
  labels must be 0..K-1 with K = len(class_names));
- every y_test label must be one of y_train's classes; a class may be absent from y_test.
- labels are (N,) or (N, 1); one-hot (N, K) is refused (pass `y.argmax(axis=1)`).

Images (fault 7): channels-first images (N, C, H, W) with C in 1, 3, 4 and larger H, W are
refused with "channels-first: transpose to (N, H, W, C)" rather than transposed silently
(docs/architecture.md says why).
"""

from __future__ import annotations

import itertools
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from runspec.archive import ArchiveRefused, Limits, inspect_zip

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL_KEYS = ("classes", "class_names")
MAX_CLASSES = 1000
MAX_CLASS_NAME_CHARS = 200
ALLOWED_X_KINDS = "uifb"  # unsigned, signed, float, bool: no objects, strings or complex
DEFAULT_MAX_DATASET_BYTES = 1 << 30  # 1 GiB expanded: the worker holds it all in memory
MAX_MEMBERS = 16
CHUNK_BYTES = 4 << 20  # one read of the streaming validation
SHOWN_LABELS = 20


class DatasetRefused(ValueError):
    """An upload that cannot be used; `array` names the offending array ('file' when it is
    the archive as a whole), so the API's 422 can point at it."""

    def __init__(self, array: str, message: str) -> None:
        super().__init__(message)
        self.array = array


@dataclass(frozen=True)
class ArrayHeader:
    """An .npy member's header: shape, dtype, memory order, and its size in bytes."""

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    header_bytes: int

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def dataset_limits(max_expanded_bytes: int = DEFAULT_MAX_DATASET_BYTES, max_ratio: float | None = 1000.0) -> Limits:
    return Limits(
        max_expanded_bytes=max_expanded_bytes,
        max_members=MAX_MEMBERS,
        max_ratio=max_ratio,
        setting="OPTIBOARD_MAX_DATASET_BYTES",
    )


def _fmt_labels(values: list[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:SHOWN_LABELS])
    return f"[{shown}{', ...' if len(values) > SHOWN_LABELS else ''}]"


def read_headers(path: Path | str, limits: Limits) -> dict[str, ArrayHeader]:
    """Bound the archive (central directory) and read every member's .npy header; raises
    DatasetRefused saying what is wrong. Decompresses only the headers."""
    try:
        members = inspect_zip(path, limits)
    except ArchiveRefused as exc:
        raise DatasetRefused("file", str(exc)) from exc
    except ValueError as exc:
        raise DatasetRefused("file", f"not a readable .npz file: {exc}") from exc
    headers: dict[str, ArrayHeader] = {}
    with zipfile.ZipFile(path) as zf:
        for m in members:
            if not m.name.endswith(".npy"):
                raise DatasetRefused("file", f"member {m.name!r} is not an .npy array; an .npz holds arrays only")
            key = m.name[: -len(".npy")]
            try:
                with zf.open(m.name) as fp:
                    version = npy_format.read_magic(fp)
                    if version == (1, 0):
                        shape, fortran, dtype = npy_format.read_array_header_1_0(fp)
                    elif version == (2, 0):
                        shape, fortran, dtype = npy_format.read_array_header_2_0(fp)
                    else:
                        raise DatasetRefused(
                            key, f"{key} is written in .npy format {version}; save it with numpy.savez"
                        )
                    header_bytes = fp.tell()
            except DatasetRefused:
                raise
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise DatasetRefused(key, f"{key}: not a readable .npy array ({exc})") from exc
            dtype = np.dtype(dtype)
            if dtype.hasobject:
                raise DatasetRefused(
                    key,
                    f"{key} holds Python objects, which could only be read with pickle; "
                    "pickle is never used: save numbers or strings",
                )
            header = ArrayHeader(key, tuple(int(d) for d in shape), dtype, bool(fortran), header_bytes)
            if header_bytes + header.data_bytes != m.expanded_bytes:
                raise DatasetRefused(
                    key,
                    f"{key}: its header declares shape {header.shape} of {dtype} "
                    f"({header.data_bytes:,} bytes) but the member holds "
                    f"{m.expanded_bytes - header_bytes:,} bytes of data",
                )
            headers[key] = header
    missing = [k for k in REQUIRED_KEYS if k not in headers]
    if missing:
        raise DatasetRefused("file", f"missing arrays {missing}; expected keys {list(REQUIRED_KEYS)}")
    return headers


def _chunks(zf: zipfile.ZipFile, h: ArrayHeader) -> Iterator[np.ndarray]:
    """The array's elements as flat chunks in file order (order does not matter to the checks)."""
    per_chunk = max(1, CHUNK_BYTES // max(h.dtype.itemsize, 1)) * h.dtype.itemsize
    with zf.open(f"{h.key}.npy") as fp:
        fp.read(h.header_bytes)
        left = h.data_bytes
        while left > 0:
            raw = fp.read(min(per_chunk, left))
            if not raw:
                raise DatasetRefused(h.key, f"{h.key} ends early")
            left -= len(raw)
            yield np.frombuffer(raw, dtype=h.dtype)


def _check_x(h: ArrayHeader) -> None:
    name = h.key
    if h.dtype.kind not in ALLOWED_X_KINDS or h.dtype.fields is not None:
        raise DatasetRefused(name, f"{name} has dtype {h.dtype}; expected numbers")
    if len(h.shape) not in (2, 3, 4):
        raise DatasetRefused(name, f"{name} has shape {h.shape}; expected (N, F), (N, H, W) or (N, H, W, C)")
    if h.shape[0] == 0:
        raise DatasetRefused(name, f"{name} is empty")
    if math.prod(h.shape[1:]) == 0:
        raise DatasetRefused(name, f"{name} has shape {h.shape}: its examples hold no values")
    if len(h.shape) == 4:
        _, c, height, width = h.shape
        if c in (1, 3, 4) and h.shape[3] not in (1, 3, 4) and min(height, width) > 4:
            raise DatasetRefused(
                name,
                f"{name} has shape {h.shape}, channels-first: transpose to (N, H, W, C), "
                f"e.g. numpy.transpose({name}, (0, 2, 3, 1)) gives {(h.shape[0], height, width, c)}",
            )


def _check_y_header(h: ArrayHeader, examples: int) -> None:
    name = h.key
    if h.dtype.kind not in "iufb" or h.dtype.fields is not None:
        raise DatasetRefused(name, f"{name} has dtype {h.dtype}; expected integer class labels")
    if len(h.shape) == 2 and h.shape[1] > 1:
        raise DatasetRefused(
            name,
            f"{name} has shape {h.shape}: one-hot or multi-label targets; "
            f"pass class indices of shape (N,), e.g. {name}.argmax(axis=1)",
        )
    if not (len(h.shape) == 1 or (len(h.shape) == 2 and h.shape[1] == 1)):
        raise DatasetRefused(name, f"{name} has shape {h.shape}; expected (N,) or (N, 1) integer labels")
    if h.shape[0] != examples:
        raise DatasetRefused(name, f"{name} has {h.shape[0]} labels for {examples} examples")


def _label_values(name: str, chunks: Iterator[np.ndarray]) -> dict[int, int]:
    """Distinct labels and their counts; refuses non-integral or non-finite values and more
    than MAX_CLASSES distinct labels."""
    counts: dict[int, int] = {}
    for chunk in chunks:
        if chunk.dtype.kind == "f":
            if not np.isfinite(chunk).all():
                raise DatasetRefused(name, f"{name} contains NaN or infinite labels")
            if not (chunk == np.round(chunk)).all():
                bad = chunk[chunk != np.round(chunk)][:5].tolist()
                raise DatasetRefused(
                    name, f"{name} has labels that are not integers, e.g. {bad}; expected integer class labels"
                )
            if np.abs(chunk).max(initial=0) > 2**53:
                raise DatasetRefused(name, f"{name} has labels beyond 2^53")
        values, n = np.unique(chunk, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist(), strict=True):
            counts[int(v)] = counts.get(int(v), 0) + int(c)
        if len(counts) > MAX_CLASSES:
            raise DatasetRefused(
                name, f"{name} has more than {MAX_CLASSES} distinct labels; at most {MAX_CLASSES} classes are supported"
            )
    return counts


def _check_finite(name: str, chunks: Iterator[np.ndarray]) -> None:
    for chunk in chunks:
        if not np.isfinite(chunk).all():
            raise DatasetRefused(name, f"{name} contains NaN or infinite values")


def _small_array(zf: zipfile.ZipFile, h: ArrayHeader) -> np.ndarray:
    data = b"".join(c.tobytes() for c in _chunks(zf, h))
    return np.frombuffer(data, dtype=h.dtype).reshape(h.shape, order="F" if h.fortran_order else "C")


def _label_map(headers: dict[str, ArrayHeader], zf: zipfile.ZipFile) -> tuple[list[int] | None, list[str] | None]:
    values = names = None
    if "classes" in headers:
        h = headers["classes"]
        if len(h.shape) != 1 or not 2 <= h.shape[0] <= MAX_CLASSES:
            raise DatasetRefused(
                "classes", f"classes has shape {h.shape}; expected (K,) label values with 2 <= K <= {MAX_CLASSES}"
            )
        if h.dtype.kind not in "iuf":
            raise DatasetRefused(
                "classes",
                f"classes has dtype {h.dtype}; expected the integer label values "
                "in class order (class names go in class_names)",
            )
        listed = _small_array(zf, h)
        counts = _label_values("classes", iter([listed]))
        values = [int(v) for v in listed.tolist()]
        if len(counts) != len(values):
            dup = sorted(v for v, c in counts.items() if c > 1)
            raise DatasetRefused("classes", f"classes lists {_fmt_labels(dup)} more than once")
    if "class_names" in headers:
        h = headers["class_names"]
        if h.dtype.kind not in "US" or len(h.shape) != 1 or not 2 <= h.shape[0] <= MAX_CLASSES:
            raise DatasetRefused(
                "class_names",
                f"class_names has shape {h.shape} and dtype {h.dtype}; "
                f"expected (K,) strings with 2 <= K <= {MAX_CLASSES}",
            )
        raw = _small_array(zf, h)
        names = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in raw.tolist()]
        bad = [n for n in names if not n.strip() or len(n) > MAX_CLASS_NAME_CHARS or "\x00" in n]
        if bad:
            raise DatasetRefused(
                "class_names", f"class_names must be 1-{MAX_CLASS_NAME_CHARS} characters without NUL; got {bad[:3]!r}"
            )
        if len(set(names)) != len(names):
            raise DatasetRefused("class_names", "class_names repeats a name")
        if values is not None and len(values) != len(names):
            raise DatasetRefused("class_names", f"class_names has {len(names)} names for {len(values)} classes")
    return values, names


def _classes(
    train: dict[int, int], test: dict[int, int], values: list[int] | None, names: list[str] | None
) -> list[int]:
    """The label value of each class, in class order (class i <- label value result[i])."""
    found = sorted(train)
    if values is None:
        k = len(names) if names is not None else max(max(found, default=-1) + 1, len(found))
        # k may be as large as the largest label (2**63 for one stray uint64): never list 0..k-1
        # before the labels are known to be exactly 0..K-1 (then K <= MAX_CLASSES).
        stray = [v for v in found if not 0 <= v < k]
        if stray or len(found) != k:
            missing = k - sum(1 for v in found if 0 <= v < k)
            absent = list(itertools.islice((v for v in range(k) if v not in train), SHOWN_LABELS + 1))
            why = (
                f"labels outside 0..{k - 1}: {_fmt_labels(stray)}"
                if stray
                else f"no example of {f'{missing} labels: ' if missing > SHOWN_LABELS else ''}{_fmt_labels(absent)}"
            )
            raise DatasetRefused(
                "y_train",
                f"y_train labels must be the class indices 0..K-1, each used at least once; found "
                f"{len(found)} distinct labels {_fmt_labels(found)} ({why}). Renumber them "
                "(numpy.unique(y, return_inverse=True)) or add a 'classes' array listing the label "
                "value of each class, e.g. classes=numpy.unique(y_train)",
            )
        values = list(range(k))
    else:
        unlisted = [v for v in found if v not in set(values)]
        if unlisted:
            raise DatasetRefused(
                "y_train",
                f"y_train has labels {_fmt_labels(unlisted)} that 'classes' "
                f"does not list (classes: {_fmt_labels(values)})",
            )
        absent = [v for v in values if v not in train]
        if absent:
            raise DatasetRefused(
                "y_train",
                f"classes lists {_fmt_labels(absent)}, which never occur in "
                "y_train: every class needs training examples",
            )
    if len(values) < 2:
        raise DatasetRefused("y_train", f"y_train has {len(values)} class; at least 2 are needed")
    unseen = sorted(v for v in test if v not in set(values) or v not in train)
    if unseen:
        raise DatasetRefused(
            "y_test",
            f"y_test has labels {_fmt_labels(unseen)} that never occur in y_train "
            f"(y_train's classes: {_fmt_labels(values)})",
        )
    return values


def _describe(
    headers: dict[str, ArrayHeader],
    train: dict[int, int],
    test: dict[int, int],
    values: list[int],
    names: list[str] | None,
) -> dict[str, Any]:
    x_tr, x_te, y_tr = headers["x_train"], headers["x_test"], headers["y_train"]
    info: dict[str, Any] = {
        "train_examples": x_tr.shape[0],
        "test_examples": x_te.shape[0],
        "input_shape": list(x_tr.shape[1:]),
        "x_dtype": str(x_tr.dtype),
        "y_dtype": str(y_tr.dtype),
        "classes": len(values),
        "train_class_counts": [train.get(v, 0) for v in values],
        "test_class_counts": [test.get(v, 0) for v in values],
        "bytes": sum(headers[k].data_bytes for k in REQUIRED_KEYS),
    }
    if values != list(range(len(values))):
        info["label_values"] = values
    if names is not None:
        info["class_names"] = names
    ignored = sorted(set(headers) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if ignored:
        info["ignored_arrays"] = ignored
    return info


def _check_headers(headers: dict[str, ArrayHeader]) -> None:
    x_tr, x_te = headers["x_train"], headers["x_test"]
    _check_x(x_tr)
    _check_x(x_te)
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DatasetRefused("x_test", f"x_train examples have shape {x_tr.shape[1:]} but x_test {x_te.shape[1:]}")
    _check_y_header(headers["y_train"], x_tr.shape[0])
    _check_y_header(headers["y_test"], x_te.shape[0])


def validate_npz(
    path: Path | str, *, max_expanded_bytes: int = DEFAULT_MAX_DATASET_BYTES, max_ratio: float | None = 1000.0
) -> dict[str, Any]:
    """Check an uploaded dataset and describe it, in memory bounded by CHUNK_BYTES per array
    (whatever the dataset's size); raise DatasetRefused (a ValueError) saying what is wrong.

    Expects the arrays x_train, y_train, x_test, y_test (and optionally `classes`,
    `class_names`; see the module docstring). Returns the dataset's info: `train_examples`,
    `test_examples`, `input_shape` (per example), `x_dtype`, `y_dtype`, `classes` (K),
    `train_class_counts`/`test_class_counts` (examples per class), `bytes` (expanded size of the
    four arrays), and `label_values`/`class_names`/`ignored_arrays` when present.
    """
    headers = read_headers(path, dataset_limits(max_expanded_bytes, max_ratio))
    _check_headers(headers)
    with zipfile.ZipFile(path) as zf:
        try:
            for key in ("x_train", "x_test"):
                if headers[key].dtype.kind == "f":
                    _check_finite(key, _chunks(zf, headers[key]))
            train = _label_values("y_train", _chunks(zf, headers["y_train"]))
            test = _label_values("y_test", _chunks(zf, headers["y_test"]))
            values, names = _label_map(headers, zf)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # e.g. a CRC mismatch
            raise DatasetRefused("file", f"not a readable .npz file: {exc}") from exc
    values = _classes(train, test, values, names)
    return _describe(headers, train, test, values, names)


def load_npz(
    path: Path | str, *, max_expanded_bytes: int = DEFAULT_MAX_DATASET_BYTES, max_ratio: float | None = 1000.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The worker's load: the same bounds and checks as validate_npz (the archive's sizes and
    headers before anything is decompressed), then x_train, y_train, x_test, y_test with the
    labels as int32 class indices 0..K-1 (mapped through `classes` when given), and the info.

    Peak memory is the four arrays' expanded size (at most `max_expanded_bytes`) plus the label
    copies. Raises DatasetRefused.
    """
    headers = read_headers(path, dataset_limits(max_expanded_bytes, max_ratio))
    _check_headers(headers)
    try:
        with np.load(path, allow_pickle=False) as npz:
            x_tr, y_tr, x_te, y_te = (npz[k] for k in REQUIRED_KEYS)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetRefused("file", f"not a readable .npz file: {exc}") from exc
    for key, x in (("x_train", x_tr), ("x_test", x_te)):
        if x.dtype.kind == "f":
            _check_finite(key, iter([x]))
    y_tr, y_te = y_tr.reshape(-1), y_te.reshape(-1)
    train, test = _label_values("y_train", iter([y_tr])), _label_values("y_test", iter([y_te]))
    with zipfile.ZipFile(path) as zf:
        values, names = _label_map(headers, zf)
    values = _classes(train, test, values, names)
    info = _describe(headers, train, test, values, names)
    lookup = np.asarray(values, dtype=np.int64)
    order = np.argsort(lookup)
    y_tr = order[np.searchsorted(lookup[order], y_tr.astype(np.int64))].astype(np.int32)
    y_te = order[np.searchsorted(lookup[order], y_te.astype(np.int64))].astype(np.int32)
    return x_tr, y_tr, x_te, y_te, info
