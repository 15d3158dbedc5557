"""The input pipeline of every training phase: each example once per epoch, a new seeded
order every epoch, labels that stay with their images; and the process-level TF setting."""

from __future__ import annotations

import os

import numpy as np
import pytest

from runspec.spec import PipelineSpec
from worker.engine import tfsetup  # noqa: F401 - first: Keras 2 and the engine's TF settings
from worker.engine.training import make_dataset


def _epochs(ds, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for _ in range(n):
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
        out.append((np.concatenate(xs), np.concatenate(ys)))
    return out


@pytest.mark.parametrize("cache", [True, False])
def test_every_example_once_per_epoch_in_a_new_seeded_order(cache: bool) -> None:
    x = np.arange(100, dtype=np.float32).reshape(100, 1, 1, 1) * np.ones((1, 2, 2, 1), np.float32)
    y = np.stack([np.arange(100), -np.arange(100)], axis=1).astype(np.float32)  # 2-D targets stay row-aligned
    pipe = PipelineSpec(cache=cache)
    ds = make_dataset(x, y, 32, shuffle=True, pipeline=pipe, seed=3)
    (x1, y1), (x2, y2) = _epochs(ds, 2)
    assert [len(b) for b, _ in ds] == [32, 32, 32, 4]
    for xe, ye in ((x1, y1), (x2, y2)):
        assert sorted(xe[:, 0, 0, 0].tolist()) == list(range(100))
        np.testing.assert_array_equal(xe[:, 1, 1, 0], ye[:, 0])  # labels travel with images
        np.testing.assert_array_equal(ye[:, 1], -ye[:, 0])
    assert not np.array_equal(x1, x2)  # reshuffled every epoch
    (x1b, _), (x2b, _) = _epochs(make_dataset(x, y, 32, shuffle=True, pipeline=pipe, seed=3), 2)
    np.testing.assert_array_equal(x1, x1b)  # the seed fixes the sequence of orders
    np.testing.assert_array_equal(x2, x2b)


@pytest.mark.parametrize("cache", [True, False])
def test_without_shuffle_the_order_is_kept(cache: bool) -> None:
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10, dtype=np.int32)
    ds = make_dataset(x, y, 4, shuffle=False, pipeline=PipelineSpec(cache=cache, prefetch=False), seed=0)
    ((xe, ye),) = _epochs(ds, 1)
    np.testing.assert_array_equal(xe[:, 0], np.arange(10))
    np.testing.assert_array_equal(ye, np.arange(10))


def test_onednn_kernels_are_on_unless_the_environment_says_otherwise() -> None:
    # set before TensorFlow is imported (see bench/results/pipeline_speed.md for what it is worth)
    assert os.environ.get("TF_ENABLE_ONEDNN_OPTS") in {"1", "0", "true", "false"}
