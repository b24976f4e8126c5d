"""Importance-sampled reference posteriors of calibration mocks: the sampler or the mocks?

A calibration run of ``calibrate_sampler.py`` that falls short of nominal coverage has
two suspects: the sampler (posteriors too narrow) or the mocks (not drawn from the
prior and the likelihood's own noise model).  This script takes the sampler out.  For
each chosen mock it samples the same posterior, pi(y) proportional to N(y; 0, I) L(y) in
whitened prior coordinates y = Phi^-1(u) (as ``smc`` does), by importance sampling
from a defensive mixture

    q(y) = 0.1 N(y; 0, I) + 0.3 t_4(y; m, 2 S) + 0.6 (1/K) sum_k N(y; c_k, h^2 S)

where m and S are the mean and covariance of a pilot ``smc`` cloud (default settings,
float64 likelihood, its own seed), c_k K = 1,000 of its draws and h Scott's factor
K^(-1/(d+4)).  The prior term bounds every weight by 10 L / Z, so the estimate does
not rely on the pilot's tails: a region the pilot missed is still reached by the prior
and the heavy-tailed t, and weighted up there.  ``--draws`` draws of q, weighted by
N(y; 0, I) L(y) / q(y) (L: ``VectorisedLikelihood`` in float64, the fits' likelihood),
give the quantiles; the Kish effective sample size says how far to trust them.

Records are written in ``calibrate_sampler.py``'s format (median, half-width, in68,
in95), so ``compare_sbc_runs.py`` sets the reference beside a sampler's run of the
same mocks (width ratios) and prints both coverages:

    OPENBLAS_NUM_THREADS=1 python benchmarks/importance_reference.py \\
        runs/sbc_default/smc_default_1000 --mocks 0 1 2 --workers 2 \\
        --out runs/sbc_default/importance_reference
    python benchmarks/compare_sbc_runs.py runs/sbc_default/importance_reference \\
        runs/sbc_default/smc_default_1000
"""
import argparse
import concurrent.futures
import json
import math
import os
import sys
import time

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, multivariate_t

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from calibrate_sampler import mock_indices, mock_likelihood, reference_record  # noqa: E402

from prospect_emulator.fileio import atomic_path  # noqa: E402

MIXTURE = {"prior": 0.1, "t": 0.3, "kernels": 0.6}
T_DOF = 4
T_SCALE = 2.0   # the t component's scale matrix: this x the pilot's covariance
N_KERNELS = 1000
BLOCK = 50_000  # draws per likelihood call (bounds the memory of the kernel sums)


class DefensiveMixture:
    """The proposal q(y) above, built from a pilot cloud ``y`` (n, d)."""

    def __init__(self, cloud, rng):
        d = cloud.shape[1]
        self.d = d
        self.mean = cloud.mean(axis=0)
        self.cov = np.cov(cloud, rowvar=False)
        self.centres = cloud[rng.choice(len(cloud), size=min(N_KERNELS, len(cloud)),
                                        replace=False)]
        self.bandwidth = len(self.centres) ** (-1.0 / (d + 4))  # Scott's factor
        self.kernel_chol = np.linalg.cholesky(self.bandwidth ** 2 * self.cov)
        # the kernel sums in coordinates where the kernels are N(., I)
        self.white_centres = np.linalg.solve(self.kernel_chol, self.centres.T).T
        self.kernel_lognorm = (-0.5 * d * math.log(2 * math.pi)
                               - np.sum(np.log(np.diag(self.kernel_chol))))
        self.t = multivariate_t(loc=self.mean, shape=T_SCALE * self.cov, df=T_DOF)

    def sample(self, n, rng):
        counts = rng.multinomial(n, list(MIXTURE.values()))
        prior = rng.normal(size=(counts[0], self.d))
        heavy = self.t.rvs(size=counts[1], random_state=rng).reshape(-1, self.d)
        pick = self.centres[rng.integers(len(self.centres), size=counts[2])]
        kernels = pick + rng.normal(size=(counts[2], self.d)) @ self.kernel_chol.T
        y = np.concatenate([prior, heavy, kernels])
        return y[rng.permutation(len(y))]

    def logpdf(self, y):
        z = np.linalg.solve(self.kernel_chol, y.T).T
        sq = ((z * z).sum(1)[:, None] + (self.white_centres ** 2).sum(1)[None, :]
              - 2.0 * z @ self.white_centres.T)
        kernels = (self.kernel_lognorm - math.log(len(self.centres))
                   + logsumexp(-0.5 * np.maximum(sq, 0.0), axis=1))
        prior = multivariate_normal(mean=np.zeros(self.d)).logpdf(y)
        terms = np.stack([math.log(MIXTURE["prior"]) + prior,
                          math.log(MIXTURE["t"]) + self.t.logpdf(y),
                          math.log(MIXTURE["kernels"]) + kernels])
        return logsumexp(terms, axis=0)


def reference(record, n_draws, seed):
    """Weighted draws of the mock's posterior and their quantiles."""
    from prospect_emulator.fitting.quality import weighted_quantiles
    from prospect_emulator.fitting.smc import (effective_sample_size, run_tempered_smc,
                                               whitened_to_unit)
    like = mock_likelihood(record["settings"]["emulator"], record, record["settings"]["filters"],
                           nested=True)

    def lnlike_y(y):
        return like.lnlike(like.prior_transform(whitened_to_unit(y)))

    rng = np.random.default_rng([seed, record["index"]])
    pilot = run_tempered_smc(lnlike_y, like.ndim, rng)
    proposal = DefensiveMixture(pilot["y"], rng)
    thetas, ln_weights = [], []
    for start in range(0, n_draws, BLOCK):
        y = proposal.sample(min(BLOCK, n_draws - start), rng)
        lnl = lnlike_y(y)
        ln_prior = -0.5 * (y * y).sum(1) - 0.5 * like.ndim * math.log(2 * math.pi)
        ln_weights.append(np.where(np.isfinite(lnl), lnl + ln_prior - proposal.logpdf(y),
                                   -np.inf))
        thetas.append(like.prior_transform(whitened_to_unit(y)))
    theta, lw = np.concatenate(thetas), np.concatenate(ln_weights)
    w = np.exp(lw - lw.max())
    ess = float(effective_sample_size(lw))
    q = weighted_quantiles(theta, w, [0.025, 0.16, 0.5, 0.84, 0.975])
    truth = np.asarray(record["theta"])
    return {"median": q[2].tolist(), "halfwidth": (0.5 * (q[3] - q[1])).tolist(),
            "in68": ((truth >= q[1]) & (truth <= q[3])).tolist(),
            "in95": ((truth >= q[0]) & (truth <= q[4])).tolist(),
            "importance_ess": ess, "largest_weight": float(w.max() / w.sum()),
            "ncall": int(pilot["ncall"] + n_draws)}


def run_one(task):
    folder, index, n_draws, seed = task
    with open(os.path.join(folder, f"mock_{index:04d}.json")) as f:
        record = json.load(f)
    t0 = time.time()
    result = reference(record, n_draws, seed)
    return reference_record(record, result, f"importance reference ({n_draws} draws of a "
                            "defensive mixture around an smc pilot)", folder, time.time() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="calibrate_sampler.py folder whose mocks to use")
    p.add_argument("--mocks", type=int, nargs="+", metavar="I",
                   help="mock indices (default: --n-mocks of them from 0)")
    p.add_argument("--n-mocks", type=int, default=100)
    p.add_argument("--draws", type=int, default=1_000_000, help="proposal draws per mock")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    indices = mock_indices(args)
    todo = [i for i in indices
            if not os.path.exists(os.path.join(args.out, f"mock_{i:04d}.json"))]
    print(f"importance reference: {len(indices) - len(todo)} mocks done before, "
          f"{len(todo)} to do", flush=True)
    with concurrent.futures.ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_one, (args.folder, i, args.draws, args.seed)) for i in todo]
        for k, future in enumerate(concurrent.futures.as_completed(futures), 1):
            out = future.result()
            with atomic_path(os.path.join(args.out, f"mock_{out['index']:04d}.json")) as tmp, \
                    open(tmp, "w") as f:
                json.dump(out, f)
            print(f"{k}/{len(todo)}: mock {out['index']}, {out['seconds']:.0f} s, ESS "
                  f"{out['importance_ess']:.0f}, largest weight {out['largest_weight']:.3g}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
