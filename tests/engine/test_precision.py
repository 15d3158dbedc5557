"""Mixed precision: the policy a run trains in, models cast between policies, and a real run
with `pipeline.mixed_precision` on this machine's CPU (bfloat16 where it has AVX512_BF16/AMX)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worker.engine import tfsetup
from worker.engine.precision import float32_copy, training_policy, with_policy
from worker.engine.tfsetup import has_gpu, keras

CPU_BF16 = any(f in Path("/proc/cpuinfo").read_text().split() for f in ("avx512_bf16", "amx_bf16"))


@pytest.mark.parametrize(
    ("flags", "gpu", "onednn", "policy", "says"),
    [
        ({"avx2", "avx512_bf16"}, False, True, "mixed_bfloat16", "bfloat16 compute on the CPU (avx512_bf16)"),
        ({"amx_bf16", "avx512_bf16"}, False, True, "mixed_bfloat16", "(amx_bf16, avx512_bf16)"),
        ({"avx2", "fma"}, False, True, "float32", "no GPU and no CPU bfloat16 instructions"),
        ({"avx512_bf16"}, False, False, "float32", "TF_ENABLE_ONEDNN_OPTS=0"),
        ({"avx2"}, True, True, "mixed_float16", "float16 compute on the GPU"),
    ],
)
def test_the_policy_follows_the_hardware(flags, gpu, onednn, policy, says) -> None:
    got, note = training_policy(True, gpu=gpu, flags=frozenset(flags), onednn=onednn)
    assert got == policy and says in note
    assert training_policy(False, gpu=gpu, flags=frozenset(flags), onednn=onednn) == ("float32", None)


def _small_model() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def test_a_cast_keeps_the_weights_and_float32_logits() -> None:
    tfsetup.seed_everything(0)
    model = _small_model()
    mixed = with_policy(model, "mixed_bfloat16")
    assert mixed.get_layer("conv").compute_dtype == "bfloat16"
    assert mixed.get_layer("conv").variable_dtype == "float32"
    assert mixed.get_layer("logits").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the clone
    x = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    # bfloat16 has 8 significant bits: close to, not equal to, the float32 outputs
    assert not np.array_equal(mixed.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_allclose(mixed.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.05)
    back = float32_copy(mixed)
    assert {layer.dtype_policy.name for layer in back.layers} == {"float32"}
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_mixed_precision_run_on_this_machine(tmp_path: Path, run, digits_spec) -> None:
    """The base training runs in the policy this machine allows; every saved variant is float32."""
    expected, note = training_policy(True, gpu=has_gpu())
    summary, rep = run(
        digits_spec(training={"epochs": 4, "pipeline": {"mixed_precision": True}}, exports=["float32"]), tmp_path
    )
    assert note in rep.lines and summary.extra["precision"] == expected
    if CPU_BF16 and not has_gpu():
        assert expected == "mixed_bfloat16"
    saved = keras.models.load_model(rep.variant("keras").path, safe_mode=True, compile=False)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    assert rep.variant("keras").accuracy >= 0.85
    assert rep.variant("tflite-float32").accuracy == pytest.approx(rep.variant("keras").accuracy, abs=0.01)
    assert keras.mixed_precision.global_policy().name == "float32"  # the next job starts clean
