"""runspec.archive's bounds, and the .npz checks that come before any value is decompressed
(fast, no server: the HTTP tests beside this file show the same refusals as a user meets them)."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from runspec.archive import ArchiveRefused, Limits, inspect_zip
from runspec.npz import DatasetRefused, load_npz, validate_npz
from tests.uploads.bombs import npz_bomb

LIMITS = Limits(max_expanded_bytes=10 * 2**20, max_members=4, max_ratio=1000)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a)
    return buf.getvalue()


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for info, data in members:
            z.writestr(info, data)
    return path


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("members", "words"),
    [
        ([("../evil.npy", b"x")], "'..' segment"),
        ([("/etc/cron.d/x.npy", b"x")], "absolute path"),
        ([("C:/x.npy", b"x")], "absolute path"),
        ([("a\\..\\b.npy", b"x")], "backslash"),
        ([(_symlink("x_train.npy"), b"/etc/passwd")], "symbolic link"),
        ([(f"m{i}.npy", b"x") for i in range(5)], "5 members; at most 4"),
        ([("big.npy", bytes(11 * 2**20))], "expands to more than 10,485,760 bytes"),
        (
            [
                ("a.npy", np.random.default_rng(0).bytes(6 * 2**20)),
                ("b.npy", np.random.default_rng(1).bytes(6 * 2**20)),
            ],
            "declared up to member 'b.npy'",
        ),
    ],
)
def test_archive_bounds_refuse_before_decompressing(tmp_path: Path, members: list, words: str) -> None:
    with pytest.raises(ArchiveRefused, match=words.replace("(", r"\(").replace("\\", r"\\").replace(".", r"\.")):
        inspect_zip(_zip(tmp_path / "a.zip", members), LIMITS)


def test_duplicate_names_ratio_and_methods(tmp_path: Path) -> None:
    with pytest.warns(UserWarning), pytest.raises(ArchiveRefused, match="appears twice"):
        inspect_zip(_zip(tmp_path / "d.zip", [("a.npy", b"1"), ("a.npy", b"2")]), LIMITS)
    with pytest.raises(ArchiveRefused, match="-fold"):
        inspect_zip(_zip(tmp_path / "r.zip", [("z.npy", bytes(5 * 2**20))]), LIMITS)
    with pytest.raises(ArchiveRefused, match="compression method 12"):
        inspect_zip(_zip(tmp_path / "b.zip", [("a.npy", b"abc")], method=zipfile.ZIP_BZIP2), LIMITS)
    assert [m.name for m in inspect_zip(_zip(tmp_path / "ok.zip", [("a.npy", b"abc")]), LIMITS)] == ["a.npy"]
    with pytest.raises(ValueError, match="not a readable zip"):
        inspect_zip(io.BytesIO(b"PK\x03\x04junk"), LIMITS)


def test_a_bomb_is_refused_from_its_directory_alone(tmp_path: Path) -> None:
    path = npz_bomb(tmp_path / "b.npz", expanded_bytes=2 * 10**9)
    with pytest.raises(DatasetRefused, match="expands to more than 1,073,741,824") as e:
        validate_npz(path)
    assert e.value.array == "file"
    with pytest.raises(DatasetRefused, match="expands to more than"):
        load_npz(path)  # the worker's load refuses the same way before it reads anything


def test_a_header_that_lies_about_its_shape_is_refused(tmp_path: Path) -> None:
    """An .npy header declaring more data than its member holds would make numpy allocate the
    declared size; the check compares it with the zip directory's size first."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((10**8, 4), np.uint8))
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    lying = buf.getvalue() + bytes(40)
    ok = {
        k: _npy(v)
        for k, v in {
            "y_train": np.arange(10) % 2,
            "x_test": np.zeros((2, 4), np.uint8),
            "y_test": np.array([0, 1]),
        }.items()
    }
    path = _zip(tmp_path / "l.npz", [("x_train.npy", lying), *((f"{k}.npy", v) for k, v in ok.items())])
    with pytest.raises(DatasetRefused, match=r"declares shape \(100000000, 4\)") as e:
        validate_npz(path)
    assert e.value.array == "x_train"


def test_the_worker_load_maps_labels_through_classes(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    np.savez(
        path,
        x_train=np.zeros((6, 4, 4), np.uint8),
        y_train=np.array([10, 20, 30, 10, 20, 30]),
        x_test=np.zeros((3, 4, 4), np.uint8),
        y_test=np.array([30, 10, 30]),
        classes=np.array([30, 10, 20]),
    )
    _, y_tr, _, y_te, info = load_npz(path)
    assert y_tr.tolist() == [1, 2, 0, 1, 2, 0] and y_te.tolist() == [0, 1, 0] and y_tr.dtype == np.int32
    assert info["label_values"] == [30, 10, 20] and info["test_class_counts"] == [2, 1, 0]


def test_macro_metrics_match_scikit_learn_over_the_classes_present() -> None:
    from sklearn.metrics import precision_recall_fscore_support

    from worker.engine.measure import classification_metrics

    rng = np.random.default_rng(0)
    for _ in range(20):
        classes = int(rng.integers(2, 8))
        y_true = rng.integers(0, classes, 50)
        y_true = y_true[y_true != rng.integers(0, classes)]  # one class absent from the test split
        y_pred = rng.integers(0, classes, len(y_true))
        got = classification_metrics(y_true, y_pred, classes)
        want = precision_recall_fscore_support(
            y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0
        )
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(want[:3], abs=1e-12)
        assert got["classes_absent_from_test"] == sorted(set(range(classes)) - set(y_true.tolist()))
