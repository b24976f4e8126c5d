"""Likelihood calls per second of a catalogue fit's worker pool, with the
workers' BLAS on one thread (``fitting_pool``) against the BLAS default.

Every worker evaluates ``prospect.fitting.lnprobfn`` (dynesty's mode,
``nested=True``) of the shipped default emulator on the bundled example
galaxy at prior draws, as a catalogue fit does; the table gives the calls per
second summed over the workers.  With one fit per core, BLAS threads beyond
one per process only compete for the cores.

Usage::

    python benchmarks/bench_fitting_pool.py [--workers 2] [--calls 20000]
"""
import argparse
import multiprocessing
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402


def likelihood_calls_per_second(n_calls):
    """lnprobfn calls per second in this process (prior draws, nested=True)."""
    import numpy as np
    from prospect.fitting import lnprobfn
    from prospect_emulator import EmulatedSpecModel, EmulatorNoiseModel, default_emulator
    from prospect_emulator.data import EXAMPLE_GALAXY_PATH
    from prospect_emulator.fitting.catalog import CatalogColumns, read_catalog
    from prospect_emulator.fitting.models import fitting_model_params
    from prospect_emulator.fitting.run import make_obs
    emu = default_emulator()
    (rec,), filters = read_catalog(EXAMPLE_GALAXY_PATH, CatalogColumns(), emu.filter_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EmulatedSpecModel(fitting_model_params(rec["zred"]), emulator=emu.select(filters))
    noise = (None, EmulatorNoiseModel(model))
    obs = make_obs(filters, rec["maggies"], rec["maggies_unc"])
    thetas = model.prior_transform(np.random.default_rng(os.getpid()).uniform(
        size=(1000, model.ndim)))
    for theta in thetas[:200]:  # warm up
        lnprobfn(theta, model=model, obs=obs, sps=None, noise=noise, nested=True)
    t0 = time.perf_counter()
    for i in range(n_calls):
        lnprobfn(thetas[i % len(thetas)], model=model, obs=obs, sps=None, noise=noise,
                 nested=True)
    return n_calls / (time.perf_counter() - t0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calls", type=int, default=20000, help="likelihood calls per worker")
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    from prospect_emulator.fitting.catalog import fitting_pool
    rows = []
    for label, make_pool in [
            ("spawned workers, BLAS default threads",
             lambda: multiprocessing.get_context("spawn").Pool(args.workers)),
            ("fitting_pool: one BLAS thread per worker",
             lambda: fitting_pool(args.workers, None))] * 2:
        with make_pool() as pool:
            rates = pool.map(likelihood_calls_per_second, [args.calls] * args.workers)
        rows.append([label, f"{sum(rates):.0f}"])
        print(f"{label}: {sum(rates):.0f} calls/s", file=sys.stderr)
    lines = machine_lines() + [
        f"- {args.workers} worker processes, {args.calls} lnprobfn calls each (shipped default "
        "emulator, example galaxy, nested=True); each pool set-up twice, in turn", ""]
    lines += markdown_table(["pool", "likelihood calls per second (all workers)"], rows, "lr")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
