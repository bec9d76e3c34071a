"""SPD geometry, SPDNet layers and Riemannian batch normalization (GBWBN and baselines).

    from workbench.methods.spd import bw_distance, bw_mean, SPDBatchNorm
    d = bw_distance(A, B)                              # (..., n, n) × 2 -> (...,)
    G, info = bw_mean(X, n_iter=20, return_info=True)  # X (N, n, n) -> (n, n), convergence report
    bn = SPDBatchNorm(8, metric="gbw", theta=0.5)      # on (B, 8, 8) batches

Modules: ``matfun`` (eigen-functions with a Daleckii–Krein backward, Lyapunov solve), ``geometry`` (BW, GBW, θ,
AIM, LEM), ``layers`` (BiMap, ReEig, LogEig, SPD parameters), ``batchnorm`` (SPDBatchNorm), ``data`` (digits
region covariances, synthetic SPD batches), ``net`` (SPDNet, its training loop ``fit``, accuracy and BN spectra),
``ellipses`` (2×2 SPD matrices drawn as ellipses: the BW geodesic and centring picture). Wang, Jin, Chen, Luo, Wu, "Learning to Normalize on the SPD Manifold
under Bures-Wasserstein Geometry", CVPR 2025 (arXiv 2504.00660); method note: ../shared/methods/spd_normalization.md.
"""
from workbench.methods.spd.geometry import (
    MeanInfo, aim_centre, aim_distance, aim_exp, aim_geodesic, aim_log, aim_mean, bw_distance, bw_exp,
    bw_exp_identity, bw_geodesic, bw_inner, bw_log, bw_log_identity, bw_mean, bw_norm, bw_transport_from_identity,
    bw_transport_to_identity, gbw_distance, gbw_exp, gbw_isometry, gbw_isometry_inverse, gbw_log, gbw_mean,
    lem_centre, lem_distance, lem_geodesic, lem_mean, power_deform, theta_gbw_distance, transport_map,
)
from workbench.methods.spd.matfun import (absm, clampm, eig_function, eig_functions, expm, invsqrtm, logm, lyap, powm,
                                          sqrtm, sqrtm_invsqrtm, sym)
from workbench.methods.spd.data import DATASETS, SPDDataset, condition_numbers, load_digits_spd, random_spd

from workbench.methods.spd.layers import BiMap, LogEig, ReEig, check_spd, spd_parameter, triu_vector
from workbench.methods.spd.batchnorm import METRICS, SPDBatchNorm, out_of_domain_fraction
from workbench.methods.spd.net import BN_VARIANTS, History, SPDNet, accuracy, fit, spectra, steps_per_epoch
from workbench.methods.spd.ellipses import ellipse, geodesic_ellipses, teaching_matrices
