#!/usr/bin/env python
"""Training-set generation throughput: models per second on 2 cores.

Runs :func:`prospect_emulator.training.generate_training_set` with the
``default`` preset on :class:`prospect_emulator.sources.BagpipesBasis`
(through ``prospect.models.SpecModel.predict``), 2 worker processes, for

* 16 filters: GALEX FUV/NUV, SDSS ugriz, 2MASS JHKs, IRAC 1-4, MIPS 24, WISE W3;
* 137 real sedpy filters (the paper's filter count): the first 137 of
  sedpy's list after dropping duplicate curves (JWST module A/B copies,
  VISTA ``_FILTER`` and Gaia ``dr2rev`` variants).

Two rates per filter set:

* end to end: models / wall time of the whole call (start-up of the workers
  and their SPS included, file writing included);
* steady: 2 x models / summed worker compute time, i.e. what a long run
  reaches once the workers are up.

With ``--compare-batched`` it instead measures, side by side in one run, the
two ways of computing a training set's photometry on the same draws of the
``default`` preset and the 81 default filters
(``prospect_emulator.data.default_filter_names()``), each in ``--workers``
forked worker processes (BLAS limited to one thread per worker), chunks of
``--chunk-size`` models:

* per model: ``model.predict(theta, obs, sps)`` row by row (what
  ``generate`` runs per row, with the package's
  :class:`~prospect_emulator.sources.filter_projection.FilterProjection`);
* batched: :class:`prospect_emulator.sources.batched.BatchedPhotometry` on
  each chunk;

and reports models/s (wall time of the pool's work, start-up excluded, and
the steady rate from the workers' compute time), the ratio, and the largest
relative difference of the two paths' photometry.

Usage::

    python benchmarks/bench_generate.py              # 2000 models per filter set
    python benchmarks/bench_generate.py --quick      # 200 models per filter set
    python benchmarks/bench_generate.py --n-samples 5000 --out docs/bench_generate.md
    python benchmarks/bench_generate.py --compare-batched            # 2000 models per path
    python benchmarks/bench_generate.py --compare-batched --quick    # 400 models per path
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import FILTERS_16, emit, machine_lines, markdown_table  # noqa: E402


def filters_137():
    """137 distinct real sedpy filter names."""
    from sedpy.observate import list_available_filters
    names = [n for n in list_available_filters()
             if not n.startswith(("jwst_moda_", "jwst_modb_")) and not n.endswith(("_FILTER", "dr2rev"))]
    if len(names) < 137:
        raise SystemExit(f"sedpy ships only {len(names)} distinct filters")
    return names[:137]


def run_one(filters, n_samples, workers, chunk_size, seed=1):
    from prospect_emulator.training import generate_training_set
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = generate_training_set("default", filters, n_samples, seed,
                                        os.path.join(tmp, "bench.h5"), workers=workers,
                                        chunk_size=chunk_size, progress=False)
        wall = time.perf_counter() - t0
    steady = (workers * summary.n_computed / summary.worker_seconds
              if summary.worker_seconds > 0 else float("nan"))
    return {"n": summary.n_computed, "failed": summary.n_failed, "wall": wall,
            "end_to_end": summary.n_computed / wall, "steady": steady}


# ---------------------------------------------------------------------------
# --compare-batched: per-model path and batched path side by side
# ---------------------------------------------------------------------------
_STATE = {}


def _init_compare_worker():
    """Forked worker: one BLAS thread (the pool supplies the parallelism)."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1, user_api="blas")
    except ImportError:   # the BLAS keeps its threads; the report says how many
        pass


def _per_model_chunk(rows):
    import numpy as np
    model, sps, filters = _STATE["model"], _STATE["sps"], _STATE["projection"]
    obs = {"filters": filters, "wavelength": None, "spectrum": None}
    theta = _STATE["theta"][rows]
    t0 = time.process_time()
    maggies = np.empty((len(theta), len(filters)))
    mfrac = np.empty(len(theta))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for i, row in enumerate(theta):
            _, maggies[i], mfrac[i] = model.predict(row, obs=obs, sps=sps)
    return rows, maggies, mfrac, time.process_time() - t0


def _batched_chunk(rows):
    batch = _STATE["batch"]
    t0 = time.process_time()
    maggies, mfrac = batch.predict(_STATE["theta"][rows])
    return rows, maggies, mfrac, time.process_time() - t0


def _run_pool(function, chunks, workers):
    """(maggies, mfrac, wall s, summed worker CPU s) of ``function`` over the chunks."""
    import multiprocessing
    import numpy as np
    n = sum(c.stop - c.start for c in chunks)
    maggies, mfrac = np.empty((n, len(_STATE["projection"]))), np.empty(n)
    with multiprocessing.get_context("fork").Pool(workers, _init_compare_worker) as pool:
        pool.map(function, [slice(0, 2)] * workers)     # warm up: first-call caches
        t0 = time.perf_counter()
        results = pool.map(function, chunks, chunksize=1)
        wall = time.perf_counter() - t0
    cpu = 0.0
    for rows, m, f, seconds in results:
        maggies[rows], mfrac[rows], cpu = m, f, cpu + seconds
    return maggies, mfrac, wall, cpu


def compare_batched(n, workers, chunk, out=None, seed=1):
    """Per-model and batched photometry of the same n draws, side by side."""
    import numpy as np
    from sedpy.observate import load_filters
    from prospect_emulator.data import default_filter_names
    from prospect_emulator.definition.presets import get_preset
    from prospect_emulator.sources import BagpipesBasis
    from prospect_emulator.sources.batched import BatchedPhotometry
    from prospect_emulator.sources.filter_projection import FilterProjection

    config = get_preset("default")
    sps = BagpipesBasis()
    projection = FilterProjection(load_filters(default_filter_names()))
    _STATE.update(sps=sps, model=config.build_model(sps), projection=projection,
                  theta=config.sample(n, seed))
    _STATE["batch"] = BatchedPhotometry(config.build_model(sps), sps, projection)
    chunks = [slice(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    rows = []
    for label, function in (("per model (model.predict)", _per_model_chunk),
                            ("batched (BatchedPhotometry)", _batched_chunk)):
        print(f"bench_generate: {n} models, {label}, {workers} workers ...",
              file=sys.stderr, flush=True)
        maggies, mfrac, wall, cpu = _run_pool(function, chunks, workers)
        rows.append((label, maggies, mfrac, wall, cpu))
    (_, ref, ref_mfrac, *_), (_, got, got_mfrac, *_) = rows
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(got / ref - 1.0)
    # fluxes below 1e-290 maggies are subnormal-level floats (few significant digits)
    rel[(got == ref) | (np.isnan(got) & np.isnan(ref)) | (np.abs(got - ref) < 1e-290)] = 0.0
    worst = max(float(np.nanmax(rel)), float(np.max(np.abs(got_mfrac / ref_mfrac - 1.0))))
    rates = [n / r[3] for r in rows]
    lines = [f"Training-set photometry, preset `default` on BagpipesBasis, "
             f"{len(projection)} default filters, {n} models per path, {workers} workers, "
             f"chunks of {chunk}; both paths in this run, on the same draws (seed {seed})", ""]
    lines += machine_lines() + [""]
    lines += markdown_table(
        ["path", "models", "wall (s)", "models/s", "steady (models/s)"],
        [[label, n, f"{wall:.2f}", f"{n / wall:.0f}", f"{workers * n / cpu:.0f}"]
         for label, _, _, wall, cpu in rows], "lrrrr")
    lines += ["", f"Batched / per model: {rates[1] / rates[0]:.1f}x (models/s); steady "
              f"{rows[0][4] / rows[1][4]:.1f}x. Largest relative difference of the photometry "
              f"(above 1e-290 maggies) and mfrac: {worst:.1e}."]
    emit(lines, out)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 models per filter set")
    parser.add_argument("--n-samples", type=int, default=None, help="models per filter set")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="models per chunk (default: n_samples / (4 x workers))")
    parser.add_argument("--out", help="also write the Markdown table to this file")
    parser.add_argument("--compare-batched", action="store_true",
                        help="per-model and batched photometry side by side (81 default filters)")
    args = parser.parse_args(argv)
    if args.compare_batched:
        n = args.n_samples or (400 if args.quick else 2000)
        chunk = args.chunk_size or max(10, min(500, n // (4 * args.workers)))
        return compare_batched(n, args.workers, chunk, args.out)
    n = args.n_samples or (200 if args.quick else 2000)
    chunk = args.chunk_size or max(10, n // (4 * args.workers))

    rows = []
    for label, filters in (("16", FILTERS_16), ("137", filters_137())):
        print(f"bench_generate: {n} models, {label} filters, {args.workers} workers ...",
              file=sys.stderr, flush=True)
        r = run_one(filters, n, args.workers, chunk)
        rows.append((label, r))

    lines = [f"Training-set generation, preset `default` on BagpipesBasis, {args.workers} workers, "
             f"{n} models per row, chunk size {chunk}", ""] + machine_lines() + [""]
    lines += markdown_table(
        ["filters", "models", "failed", "wall (s)", "end to end (models/s)", "steady (models/s)"],
        [[label, r["n"], r["failed"], f"{r['wall']:.1f}", f"{r['end_to_end']:.1f}",
          f"{r['steady']:.1f}"] for label, r in rows], "rrrrrr")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
