#!/usr/bin/env python
"""Catalogue fits on Dask: one worker against two on the same objects, and the engine's overhead.

In one run, the same mock catalogue (noise-free photometry of the shipped
``parametric`` emulator, 10% uncertainties, five SDSS bands by default) is
fitted by :func:`~prospect_emulator.fitting.catalog.fit_catalog` on an
embedded Dask ``LocalCluster`` of 1 and then of 2 worker processes (each into
a fresh output folder, seed fixed, so both do the same work).  Before the
timed catalogue, each cluster fits a warm-up catalogue of one object per
worker, so every worker has imported Prospector and loaded the emulator.

Reported per number of workers:

* cluster start-up and warm-up (s, once per run of the command);
* wall time of the catalogue and objects per second;
* cost per object = wall x workers / objects (core-seconds);
* mean task time = the tasks' own wall time (fit + posterior summary +
  writing the files, measured inside the worker, ``wall_seconds`` of the
  records) and mean sampling time (``seconds``: dynesty alone);
* engine overhead = cost per object / mean task time - 1: what scheduling,
  transfers, the parent's bookkeeping and idle workers add to each fit;
* speed-up of 2 workers over 1 (target >= 1.8x; needs 2 otherwise idle cores).

With ``--amortized POST.h5`` it also measures amortized posteriors through the
same engine (``fit_catalog_amortized``, one task per chunk of objects) on a
catalogue simulated from the posterior's own model and noise model
(``--amortized-objects``, ``--chunk-size``): cost per object and speed-up,
after a warm-up chunk per worker (JAX import, flow load and compilation).

Usage::

    python benchmarks/bench_catalog_scaling.py                       # 16 objects, nlive 200
    python benchmarks/bench_catalog_scaling.py --n-objects 8 --nlive 30 --n-effective 100
    python benchmarks/bench_catalog_scaling.py --out docs/catalog_scaling_run.md
    python benchmarks/bench_catalog_scaling.py --amortized POST.h5 --amortized-objects 20000
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402

FILTERS = ["sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0"]


def mock_catalog(path, n_objects, emulator_path):
    """Noise-free photometry of the emulator's default parameters at 5 redshifts, 10% errors."""
    from astropy.table import Table
    from prospect_emulator.fitting.models import build_fitting_model
    from prospect_emulator.fitting.run import make_obs
    from prospect_emulator.runtime import load_emulator
    emulator = load_emulator(emulator_path).select(FILTERS)
    rows = []
    for i in range(n_objects):
        zred = 0.3 + 0.1 * (i % 5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_fitting_model(emulator, zred=zred)
        obs = make_obs(FILTERS, np.ones(len(FILTERS)), np.ones(len(FILTERS)))
        phot = model.predict(model.theta.copy(), obs=obs)[1]
        rows.append([f"obj{i:05d}", zred] + [v for p in phot for v in (float(p), 0.1 * float(p))])
    Table(rows=rows, names=["id", "z"] + [f"{k}_{f}" for f in FILTERS for k in ("f", "e")]
          ).write(path, overwrite=True)
    return path


def records(outdir):
    found = []
    for name in os.listdir(outdir):
        if name.endswith(".json") and not name.startswith("."):
            with open(os.path.join(outdir, name)) as f:
                found.append(json.load(f))
    return found


def measure(n_workers, catalog, warmup, tmp, emulator_path, nested_kwargs):
    from prospect_emulator.fitting.catalog import fit_catalog
    from prospect_emulator.fitting.executor import DaskExecutor
    t0 = time.perf_counter()
    with DaskExecutor.local(n_workers=n_workers, dashboard_address=":0") as executor:
        started = time.perf_counter() - t0
        quiet = open(os.devnull, "w")
        fit_catalog(warmup, os.path.join(tmp, f"warmup{n_workers}"), emulator_path,
                    nested_kwargs=nested_kwargs, sampler="dynesty", executor=executor,
                    progress=False, seed=1, stream=quiet)
        warm = time.perf_counter() - t0 - started
        out = os.path.join(tmp, f"fits{n_workers}")
        t1 = time.perf_counter()
        fit_catalog(catalog, out, emulator_path, nested_kwargs=nested_kwargs, sampler="dynesty",
                    executor=executor, progress=False, seed=1, stream=quiet)
        wall = time.perf_counter() - t1
    found = records(out)
    ok = [r for r in found if r["status"] == "ok"]
    task = statistics.fmean(r["wall_seconds"] for r in ok)
    sampling = statistics.fmean(r["seconds"] for r in ok)
    cost = wall * n_workers / len(found)
    return {"workers": n_workers, "objects": len(found), "ok": len(ok), "start": started,
            "warmup": warm, "wall": wall, "rate": len(found) / wall, "cost": cost,
            "task": task, "sampling": sampling, "overhead": cost / task - 1.0}


def amortized_catalog(path, posterior_path, n_objects, seed):
    """Photometry simulated from the posterior's prior and noise model, as a catalogue."""
    from prospect_emulator.amortized import AmortizedPosterior, Observations, simulate
    post = AmortizedPosterior.load(posterior_path)
    sims = simulate(post.model, post.noise_model, n_objects, seed=seed)
    obs = Observations(post.filter_names, sims.maggies, sims.maggies_unc, sims.zred,
                       [f"sim{i:07d}" for i in range(n_objects)])
    obs.as_table().write(path, overwrite=True)
    return path, len(post.filter_names)


def measure_amortized(n_workers, catalog, warmup, tmp, posterior_path, chunk_size, n_samples):
    from prospect_emulator.amortized import fit_catalog_amortized
    from prospect_emulator.fitting.executor import DaskExecutor
    quiet = open(os.devnull, "w")
    t0 = time.perf_counter()
    with DaskExecutor.local(n_workers=n_workers, dashboard_address=":0") as executor:
        started = time.perf_counter() - t0
        fit_catalog_amortized(warmup, posterior_path, os.path.join(tmp, f"awarm{n_workers}"),
                              n_samples=n_samples, chunk_size=chunk_size, executor=executor,
                              progress=False, stream=quiet)
        warm = time.perf_counter() - t0 - started
        t1 = time.perf_counter()
        table = fit_catalog_amortized(catalog, posterior_path,
                                      os.path.join(tmp, f"amortized{n_workers}"),
                                      n_samples=n_samples, chunk_size=chunk_size,
                                      executor=executor, progress=False, stream=quiet)
        wall = time.perf_counter() - t1
    n = len(table)
    return {"workers": n_workers, "objects": n, "ok": int(sum(s == "ok" for s in table["status"])),
            "start": started, "warmup": warm, "wall": wall, "rate": n / wall,
            "cost": wall * n_workers / n}


def amortized_lines(args, tmp):
    """The amortized section of the report: one and two workers, chunks as tasks."""
    catalog, n_bands = amortized_catalog(os.path.join(tmp, "amortized.ecsv"), args.amortized,
                                         args.amortized_objects, seed=11)
    rows = []
    for n in [int(w) for w in args.workers.split(",")]:
        warmup, _ = amortized_catalog(os.path.join(tmp, f"awarm{n}.ecsv"), args.amortized,
                                      n * args.chunk_size, seed=12)
        print(f"bench_catalog_scaling: amortized, {n} worker(s), {args.amortized_objects} "
              "objects ...", file=sys.stderr, flush=True)
        rows.append(measure_amortized(n, catalog, warmup, tmp, args.amortized, args.chunk_size,
                                      args.n_samples))
    base = rows[0]
    table = [[r["workers"], f"{r['ok']}/{r['objects']}", f"{r['start']:.1f}",
              f"{r['warmup']:.1f}", f"{r['wall']:.1f}", f"{r['rate']:.3g}",
              f"{1e3 * r['cost']:.2f}", f"{base['wall'] / r['wall']:.2f}x"] for r in rows]
    lines = ["", f"Amortized posteriors through the same engine (`--amortized "
             f"{os.path.basename(args.amortized)} --amortized-objects {args.amortized_objects} "
             f"--chunk-size {args.chunk_size} --n-samples {args.n_samples}`): {n_bands} bands, "
             f"one task per chunk of {args.chunk_size} objects, {args.n_samples} draws per object "
             "with derived quantities and the out-of-support checks:", ""]
    lines += markdown_table(["workers", "ok", "start-up (s)", "warm-up (s)", "wall (s)",
                             "objects/s", "cost per object (core-ms)",
                             f"speed-up vs {base['workers']}"], table, "rrrrrrrr")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-objects", type=int, default=16, help="objects in the catalogue")
    parser.add_argument("--nlive", type=int, default=200, help="dynesty live points")
    parser.add_argument("--n-effective", type=int, default=2000,
                        help="dynesty target effective sample size")
    parser.add_argument("--workers", default="1,2",
                        help="comma-separated worker counts to compare (default 1,2)")
    parser.add_argument("--emulator", default="parametric",
                        help="emulator file or shipped name (default parametric)")
    parser.add_argument("--note", default="", help="a line added under the machine description")
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    parser.add_argument("--amortized", default=None, metavar="POST.h5",
                        help="also measure amortized posteriors of this file")
    parser.add_argument("--amortized-objects", type=int, default=20000)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--skip-exact", action="store_true", help="amortized part only")
    args = parser.parse_args(argv)
    from prospect_emulator.data import SHIPPED_EMULATORS
    emulator_path = SHIPPED_EMULATORS.get(args.emulator, args.emulator)
    counts = [int(w) for w in args.workers.split(",")]
    nested_kwargs = {"nested_nlive_init": args.nlive, "nested_target_n_effective": args.n_effective}
    rows, extra = [], []
    with tempfile.TemporaryDirectory() as tmp:
        catalog = mock_catalog(os.path.join(tmp, "catalog.csv"), args.n_objects, emulator_path)
        for n in counts if not args.skip_exact else ():
            warmup = mock_catalog(os.path.join(tmp, f"warmup{n}.csv"), n, emulator_path)
            print(f"bench_catalog_scaling: {n} worker(s), {args.n_objects} objects ...",
                  file=sys.stderr, flush=True)
            rows.append(measure(n, catalog, warmup, tmp, emulator_path, nested_kwargs))
        if args.amortized:
            extra = amortized_lines(args, tmp)
    if not rows:
        emit(machine_lines() + extra, args.out)
        return 0
    base = rows[0]
    table = [[r["workers"], f"{r['ok']}/{r['objects']}", f"{r['start']:.1f}", f"{r['warmup']:.1f}",
              f"{r['wall']:.1f}", f"{r['rate']:.3g}", f"{r['cost']:.2f}", f"{r['task']:.2f}",
              f"{r['sampling']:.2f}", f"{100 * r['overhead']:+.1f}%",
              f"{base['wall'] / r['wall']:.2f}x"] for r in rows]
    lines = [f"Catalogue fits on a local Dask cluster (`benchmarks/bench_catalog_scaling.py "
             f"--n-objects {args.n_objects} --nlive {args.nlive} --n-effective "
             f"{args.n_effective} --workers {args.workers}`), emulator `{args.emulator}`, "
             f"{len(FILTERS)} bands, one task per object, dynesty seed 1:", ""]
    lines += machine_lines()
    if args.note:
        lines += [f"- note: {args.note}"]
    lines += [""]
    lines += markdown_table(
        ["workers", "ok", "start-up (s)", "warm-up (s)", "wall (s)", "objects/s",
         "cost per object (core-s)", "task (s)", "sampling (s)", "engine overhead",
         f"speed-up vs {base['workers']}"],
        table, "rrrrrrrrrrr")
    emit(lines + extra, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
