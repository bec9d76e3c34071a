"""Koopman lab: dynamical systems, DMD / EDMD baselines and the information-theoretic Koopman autoencoder.

The Koopman operator 𝒦 of a map x_{t+1} = F(x_t) acts linearly on observables g: (𝒦g)(x) = g(F(x)).
A finite-dimensional approximation finds features z = φ(x) on which the dynamics is (nearly) linear,
z_{t+1} ≈ z_t K. Row vectors throughout (snapshots are rows, as in the released code): z_{t+1} = z_t K.

    from workbench.methods.koopman import KoopmanAutoencoder, LossWeights, dmd, fit, make_data, pairs, rollout, windows
    data = make_data("pendulum")                          # train / test trajectories (N, T + 1, D), float64
    baseline = dmd(*pairs(data.train))                    # exact DMD on every snapshot pair
    model = KoopmanAutoencoder(data.obs_dim)
    model.set_normalization(data.train.float())          # inputs standardised per channel
    fit(model, windows(data.train.float(), 51), LossWeights(), steps=1000)
    rollout(model, data.test[:, 0], 50)                   # (10, 51, D) forecasts, float64

Modules: ``systems`` (pendulum, Van der Pol, Duffing, Lorenz-63 and a linear system with known eigenvalues;
simulation, the random lift, noise, windows and snapshot pairs), ``dmd`` (exact DMD, EDMD with polynomial and
RBF dictionaries, the three baselines fitted at once), ``information`` (InfoNCE, von Neumann entropy, effective dimension), ``autoencoder`` (the
Koopman autoencoder, its Lagrangian and ``fit``; Cheng, Yuan et al., "Information Shapes Koopman
Representation", ICLR 2026), ``analysis`` (rollouts, latents, eigenvalues of any of these models) and
``metrics`` (NRMSE at fixed horizons, eigenvalue error).
"""
from workbench.methods.koopman.systems import (
    DUFFING, LINEAR_MU, LORENZ, PENDULUM_DAMPING, RK4_MAX_STEP, SYSTEMS, VDP_MU, KoopmanData, RandomLift, System,
    add_noise, check_system, linear_eigenvalues, linear_step_map, make_data, pairs, rk4_step, simulate, windows,
)
from workbench.methods.koopman.analysis import device_dtype, eigenvalues, latents, one_or_many_states, rollout
from workbench.methods.koopman.dmd import (
    BASELINES, DMD, EDMD, PolynomialDictionary, RBFDictionary, dmd, edmd, fit_baselines, kmeans, n_polynomial_features,
    polynomial_exponents,
)
from workbench.methods.koopman.information import ENTROPY_SIGNS, effective_dimension, info_nce, von_neumann_entropy
from workbench.methods.koopman.autoencoder import (
    FORECAST_LOSSES, KoopmanAutoencoder, LossWeights, fit, mlp, ridge_koopman,
)
from workbench.methods.koopman.metrics import HORIZONS, data_std, eigenvalue_error, forecast_nrmse, nrmse
