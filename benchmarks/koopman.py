"""The Koopman lab's "Done when" comparisons, measured side by side and printed beside the method note's numbers.

1. Pendulum at the experiment's defaults (60 trajectories × 200 steps, dt = 0.1, 50 train / 10 test, rollouts
   every 10 steps of the test trajectories): the autoencoder (full Lagrangian) vs DMD, polynomial EDMD (degree 2, 3)
   and RBF-EDMD (50 / 100 / 200 k-means centres + the state) at NRMSE@5/20/50, on the same test rollouts.
2. The paper's claim: the full Lagrangian (α = 2, β = 1, γ = 0.1) vs the plain Koopman autoencoder (α = γ = 0,
   same architecture, data, β and steps), NRMSE@50 median over the training seeds, in the state and the lifted
   (64-D) observation of the pendulum; d_eff beside it.
3. The same baselines on the lifted pendulum, Lorenz-63 (dt = 0.01, polynomial degree 3) and the lifted Van der
   Pol limit cycle (with K's eigenvalues near the unit circle).

NRMSE = RMSE at step n / pooled standard deviation of the test data (``workbench.methods.koopman.nrmse``). Every
number is one measurement on this machine; nothing is tuned per row.

    OMP_NUM_THREADS=1 python benchmarks/koopman.py --out runs/koopman_benchmark.md
"""
from __future__ import annotations

import argparse
import statistics
import time

# Method note A6 (measured independently; RMSE/std, 50 train / 10 test trajectories).
REFERENCE = {
    ("pendulum", "state", "dmd"): (0.12, 0.50, 1.45),
    ("pendulum", "state", "edmd_poly2"): (0.17, 0.96, 1.80),
    ("pendulum", "state", "edmd_poly3"): (0.18, 0.94, 1.82),
    ("pendulum", "state", "edmd_rbf50"): (0.007, 0.050, 0.91),
    ("pendulum", "state", "edmd_rbf100"): (0.000, 0.003, 0.79),
    ("pendulum", "state", "edmd_rbf200"): (0.000, 0.007, 0.55),
    ("pendulum", "lifted", "dmd"): (0.018, 0.095, 0.61),
    ("pendulum", "lifted", "edmd_poly2"): (0.000, 0.052, 7.7),
    ("pendulum", "lifted", "edmd_rbf100"): (0.002, 0.050, 0.51),
    ("pendulum", "lifted", "edmd_rbf200"): (0.001, 0.050, 0.45),
    ("lorenz", "state", "edmd_poly3"): (0.003, 0.38, 0.56),
}
HORIZONS = (5, 20, 50)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of the ablation")
    parser.add_argument("--steps", type=int, default=None, help="autoencoder steps (default: the experiment's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default=None, help="also write the markdown tables to this path")
    return parser.parse_args(argv)


def fmt(values) -> str:
    return " / ".join("—" if v is None else f"{v:.3f}" if v < 10 else f"{v:.1f}" for v in values)


def baseline_rows(system: str, observation: str, poly_degrees=(2,), rbf_centres=(100,), **params) -> dict[str, tuple]:
    """NRMSE@5/20/50 of DMD, polynomial and RBF EDMD on one data set (same test rollouts for all)."""
    from workbench.experiment import configure
    from workbench.methods.koopman import data_std

    rows: dict[str, tuple] = {}
    experiment = configure("koopman", system=system, observation=observation, model="dmd", **params)
    data = experiment.make_data()
    std = data_std(data.test)
    for name in ["dmd"] + [f"edmd_poly{p}" for p in poly_degrees] + [f"edmd_rbf{c}" for c in rbf_centres]:
        if name.startswith("edmd_poly"):
            experiment.poly_degree = int(name[len("edmd_poly"):])
            fitted = experiment.fit_baselines(data.train, ("edmd_poly",))["edmd_poly"]
        elif name.startswith("edmd_rbf"):
            experiment.rbf_centres = int(name[len("edmd_rbf"):])
            fitted = experiment.fit_baselines(data.train, ("edmd_rbf",))["edmd_rbf"]
        else:
            fitted = experiment.fit_baselines(data.train, ("dmd",))["dmd"]
        scores = experiment.score(fitted, data.test, std)
        rows[name] = tuple(scores[f"nrmse@{n}"] for n in HORIZONS)
    return rows


def ae_run(**params) -> dict[str, float]:
    import workbench

    import torch

    start = time.perf_counter()
    result = workbench.run("koopman", baselines=False, **params)
    moduli = sorted(torch.linalg.eigvals(result.model.K.detach().double().cpu()).abs().tolist(), reverse=True)
    return result.metrics | {"seconds": time.perf_counter() - start, "moduli": moduli}


def table(title: str, rows: list[tuple[str, str, str]]) -> str:
    lines = [f"### {title}", "", "| method | ours @5 / @20 / @50 | method note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    extra = {} if args.steps is None else {"steps": args.steps}
    out: list[str] = [f"torch {torch.__version__}, {args.threads} thread(s), seeds {args.seeds}, "
                      f"steps {'default' if args.steps is None else args.steps}\n"]

    def emit(text: str) -> None:
        print(text, flush=True)
        out.append(text)

    # 1. pendulum, state, defaults
    base = baseline_rows("pendulum", "state", poly_degrees=(2, 3), rbf_centres=(50, 100, 200))
    runs = {seed: ae_run(system="pendulum", seed=seed, **extra) for seed in args.seeds}
    rows = [(f"autoencoder (full Lagrangian), seed {s}", fmt([runs[s][f"nrmse@{n}"] for n in HORIZONS]), "—")
            for s in args.seeds]
    rows.append(("autoencoder, median over seeds",
                 fmt([statistics.median(runs[s][f"nrmse@{n}"] for s in args.seeds) for n in HORIZONS]), "—"))
    rows += [(name, fmt(v), fmt(REFERENCE.get(("pendulum", "state", name), (None,) * 3))) for name, v in base.items()]
    emit(table("Pendulum, state, experiment defaults (AE: " +
               f"{statistics.median(r['seconds'] for r in runs.values()):.0f} s per run)", rows))

    # 2. full Lagrangian vs plain KAE (alpha = gamma = 0), state and lifted
    lines = ["### Full Lagrangian vs plain KAE (α = γ = 0): NRMSE@50 and d_eff, median over seeds " + str(args.seeds),
             "", "| observation | full: NRMSE@50 (per seed) | plain: NRMSE@50 (per seed) | full d_eff | plain d_eff | "
             "full better? |", "|---|---|---|---|---|---|"]
    for observation in ("state", "lifted"):
        full = runs if observation == "state" else {
            s: ae_run(system="pendulum", observation=observation, seed=s, **extra) for s in args.seeds}
        plain = {s: ae_run(system="pendulum", observation=observation, seed=s, alpha=0.0, gamma=0.0, **extra)
                 for s in args.seeds}
        med = lambda rs, key: statistics.median(r[key] for r in rs.values())  # noqa: E731
        f50, p50 = med(full, "nrmse@50"), med(plain, "nrmse@50")
        per = lambda rs: ", ".join(f"{rs[s]['nrmse@50']:.3f}" for s in args.seeds)  # noqa: E731
        lines.append(f"| {observation} | {f50:.3f} ({per(full)}) | {p50:.3f} ({per(plain)}) | "
                     f"{med(full, 'effective_dimension'):.2f} | {med(plain, 'effective_dimension'):.2f} | "
                     f"{'yes' if f50 < p50 else 'no'} |")
        if observation == "lifted":
            lifted_full = full
    emit("\n".join(lines) + "\n")

    # 3. lifted pendulum baselines, Lorenz, lifted limit cycle
    base = baseline_rows("pendulum", "lifted", poly_degrees=(2,), rbf_centres=(100, 200))
    rows = [("autoencoder, median over seeds",
             fmt([statistics.median(r[f"nrmse@{n}"] for r in lifted_full.values()) for n in HORIZONS]), "—")]
    rows += [(name, fmt(v), fmt(REFERENCE.get(("pendulum", "lifted", name), (None,) * 3))) for name, v in base.items()]
    emit(table("Pendulum observed through y = tanh(0.7·Wx + b), 64-D (NRMSE on y)", rows))

    lorenz = ae_run(system="lorenz", seed=args.seeds[0], **extra)
    base = baseline_rows("lorenz", "state", poly_degrees=(2, 3), rbf_centres=(100,))
    rows = [("autoencoder", fmt([lorenz[f"nrmse@{n}"] for n in HORIZONS]), "—")]
    rows += [(name, fmt(v), fmt(REFERENCE.get(("lorenz", "state", name), (None,) * 3))) for name, v in base.items()]
    emit(table("Lorenz-63, dt = 0.01, 5 time units of burn-in, 200 steps per trajectory", rows))

    vdp = ae_run(system="van_der_pol", observation="lifted", seed=args.seeds[0], **extra)
    base = baseline_rows("van_der_pol", "lifted", poly_degrees=(2,), rbf_centres=(100,))
    rows = [("autoencoder", fmt([vdp[f"nrmse@{n}"] for n in HORIZONS]), "—")]
    rows += [(name, fmt(v), "—") for name, v in base.items()]
    emit(table("Van der Pol limit cycle, lifted to 64-D", rows) +
         f"\nAutoencoder on the lifted limit cycle: |λ(K)| = {', '.join(f'{v:.3f}' for v in vdp['moduli'])}; "
         f"d_eff = {vdp['effective_dimension']:.2f}\n")
    text = "\n".join(out)
    if args.out:
        from pathlib import Path

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return text


if __name__ == "__main__":
    main()
