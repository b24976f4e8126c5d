#!/usr/bin/env python
"""Validate an amortized posterior: calibration, agreement with exact fits, support, speed.

The posterior is for the catalogue of ``docs/validation_run/`` (100 mocks of the
default model: 27 COSMOS-like bands, 0.1 mag noise, 0.5 < z < 3, made with
BagpipesBasis and fitted twice with Prospector + dynesty and the shipped
default emulator).  It is trained on emulator simulations from the fitting
prior (``amortize train``'s method, redshifts from the prior) unless
``--posterior`` already exists.  Then, in one run:

* speed: galaxies per second with 1,000 draws each (flow only, and with the
  out-of-support checks), after a compilation call;
* calibration on ``--n-test`` held-out simulations (another seed): per
  parameter the 68% and 95% coverage of the central credible intervals and
  the SBC rank histogram (20 bins, chi^2 uniformity p-value), and the share
  of objects whose 68% interval is wider than the prior's own (a posterior
  is narrower than its prior on average: a large share flags a flow that
  cannot shrink a weakly constrained parameter); the
  expected-coverage curve of the marginals and TARP's (Lemos et al. 2023)
  joint expected coverage probability at nine credibility levels;
* agreement with the exact posteriors of the 100 mocks: eq. 10's Q and the
  68th percentile of |difference of medians| of amortized vs dynesty (fit 1),
  against the floor of dynesty fit 1 vs fit 2 of the same mocks;
* out-of-support detection: false flags on the held-out simulations; recall
  on the same objects with uncertainties x10, one band (random per object)
  0.5 mag brighter -- also by how many sigma that shift is --, and two random
  bands missing (no band is ever missing in the training catalogue).

Writes the Markdown page (default ``docs/amortized.md``) and its numbers as JSON.

    python benchmarks/validate_amortized.py --posterior RUN/default_1e6.h5 \\
        --n-sims 1000000 --n-test 2000
"""
import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import emit, machine_lines, markdown_table  # noqa: E402

VALIDATION_RUN = os.path.join(HERE, "..", "docs", "validation_run")
#: what the exact fits of a validation run are, by the sampler their records name
EXACT_DESCRIPTION = {
    "dynesty": "Prospector + dynesty at the demo's settings",
    "smc": "the package's default sampler, tempered SMC, calibrated on prior-drawn mocks "
           "(docs/samplers.md)"}
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def mocks_catalog(run_dir, path):
    """The validation mocks as a catalogue (``fit``'s default columns) and the mocks."""
    from astropy.table import Table
    from prospect_emulator.data import COSMOS_FILTERS
    with open(os.path.join(run_dir, "mocks.json")) as f:
        mocks = json.load(f)
    table = Table({"id": [m["id"] for m in mocks], "z": [float(m["zred"]) for m in mocks]})
    maggies = np.array([m["maggies"] for m in mocks])
    unc = np.array([m["maggies_unc"] for m in mocks])
    for b, name in enumerate(COSMOS_FILTERS):
        table[f"f_{name}"] = maggies[:, b]
        table[f"e_{name}"] = unc[:, b]
    table.write(path, overwrite=True)
    return path, mocks


def train_or_load(args, catalog):
    from prospect_emulator.amortized import AmortizedPosterior
    from prospect_emulator.amortized.train import TrainingSettings, train_amortized_posterior
    if not os.path.exists(args.posterior):
        train_amortized_posterior(
            "default", catalog, args.n_sims, out=args.posterior, seed=0, redshifts="prior",
            hyperparameters={"flow_layers": args.flow_layers, "nn_width": args.nn_width,
                             "knots": args.knots,
                             "invert": None if args.invert is None else args.invert == "true"},
            settings=TrainingSettings(max_epochs=args.epochs), coordinates=args.coordinates)
    post = AmortizedPosterior.load(args.posterior)
    if args.recalibrate or "band_z_threshold" not in post.calibration:
        # limits of a posterior trained before every check was calibrated
        from prospect_emulator.amortized import simulate
        post.calibrate(simulate(post.model, post.noise_model, 1000, seed=99))
        post.save(args.posterior)
    return post


def speed(post, obs, n_draws, importance_draws=None):
    """(draws, draws with the support checks, galaxies/s without and with the checks)."""
    post.sample(obs.rows(slice(0, 64)), n_draws, seed=0, check_support=False,
                importance_draws=importance_draws)  # compile for these shapes
    t = time.perf_counter()
    result = post.sample(obs, n_draws, seed=1, check_support=False,
                         importance_draws=importance_draws)
    flow_only = len(obs) / (time.perf_counter() - t)
    t = time.perf_counter()
    checked = post.sample(obs, n_draws, seed=1, importance_draws=importance_draws)
    return result, checked, flow_only, len(obs) / (time.perf_counter() - t)


def calibration(post, result, test, n_draws, rng):
    """Per-parameter coverage and SBC; marginal expected coverage and TARP curves."""
    from scipy.stats import chisquare
    space = post.param_space
    rows, numbers = [], {}
    marginal = {level: [] for level in LEVELS}
    prior = post.model.prior_transform(rng.uniform(size=(200_000, post.model.ndim)))
    for j, name in zip(space.inferred, space.inferred_names):
        draws, truth = result.samples[:, :, j], test.theta[:, j]
        cover = {}
        for level in (0.68, 0.95) + LEVELS:
            lo, hi = np.percentile(draws, [50 - 50 * level, 50 + 50 * level], axis=1)
            inside = (truth >= lo) & (truth <= hi)
            cover[level] = float(inside.mean())
            if level in marginal:
                marginal[level].append(cover[level])
        ranks = (draws < truth[:, None]).sum(axis=1)
        hist = np.histogram(ranks, bins=20, range=(0, n_draws + 1))[0]
        pval = float(chisquare(hist).pvalue)
        prior_width = np.diff(np.percentile(prior[:, j], [16, 84]))[0]
        wider = float(np.mean(np.diff(np.percentile(draws, [16, 84], axis=1), axis=0)[0]
                              > prior_width))
        numbers[name] = {"cover68": cover[0.68], "cover95": cover[0.95], "sbc_p": pval,
                         "wider_than_prior": wider}
        rows.append([name, f"{cover[0.68]:.3f}", f"{cover[0.95]:.3f}", f"{wider:.3f}",
                     f"{pval:.3g}", " ".join(str(h) for h in hist)])
    pooled68 = float(np.mean([v["cover68"] for v in numbers.values()]))
    pooled95 = float(np.mean([v["cover95"] for v in numbers.values()]))
    rows.append(["**pooled**", f"{pooled68:.3f}", f"{pooled95:.3f}", "", "", ""])
    # TARP in the flow's standardised unbounded coordinates, reference points uniform over
    # the box of the test truths
    y_draws = np.stack([space.to_unbounded(s) for s in result.samples])
    y_true = space.to_unbounded(test.theta)
    scale = y_true.std(axis=0)
    y_draws, y_true = y_draws / scale, y_true / scale
    lo, hi = y_true.min(axis=0), y_true.max(axis=0)
    ref = rng.uniform(lo, hi, size=y_true.shape)
    d_draws = np.linalg.norm(y_draws - ref[:, None], axis=2)
    d_true = np.linalg.norm(y_true - ref, axis=1)
    f = (d_draws < d_true[:, None]).mean(axis=1)
    tarp = {level: float(np.mean(f < level)) for level in LEVELS}
    curve = {level: float(np.mean(marginal[level])) for level in LEVELS}
    numbers.update(pooled68=pooled68, pooled95=pooled95, tarp=tarp, marginal_curve=curve)
    return rows, numbers


def support(post, test, n, rng, checked, importance_draws=None):
    """Out-of-support recall on altered copies of in-distribution objects."""
    from prospect_emulator.amortized import Observations
    names = post.filter_names
    maggies, unc, zred = test.maggies[:n], test.maggies_unc[:n], test.zred[:n]
    out = {"in distribution (false flags)": (float(checked.out_of_support.mean()),
                                             len(checked.out_of_support))}
    sets = {"uncertainties x10": (maggies, unc * 10)}
    band = rng.integers(0, len(names), size=n)
    shifted = maggies.copy()
    shifted[np.arange(n), band] *= 10 ** (0.4 * 0.5)
    sets["one band 0.5 mag brighter"] = (shifted, unc)
    dropped = maggies.copy()
    for i in range(n):
        dropped[i, rng.choice(len(names), size=2, replace=False)] = np.nan
    sets["two bands missing (untrained pattern)"] = (dropped, unc)
    flags = {}
    for label, (m, u) in sets.items():
        r = post.sample(Observations(names, m, u, zred), 1000, seed=3,
                        importance_draws=importance_draws)
        out[label] = (float(r.out_of_support.mean()), n)
        flags[label] = r.out_of_support
    # how many sigma (eq. 9's total, at the true flux) the 0.5 mag shift is
    true = test.maggies_true[:n][np.arange(n), band]
    sigma = np.hypot(unc[np.arange(n), band], post.floor * true)
    significance = (10 ** 0.2 - 1) * true / sigma
    bound = one_band_bound(post, test.subset(slice(0, n)), shifted)
    by_sigma = []
    for lo, hi in ((0, 3), (3, 5), (5, 10), (10, np.inf)):
        sel = (significance >= lo) & (significance < hi)
        if sel.any():
            by_sigma.append((f"{lo:g}-{hi:g} sigma", int(sel.sum()),
                             float(flags["one band 0.5 mag brighter"][sel].mean()),
                             float(bound["flagged"][sel].mean())))
    return out, by_sigma, bound


def one_band_bound(post, test, shifted, false_flags=(0.05, 0.05 / 3)):
    """What the largest one-band residual can flag at best: residuals at the *true* parameters.

    A check that knew every object's true parameters would see the shifted band's
    residual whole (no fit absorbs part of it) and nothing else; its limit is set
    on the same objects unshifted to flag ``false_flags`` of them.  No check of
    the residuals at a fitted point does better.

    Returns
    -------
    dict
        ``recall`` {false-flag rate: fraction of shifted objects flagged},
        ``limit`` {rate: the |z| limit}, ``flagged`` (bool per object, at the
        last rate, the package's share of the 5%).
    """
    from prospect_emulator.amortized.refine import PhotometryResiduals
    band_emulator = post.emulator.select(post.filter_names)
    objects = np.arange(len(test))

    def largest_residual(maggies):
        phot = PhotometryResiduals(post.model, band_emulator, maggies, test.maggies_unc,
                                   test.mask, test.zred, post.floor)
        _, resid, _ = phot.residuals(test.theta, objects)
        return np.abs(resid).max(axis=1)

    null, alt = largest_residual(test.maggies), largest_residual(shifted)
    limit = {rate: float(np.quantile(null, 1 - rate)) for rate in false_flags}
    return {"limit": limit, "recall": {rate: float(np.mean(alt > z)) for rate, z in limit.items()},
            "flagged": alt > limit[false_flags[-1]]}


def exact_agreement(post_path, catalog, mocks, run_dir, n_draws, importance_draws=None):
    """Amortized vs exact fit 1, against exact fit 1 vs fit 2, on the validation mocks
    (the exact fits of ``validate_posteriors.py``: dynesty, or ``--sampler smc``).

    Returns (table rows, numbers per parameter and pair, the amortized summary table,
    the exact fits' sampler)."""
    from prospect_emulator.amortized import fit_catalog_amortized
    from validate_posteriors import COMPARED, PAPER_DIFF68, pair_statistics, read_run
    with tempfile.TemporaryDirectory() as tmp:
        table = fit_catalog_amortized(catalog, post_path, tmp, n_samples=n_draws,
                                      progress=False, stream=open(os.devnull, "w"),
                                      importance_draws=importance_draws)
    amortized = {}
    for row in table:
        keys = {c.rsplit("_p", 1)[0] for c in table.colnames if c.endswith("_p50")}
        amortized[str(row["id"])] = {"percentiles": {k: [float(row[f"{k}_p{p}"])
                                                         for p in (16, 50, 84)] for k in keys}}
    wanted = {m["id"] for m in mocks}
    fits = {key: fit for key, fit in read_run(run_dir).items() if key[0] in wanted}
    rows, numbers = [], {}
    truth = {m["id"]: m["truth"] for m in mocks}
    exact = {f.get("sampler", "dynesty") for f in fits.values()}
    if len(exact) != 1:
        raise SystemExit(f"{run_dir}: exact fits of several samplers ({sorted(exact)})")
    exact = exact.pop()
    for key, label in COMPARED:
        entry = {}
        for pair, get_a, get_b in (
                (f"amortized vs {exact}", lambda i: amortized.get(i),
                 lambda i: fits.get((i, "emu1"))),
                (f"{exact} vs {exact} (floor)", lambda i: fits.get((i, "emu1")),
                 lambda i: fits.get((i, "emu2")))):
            ids = [i for i in truth if get_a(i) is not None and get_b(i) is not None]
            stats = pair_statistics([get_a(i) for i in ids], [get_b(i) for i in ids], key)
            entry[pair] = {"n": stats["n"], "median_q": stats["median_q"],
                           "n_q3": stats["n_q3"], "diff68": stats["diff68"],
                           "width_ratio_median": stats["width_ratio"]}
            rows.append([label, pair, stats["n"], f"{stats['median_q']:.2f}",
                         f"{stats['n_q3']}/{stats['n']}",
                         f"{stats['diff68']:.3f}", f"{stats['width_ratio']:.2f}",
                         PAPER_DIFF68.get(key) if pair.startswith("amortized") and
                         PAPER_DIFF68.get(key) is not None else ""])
        numbers[key] = entry
    return rows, numbers, table, exact


def verdicts(rate, train_min, cal, agree, oos):
    """Rows (target, measured, met) of the issue's targets."""
    rows = [[">= 100 galaxies/s with 1,000 draws", f"{rate:.0f}", rate >= 100],
            ["training on 10^6 simulations <= 60 min", f"{train_min:.0f} min", train_min <= 60]]
    params = {k: v for k, v in cal.items() if isinstance(v, dict) and "cover68" in v}
    for level in (68, 95):
        off = {k: v[f"cover{level}"] for k, v in params.items()
               if abs(v[f"cover{level}"] - level / 100) > 0.03}
        rows.append([f"{level}% coverage within 3 points, every parameter",
                     "all within" if not off else
                     "outside: " + ", ".join(f"{k} {v:.3f}" for k, v in off.items()), not off])
    for key, pair in agree.items():
        amortized, floor = pair.values()  # amortized vs exact fit 1; fit 1 vs fit 2
        factor = 1.0 if key in ("logmass", "log_mwa") else 1.5
        rows.append([f"{key}: 68th pct \\|diff\\| <= {factor:g} x floor",
                     f"{amortized['diff68']:.3f} vs {factor * floor['diff68']:.3f}",
                     amortized["diff68"] <= factor * floor["diff68"]])
    false_flags = oos["in distribution (false flags)"][0]
    rows.append(["<= 5% false flags in distribution", f"{false_flags:.3f}", false_flags <= 0.05])
    for label, (value, _) in oos.items():
        if not label.startswith("in distribution"):
            rows.append([f"recall >= 90%: {label}", f"{value:.3f}", value >= 0.9])
    return [[a, b, "yes" if ok else "**no**"] for a, b, ok in rows]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--posterior", required=True,
                   help="posterior file: used if it exists, else trained and written there")
    p.add_argument("--n-sims", type=int, default=1_000_000, help="training simulations")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--flow-layers", type=int, default=8)
    p.add_argument("--nn-width", type=int, default=96)
    p.add_argument("--knots", type=int, default=4)
    p.add_argument("--invert", default=None, choices=["true", "false"],
                   help="flowjax's invert (default: the package's; false draws through the "
                        "splines' forward direction, amortized.flow)")
    p.add_argument("--coordinates", default="prior-normal", choices=["prior-normal", "logit"],
                   help="the flow's parameter coordinates (when it is trained here)")
    p.add_argument("--n-test", type=int, default=2000, help="held-out simulations")
    p.add_argument("--n-draws", type=int, default=1000, help="posterior draws per object")
    p.add_argument("--n-support", type=int, default=1000,
                   help="objects in each out-of-support set")
    p.add_argument("--validation-run", default=VALIDATION_RUN)
    p.add_argument("--recalibrate", action="store_true",
                   help="set the out-of-support limits again (held-out simulations, seed 99)")
    p.add_argument("--importance-draws", type=int, default=None, metavar="N",
                   help="validate the flow's draws reweighted by the exact likelihood: N flow "
                        "draws per object, resampled to --n-draws")
    p.add_argument("--out-md", default=os.path.join(HERE, "..", "docs", "amortized.md"))
    p.add_argument("--note", default="", help="a line added under the machine description")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    from prospect_emulator.amortized import Observations, simulate
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        catalog, mocks = mocks_catalog(args.validation_run, os.path.join(tmp, "mocks.ecsv"))
        post = train_or_load(args, catalog)
        test = simulate(post.model, post.noise_model, args.n_test, seed=2024)
        obs = Observations(post.filter_names, test.maggies, test.maggies_unc, test.zred)
        result, checked, rate, rate_checked = speed(post, obs, args.n_draws,
                                                    args.importance_draws)
        cal_rows, cal = calibration(post, result, test, args.n_draws, rng)
        oos, by_sigma, bound = support(post, test, min(args.n_support, args.n_test), rng,
                                       checked, args.importance_draws)
        agree_rows, agree, table, exact = exact_agreement(args.posterior, catalog, mocks,
                                                          args.validation_run, args.n_draws,
                                                          args.importance_draws)
    importance = args.importance_draws
    training = post.training
    train_min = (training.get("simulation_seconds", 0) + sum(training.get("epoch_seconds", []))) / 60
    n_flagged_mocks = int(np.sum(table["out_of_support"]))
    command = " ".join(["python benchmarks/validate_amortized.py"] + sys.argv[1:])
    lines = ["# Amortized posteriors: validation", "",
             f"Made by `{command}`.", ""]
    lines += machine_lines() + ([f"- note: {args.note}"] if args.note else []) + [""]
    lines += [f"Posterior: {post!r}, {post.hyperparameters}; trained on "
              f"{training.get('n_sims')} simulations of the default model (27 bands, "
              f"catalogue: the 100 validation mocks' noise, redshifts from the prior) for "
              f"{len(training.get('epoch_seconds', []))} epochs in **{train_min:.0f} min** "
              "(simulations included; target <= 60 min on 2 cores).", "",
              f"**Speed**: {args.n_test} galaxies x {args.n_draws} draws: **{rate:.0f} galaxies/s** "
              f"({'flow only' if importance is None else 'flow and importance weights'}; "
              f"target >= 100), {rate_checked:.0f} galaxies/s with the out-of-support "
              "checks (" + (f"the best of {post.calibration['n_ppc']} posterior-predictive draws "
                            "refined to the best fit" if post.calibration.get("support_fit")
                            == "refined" else f"{post.calibration['n_ppc']} posterior-"
                            "predictive emulator calls") + " per object).", ""]
    if importance is not None:
        ess = result.importance_ess
        limit = post.calibration.get("min_importance_ess", 30.0)
        lines += [f"**Importance weights**: every object's posterior is {importance} flow draws "
                  "reweighted by the exact likelihood (the emulator and eq. 9, as the exact "
                  "fits) over the flow's density, resampled to "
                  f"{args.n_draws} draws (`importance_draws={importance}`). Effective sample "
                  f"size over the {len(ess)} held-out simulations: median {np.median(ess):.0f}, "
                  f"5th percentile {np.percentile(ess, 5):.0f}, 1st {np.percentile(ess, 1):.1f}; "
                  f"{np.mean(ess < limit):.3f} of them below the limit of {limit:g} (flagged "
                  "out of support).", ""]
    lines += [f"## Calibration on {args.n_test} held-out simulations", "",
              "Coverage of the central 68% and 95% credible intervals, the share of objects "
              "whose 68% interval is wider than the prior's, SBC rank histogram of the "
              f"truth among {args.n_draws} draws (20 bins; uniform if calibrated) and its chi^2 "
              "uniformity p-value:", ""]
    lines += markdown_table(["parameter", "68% coverage", "95% coverage", "wider than prior",
                             "SBC p", "rank histogram (20 bins)"], cal_rows, "lrrrrl")
    lines += ["", "Expected coverage at credibility levels 0.1-0.9: the marginals' central "
              "intervals (mean over parameters) and TARP (joint; distances in the flow's "
              "standardised coordinates to random reference points). Calibrated: equal to the "
              "level.", ""]
    lines += markdown_table(["level"] + [f"{x:.1f}" for x in LEVELS],
                            [["marginal intervals"] + [f"{cal['marginal_curve'][x]:.3f}"
                                                       for x in LEVELS],
                             ["TARP"] + [f"{cal['tarp'][x]:.3f}" for x in LEVELS]],
                            "l" + "r" * len(LEVELS))
    lines += ["", "## Against exact posteriors (the 100 validation mocks)", "",
              "Amortized posteriors of the mocks against the first exact fit with the same "
              f"emulator ({EXACT_DESCRIPTION.get(exact, exact)}; "
              f"`{os.path.relpath(args.validation_run)}`), and the floor: the two exact fits of "
              "the same mocks against each other. Q is eq. 10 (difference of medians over the "
              "quadrature sum of half 68% widths); the width ratio is the first posterior's "
              "16-84% width over the second's (median over the mocks).", ""]
    lines += markdown_table(["parameter", "pair", "N", "median Q", "\\|Q\\|>=3",
                             "68th pct \\|diff of medians\\|", "width ratio",
                             "paper (emulator vs FSPS)"],
                            agree_rows, "llrrrrrr")
    lines += ["", f"{n_flagged_mocks} of the 100 mocks were flagged out of support (their "
              "rows are included above).", "",
              "## Out-of-support detection", "",
              "Flagged fractions (checks: uncertainties against the noise model, untrained "
              "missing-band patterns, the chi^2 and the largest one-band residual at the best "
              "fit; the limits of the uncertainties, the chi^2 and the residual "
              "are calibrated on 1,000 held-out simulations to flag 5% of them together, a "
              "third each):", ""]
    lines += markdown_table(["set", "objects", "flagged"],
                            [[k, n, f"{v:.3f}"] for k, (v, n) in oos.items()], "lrr")
    lines += ["", "The 0.5-mag shift by its significance (the shift over eq. 9's sigma of "
              "that band, observational and floor terms):", ""]
    lines += markdown_table(["shift", "objects", "flagged", "flagged at the true parameters"],
                            [[a, b, f"{c:.3f}", f"{d:.3f}"] for a, b, c, d in by_sigma], "lrrr")
    limit = post.calibration.get("band_z_threshold", float("nan"))
    where = (f"the best fit near the posterior draws (the best of {post.calibration['n_ppc']} "
             "draws refined, `prospect_emulator.amortized.refine`)"
             if post.calibration.get("support_fit") == "refined"
             else "the best posterior-predictive draw")
    by_bin = {label: flagged for label, _, flagged, _ in by_sigma}
    lines += ["", "Every band of this catalogue has a 0.1 mag uncertainty, so 0.5 mag in one of "
              "27 bands is about 5 sigma of eq. 9 (with the 5% floor). Residuals are taken at "
              f"{where}; among in-distribution simulations the largest one-band residual there "
              f"reaches {limit:.1f} sigma in the worst 1.7% (the calibrated limit). The fit "
              "absorbs part of a shifted band (the more, the more that band alone constrains "
              "the parameters), so how often a shift is flagged depends on its significance: "
              + ", ".join(f"{100 * v:.0f}% of the {k} shifts" for k, v in by_bin.items())
              + ".", "",
              "The last column is an upper bound no residual check can pass: the largest "
              "one-band residual at each object's *true* parameters (nothing absorbed), its "
              "limit set on the same objects unshifted (`one_band_bound`). With all of the 5% "
              f"false flags given to it (limit {bound['limit'][0.05]:.2f} sigma) it flags "
              f"**{bound['recall'][0.05]:.3f}** of the shifted objects; with the package's "
              f"third of them (limit {bound['limit'][0.05 / 3]:.2f} sigma, the column above) "
              f"{bound['recall'][0.05 / 3]:.3f}. A 0.5 mag shift in one band of this "
              "catalogue is therefore not detectable in 90% of objects at 5% false flags by "
              "any test of the residuals: the recall target exceeds what the data hold "
              "whenever this bound is below 0.9.", ""]
    if exact == "dynesty":
        lines += ["The exact reference above is Prospector + dynesty at the demo's settings, "
                  "which is itself over-confident for this 14-parameter model (issue 13: its "
                  "68% intervals hold the truth for fewer than half of the (mock, parameter) "
                  "pairs of prior-drawn mocks; `docs/samplers.md`), so differences from it mix "
                  "the errors of both.", ""]
    lines += ["", "## Targets (issue 12)", ""] + markdown_table(
        ["target", "measured", "met"], verdicts(rate, train_min, cal, agree, oos), "lll")
    emit(lines, args.out_md)
    with open(os.path.splitext(args.out_md)[0] + ".json", "w") as f:
        json.dump({"rate": rate, "rate_checked": rate_checked, "train_minutes": train_min,
                   "calibration": cal, "support": oos, "shift_by_sigma": by_sigma,
                   "one_band_bound": {k: v for k, v in bound.items() if k != "flagged"},
                   "agreement": agree}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
