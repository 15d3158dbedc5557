"""Quantization-aware training (tfmot): fake-quantized fine-tuning, then the real int8 export
is converted from the QAT model. After pruning or clustering the collaborative schemes keep
the zeros / the centroids through QAT."""

from __future__ import annotations

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_configs import (
    NoOpQuantizeConfig,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (
    Default8BitQuantizeRegistry,
)

from runspec.spec import QATSpec
from worker.engine.preflight import PASS_THROUGH
from worker.engine.techniques.base import CLUSTERS, SPARSITY, Applied, FineTuning, PhaseContext
from worker.engine.tfsetup import keras

quantization = tfmot.quantization.keras
_REGISTRY = Default8BitQuantizeRegistry()


class QAT(FineTuning[QATSpec]):
    """tfmot's quantize_annotate_model + quantize_apply: fake-quantized fine-tuning. The run's
    int8 export is converted from the fitted QAT model (`int8_from_fine_tuned`); `strip`
    gives the float model holding the QAT-trained weights for the Keras variant and the
    other exports."""

    spec_type = QATSpec
    int8_from_fine_tuned = True

    def label(self, spec: QATSpec) -> str:
        return "quantization-aware training"

    def apply(self, model: keras.Model, spec: QATSpec, context: PhaseContext) -> Applied:
        passed: list[str] = []

        def pass_through(layer: keras.layers.Layer) -> keras.layers.Layer:
            # tfmot's documented pattern for a layer its registry does not list: annotate it
            # with a QuantizeConfig that quantizes nothing (the preflight's PASS_THROUGH "fix")
            if type(layer).__name__ in PASS_THROUGH and not _REGISTRY.supports(layer):
                passed.append(layer.name)
                return quantization.quantize_annotate_layer(layer, NoOpQuantizeConfig())
            return layer

        annotated = quantization.quantize_annotate_model(keras.models.clone_model(model, clone_function=pass_through))
        notes = [f"left in float (pass-through quantize config): {', '.join(passed)}"] if passed else []
        if CLUSTERS in context.kept:
            scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
                preserve_sparsity=SPARSITY in context.kept
            )
        elif SPARSITY in context.kept:
            scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        else:
            scheme = quantization.default_8bit.Default8BitQuantizeScheme()
        with quantization.quantize_scope():
            return Applied(base=model, model=quantization.quantize_apply(annotated, scheme), notes=notes)

    def strip(self, applied: Applied) -> keras.Model:
        return float_weights_from_qat(applied.model, applied.base)


def float_weights_from_qat(qat_model: keras.Model, float_model: keras.Model) -> keras.Model:
    """A plain float copy of `float_model` holding the weights QAT fine-tuned.

    The Keras variant of a QAT run is this plain model (no fake-quant wrappers, so it loads
    with safe_mode=True and serves as teacher or parent); the int8 variant comes from the
    QAT model itself."""
    out = keras.models.clone_model(float_model)
    for layer in out.layers:
        if not layer.weights:
            continue
        # the wrapper tracks the inner layer's variables under their original names
        # ('conv1/kernel:0'); the inner layer itself no longer lists its kernel
        wrapped = {v.name: v for v in qat_model.get_layer("quant_" + layer.name).weights}
        layer.set_weights([wrapped[w.name].numpy() for w in layer.weights])
    return out
