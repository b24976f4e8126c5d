"""Long-MCMC reference posteriors of calibration mocks, to judge the nested samplers.

For each chosen mock of a ``calibrate_sampler.py`` folder, two emcee ensembles
(differential evolution 0.8 + snooker 0.2, emcee's recipe for awkward
posteriors) run on the same ln-posterior as every sampler
(:class:`~prospect_emulator.prospector.VectorisedLikelihood`: the model's priors,
the emulator and eq. 9), one started in a small ball around the truth and one
around the folder's posterior median.  The second halves of both chains give
the reference; the two ensembles' largest median difference (in their
half-widths) says whether it converged (both starts forget where they began).
Records are written in ``calibrate_sampler.py``'s format, so
``compare_sbc_runs.py`` sets them beside the nested samplers' fits.

    python benchmarks/mcmc_reference.py runs/sbc_nss --mocks 62 71 --out runs/sbc_mcmc
    python benchmarks/compare_sbc_runs.py runs/sbc_mcmc runs/sbc_nss runs/sbc_nss_thorough

A diagnostic, not a sampler: it starts at the truth and proves nothing about
mocks where its two ensembles disagree.  Nor is it a reference for the widths:
on mocks 0-15 its half-widths were 0.91 +- 0.01 of a converged ``smc`` run's
(192,000 particles, chains of 960 states; ``docs/samplers/smc_widths.md``), although
its two starts agreed to 0.06-0.34 half-widths: ensembles started in a small
ball take far longer than 20,000 steps to spread to the posterior's width.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from calibrate_sampler import mock_likelihood, reference_record  # noqa: E402

from prospect_emulator.fileio import atomic_path  # noqa: E402


def reference(record, steps, walkers, seed):
    """Quantiles of the pooled chains and the two starts' disagreement."""
    import emcee
    lnpost = mock_likelihood(record["settings"]["emulator"], record,
                             record["settings"]["filters"])
    half = np.asarray(record["halfwidth"])
    rng = np.random.default_rng([seed, record["index"]])
    chains, accepted = [], []
    taus = []
    for name, centre in (("truth", np.asarray(record["theta"])),
                         ("median", np.asarray(record["median"]))):
        ball = centre + 0.05 * half * rng.normal(size=(1000 * walkers, len(centre)))
        start = ball[np.isfinite(lnpost(ball))][:walkers]
        if len(start) < walkers:
            raise SystemExit(f"mock {record['index']}: only {len(start)} of {len(ball)} points "
                             f"around the {name} have a finite ln posterior; {walkers} needed")
        sampler = emcee.EnsembleSampler(walkers, lnpost.ndim, lnpost, vectorize=True,
                                        moves=[(emcee.moves.DEMove(), 0.8),
                                               (emcee.moves.DESnookerMove(), 0.2)])
        sampler.random_state = np.random.RandomState(rng.integers(2 ** 32)).get_state()
        with np.errstate(invalid="ignore"):
            sampler.run_mcmc(start, steps, progress=False)
        chains.append(sampler.get_chain(discard=steps // 2, flat=True))
        accepted.append(float(np.mean(sampler.acceptance_fraction)))
        taus.append(float(np.max(sampler.get_autocorr_time(discard=steps // 2, quiet=True))))
    q = [np.percentile(c, [16, 50, 84], axis=0) for c in chains]
    mean_halfwidth = 0.25 * (q[0][2] - q[0][0] + q[1][2] - q[1][0])
    disagreement = np.abs(q[0][1] - q[1][1]) / mean_halfwidth
    pooled = np.percentile(np.concatenate(chains), [2.5, 16, 50, 84, 97.5], axis=0)
    truth = np.asarray(record["theta"])
    return {"median": pooled[2].tolist(), "halfwidth": (0.5 * (pooled[3] - pooled[1])).tolist(),
            "in68": ((truth >= pooled[1]) & (truth <= pooled[3])).tolist(),
            "in95": ((truth >= pooled[0]) & (truth <= pooled[4])).tolist(),
            "starts_disagree_halfwidths": float(disagreement.max()),
            "starts_disagree_where": record["labels"][int(np.argmax(disagreement))],
            "acceptance": accepted, "ncall": 2 * steps * walkers,
            "autocorr_time_steps": taus,
            "kept_steps_per_autocorr_time": [(steps - steps // 2) / t for t in taus]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="calibrate_sampler.py folder whose mocks (and medians) to use")
    p.add_argument("--mocks", type=int, nargs="+", required=True, metavar="I")
    p.add_argument("--steps", type=int, default=20000, help="steps per ensemble")
    p.add_argument("--walkers", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for i in args.mocks:
        with open(os.path.join(args.folder, f"mock_{i:04d}.json")) as f:
            record = json.load(f)
        t0 = time.time()
        result = reference(record, args.steps, args.walkers, args.seed)
        out = reference_record(record, result, f"emcee DE reference ({args.steps} steps x "
                               f"{args.walkers} walkers x 2 starts)", args.folder,
                               time.time() - t0)
        with atomic_path(os.path.join(args.out, f"mock_{i:04d}.json")) as tmp, open(tmp, "w") as f:
            json.dump(out, f)
        print(f"mock {i}: {out['seconds']:.0f} s; the two starts differ by at most "
              f"{result['starts_disagree_halfwidths']:.2f} half-widths "
              f"({result['starts_disagree_where']}); kept chains of "
              + " and ".join(f"{n:.0f}" for n in result["kept_steps_per_autocorr_time"])
              + " autocorrelation times", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
