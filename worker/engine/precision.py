"""Mixed precision: which Keras dtype policy a run trains in, and models cast between policies.

`pipeline.mixed_precision` asks for float32 weights with lower-precision compute where the
hardware does that natively: float16 on a GPU (with loss scaling), bfloat16 on a CPU whose
instruction set has bfloat16 arithmetic (AVX512_BF16 or AMX) through TensorFlow's oneDNN
kernels. Anywhere else bfloat16 would be emulated and slower, so the run trains in float32 and
its log says why. The layers producing the model's outputs (the logits) always compute in
float32: softmax and cross-entropy in 16 bits lose accuracy.

Models are cast by cloning with each layer's dtype policy replaced, so an initial model loaded
from a finished run's `.keras` trains in the run's policy too, and every saved variant is cast
back to plain float32 layers (`float32_copy`).
"""

from __future__ import annotations

import os

from worker.engine.hardware import cpuinfo
from worker.engine.tfsetup import has_gpu, keras

CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
FLOAT32 = "float32"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux); empty elsewhere."""
    return frozenset(cpuinfo().get("flags", "").split())


def training_policy(
    requested: bool, *, gpu: bool, flags: frozenset[str] | None = None, onednn: bool | None = None
) -> tuple[str, str | None]:
    """(Keras policy name, a line for the run's log or None) for a run."""
    if not requested:
        return FLOAT32, None
    if gpu:
        return "mixed_float16", "mixed precision: float16 compute on the GPU, float32 weights, loss scaling"
    native = sorted(CPU_BF16_FLAGS & (cpu_flags() if flags is None else flags))
    if onednn is None:
        onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
    if native and onednn:
        return "mixed_bfloat16", (
            f"mixed precision: bfloat16 compute on the CPU ({', '.join(native)}), float32 weights"
        )
    why = (
        "TF_ENABLE_ONEDNN_OPTS=0 turns off TensorFlow's bfloat16 CPU kernels"
        if native
        else "no GPU and no CPU bfloat16 instructions (AVX512_BF16 or AMX)"
    )
    return FLOAT32, f"mixed precision requested but {why}: training in float32"


def with_policy(model: keras.Model, policy: str) -> keras.Model:
    """A copy of `model` (same weights) whose layers compute in `policy`; the output layers stay
    float32. Input layers and nested models keep their own dtypes."""
    outputs = set(model.output_names)

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if "dtype" in config and not isinstance(layer, (keras.layers.InputLayer, keras.Model)):
            config["dtype"] = FLOAT32 if layer.name in outputs else policy
        return layer.__class__.from_config(config)

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)  # the model's own policy: loss scaling on compile
    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    finally:
        keras.mixed_precision.set_global_policy(before)
    copy.set_weights(model.get_weights())
    return copy


def float32_copy(model: keras.Model) -> keras.Model:
    """An uncompiled copy in plain float32 layers, same weights."""
    return with_policy(model, FLOAT32)


def for_training(model: keras.Model, requested: bool) -> tuple[keras.Model, str, str | None]:
    """The model to train and its policy; the global policy is set to it (for layers a phase
    creates), and run_job sets it back to float32 at the end of the job."""
    policy, note = training_policy(requested, gpu=has_gpu())
    keras.mixed_precision.set_global_policy(policy)
    if policy == FLOAT32:
        return model, policy, note
    return with_policy(model, policy), policy, note
