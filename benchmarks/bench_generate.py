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

Usage::

    python benchmarks/bench_generate.py              # 2000 models per filter set
    python benchmarks/bench_generate.py --quick      # 200 models per filter set
    python benchmarks/bench_generate.py --n-samples 5000 --out docs/bench_generate.md
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 models per filter set")
    parser.add_argument("--n-samples", type=int, default=None, help="models per filter set")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="models per chunk (default: n_samples / (4 x workers))")
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
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
