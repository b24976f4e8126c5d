"""Validate an amortized posterior: SBC ranks, 68/95% coverage, out-of-support flags, speed.

Trains a posterior on the shipped emulator's model for a survey-like catalogue
(made from the emulator: sky-limited + 2% uncertainties, missing bands), then on
``--n-test`` held-out simulations (another seed) measures per parameter

* simulation-based calibration (SBC): the rank of the truth among L posterior
  draws, its histogram (20 bins) and a chi^2 uniformity p-value;
* coverage of the central 68% and 95% credible intervals;

and the out-of-support detector (in-distribution false flags; recall on
uncertainties x10, one band shifted by 0.5 mag, untrained missing-band
patterns), and the sampling speed (galaxies per second with 1,000 samples).
Writes the Markdown page (default docs/amortized.md).

    python benchmarks/validate_amortized.py --emulator parametric --n-sims 1000000 \
        --n-test 2000 --out-md docs/amortized.md
"""
import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emulator", default="parametric")
    p.add_argument("--n-sims", type=int, default=1_000_000)
    p.add_argument("--n-catalog", type=int, default=20000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--n-draws", type=int, default=1000, help="posterior draws per test object")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--flow-layers", type=int, default=8)
    p.add_argument("--nn-width", type=int, default=128)
    p.add_argument("--posterior", default=None, help="reuse a trained file instead of training")
    p.add_argument("--out", default="amortized_validation.h5", help="posterior file to write")
    p.add_argument("--out-md", default=os.path.join(HERE, "..", "docs", "amortized.md"))
    p.add_argument("--machine", default="", help="machine line for the page")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    from scipy.stats import chisquare
    from test_amortized import FILTERS, make_catalog, write_catalog
    from prospect_emulator.amortized import AmortizedPosterior, Observations, simulate
    from prospect_emulator.amortized.posterior import build_model
    from prospect_emulator.amortized.train import TrainingSettings, train_amortized_posterior

    model = build_model(args.emulator)
    lines = []
    t0 = time.time()
    if args.posterior:
        post = AmortizedPosterior.load(args.posterior)
        train_s = float("nan")
    else:
        maggies, unc, zred, _ = make_catalog(model, args.n_catalog, seed=1)
        cat = write_catalog(args.out + ".catalog.ecsv", maggies, unc, zred)
        post = train_amortized_posterior(
            args.emulator, cat, args.n_sims, out=args.out, seed=0,
            hyperparameters={"flow_layers": args.flow_layers, "nn_width": args.nn_width},
            settings=TrainingSettings(max_epochs=args.epochs))
        train_s = time.time() - t0
    test = simulate(post.model, post.noise_model, args.n_test, seed=2024)
    obs = Observations(FILTERS, test.maggies, test.maggies_unc, test.zred)
    post.sample(obs, args.n_draws, seed=0, check_support=False)  # compile for these shapes
    t = time.perf_counter()
    result = post.sample(obs, args.n_draws, seed=1, check_support=False)
    rate = args.n_test / (time.perf_counter() - t)
    t = time.perf_counter()
    checked = post.sample(obs, args.n_draws, seed=1)
    rate_checked = args.n_test / (time.perf_counter() - t)

    lines += ["# Amortized posteriors: validation", "",
              f"Made by `benchmarks/validate_amortized.py` ({' '.join(sys.argv[1:]) or 'defaults'}).",
              f"Machine: {args.machine or platform.processor() or platform.machine()} "
              f"({os.cpu_count()} cores{'; shared with other jobs' if args.machine == '' else ''}).",
              "", f"Posterior: {post!r}; {post.training.get('n_sims')} simulations, "
              f"{post.training.get('epochs')} epochs; training {train_s / 60:.1f} min.", "",
              f"Sampling {args.n_test} galaxies x {args.n_draws} draws: {rate:.0f} galaxies/s "
              f"(flow only), {rate_checked:.0f} galaxies/s with the out-of-support checks.", "",
              "## Coverage and SBC (held-out simulations)", "",
              "| parameter | 68% coverage | 95% coverage | SBC uniformity p | rank histogram (20 bins) |",
              "|---|---|---|---|---|"]
    space = post.param_space
    for j, name in zip(space.inferred, space.inferred_names):
        draws, truth = result.samples[:, :, j], test.theta[:, j]
        cover = {}
        for level in (68, 95):
            lo, hi = np.percentile(draws, [50 - level / 2, 50 + level / 2], axis=1)
            cover[level] = np.mean((truth >= lo) & (truth <= hi))
        ranks = (draws < truth[:, None]).sum(axis=1)
        hist = np.histogram(ranks, bins=20, range=(0, args.n_draws + 1))[0]
        pval = chisquare(hist).pvalue
        lines.append(f"| {name} | {cover[68]:.3f} | {cover[95]:.3f} | {pval:.3g} | "
                     f"{' '.join(str(h) for h in hist)} |")
    lines += ["", "## Out-of-support detection", "",
              "| set | objects | flagged |", "|---|---|---|",
              f"| in distribution | {args.n_test} | {checked.out_of_support.mean():.3f} |"]
    n = min(500, args.n_test)
    sets = {"uncertainties x10": (test.maggies[:n], test.maggies_unc[:n] * 10)}
    shifted = test.maggies[:n].copy()
    shifted[:, 2] *= 10 ** (0.4 * 0.5)
    sets["r band 0.5 mag brighter"] = (shifted, test.maggies_unc[:n])
    dropped = test.maggies[:n].copy()
    dropped[:, 1:3] = np.nan  # g and r never missing in the catalogue
    sets["untrained missing bands (g, r)"] = (dropped, test.maggies_unc[:n])
    for label, (m, u) in sets.items():
        r = post.sample(Observations(FILTERS, m, u, test.zred[:n]), 200, seed=3)
        lines.append(f"| {label} | {n} | {r.out_of_support.mean():.3f} |")
    text = "\n".join(lines) + "\n"
    with open(args.out_md, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
