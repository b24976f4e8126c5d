#!/usr/bin/env python
"""Per-call cost of a Prospector likelihood with BagpipesBasis as the SPS.

The configuration of the SPS fits of ``benchmarks/validate_posteriors.py``:
the ``default`` preset's continuity-SFH model for one object at a fixed
redshift (``fitting_model_params(zred)``, the paper's Table 1 priors),
``make_spec_model(params, BagpipesBasis())`` and the 27 3D-HST COSMOS-like
bands (``COSMOS_FILTERS``), photometry only.  Parameter vectors are drawn
from the prior (``model.prior_transform`` of uniform deviates, as dynesty
does).

Reported per call (best of ``--repeat`` passes over the same vectors):

* ``prospect.fitting.lnprobfn(..., nested=True)``, what dynesty calls;
* its stages in the order ``SpecModel.predict`` runs them: prior, parameter
  propagation, ``sps.get_galaxy_spectrum`` (the SPS itself), flux
  normalisation, ``predict_spec`` (redshift + velocity smoothing of the
  returned spectrum), ``predict_phot`` (filter projection);
* ``model.prior_transform``, which dynesty calls once per proposal besides
  ``lnprobfn``, and the sum of the two: the cost of a likelihood call in a fit;
* with ``--profile``, the functions where ``lnprobfn`` spends its time
  (cProfile, inflated by the profiler's own overhead).

The machine may be shared: compare before/after numbers taken back to back.

Usage::

    python benchmarks/bench_bagpipes_basis.py                  # 3 redshifts, 200 vectors each
    python benchmarks/bench_bagpipes_basis.py --quick          # a fast smoke run
    python benchmarks/bench_bagpipes_basis.py --profile --zred 1.5
    python benchmarks/bench_bagpipes_basis.py --skip-unused-smoothing   # photometry-only fits
"""
import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402


def build(zred, sps, skip_unused_smoothing=False):
    """Model and obs of one validation SPS fit at redshift ``zred``."""
    from prospect_emulator.data import COSMOS_FILTERS
    from prospect_emulator.fitting.models import fitting_model_params
    from prospect_emulator.fitting.run import make_obs
    from prospect_emulator.sources import make_spec_model
    model = make_spec_model(fitting_model_params(zred), sps,
                            skip_unused_smoothing=skip_unused_smoothing)
    n = len(COSMOS_FILTERS)
    obs = make_obs(COSMOS_FILTERS, np.ones(n), np.ones(n))  # placeholder data ...
    _, phot, _ = model.predict(model.theta.copy(), obs=obs, sps=sps)
    obs["maggies"], obs["maggies_unc"] = phot, 0.1 * phot    # ... replaced by a model SED
    return model, obs


def draw_thetas(model, n, seed):
    rng = np.random.default_rng(seed)
    return [model.prior_transform(rng.uniform(size=model.ndim)) for _ in range(n)]


def best_per_call(func, thetas, repeat):
    """Seconds per call: the best of ``repeat`` passes over ``thetas``."""
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for theta in thetas:
            func(theta)
        best = min(best, (time.perf_counter() - t0) / len(thetas))
    return best


def stage_times(model, obs, sps, thetas, repeat):
    """Seconds per call of each stage of ``SpecModel.predict`` (Prospector 1.4.1's order)."""
    names = ["prior_product", "set_parameters", "sps.get_galaxy_spectrum", "flux_norm",
             "predict_spec", "predict_phot"]
    best = dict.fromkeys(names, np.inf)
    filters = obs["filters"]
    for _ in range(repeat):
        acc = dict.fromkeys(names, 0.0)
        for theta in thetas:
            t = [time.perf_counter()]
            model.prior_product(theta, nested=True)
            t.append(time.perf_counter())
            model.set_parameters(theta)
            t.append(time.perf_counter())
            model._wave, model._spec, model._mfrac = sps.get_galaxy_spectrum(**model.params)
            model._zred = model.params.get("zred", 0)
            model._eline_wave, model._eline_lum = sps.get_galaxy_elines()
            t.append(time.perf_counter())
            model._norm_spec = model._spec * model.flux_norm()
            t.append(time.perf_counter())
            model.predict_spec(obs)
            t.append(time.perf_counter())
            model.predict_phot(filters)
            t.append(time.perf_counter())
            for name, a, b in zip(names, t[:-1], t[1:]):
                acc[name] += b - a
        for name in names:
            best[name] = min(best[name], acc[name] / len(thetas))
    return best


def profile_lines(model, obs, sps, thetas, top=25):
    from prospect.fitting import lnprobfn
    prof = cProfile.Profile()
    prof.enable()
    for theta in thetas:
        lnprobfn(theta, model=model, obs=obs, sps=sps, nested=True)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return ["```"] + buf.getvalue().strip().splitlines() + ["```"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zred", type=float, nargs="+", default=[0.5, 1.5, 3.0],
                   help="fixed redshifts of the fits timed (default 0.5 1.5 3.0)")
    p.add_argument("--n", type=int, default=200, help="parameter vectors per redshift")
    p.add_argument("--repeat", type=int, default=3, help="passes; the best is reported")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="also print a cProfile summary")
    p.add_argument("--skip-unused-smoothing", action="store_true",
                   help="build the model with make_spec_model(..., skip_unused_smoothing=True): "
                        "the returned (unused) spectrum is not smoothed, the photometry is the same")
    p.add_argument("--quick", action="store_true", help="one redshift, 50 vectors, 2 passes")
    p.add_argument("--out", help="also write the Markdown report here")
    args = p.parse_args(argv)
    if args.quick:
        args.zred, args.n, args.repeat = args.zred[:1], 50, 2

    from prospect.fitting import lnprobfn
    from prospect_emulator.sources import BagpipesBasis
    import prospect_emulator.sources.bagpipes_basis as module
    warnings.simplefilter("ignore")  # Prospector's / astropy's chatter
    t0 = time.perf_counter()
    sps = BagpipesBasis()
    build_s = time.perf_counter() - t0

    lines = ["BagpipesBasis likelihood cost in the configuration of the SPS fits of validate_posteriors.py.", "",
             f"Command: `python benchmarks/bench_bagpipes_basis.py "
             f"--zred {' '.join(f'{z:g}' for z in args.zred)} --n {args.n} --repeat {args.repeat}"
             + (" --skip-unused-smoothing" if args.skip_unused_smoothing else "") + "`",
             f"(module: {module.__file__}; BagpipesBasis built in {build_s:.1f} s)", ""]
    lines += machine_lines() + [""]
    rows, profiles = [], []
    stage_names = None
    for zred in args.zred:
        model, obs = build(zred, sps, args.skip_unused_smoothing)
        thetas = draw_thetas(model, args.n, args.seed)
        for theta in thetas[:5]:  # warm up (and fill whatever is cached per fit)
            lnprobfn(theta, model=model, obs=obs, sps=sps, nested=True)
        total = best_per_call(lambda th: lnprobfn(th, model=model, obs=obs, sps=sps, nested=True),
                              thetas, args.repeat)
        stages = stage_times(model, obs, sps, thetas, args.repeat)
        stage_names = list(stages)
        # dynesty also calls the prior transform once per proposal (outside lnprobfn)
        units = list(np.random.default_rng(args.seed).uniform(size=(args.n, model.ndim)))
        transform = best_per_call(model.prior_transform, units, args.repeat)
        rows.append([f"{zred:g}", f"{total * 1e3:.3f}"] + [f"{stages[k] * 1e3:.3f}" for k in stages]
                    + [f"{transform * 1e3:.3f}", f"{(total + transform) * 1e3:.3f}"])
        if args.profile:
            profiles += [f"## cProfile of lnprobfn, zred = {zred:g}", ""]
            profiles += profile_lines(model, obs, sps, thetas) + [""]
    lines += [f"Milliseconds per call ({args.n} prior draws, best of {args.repeat} passes; "
              "the stages are timed separately and add up to about lnprobfn):", ""]
    header = ["zred", "lnprobfn"] + stage_names + ["prior_transform", "lnprobfn + prior_transform"]
    lines += markdown_table(header, rows, "r" * len(header))
    emit(lines + [""] + profiles, args.out)


if __name__ == "__main__":
    main()
