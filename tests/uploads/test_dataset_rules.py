"""Issue 14 faults 6-8 and the per-class metrics, as a user meets them: a real upload over HTTP
to a real API, runs submitted to it and trained by a real worker (tests/conftest.py's
live_stack)."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import precision_recall_fscore_support

DIGITS = load_digits()
X = (DIGITS.images * 15).astype(np.uint8)  # (1797, 8, 8) as a user would ship images
Y = DIGITS.target
QUICK = {
    "measurement": {"protocol": "quick", "latency_runs": 10, "warmup_runs": 2, "throughput_batch": 8},
    "exports": [],
}


def _npz(**arrays: Any) -> bytes:
    base = {"x_train": X[:1400], "y_train": Y[:1400], "x_test": X[1400:], "y_test": Y[1400:]}
    base.update(arrays)
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in base.items() if v is not None})
    return buf.getvalue()


def _upload(stack: Any, content: bytes) -> httpx.Response:
    return stack.client.http.post("/api/datasets", files={"file": ("d.npz", content)})


def _refused(r: httpx.Response, loc: list[Any], *words: str) -> str:
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == loc, detail
    for w in words:
        assert w in detail["msg"], detail["msg"]
    return str(detail["msg"])


def _accepted(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    return dict(r.json())


# --- fault 6: labels are classes 0..K-1, or mapped explicitly ----------------------------


def test_labels_1_to_k_are_refused_naming_y_train_and_the_labels(live_stack: Any) -> None:
    msg = _refused(
        _upload(live_stack, _npz(y_train=Y[:1400] + 1, y_test=Y[1400:] + 1)),
        ["body", "file", "y_train"],
        "y_train",
        "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]",
        "0..K-1",
        "classes",
    )
    assert "no example of [0]" in msg
    # a gap is a phantom class too
    gap = np.where(Y[:1400] == 3, 4, Y[:1400])
    _refused(
        _upload(live_stack, _npz(y_train=gap, y_test=np.where(Y[1400:] == 3, 4, Y[1400:]))),
        ["body", "file", "y_train"],
        "no example of [3]",
    )


def test_a_label_map_trains_exactly_k_classes(live_stack: Any) -> None:
    """`classes` lists the label value of each class (LabelEncoder.classes_): labels 1..10 are
    classes 0..9, the model has 10 outputs, and the confusion matrix is 10 x 10."""
    info = _accepted(
        _upload(
            live_stack,
            _npz(
                y_train=Y[:1400] + 1,
                y_test=Y[1400:] + 1,
                classes=np.arange(1, 11),
                class_names=np.array([f"digit {i}" for i in range(10)]),
            ),
        )
    )["info"]
    assert info["classes"] == 10 and info["label_values"] == list(range(1, 11))
    assert info["class_names"][0] == "digit 0" and sum(info["train_class_counts"]) == 1400
    run = live_stack.client.submit(
        {
            "name": "mapped",
            "dataset": {"name": "upload", "upload_id": _last_dataset_id(live_stack)},
            "model": {"architecture": "mlp"},
            "training": {"epochs": 2},
            **QUICK,
        }
    )
    done = live_stack.client.wait_terminal(run["id"])
    assert done["status"] == "succeeded", done
    keras = _variant(live_stack, run["id"], "keras")
    assert np.array(keras["confusion"]).shape == (10, 10)
    assert keras["accuracy"] > 0.8


def _last_dataset_id(stack: Any) -> int:
    return int(stack.client.http.get("/api/datasets").json()["data"][0]["id"])


def _variant(stack: Any, run_id: int, fmt: str) -> dict[str, Any]:
    r = stack.client.http.get(f"/api/runs/{run_id}/variants")
    r.raise_for_status()
    body = r.json()
    return next(v for v in (body["data"] if isinstance(body, dict) else body) if v["format"] == fmt)


@pytest.mark.parametrize(
    "far",
    [np.uint64(2**63 + 5), np.int64(10**12), np.float64(2**52)],
    ids=["uint64-2^63", "int64-1e12", "float-2^52"],
)
def test_one_far_label_is_refused_at_once_without_listing_every_missing_class(live_stack: Any, far: Any) -> None:
    """A gap of any size is a phantom class too, refused the same way in well under a second:
    the validator listed every class 0..max(label) to say which were missing (a MemoryError,
    HTTP 500, for 2**52 and above; 41 s and gigabytes for 10**8)."""
    y = Y[:1400].astype(np.asarray(far).dtype)
    y[7] = far
    started = time.monotonic()
    msg = _refused(
        _upload(live_stack, _npz(y_train=y)),
        ["body", "file", "y_train"],
        f"found 11 distinct labels [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, {int(far)}]",
        f"no example of {int(far) - 10} labels: [10, 11, 12,",
    )
    assert time.monotonic() - started < 5, msg
    assert live_stack.client.http.get("/api/datasets").status_code == 200


@pytest.mark.parametrize(
    ("arrays", "loc", "words"),
    [
        (
            {"y_test": np.where(Y[1400:] == 9, 11, Y[1400:])},
            ["body", "file", "y_test"],
            ["y_test", "[11]", "never occur"],
        ),
        ({"classes": np.arange(1, 11)}, ["body", "file", "y_train"], ["[0]", "does not list"]),
        ({"classes": np.arange(12)}, ["body", "file", "y_train"], ["[10, 11]", "never occur in y_train"]),
        ({"classes": np.array([0, 1, 1, 2])}, ["body", "file", "classes"], ["more than once"]),
        ({"class_names": np.array(["a", "b"])}, ["body", "file", "y_train"], ["outside 0..1"]),
        ({"y_train": (Y[:1400] + 0.5).astype(np.float32)}, ["body", "file", "y_train"], ["not integers"]),
        ({"y_train": np.eye(10)[Y[:1400]]}, ["body", "file", "y_train"], ["one-hot", "argmax"]),
        ({"y_train": Y[:1399]}, ["body", "file", "y_train"], ["1399 labels for 1400 examples"]),
    ],
)
def test_label_rules_refuse_with_the_array_named(
    live_stack: Any, arrays: dict[str, Any], loc: list[Any], words: list[str]
) -> None:
    _refused(_upload(live_stack, _npz(**arrays)), loc, *words)


def test_integral_float_and_column_labels_are_accepted(live_stack: Any) -> None:
    info = _accepted(
        _upload(live_stack, _npz(y_train=Y[:1400].astype(np.float32).reshape(-1, 1), y_test=Y[1400:].reshape(-1, 1)))
    )["info"]
    assert info["classes"] == 10 and info["y_dtype"] == "float32" and "label_values" not in info


# --- fault 7: channels-first images ------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_first_images_are_refused_with_the_transpose(live_stack: Any, channels: int) -> None:
    x = np.repeat(X[:, None], channels, axis=1)  # (N, C, 8, 8)
    _refused(
        _upload(live_stack, _npz(x_train=x[:1400], x_test=x[1400:])),
        ["body", "file", "x_train"],
        "channels-first: transpose to (N, H, W, C)",
        f"(1400, 8, 8, {channels})",
    )
    info = _accepted(
        _upload(live_stack, _npz(x_train=x[:1400].transpose(0, 2, 3, 1), x_test=x[1400:].transpose(0, 2, 3, 1)))
    )["info"]
    assert info["input_shape"] == [8, 8, channels]


# --- fault 8: what a spec cannot do with its dataset is refused at submit -----------------


def test_specs_the_dataset_cannot_serve_are_refused_at_submit(live_stack: Any) -> None:
    tiny = _accepted(
        _upload(live_stack, _npz(x_train=X[:12], y_train=np.arange(12) % 6, x_test=X[12:24], y_test=np.arange(12) % 6))
    )
    features = _accepted(_upload(live_stack, _npz(x_train=X[:1400].reshape(1400, 64), x_test=X[1400:].reshape(-1, 64))))
    post = live_stack.client.http.post

    def refused(dataset: dict[str, Any], field: list[Any], *words: str, model: dict[str, Any] | None = None) -> None:
        r = post(
            "/api/runs", json={"name": "fit", "dataset": dataset, "model": model or {"architecture": "mlp"}, **QUICK}
        )
        assert r.status_code == 422, r.text
        found = {tuple(d["loc"]): d["msg"] for d in r.json()["detail"]}
        assert ("body", *field) in found, found
        for w in words:
            assert w in found[("body", *field)], found

    up = {"name": "upload", "upload_id": tiny["id"]}
    refused({**up, "limit_train": 50}, ["dataset", "limit_train"], "limit_train 50", "12 training examples")
    refused({**up, "limit_test": 20}, ["dataset", "limit_test"], "limit_test 20", "12 test examples")
    refused(
        {**up, "limit_train": 10, "validation_split": 0.5},
        ["dataset", "validation_split"],
        "5 training examples",
        "6 classes",
    )
    refused({"name": "digits", "limit_train": 5000}, ["dataset", "limit_train"], "1347 training examples of digits")
    refused(
        {"name": "upload", "upload_id": features["id"]},
        ["model", "architecture"],
        "64 features",
        "mlp",
        model={"architecture": "seed_cnn"},
    )
    one = _accepted(
        _upload(live_stack, _npz(x_train=X[:2], y_train=np.array([0, 1]), x_test=X[2:4], y_test=np.array([0, 1])))
    )
    refused(
        {"name": "upload", "upload_id": one["id"], "validation_split": 0.5},
        ["dataset", "validation_split"],
        "1 training example after the validation split of 1 for 2 classes",
    )
    # what the data can serve is accepted (and trains; a batch larger than the data is one batch)
    r = post(
        "/api/runs",
        json={
            "name": "fits",
            "dataset": {**up, "validation_split": 0.2},
            "model": {"architecture": "mlp"},
            "training": {"epochs": 1, "batch_size": 64},
            **QUICK,
        },
    )
    assert r.status_code == 201, r.text
    assert live_stack.client.wait_terminal(r.json()["id"])["status"] == "succeeded"


# --- per-class metrics when a class is absent from the test split -------------------------


def test_macro_metrics_average_the_classes_present_in_the_test_split(live_stack: Any) -> None:
    keep = Y[1400:] != 9  # class 9 has training examples but none in the test split
    info = _accepted(_upload(live_stack, _npz(x_test=X[1400:][keep], y_test=Y[1400:][keep])))["info"]
    assert info["test_class_counts"][9] == 0 and info["classes"] == 10
    run = live_stack.client.submit(
        {
            "name": "absent",
            "dataset": {"name": "upload", "upload_id": _last_dataset_id(live_stack)},
            "model": {"architecture": "mlp"},
            "training": {"epochs": 2},
            **QUICK,
        }
    )
    assert live_stack.client.wait_terminal(run["id"])["status"] == "succeeded"
    v = _variant(live_stack, run["id"], "keras")
    cm = np.array(v["confusion"])
    assert cm.shape == (10, 10) and cm[9].sum() == 0
    y_true = np.repeat(np.arange(10), cm.sum(axis=1))
    y_pred = np.concatenate([np.repeat(np.arange(10), row) for row in cm])
    p, r, f, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0
    )
    assert (v["precision"], v["recall"], v["f1"]) == pytest.approx((p, r, f), abs=1e-9)
    _, _, f_all, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(10), average="macro", zero_division=0
    )
    assert v["f1"] > f_all  # averaging the absent class's undefined 0 in would lower it
    assert v["extra"]["classes_absent_from_test"] == [9]
    assert v["extra"]["per_class"]["recall"][9] is None and v["extra"]["per_class"]["support"][9] == 0


def test_a_limit_that_drops_whole_classes_is_said_in_the_run_log(live_stack: Any) -> None:
    """limit_train keeps the first N examples; on data sorted by label that can leave classes
    without a training example. The counts allow it, so the run trains, and its log says which."""
    order = np.argsort(Y[:1400], kind="stable")
    _accepted(_upload(live_stack, _npz(x_train=X[:1400][order], y_train=Y[:1400][order])))
    run = live_stack.client.submit(
        {
            "name": "sorted",
            "dataset": {
                "name": "upload",
                "upload_id": _last_dataset_id(live_stack),
                "limit_train": 300,
                "validation_split": 0,
            },
            "model": {"architecture": "mlp"},
            "training": {"epochs": 1},
            **QUICK,
        }
    )
    done = live_stack.client.wait_terminal(run["id"])
    assert done["status"] == "succeeded", done
    log = "\n".join(str(line) for line in live_stack.client.http.get(f"/api/runs/{run['id']}/logs").json()["lines"])
    untrained = sorted(set(range(10)) - set(Y[:1400][order][:300].tolist()))
    assert untrained and f"classes {untrained} have no training example" in log, log[-2000:]


def test_a_model_from_another_run_must_take_this_dataset(live_stack: Any) -> None:
    """A teacher, an optimize parent or a starting model trained on other inputs or another class
    count is refused at submit, naming the field (before: the run failed in the worker)."""
    up = _accepted(_upload(live_stack, _npz()))
    base = live_stack.client.submit(
        {
            "name": "base",
            "dataset": {"name": "upload", "upload_id": up["id"]},
            "model": {"architecture": "mlp"},
            "training": {"epochs": 1},
            **QUICK,
        }
    )
    assert live_stack.client.wait_terminal(base["id"])["status"] == "succeeded"
    features = _accepted(_upload(live_stack, _npz(x_train=X[:1400].reshape(1400, 64), x_test=X[1400:].reshape(-1, 64))))
    other = {"name": "upload", "upload_id": features["id"]}
    post = live_stack.client.http.post
    cases = [
        (
            {"dataset": other, "model": {"init_from_run_id": base["id"]}, "training": {"epochs": 0}},
            ("body", "model", "init_from_run_id"),
        ),
        (
            {
                "kind": "optimize",
                "parent_run_id": base["id"],
                "dataset": {"name": "fashion_mnist"},
                "exports": ["float32"],
            },
            ("body", "parent_run_id"),
        ),
        (
            {
                "dataset": other,
                "model": {"architecture": "mlp", "width_multiplier": 0.5},
                "techniques": [{"name": "distillation", "teacher_run_id": base["id"]}],
            },
            ("body", "techniques", 0, "teacher_run_id"),
        ),
    ]
    for extra, loc in cases:
        r = post("/api/runs", json={"name": "ref", **QUICK, **extra})
        assert r.status_code == 422, r.text
        found = {tuple(d["loc"]): d["msg"] for d in r.json()["detail"]}
        assert loc in found, found
        assert f"run {base['id']} was trained on inputs (8, 8, 1) with 10 classes" in found[loc], found
