"""Weight clustering (tfmot): layer by layer, fine-tune, strip before export."""

from __future__ import annotations

import numpy as np
import tensorflow_model_optimization as tfmot

from runspec.spec import ClusteringSpec
from worker.engine.tfsetup import keras

clustering = tfmot.clustering.keras
CentroidInit = clustering.CentroidInitialization
CENTROID_INIT = {
    "kmeans_plus_plus": CentroidInit.KMEANS_PLUS_PLUS,
    "linear": CentroidInit.LINEAR,
    "density_based": CentroidInit.DENSITY_BASED,
    "random": CentroidInit.RANDOM,
}
CLUSTERABLE = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)


def kernel_of(layer: keras.layers.Layer) -> np.ndarray | None:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return layer.depthwise_kernel.numpy()
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        return layer.kernel.numpy()
    return None


def apply_clustering(model: keras.Model, spec: ClusteringSpec, *, preserve_sparsity: bool
                     ) -> tuple[keras.Model, list[keras.callbacks.Callback], list[str]]:
    """The model with every kernel of at least `number_of_clusters` weights clustered
    (smaller ones are left alone rather than failing: the API refuses specs where that
    happens on built-in datasets). Returns the names of the clustered layers."""
    params = {
        "number_of_clusters": spec.number_of_clusters,
        "cluster_centroids_init": CENTROID_INIT[spec.centroid_init],
        "preserve_sparsity": preserve_sparsity,
    }
    clustered_names: list[str] = []

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        kernel = kernel_of(layer) if isinstance(layer, CLUSTERABLE) else None
        if kernel is not None and kernel.size >= spec.number_of_clusters:
            clustered_names.append(layer.name)
            return clustering.cluster_weights(layer, **params)
        return layer  # reused as is, with its trained weights (tfmot's documented pattern)

    wrapped = keras.models.clone_model(model, clone_function=clone)
    return wrapped, [], clustered_names


def strip_clustering(model: keras.Model) -> keras.Model:
    return clustering.strip_clustering(model)
