"""MLC: Manifold Linearizing and Clustering with MCR² and a doubly stochastic membership (Ding, Tong, Chan, Dai,
Ma, Haeffele, ICCV 2023), the data it is tried on and the baselines it is compared with.

- :mod:`~workbench.methods.mlc.core`: the coding rates, the Sinkhorn membership, the network, the TCR and MLC
  objectives, :func:`fit`, the spectral read-out and the clustering metrics;
- :mod:`~workbench.methods.mlc.data`: digits, curved manifolds, subspaces, moons and circles, with their
  augmentations;
- :mod:`~workbench.methods.mlc.baselines`: k-means, spectral, GMM, agglomerative, SSC-OMP and EnSC.

Every public name of the three is importable from here (``from workbench.methods.mlc import fit, make_dataset``).
The modules call each other's functions through their module (``core.sinkhorn``), code outside the package
through this one (``mlc.sinkhorn``): a function replaced for an experiment (a test's deliberate breakage) is
replaced in both, ``mlc.core.sinkhorn = mlc.sinkhorn = replacement``.
"""
from workbench.methods.mlc import baselines, core, data
from workbench.methods.mlc.baselines import (BASELINES, SELF_EXPRESSIVE, cluster_baseline, elastic_net_self_expression,
                                             omp_self_expression, run_baselines, self_expression,
                                             self_expression_connectivity, self_expressive_labels)
from workbench.methods.mlc.core import (ClusterView, MLCNet, clone_net, clustering_accuracy, coding_rate,
                                        compressed_coding_rate, embed, fit, logdet_spd, mlc_objective, membership,
                                        membership_leak, nmi, numerical_rank, orthogonal_subspaces_gain,
                                        per_cluster_ranks, rate_reduction, sinkhorn, spectral_labels, tcr_objective)
from workbench.methods.mlc.data import (DATASETS, augmenter, dataset_size, digit_augmenter, jitter_augmenter,
                                        load_digits_subset, make_dataset, make_manifolds, make_subspaces,
                                        training_data)

__all__ = [
    "BASELINES", "DATASETS", "SELF_EXPRESSIVE", "ClusterView", "MLCNet", "augmenter", "baselines", "clone_net",
    "cluster_baseline", "clustering_accuracy", "coding_rate", "compressed_coding_rate", "core", "data",
    "dataset_size", "digit_augmenter", "elastic_net_self_expression", "embed", "fit", "jitter_augmenter",
    "load_digits_subset", "logdet_spd", "make_dataset", "make_manifolds", "make_subspaces", "membership",
    "membership_leak", "mlc_objective", "nmi", "numerical_rank", "omp_self_expression", "orthogonal_subspaces_gain",
    "per_cluster_ranks", "rate_reduction", "run_baselines", "self_expression", "self_expression_connectivity",
    "self_expressive_labels", "sinkhorn", "spectral_labels", "tcr_objective", "training_data",
]
