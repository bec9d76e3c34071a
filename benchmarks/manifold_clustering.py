"""Manifold clustering: MLC against the classical baselines, every seed reported (issue 9's "Done when").

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/manifold_clustering.py            # digits, surfaces, curves; 3 seeds
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/manifold_clustering.py --datasets curves --seeds 0 1

For each dataset and seed it runs the ``manifold_clustering`` experiment (one process, one torch thread on
a CPU; CUDA when present) and prints one row per seed: MLC (spectral clustering on Γ), the same read-out on
Γ₀ right after TCR pre-training, every baseline on raw X, on Z_TCR and on Z_MLC (accuracy through the
Hungarian matching; NMI for MLC), the per-cluster rank and Γ's mass on other classes (leak), Γ₀ → Γ. Then the
median over seeds and the goals:

- digits (all 1797 images; the note's setup: TCR 300 steps, MLC 100 steps, d = 32, ε² = 0.49, η = 0.1):
  median MLC accuracy ≥ 0.85 (the note measured k-means 0.79, spectral 0.81, an independent MLC 0.89 / 0.81);
- synthetic curved manifolds, 5 random closed curves (``curves``) or 2-D surfaces (``surfaces``) in R^32, 100
  points each, noise 0.05: MLC ≥ 0.95; ``curves_long`` (not run by default) trains 100 MLC steps instead of 25.
  η = 0.1 and the jitter σ = 1.5 were chosen on seeds 3 to 7, never on the reported seeds 0, 1, 2 (the
  earlier σ = 0.05, η = 0.15 gave 1.0 / 0.72 / 0.88 on the curves: MLC split them);
- subspace clustering on Z_MLC beats it on Z_TCR (median over seeds). The designated method is EnSC (γ = 5,
  τ = 0.9 from the MLC paper's grid, chosen on digits seeds 3 to 7); SSC-OMP (k_max = 3, the same way) is
  reported beside it. On digits both codes leak less on Z_MLC (less mass on other digits: EnSC 0.03 against
  0.05, SSC-OMP 0.10 against 0.14), but MLC's digits are tighter and of lower rank (5 against 7 dimensions):
  OMP takes one of several nearly collinear samples, then codes the residual by other digits, and its graph
  falls apart inside the digits (median connectivity 0), so spectral clustering cuts inside them; the elastic
  net's l2 part keeps the digits' graphs connected and the smaller leak wins. Both print connectivity and leak.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import workbench
from workbench.methods.mlc import BASELINES

SYNTHETIC = dict(dataset="manifolds", n_samples=500, n_clusters=5, ambient_dim=32, noise=0.05, eta=0.1,
                 augment_noise=1.5, tcr_steps=200, mlc_steps=25)
CONFIGS = {
    "digits": dict(dataset="digits", n_samples=1797, n_clusters=10, eta=0.1, tcr_steps=300, mlc_steps=100),
    "surfaces": SYNTHETIC | dict(manifold_dim=2),
    "curves": SYNTHETIC | dict(manifold_dim=1),
    "curves_long": SYNTHETIC | dict(manifold_dim=1, mlc_steps=100),
}
GOALS = {"digits": 0.85, "surfaces": 0.95, "curves": 0.95, "curves_long": 0.95}
NOTE = {"digits": "note: k-means .792, spectral .808, SSC-OMP .20, MLC .89 (seed 0) / .81 (seed 1)",
        "surfaces": "note: no number for this data (5 random 2-D surfaces in R^32, one shared centre)",
        "curves": "note: no number for this data (5 random closed curves in R^32, one shared centre)",
        "curves_long": "the same curves with 100 MLC steps instead of 25"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "surfaces", "curves"], choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("-p", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = dict(item.split("=", 1) for item in args.p)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {device}")

    for name in args.datasets:
        params = CONFIGS[name] | overrides
        print(f"\n== {name}: {params}")
        print(NOTE[name])
        header = f"{'seed':>4} {'MLC':>6} {'NMI':>6} {'TCR Γ₀':>7} | " + " ".join(
            f"{b + ' raw/tcr/mlc':>22}" for b in BASELINES)
        header += f" | {'rank/cl tcr→mlc':>16} {'Γ leak tcr→mlc':>15} {'s':>5}"
        print(header)
        rows = []
        for seed in args.seeds:
            start = time.perf_counter()
            m = workbench.run("manifold_clustering", seed=seed, **params).metrics
            rows.append(m)
            cells = " ".join(f"{m[f'{b}.accuracy']:>6.3f} {m[f'{b}.tcr_accuracy']:>6.3f} {m[f'{b}.mlc_accuracy']:>6.3f}  "
                             .rjust(22) for b in BASELINES)
            print(f"{seed:>4} {m['mlc.accuracy']:>6.3f} {m['mlc.nmi']:>6.3f} {m['tcr.accuracy']:>7.3f} | {cells} | "
                  f"{m['tcr.rank_per_cluster']:>6.1f} → {m['mlc.rank_per_cluster']:>5.1f} "
                  f"{m['tcr.leak']:>7.3f} → {m['mlc.leak']:>5.3f} "
                  f"{time.perf_counter() - start:>5.0f}", flush=True)

        def med(key: str) -> float:
            return statistics.median(r[key] for r in rows)

        print(f"median MLC accuracy {med('mlc.accuracy'):.3f} (goal ≥ {GOALS[name]}: "
              f"{'met' if med('mlc.accuracy') >= GOALS[name] else 'NOT met'}); seeds: "
              + ", ".join(f"{r['mlc.accuracy']:.3f}" for r in rows))
        print("median raw baselines: " + ", ".join(f"{b} {med(f'{b}.accuracy'):.3f}" for b in BASELINES))
        for b in ("ensc", "ssc"):
            better = sum(r[f"{b}.mlc_accuracy"] > r[f"{b}.tcr_accuracy"] for r in rows)
            goal = med(f"{b}.mlc_accuracy") > med(f"{b}.tcr_accuracy")
            print(f"{b} on Z_MLC vs Z_TCR: median {med(f'{b}.mlc_accuracy'):.3f} vs {med(f'{b}.tcr_accuracy'):.3f} "
                  f"({'met' if goal else 'NOT met'}{', the designated one' if b == 'ensc' else ''}); better on "
                  f"{better}/{len(rows)} seeds; connectivity {med(f'{b}.mlc_connectivity'):.4f} vs "
                  f"{med(f'{b}.tcr_connectivity'):.4f}; leak {med(f'{b}.mlc_leak'):.3f} vs {med(f'{b}.tcr_leak'):.3f}")


if __name__ == "__main__":
    main()
