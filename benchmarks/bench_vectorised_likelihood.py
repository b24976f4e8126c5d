"""Per-vector cost of the vectorised likelihood against Prospector's lnprobfn.

The shipped ``default`` emulator (15 inputs, 5 hidden layers of 256) with its
fitting model (14 free parameters) and the eq.-9 noise model (diagonal),
fitted to a 27-band COSMOS-like mock (:data:`prospect_emulator.data.COSMOS_FILTERS`).
For batches of 1, 100, 1,000 and 10,000 prior draws: the cost per parameter
vector of :class:`~prospect_emulator.prospector.vectorised.VectorisedLikelihood`
in float64 and float32, of its ``lnprob_and_grad`` (one vector), and of
``prospect.fitting.lnprobfn`` called once per vector (the reference).  Both
``nested=False`` (ln-posterior) and the likelihood for nested sampling
(``lnlike``) are timed.

Target (issue 13): <= 25 microseconds per vector in batches of >= 1,000.

Usage::

    python benchmarks/bench_vectorised_likelihood.py            # the table
    python benchmarks/bench_vectorised_likelihood.py --quick    # a fast smoke run
"""
import argparse
import os
import sys
import timeit
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402

BATCHES = (1, 100, 1000, 10000)
TARGET_US = 25.0


def problem(seed=0):
    """(model, obs, noise) of the default emulator and a 27-band mock."""
    from prospect.utils.obsutils import fix_obs
    from sedpy.observate import load_filters
    from prospect_emulator.data import COSMOS_FILTERS
    from prospect_emulator.prospector.model import EmulatedSpecModel
    from prospect_emulator.prospector.noise import EmulatorNoiseModel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EmulatedSpecModel.from_emulator("default")
    rng = np.random.default_rng(seed)
    truth = model.prior_transform(rng.uniform(0.3, 0.7, size=model.ndim))
    obs = {"filters": load_filters(list(COSMOS_FILTERS)), "wavelength": None, "spectrum": None}
    _, phot, _ = model.predict(truth, obs=obs)
    obs["maggies_unc"] = 0.1 * np.abs(phot)
    obs["maggies"] = phot + rng.normal(size=phot.size) * obs["maggies_unc"]
    return model, fix_obs(obs), EmulatorNoiseModel(model)


def per_vector_us(func, n, budget_s):
    """Best time per vector (microseconds) of ``func()`` evaluating n vectors,
    repeated within about ``budget_s`` seconds."""
    once = timeit.timeit(func, number=1)
    repeat = int(np.clip(budget_s / max(once, 1e-9), 3, 200))
    number = max(1, int(0.05 / max(once, 1e-9)))
    return min(timeit.repeat(func, number=number, repeat=max(3, repeat // number))) / number / n * 1e6


def run(quick=False):
    from prospect.fitting import lnprobfn
    from prospect_emulator.prospector.vectorised import VectorisedLikelihood
    model, obs, noise = problem()
    like64 = VectorisedLikelihood(model, obs, noise)
    like32 = VectorisedLikelihood(model, obs, noise, float32=True)
    rng = np.random.default_rng(1)
    budget = 0.3 if quick else 2.0
    theta = model.prior_transform(rng.uniform(size=(max(BATCHES), model.ndim)))
    rows = []
    for n in BATCHES:
        batch = theta[:n]
        rows.append([f"{n:,}",
                     f"{per_vector_us(lambda: like64(batch), n, budget):.1f}",
                     f"{per_vector_us(lambda: like32(batch), n, budget):.1f}",
                     f"{per_vector_us(lambda: like64.lnlike(batch), n, budget):.1f}",
                     f"{per_vector_us(lambda: like32.lnlike(batch), n, budget):.1f}"])
    single = theta[:200 if quick else 2000]
    state = {"i": 0}

    def stock_call():
        t = single[state["i"] % len(single)]
        state["i"] += 1
        return lnprobfn(t, model=model, obs=obs, sps=None, noise=(None, noise))

    def stock_nested():
        t = single[state["i"] % len(single)]
        state["i"] += 1
        return lnprobfn(t, model=model, obs=obs, sps=None, noise=(None, noise), nested=True)

    stock = per_vector_us(stock_call, 1, budget)
    stock_n = per_vector_us(stock_nested, 1, budget)
    grad = per_vector_us(lambda: like64.lnprob_and_grad(single[7]), 1, budget)
    return {"rows": rows, "stock": stock, "stock_nested": stock_n, "grad": grad,
            "float32_diff": like32.float32_max_mag_difference, "float32": like32.float32,
            "ndim": model.ndim, "n_bands": len(obs["filters"])}


def markdown(result, quick):
    lines = ["## Vectorised likelihood: cost per parameter vector", "",
             f"Default emulator (15 inputs, 5x256 GELU), {result['ndim']} free parameters, "
             f"{result['n_bands']} bands, eq.-9 diagonal noise; prior draws; best of repeats"
             f"{' (--quick run)' if quick else ''}. Target: <= {TARGET_US:g} us per vector in "
             "batches >= 1,000.", ""]
    lines += markdown_table(
        ["batch", "ln-posterior float64 (us)", "ln-posterior float32 (us)",
         "lnlike float64 (us)", "lnlike float32 (us)"],
        result["rows"], "rrrrr")
    lines += ["",
              f"- Prospector `lnprobfn`, one call per vector: {result['stock']:.1f} us "
              f"(nested=True: {result['stock_nested']:.1f} us)",
              f"- `lnprob_and_grad`, one vector (value + analytic gradient, float64): "
              f"{result['grad']:.1f} us",
              f"- float32 forward pass used: {result['float32']}; largest float32-float64 "
              f"difference on 2,000 prior draws: {result['float32_diff']:.2e} arsinh mag", "",
              "Machine:", ""]
    lines += machine_lines()
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short timings (a smoke run)")
    parser.add_argument("--out", help="also write the Markdown report here")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit the BLAS threads (needs threadpoolctl); on a busy 2-core "
                             "machine 2 OpenBLAS threads make small batches erratic")
    args = parser.parse_args(argv)
    if args.blas_threads is None:
        emit(markdown(run(args.quick), args.quick), args.out)
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        emit(markdown(run(args.quick), args.quick), args.out)


if __name__ == "__main__":
    main()
