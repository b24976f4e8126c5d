#!/usr/bin/env python
"""Mass normalisation against logmass as a network input, at equal width.

Trains the same network twice on the same training set with the same seed
(hence the same held-out test rows, validation splits and schedule):

* ``mass-normalised``: the network does not see ``logmass``; it predicts the
  arsinh magnitudes of one solar mass formed (softening mu0 + 2.5 max logmass)
  and the runtime applies 10**logmass to the flux exactly before the arsinh
  softening at mu0 = 35;
* ``logmass input``: the paper's set-up, logmass is one more network input.

and reports the test-set precision of each in the final arsinh magnitudes
(emulator minus truth), per filter and overall.

Usage::

    # on an existing training set (preset `default`)
    python benchmarks/compare_mass_normalisation.py train.h5 --width 64

    # generate a real BagpipesBasis training set first (16 filters)
    python benchmarks/compare_mass_normalisation.py --generate 20000 --width 64 --seeds 0,1 \\
        --out docs/mass_normalisation.md
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table, training_set  # noqa: E402


def run(path, width, seed, mass_normalised, args):
    from prospect_emulator.training.train import train_emulator
    t0 = time.perf_counter()
    r = train_emulator(path, width, None, mass_normalised=mass_normalised, seed=seed,
                       max_epochs=args.max_epochs, patience=args.patience,
                       batch_size=args.batch_size, test_fraction=args.test_fraction,
                       verbose=args.verbose)
    sigma = r.emulator.residual_sigma
    return {"mode": "mass-normalised" if mass_normalised else "logmass input", "seed": seed,
            "epochs": "/".join(str(s["epochs"]) for s in r.stages),
            "rmse": r.test_rmse, "sigma_median": float(np.median(sigma)),
            "sigma_max": float(sigma.max()), "bias_max": float(np.abs(r.test_residuals.mean(0)).max()),
            "mfrac_dex": r.emulator.provenance["extra_residuals"]["mfrac"]["std_dex"],
            "n_test": len(r.test_params), "seconds": time.perf_counter() - t0,
            "sigma": sigma, "filters": r.emulator.filter_names}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("training_set", nargs="?", help="training set (prospect-emulator generate)")
    parser.add_argument("--generate", type=int, metavar="N", default=None,
                        help="generate N models of preset `default` (16 filters) first")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--out", help="also write the Markdown to this file")
    args = parser.parse_args(argv)
    if (args.training_set is None) == (args.generate is None):
        parser.error("give a training set or --generate N (one of them)")

    rows = []
    with training_set(args.training_set, args.generate, who="compare_mass_normalisation") as path:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for mass_normalised in (True, False):
                print(f"training width {args.width}, seed {seed}, "
                      f"mass_normalised={mass_normalised} ...", file=sys.stderr, flush=True)
                rows.append(run(path, args.width, seed, mass_normalised, args))

    source = (f"{args.generate} models (generated)" if args.generate
              else os.path.basename(args.training_set))
    lines = [f"Mass normalisation vs logmass as an input: width {args.width}, batch {args.batch_size}, "
             f"at most {args.max_epochs} epochs per stage, patience {args.patience}, "
             f"training set {source}", ""] + machine_lines() + [
             "", "Test-set residuals (emulator - truth) in arsinh mag; mfrac in dex.", ""]
    lines += markdown_table(
        ["mode", "seed", "epochs/stage", "test RMSE", "median sigma", "max sigma", "max abs bias",
         "mfrac sigma (dex)", "n test", "train s"],
        [[r["mode"], r["seed"], r["epochs"], f"{r['rmse']:.4f}", f"{r['sigma_median']:.4f}",
          f"{r['sigma_max']:.4f}", f"{r['bias_max']:.4f}", f"{r['mfrac_dex']:.4f}", r["n_test"],
          f"{r['seconds']:.0f}"] for r in rows], "lrlrrrrrrr")
    lines += ["", "Per-filter sigma (mag), mass-normalised / logmass input, seed "
              f"{rows[0]['seed']}:", ""]
    lines += markdown_table(
        ["filter", "mass-normalised", "logmass input", "ratio"],
        [[name, f"{a:.4f}", f"{b:.4f}", f"{a / b:.2f}"]
         for name, a, b in zip(rows[0]["filters"], rows[0]["sigma"], rows[1]["sigma"])], "lrrr")
    ratio = [rows[i]["rmse"] / rows[i + 1]["rmse"] for i in range(0, len(rows), 2)]
    lines += ["", f"test RMSE ratio mass-normalised / logmass input: "
              f"{', '.join(f'{x:.2f}' for x in ratio)}"]
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
