"""Simulation-based calibration (SBC) of the exact-fit posterior.

Mocks are drawn from the fitting prior of a shipped emulator's model (the model
``EmulatedSpecModel.from_emulator`` builds, redshift fixed per mock, uniform over
the training range) and simulated with exactly the likelihood's own noise model:
Gaussian in flux with the variance of ``EmulatorNoiseModel(model, floor=0)`` at the
true parameters (observational sigma = ``--obs-mag`` mag of the true flux, plus the
emulator's eq.-9 term).  With ``--depth-mag M`` the observational sigma is instead
that of a survey with 5-sigma depth M (AB) in every band, the same for every mock:
uncertainties that do not depend on the truth, as the likelihood assumes (it takes
the given uncertainties as fixed, while 0.1 mag of the *true* flux tells the fit
the true flux level).  Each mock is fitted with Prospector + dynesty at the given
settings; for every (mock, parameter) the script records the rank of the truth among
equal-weight posterior draws (SBC) and whether the 68% and 95% central intervals hold
it.  Coverage must be 68% +- 5 and 95% +- 3 per parameter and pooled (issue 13).

    python benchmarks/calibrate_sampler.py --emulator default --n-mocks 100 \
        --nlive 200 --n-effective 2000 --sample rwalk --walks 25 --out runs/sbc_rwalk25
    python benchmarks/calibrate_sampler.py --out runs/sbc_rwalk25 --report-only
    python benchmarks/calibrate_sampler.py --emulator default --sampler ultranest --n-mocks 30 \
        --nlive 400 --n-effective 2000 --out runs/sbc_ultranest
    python benchmarks/calibrate_sampler.py --check-recipe --n-mocks 100 --out runs/sbc_recipe

``--check-recipe`` tests the mocks and the likelihood without any sampler: for
every mock and parameter it computes the exact posterior of that parameter with
the others fixed at the truth (two passes of 4,000 points of the prior's CDF, the
second over the part that holds the posterior) and the coverage of its central
intervals, which is nominal only if the mocks
are drawn from the prior and the likelihood's own noise model (necessary, not
sufficient: a mismatch that only shows jointly would pass).

Every mock's result is one JSON file in ``--out`` (resumable; kill and re-run).
"""
import argparse
import concurrent.futures
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import dynesty_sampling, machine_lines  # noqa: E402

from prospect_emulator.data import COSMOS_FILTERS  # noqa: E402
from prospect_emulator.fileio import atomic_path  # noqa: E402

N_RANK_DRAWS = 99  # ranks 0..99: 100 bins of equal probability under calibration


def fitting_model(emulator, zred):
    """The model fitted to a mock at redshift ``zred`` (None: redshift free), as
    ``prospect-emulator fit`` builds it (``build_fitting_model``), its warnings
    silenced."""
    from prospect_emulator.fitting.models import build_fitting_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_fitting_model(emulator, zred=zred)


def mock_likelihood(emulator, mock, filters, nested=False):
    """The likelihood (``nested=True``) or ln posterior that every fit of ``mock`` samples:
    :class:`VectorisedLikelihood` with the eq.-9 noise model, floor 0."""
    from prospect_emulator import EmulatorNoiseModel
    from prospect_emulator.fitting.run import make_obs
    from prospect_emulator.prospector.vectorised import VectorisedLikelihood
    model = fitting_model(emulator, mock["zred"])
    obs = make_obs(filters, mock["maggies"], mock["maggies_unc"])
    return VectorisedLikelihood(model, obs, EmulatorNoiseModel(model, floor=0.0), nested=nested)


def reference_record(record, result, sampler, source, seconds):
    """A reference posterior of a calibration mock (``mcmc_reference.py``,
    ``importance_reference.py``) as a record in this script's format: the mock's
    truth and photometry, ``result`` (median, halfwidth, in68, in95, ...), the mock's
    noise and emulator settings with ``sampler`` and the ``source`` folder."""
    settings = {key: record["settings"][key] for key in
                ("filters", "obs_mag", "depth_mag", "emulator", "emulator_checksum")
                if key in record["settings"]}
    settings.update(sampler=sampler, source=source)
    out = {key: record[key] for key in ("index", "zred", "theta", "maggies", "maggies_unc",
                                        "labels")}
    out.update(result, settings=settings, seconds=seconds)
    return out


def mock_indices(args):
    """The mocks a run handles: ``--mocks`` or 0 .. ``--n-mocks`` - 1."""
    return args.mocks if args.mocks else range(args.n_mocks)


def make_mock(emulator, index, seed, obs_mag, filters, depth_mag=None):
    """Truth, redshift and simulated photometry of mock ``index`` (reproducible)."""
    from prospect_emulator import EmulatorNoiseModel
    from prospect_emulator.fitting.run import make_obs
    rng = np.random.default_rng([seed, index])
    probe = fitting_model(emulator, None)
    lo, hi = probe.config_dict["zred"]["prior"].range
    zred = float(rng.uniform(lo, hi))
    model = fitting_model(emulator, zred)
    while True:  # a prior draw inside the training range
        theta = model.prior_transform(rng.uniform(size=model.ndim))
        obs = make_obs(filters, np.ones(len(filters)), np.ones(len(filters)))
        try:
            flux = model.predict(theta, obs=obs)[1].copy()
            break
        except ValueError:
            continue
    if depth_mag is None:
        sigma_obs = flux * (np.log(10) / 2.5 * obs_mag)
    else:  # 5-sigma depth in AB mag -> 1-sigma in maggies, whatever the truth
        sigma_obs = np.full(len(flux), 10 ** (-0.4 * depth_mag) / 5)
    obs = make_obs(filters, flux, sigma_obs)
    noise = EmulatorNoiseModel(model, floor=0.0)
    noise.compute(phot_unc=obs["maggies_unc"], phot=obs["maggies"], mask=obs["phot_mask"])
    # bands without flux (beyond the Lyman limit at high redshift) have no uncertainty:
    # masked in the fit as in the noise model
    used = obs["phot_mask"]
    data = flux.copy()
    data[used] += rng.normal(size=int(used.sum())) * np.sqrt(noise.Sigma)
    return {"index": index, "zred": zred, "theta": theta.tolist(), "maggies": data.tolist(),
            "maggies_unc": sigma_obs.tolist(), "labels": list(model.theta_labels())}


def fit_mock(args):
    """Fit one mock; returns the JSON record."""
    emulator, mock, settings, seed = args
    from prospect_emulator import EmulatorNoiseModel
    from prospect_emulator.fitting.run import fit_galaxy, make_obs, posterior_samples
    model = fitting_model(emulator, mock["zred"])
    filters = settings["filters"]
    obs = make_obs(filters, mock["maggies"], mock["maggies_unc"])
    sampler = settings.get("sampler", "dynesty")
    t0 = time.time()
    noise = EmulatorNoiseModel(model, floor=0.0)
    if sampler == "dynesty":
        nested = {"nested_nlive_init": settings["nlive"],
                  "nested_nlive_batch": settings["nlive"] // 2,
                  "nested_target_n_effective": settings["n_effective"],
                  "nested_sample": settings["sample"], "nested_walks": settings["walks"]}
        fit = fit_galaxy(obs, model, noise, nested_kwargs=nested, seed=seed + mock["index"],
                         sampler="dynesty")
    else:
        from prospect_emulator.fitting.samplers import settings_from_cli
        fit = fit_galaxy(obs, model, noise, sampler=sampler, seed=seed + mock["index"],
                         sampler_settings=dict(settings_from_cli(sampler, settings["nlive"],
                                                                 settings["n_effective"]),
                                               **settings.get("sampler_settings", {})))
    draws = posterior_samples(fit["samples"], fit["weights"], n=N_RANK_DRAWS,
                              seed=seed + mock["index"])
    big = posterior_samples(fit["samples"], fit["weights"], n=4000, seed=seed + mock["index"])
    truth = np.asarray(mock["theta"])
    q = np.percentile(big, [2.5, 16, 50, 84, 97.5], axis=0)
    # joint check: the posterior mass denser than the truth (uniform under calibration;
    # near 0 when the truth sits in a dense region the sampler did not visit)
    from prospect_emulator.prospector.vectorised import VectorisedLikelihood
    lnpost = VectorisedLikelihood(model, obs, noise)
    lp_samples = lnpost(np.asarray(fit["samples"]))
    lp_truth = float(lnpost(truth[None])[0])
    w = np.asarray(fit["weights"], float) / np.sum(fit["weights"])
    if not np.isfinite(lp_truth):  # cannot happen for a mock drawn inside the prior: say so
        print(f"mock {mock['index']}: ln posterior at the truth is {lp_truth}; "
              "left out of the joint coverage", file=sys.stderr)
    # every setting the sampler ran with, defaults included (``settings`` holds those given)
    resolved = json.loads(json.dumps(fit["settings"], default=str))
    return dict(mock, settings=settings, resolved_settings=resolved, ncall=fit["ncall"],
                seconds=time.time() - t0,
                lnpost_truth=lp_truth, lnpost_max=float(np.max(lp_samples)),
                hpd_rank=float(np.sum(w[lp_samples > lp_truth])) if np.isfinite(lp_truth)
                else None,
                rank=(draws < truth).sum(axis=0).tolist(),
                in68=((truth >= q[1]) & (truth <= q[3])).tolist(),
                in95=((truth >= q[0]) & (truth <= q[4])).tolist(),
                median=q[2].tolist(), halfwidth=(0.5 * (q[3] - q[1])).tolist())


CONDITIONAL_GRID = 4000  # unit-cube points per pass of a 1-D conditional posterior


def _conditional_on_grid(like, truth, k, lower, upper):
    """Weights of the 1-D conditional posterior of parameter ``k`` (the others at
    ``truth``) on CONDITIONAL_GRID midpoints of [lower, upper] in its prior CDF,
    and the parameter values there (increasing: the transform is monotone)."""
    unit = lower + (upper - lower) * (np.arange(CONDITIONAL_GRID) + 0.5) / CONDITIONAL_GRID
    cube = np.full((CONDITIONAL_GRID, like.ndim), 0.5)
    cube[:, k] = unit
    theta = np.repeat(truth[None], CONDITIONAL_GRID, axis=0)
    theta[:, k] = like.prior_transform(cube)[:, k]  # independent priors: column k only
    lnl = like.lnlike(theta)
    w = np.exp(lnl - lnl.max())
    return unit, theta[:, k], w / w.sum()


def conditional_cdf_at_truth(emulator, mock, filters):
    """Posterior CDF at the truth of each parameter given the others at their true
    values (uniform over mocks if the mock recipe and the likelihood agree), and
    the effective number of grid points under each posterior.

    Two passes: the whole unit interval of the parameter's prior CDF, then the
    part of it holding the posterior (weights above 1e-12 of the peak; what lies
    outside is below 4000 x 1e-12 of the mass), so that a posterior far narrower
    than its prior is still resolved.
    """
    like = mock_likelihood(emulator, mock, filters, nested=True)
    truth = np.asarray(mock["theta"])
    step = 1.0 / CONDITIONAL_GRID
    cdf_at_truth, effective = [], []
    for k in range(like.ndim):
        unit, _, w = _conditional_on_grid(like, truth, k, 0.0, 1.0)
        held = np.flatnonzero(w > 1e-12 * w.max())
        unit, values, w = _conditional_on_grid(like, truth, k, max(unit[held[0]] - step, 0.0),
                                               min(unit[held[-1]] + step, 1.0))
        cdf = np.cumsum(w) - 0.5 * w
        cdf_at_truth.append(float(np.interp(truth[k], values, cdf)))
        effective.append(float(1.0 / np.sum(w * w)))
    return cdf_at_truth, effective


def check_recipe(args, filters):
    """``--check-recipe``: coverage of the exact 1-D conditional posteriors."""
    mocks = [make_mock(args.emulator, i, args.seed, args.obs_mag, filters, args.depth_mag)
             for i in mock_indices(args)]
    results = [conditional_cdf_at_truth(args.emulator, mock, filters) for mock in mocks]
    cdf = np.array([r[0] for r in results])
    effective = np.array([r[1] for r in results])
    labels = mocks[0]["labels"]  # the fitted parameters (redshift fixed per mock)
    in68 = (cdf > 0.16) & (cdf < 0.84)
    in95 = (cdf > 0.025) & (cdf < 0.975)
    lines = ["\n".join(machine_lines()), "",
             f"Exact 1-D conditional posteriors (the other parameters at the truth; "
             f"two passes of {CONDITIONAL_GRID} points of the prior's CDF, the second over the "
             f"posterior's part of it) of {len(mocks)} mocks of emulator "
             f"{args.emulator}, {len(filters)} bands, "
             + (f"{args.obs_mag} mag observational noise, " if args.depth_mag is None else
                f"observational noise of a 5-sigma depth of {args.depth_mag} AB mag, ")
             + f"seed {args.seed}: no sampler involved.", "",
             "| parameter | 68% coverage | 95% coverage | fewest effective grid points |",
             "|---|---:|---:|---:|"]
    for j, label in enumerate(list(labels) + ["pooled"]):
        sel = slice(None) if label == "pooled" else j
        lines.append(f"| {label} | {100 * in68[:, sel].mean():.1f}% | "
                     f"{100 * in95[:, sel].mean():.1f}% | {effective[:, sel].min():.0f} |")
    lines.append(f"\nBinomial standard error per parameter: "
                 f"{100 * np.sqrt(0.68 * 0.32 / len(mocks)):.1f} points (68%), "
                 f"{100 * np.sqrt(0.95 * 0.05 / len(mocks)):.1f} points (95%).")
    os.makedirs(args.out, exist_ok=True)
    text = "\n".join(lines)
    with open(os.path.join(args.out, "recipe_check.md"), "w") as f:
        f.write(text + "\n")
    print(text)


def _done(out, index, settings):
    """Whether mock ``index`` is already fitted in ``out`` with these settings;
    a mock fitted with other settings (or another emulator) is an error."""
    path = os.path.join(out, f"mock_{index:04d}.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        previous = json.load(f)["settings"]
    differ = sorted(k for k in set(settings) | set(previous)
                    if settings.get(k) != previous.get(k))
    if differ:
        raise SystemExit(f"{path} was fitted with other settings ({', '.join(differ)}: "
                         f"{[previous.get(k) for k in differ]} there, "
                         f"{[settings.get(k) for k in differ]} now); use another --out")
    return True


def report(out):
    records = []
    for name in sorted(os.listdir(out)):
        if name.startswith("mock_") and name.endswith(".json"):
            with open(os.path.join(out, name)) as f:
                records.append(json.load(f))
    if not records:
        raise SystemExit(f"no fitted mocks in {out}")
    labels = records[0]["labels"]
    in68 = np.array([r["in68"] for r in records], float)
    in95 = np.array([r["in95"] for r in records], float)
    ranks = np.array([r["rank"] for r in records])
    n = len(records)
    s = records[0]["settings"]
    lines = ["\n".join(machine_lines()), "",
             f"{n} mocks of emulator {s['emulator']}"
             + (f" (checksum {s['emulator_checksum'][:12]})" if "emulator_checksum" in s else "")
             + "; " + (f"dynesty {dynesty_sampling(s['sample'], s['walks'])}, nlive {s['nlive']}, "
                               f"target n_eff {s['n_effective']}"
                               if s.get("sampler", "dynesty") == "dynesty" else
                               f"{s['sampler']} ("
                               + "; ".join([f"{k} {s[k]}" for k in ("nlive", "n_effective")
                                            if s.get(k) is not None]
                                           + ([json.dumps(s["sampler_settings"])]
                                              if s.get("sampler_settings") else []))
                               + ")")
             + f"; {len(s['filters'])} bands, "
             + (f"{s['obs_mag']} mag observational noise; " if s.get("depth_mag") is None
                else f"observational noise of a 5-sigma depth of {s['depth_mag']} AB mag; ")
             + f"median {np.median([r['ncall'] for r in records]):.3g} likelihood calls and "
             f"{np.median([r['seconds'] for r in records]):.1f} s per fit", "",
             "| parameter | 68% coverage | 95% coverage | rank histogram chi2 (10 bins, 9 dof) |",
             "|---|---:|---:|---:|"]
    for j, label in enumerate(labels + ["pooled"]):
        if label == "pooled":
            c68, c95, r = in68.mean(), in95.mean(), ranks.ravel()
        else:
            c68, c95, r = in68[:, j].mean(), in95[:, j].mean(), ranks[:, j]
        counts = np.histogram(r, bins=10, range=(0, N_RANK_DRAWS + 1))[0]
        chi2 = float(((counts - counts.mean()) ** 2 / counts.mean()).sum())
        lines.append(f"| {label} | {100 * c68:.0f}% | {100 * c95:.0f}% | {chi2:.1f} |")
    se68, se95 = 100 * np.sqrt(0.68 * 0.32 / n), 100 * np.sqrt(0.95 * 0.05 / n)
    lines.append(f"\nBinomial standard error per parameter: {se68:.1f} points (68%), "
                 f"{se95:.1f} points (95%).")
    joint = [r for r in records if r.get("hpd_rank") is not None]
    if joint:
        hpd = np.array([r["hpd_rank"] for r in joint])
        missed = [r for r in joint if not all(r["in95"])]
        lines.append(
            f"\nJoint (highest-posterior-density) coverage over {len(joint)} mocks: the truth is "
            f"inside the 68% / 95% HPD region for {100 * np.mean(hpd < 0.68):.0f}% / "
            f"{100 * np.mean(hpd < 0.95):.0f}% of them (posterior mass denser than the truth; "
            "uniform under calibration). Mocks with a parameter outside its 95% interval: "
            f"{len(missed)} (for a calibrated posterior about 1 - 0.95^{len(labels)} = "
            f"{100 * (1 - 0.95 ** len(labels)):.0f}% of mocks if the parameters were "
            "independent); their mass denser than the truth: "
            + (", ".join(f"{r['hpd_rank']:.2f}" for r in missed) or "-")
            + " (near 0: the truth lies in a dense region the sampler did not visit).")
    _rank_figure(ranks, labels, os.path.join(out, "ranks.png"))
    text = "\n".join(lines)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(text + "\n")
    print(text)


def _rank_figure(ranks, labels, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ncol = 5
    nrow = int(np.ceil(len(labels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.0 * nrow), squeeze=False)
    for ax, j in zip(axes.flat, range(len(labels))):
        ax.hist(ranks[:, j], bins=10, range=(0, N_RANK_DRAWS + 1), color="0.6")
        ax.axhline(len(ranks) / 10, color="k", lw=1)
        ax.set_title(labels[j], fontsize=8)
        ax.set_yticks([])
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", default="default")
    parser.add_argument("--n-mocks", type=int, default=100)
    parser.add_argument("--mocks", type=int, nargs="+", metavar="I",
                        help="fit only these mock indices (e.g. to compare samplers on the "
                             "mocks another run got wrong); default: 0 .. n-mocks - 1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--obs-mag", type=float, default=0.1,
                        help="observational sigma in mag of the true flux (default 0.1)")
    parser.add_argument("--depth-mag", type=float, default=None, metavar="M",
                        help="instead: the sigma of a 5-sigma depth of M AB mag in every band, "
                             "independent of the truth")
    parser.add_argument("--nlive", type=int, default=None,
                        help="live points (dynesty: default 200; others: their own default)")
    parser.add_argument("--n-effective", type=int, default=None,
                        help="target effective sample size (dynesty: default 2000)")
    parser.add_argument("--sampler", default="dynesty",
                        choices=["dynesty", "ultranest", "emcee", "smc", "blackjax-nss",
                                 "blackjax-nuts"],
                        help="sampler (default dynesty; --sample/--walks are dynesty's)")
    parser.add_argument("--sampler-settings", type=json.loads, default=None, metavar="JSON",
                        help="further settings of a non-dynesty sampler, e.g. "
                             "'{\"nsteps\": 70}' (see fitting.samplers.DEFAULT_SETTINGS)")
    parser.add_argument("--sample", default="rwalk")
    parser.add_argument("--walks", type=int, default=25)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", required=True)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--check-recipe", action="store_true",
                        help="check the mocks against the likelihood with exact 1-D conditional "
                             "posteriors (no sampler); writes recipe_check.md in --out")
    args = parser.parse_args()
    if args.sampler == "dynesty":  # the demo's settings unless given
        args.nlive = 200 if args.nlive is None else args.nlive
        args.n_effective = 2000 if args.n_effective is None else args.n_effective
    if args.check_recipe:
        check_recipe(args, list(COSMOS_FILTERS))
        return 0
    if not args.report_only:
        os.makedirs(args.out, exist_ok=True)
        filters = list(COSMOS_FILTERS)
        settings = {"sampler": args.sampler, "nlive": args.nlive, "n_effective": args.n_effective,
                    "sample": args.sample,
                    "walks": args.walks, "filters": filters, "obs_mag": args.obs_mag,
                    "depth_mag": args.depth_mag,
                    "emulator": args.emulator,
                    "emulator_checksum": fitting_model(args.emulator, None).emulator.checksum}
        if args.sampler_settings:
            if args.sampler == "dynesty":
                parser.error("--sampler-settings is for the other samplers (dynesty: --sample, "
                             "--walks, --nlive, --n-effective)")
            settings["sampler_settings"] = args.sampler_settings
        todo = [i for i in mock_indices(args) if not _done(args.out, i, settings)]
        tasks = [(args.emulator, make_mock(args.emulator, i, args.seed, args.obs_mag, filters,
                                           args.depth_mag),
                  settings, args.seed) for i in todo]
        with concurrent.futures.ProcessPoolExecutor(args.workers) as pool:
            futures = [pool.submit(fit_mock, task) for task in tasks]
            failed = 0
            for k, future in enumerate(concurrent.futures.as_completed(futures), 1):
                try:
                    record = future.result()
                except Exception as error:  # report it; keep the fits that still finish
                    failed += 1
                    print(f"sbc: a fit failed: {type(error).__name__}: {error}", file=sys.stderr,
                          flush=True)
                    continue
                path = os.path.join(args.out, f"mock_{record['index']:04d}.json")
                with atomic_path(path) as tmp, open(tmp, "w") as f:
                    json.dump(record, f)
                print(f"sbc: {k}/{len(tasks)} fitted ({record['seconds']:.0f} s)", flush=True)
        if failed:
            raise SystemExit(f"{failed} of {len(tasks)} fits failed (see above); the others are "
                             f"in {args.out}")
    report(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
