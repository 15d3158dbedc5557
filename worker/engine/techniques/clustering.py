"""Weight clustering (tfmot): layer by layer, fine-tune, strip before export."""

from __future__ import annotations

import numpy as np
import tensorflow_model_optimization as tfmot

from runspec.spec import ClusteringSpec
from worker.engine.techniques.base import CLUSTERS, SPARSITY, Applied, FineTuning, PhaseContext
from worker.engine.tfsetup import keras

clustering = tfmot.clustering.keras
CentroidInit = clustering.CentroidInitialization
CENTROID_INIT = {
    "kmeans_plus_plus": CentroidInit.KMEANS_PLUS_PLUS,
    "linear": CentroidInit.LINEAR,
    "density_based": CentroidInit.DENSITY_BASED,
    "random": CentroidInit.RANDOM,
}
# Which layers are clustered and through which weight, as tfmot's registries keep it: a table.
# Looked up along the layer's class hierarchy (DepthwiseConv2D is a Conv2D in Keras 2).
CLUSTERABLE_WEIGHTS: dict[type[keras.layers.Layer], str] = {
    keras.layers.DepthwiseConv2D: "depthwise_kernel",
    keras.layers.Conv2D: "kernel",
    keras.layers.Dense: "kernel",
}


def kernel_of(layer: keras.layers.Layer) -> np.ndarray | None:
    """The clusterable weight of `layer` (float32 array of the kernel's shape), or None."""
    for cls in type(layer).__mro__:
        if cls in CLUSTERABLE_WEIGHTS:
            return getattr(layer, CLUSTERABLE_WEIGHTS[cls]).numpy()
    return None


class Clustering(FineTuning[ClusteringSpec]):
    """tfmot's cluster_weights on every kernel of at least `number_of_clusters` weights,
    fine-tuned, then strip_clustering: each stripped kernel holds at most that many values.
    After pruning the zeros are preserved (`preserve_sparsity`)."""

    spec_type = ClusteringSpec
    keeps = frozenset({CLUSTERS})

    def label(self, spec: ClusteringSpec) -> str:
        return f"clustering to {spec.number_of_clusters} clusters"

    def apply(self, model: keras.Model, spec: ClusteringSpec, context: PhaseContext) -> Applied:
        """Smaller kernels are left alone rather than failing: the API refuses specs where
        that happens on built-in datasets."""
        params = {
            "number_of_clusters": spec.number_of_clusters,
            "cluster_centroids_init": CENTROID_INIT[spec.centroid_init],
            "preserve_sparsity": SPARSITY in context.kept,
        }
        clustered_names: list[str] = []
        too_few: list[str] = []

        def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
            kernel = kernel_of(layer)
            if kernel is None:
                return layer
            # With the zeros of an earlier pruning preserved, k-means++ draws the centroids from
            # the nonzero weights only, and needs more of them than clusters (tfmot's
            # KmeansPlusPlusInitialization: "num_to_sample <= points.rows()").
            usable = int(np.count_nonzero(kernel)) if params["preserve_sparsity"] else kernel.size
            if usable > spec.number_of_clusters or (
                not params["preserve_sparsity"] and usable >= spec.number_of_clusters
            ):
                clustered_names.append(layer.name)
                return clustering.cluster_weights(layer, **params)
            too_few.append(f"{layer.name} ({usable})")
            return layer  # reused as is, with its trained weights (tfmot's documented pattern)

        wrapped = keras.models.clone_model(model, clone_function=clone)
        notes = [f"clustered layers: {', '.join(clustered_names) or 'none'}"]
        if too_few:
            notes.append(
                f"left unclustered, fewer {'nonzero ' if params['preserve_sparsity'] else ''}weights than "
                f"{spec.number_of_clusters} clusters: {', '.join(too_few)}"
            )
        return Applied(base=model, model=wrapped, notes=notes)

    def strip(self, applied: Applied) -> keras.Model:
        return clustering.strip_clustering(applied.model)
