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

Usage::

    python benchmarks/bench_catalog_scaling.py                       # 16 objects, nlive 200
    python benchmarks/bench_catalog_scaling.py --n-objects 8 --nlive 30 --n-effective 100
    python benchmarks/bench_catalog_scaling.py --out docs/catalog_scaling_run.md
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
                    nested_kwargs=nested_kwargs, executor=executor, progress=False, seed=1,
                    stream=quiet)
        warm = time.perf_counter() - t0 - started
        out = os.path.join(tmp, f"fits{n_workers}")
        t1 = time.perf_counter()
        fit_catalog(catalog, out, emulator_path, nested_kwargs=nested_kwargs,
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
    args = parser.parse_args(argv)
    from prospect_emulator.data import SHIPPED_EMULATORS
    emulator_path = SHIPPED_EMULATORS.get(args.emulator, args.emulator)
    counts = [int(w) for w in args.workers.split(",")]
    nested_kwargs = {"nested_nlive_init": args.nlive, "nested_target_n_effective": args.n_effective}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        catalog = mock_catalog(os.path.join(tmp, "catalog.csv"), args.n_objects, emulator_path)
        for n in counts:
            warmup = mock_catalog(os.path.join(tmp, f"warmup{n}.csv"), n, emulator_path)
            print(f"bench_catalog_scaling: {n} worker(s), {args.n_objects} objects ...",
                  file=sys.stderr, flush=True)
            rows.append(measure(n, catalog, warmup, tmp, emulator_path, nested_kwargs))
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
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
