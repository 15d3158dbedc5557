"""Quantization-aware training (tfmot): fake-quantized fine-tuning, then the real int8 export
is converted from the QAT model. After pruning or clustering the collaborative schemes keep
the zeros / the centroids through QAT."""

from __future__ import annotations

import tensorflow_model_optimization as tfmot

from runspec.spec import QATSpec
from worker.engine.techniques.base import CLUSTERS, SPARSITY, Applied, FineTuning, PhaseContext
from worker.engine.tfsetup import keras

quantization = tfmot.quantization.keras


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
        annotated = quantization.quantize_annotate_model(pass_through_annotated(model))
        if CLUSTERS in context.kept:
            scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
                preserve_sparsity=SPARSITY in context.kept
            )
        elif SPARSITY in context.kept:
            scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        else:
            scheme = quantization.default_8bit.Default8BitQuantizeScheme()
        with quantization.quantize_scope({"NoOpQuantizeConfig": NoOpQuantizeConfig}):
            return Applied(base=model, model=quantization.quantize_apply(annotated, scheme))

    def strip(self, applied: Applied) -> keras.Model:
        return float_weights_from_qat(applied.model, applied.base)


class NoOpQuantizeConfig(quantization.QuantizeConfig):
    """Quantizes nothing: the layer runs as it is inside the QAT model. tfmot's documented way to
    let QAT proceed past a layer its registry does not list (tensorflow.org/model_optimization/
    guide/quantization/training_comprehensive_guide, "Modify quantization: ... NoOpQuantizeConfig")."""

    def get_weights_and_quantizers(self, layer):  # type: ignore[no-untyped-def]
        return []

    def get_activations_and_quantizers(self, layer):  # type: ignore[no-untyped-def]
        return []

    def set_quantize_weights(self, layer, quantize_weights):  # type: ignore[no-untyped-def]
        pass

    def set_quantize_activations(self, layer, quantize_activations):  # type: ignore[no-untyped-def]
        pass

    def get_output_quantizers(self, layer):  # type: ignore[no-untyped-def]
        return []

    def get_config(self):  # type: ignore[no-untyped-def]
        return {}


def pass_through_annotated(model: keras.Model) -> keras.Model:
    """`model` with each weightless layer that tfmot's 8-bit registry does not list but that
    needs no quantization of its own (PASS_THROUGH: Rescaling, Normalization, Resizing, ...) annotated
    with NoOpQuantizeConfig, so quantize_annotate_model + quantize_apply accept the model; the
    same set the preflight calls "fix" (worker.engine.preflight.PASS_THROUGH)."""
    from worker.engine.preflight import PASS_THROUGH

    if not any(type(layer).__name__ in PASS_THROUGH for layer in model.layers):
        return model

    def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
        if type(layer).__name__ in PASS_THROUGH:
            return quantization.quantize_annotate_layer(
                layer.__class__.from_config(layer.get_config()), NoOpQuantizeConfig()
            )
        return layer.__class__.from_config(layer.get_config())

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    return annotated


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
