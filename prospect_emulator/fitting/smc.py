"""Waste-free sequential Monte Carlo with adaptive tempering, in NumPy (issue 13).

A cloud of particles moves from the prior to the posterior through the
tempered distributions

    pi_beta(y)  proportional to  N(y; 0, I) L(theta(y))^beta,   0 <= beta <= 1,

in the whitened prior coordinates y = Phi^-1(u) of the blackjax nested
sampler (u the unit cube of Prospector's ``prior_transform``, Phi the
standard-normal CDF), where the prior is exactly N(0, I).  Each stage

1. picks the next beta so that the effective sample size of the incremental
   weights L^(beta' - beta) is ``ess_fraction`` x the particles (bisection);
2. resamples ``n_particles / chain_length`` ancestors by those weights;
3. runs a Metropolis chain of ``chain_length`` states from each ancestor under
   pi_beta', proposing differential-evolution moves (the difference of two
   particles of the weighted cloud; ter Braak 2006) or a Gaussian random walk
   with the cloud's covariance, the step scaled towards ``target_acceptance``,
   and keeps *every* state (Dau & Chopin 2022, "Waste-free sequential Monte
   Carlo", JRSS B 84, 114).

At beta = 1 the kept states are equally weighted posterior draws; one more
move at beta = 1 with long chains (``final_chain_length``) then decorrelates
them from the tempering path.  The
likelihood is evaluated for all chains at once (one batched call per
Metropolis step), which is what makes it fast with
:class:`~prospect_emulator.prospector.VectorisedLikelihood`.  The evidence is
the product of the stages' mean incremental weights (times the share of prior
draws inside the likelihood's support).

References: Del Moral, Doucet & Jasra 2006 (SMC samplers); Jasra et al. 2011
(adaptive tempering by the ESS); Chopin & Papaspiliopoulos 2020, ch. 17.
"""
import logging
import math

import numpy as np
from scipy.special import logsumexp, ndtr

from ..errors import EmulatorError

__all__ = ["run_tempered_smc", "SMCError", "whitened_to_unit", "systematic_resample",
           "effective_sample_size", "DEFAULTS"]

logger = logging.getLogger(__name__)

#: u = Phi(y) is kept inside [UNIT_EPS, 1 - UNIT_EPS] (y > 8.3 rounds to 1 and very
#: negative y underflow towards 0, where an unbounded prior's transform is infinite).
UNIT_EPS = 1e-16


#: Default settings, chosen by the posterior widths of 16 prior-drawn mocks of the
#: 14-parameter default model against a converged run (4x these particles and chain
#: length, 8x the final move), by simulation-based calibration on 300 mocks and by
#: seed-to-seed agreement on the example galaxy (docs/samplers.md, "The default:
#: tempered SMC").
DEFAULTS = {
    "n_particles": 48000,     # particles per tempering stage (every state kept: waste-free)
    "chain_length": 240,      # Metropolis states per resampled ancestor (200 chains)
    "ess_fraction": 0.3,      # ESS kept by each tempering step / particles
    "target_acceptance": 0.3,  # the proposal's scale is adapted towards this
    "proposal": "de",         # "de": differential evolution; "rw": Gaussian random walk
    "final_chain_length": 500,  # one more move at beta = 1 with chains this long
    "final_chains": None,     # chains of that move (None: as many as in each stage)
    "max_samples": 4000,      # draws returned (each chain's states thinned evenly)
    "max_stages": 200,
}


class SMCError(EmulatorError):
    """The sequential Monte Carlo run could not reach the posterior (too few
    prior draws inside the likelihood's support, or ``max_stages`` reached)."""


def whitened_to_unit(y):
    """u = Phi(y), kept inside (0, 1): the unit-cube coordinates of whitened ``y``."""
    return np.clip(ndtr(y), UNIT_EPS, 1.0 - UNIT_EPS)


def _next_beta(lnlike, beta, n_target):
    """The largest beta' <= 1 whose incremental weights L^(beta' - beta) keep an
    effective sample size of at least ``n_target`` (bisection on beta' - beta)."""
    centred = lnlike - lnlike.max()

    def ess(delta):
        return float(effective_sample_size(delta * centred))

    if ess(1.0 - beta) >= n_target:
        return 1.0
    lo, hi = 0.0, 1.0 - beta
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ess(mid) >= n_target else (lo, mid)
    return beta + max(lo, 1e-12)


def effective_sample_size(ln_weights):
    """Kish's effective sample size of each row of ln-weights.

    Parameters
    ----------
    ln_weights : ndarray, shape (..., n)
        Unnormalised ln-weights; -inf for draws of zero weight.

    Returns
    -------
    ndarray, shape (...)
        ``(sum w)^2 / sum w^2``, between 1 and n (0 where every weight is zero).
    """
    ln_weights = np.asarray(ln_weights, dtype=float)
    top = np.max(ln_weights, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.exp(ln_weights - top)
    total = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, total ** 2 / (w * w).sum(axis=-1), 0.0)


def systematic_resample(weights, n, rng):
    """``n`` indices (ascending) by systematic resampling of normalised ``weights``."""
    positions = (rng.uniform() + np.arange(n)) / n
    cumulative = np.cumsum(weights)
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, positions)


def _weighted_cholesky(y, weights):
    """Cholesky factor of the weighted covariance of ``y`` (n, d), made positive definite."""
    mean = weights @ y
    d = y - mean
    cov = (d * weights[:, None]).T @ d
    cov += 1e-10 * np.eye(y.shape[1]) * max(1.0, float(np.trace(cov)) / y.shape[1])
    return np.linalg.cholesky(cov)


def _initial_cloud(lnlike_y, ndim, n, rng, max_draws):
    """``n`` prior draws inside the likelihood's support, their ln L, and the
    fraction of all draws made that were inside it (the support's prior mass)."""
    ys, lls, drawn = [], [], 0
    while sum(len(v) for v in ys) < n:
        if drawn >= max_draws:
            found = sum(len(v) for v in ys)
            raise SMCError(
                f"only {found} of {drawn} prior draws have a finite likelihood (inside the "
                f"prior and the emulator's training range); {n} are needed. Check the "
                "priors against the emulator's training ranges")
        batch = rng.standard_normal((n, ndim))
        ll = lnlike_y(batch)
        drawn += n
        ok = np.isfinite(ll)
        ys.append(batch[ok])
        lls.append(ll[ok])
    found = sum(len(v) for v in ys)
    return np.concatenate(ys)[:n], np.concatenate(lls)[:n], found / drawn, drawn


def _metropolis_chains(lnlike_y, y, ll, weights, beta, n_chains, chain_length, scale,
                       kind, rng):
    """One waste-free move: ``n_chains`` ancestors resampled by ``weights``, a
    Metropolis chain of ``chain_length`` states from each under pi_beta (proposal
    ``kind`` "de" or "rw", step ``scale``), every state kept.

    Returns (states, their ln L, acceptance rate, likelihood calls)."""
    n = len(y)
    chol = _weighted_cholesky(y, weights)
    if kind == "de":
        reference = y[systematic_resample(weights, n, rng)]
    # systematic resampling of the cloud in random order: the states are stored step by
    # step, and equal weights in that order would pick the same few chains every time
    order = rng.permutation(n)
    start = order[systematic_resample(weights[order], n_chains, rng)]
    x, lx = y[start], ll[start]
    states, lnls, accepted = [x], [lx], 0
    log_target = -0.5 * np.einsum("ij,ij->i", x, x) + beta * lx
    for _ in range(int(chain_length) - 1):
        if kind == "de":
            pair = rng.integers(n, size=(n_chains, 2))
            jitter = 1e-3 * rng.standard_normal(x.shape) @ chol.T
            candidate = x + scale * (reference[pair[:, 0]] - reference[pair[:, 1]]) + jitter
        else:
            candidate = x + scale * rng.standard_normal(x.shape) @ chol.T
        lp = lnlike_y(candidate)
        lt = -0.5 * np.einsum("ij,ij->i", candidate, candidate) + beta * lp
        with np.errstate(invalid="ignore"):
            take = (np.log(rng.uniform(size=n_chains)) < lt - log_target) & np.isfinite(lp)
        x = np.where(take[:, None], candidate, x)
        lx = np.where(take, lp, lx)
        log_target = np.where(take, lt, log_target)
        accepted += int(take.sum())
        states.append(x)
        lnls.append(lx)
    calls = n_chains * (int(chain_length) - 1)
    return np.concatenate(states), np.concatenate(lnls), accepted / calls, calls


def run_tempered_smc(lnlike_y, ndim, rng, n_particles=DEFAULTS["n_particles"],
                     chain_length=DEFAULTS["chain_length"], ess_fraction=DEFAULTS["ess_fraction"],
                     target_acceptance=DEFAULTS["target_acceptance"],
                     max_stages=DEFAULTS["max_stages"], proposal=DEFAULTS["proposal"],
                     final_chain_length=DEFAULTS["final_chain_length"],
                     final_chains=DEFAULTS["final_chains"], max_samples=DEFAULTS["max_samples"],
                     max_prior_draws=None):
    """Sample pi(y) proportional to N(y; 0, I) L(y) by waste-free tempered SMC.

    Parameters
    ----------
    lnlike_y : callable
        ln L of an (n, ndim) array of whitened coordinates, shape (n,);
        -inf outside the likelihood's support.
    ndim : int
        Number of free parameters.
    rng : numpy.random.Generator
    n_particles : int
        Particles per stage (a multiple of ``chain_length`` is used:
        ``chain_length`` x (``n_particles`` // ``chain_length``)).
    chain_length : int
        States of each Metropolis chain, its resampled start included; the
        number of chains is ``n_particles`` // ``chain_length``.
    ess_fraction : float
        Effective sample size kept by each tempering step, as a fraction of
        the particles (0 < ess_fraction < 1; smaller: fewer, larger steps).
    target_acceptance : float
        Acceptance rate the proposal's scale is adapted to, stage by stage.
    max_stages : int
        Tempering stages allowed before :class:`SMCError`.
    max_prior_draws : int, optional
        Prior draws allowed to find the first cloud inside the support
        (default 50 x the particles: a support of less than 2% of the prior
        mass is an error).
    proposal : {"de", "rw"}
        Metropolis proposal: "de", differential evolution (the difference of
        two particles of the weighted cloud, scaled by 2.38 / sqrt(2 ndim) and
        adapted, plus a small Gaussian jitter); "rw", a Gaussian random walk
        with the cloud's covariance.
    final_chain_length : int or None
        After beta reaches 1, one more move at beta = 1 with chains of this
        length (the returned draws are its states); ``None``: no extra move.
        Long final chains are what makes two runs with different seeds agree
        (the tempered cloud alone carries a seed-dependent error that decays
        over hundreds of Metropolis steps).
    final_chains : int, optional
        Chains of that final move (default: as many as in every stage).
    max_samples : int or None
        Return about this many draws (at least one per chain): every chain's
        states thinned evenly, its last state kept; ``None``: all states.

    Returns
    -------
    dict
        ``y`` (N, ndim) equally weighted posterior draws (whitened; N about
        ``max_samples``, at least one per chain);
        ``lnlike`` (N,); ``logz`` (ln evidence) and ``logzerr`` (a rough
        standard error: the stages' weight variances over the number of
        chains);
        ``ncall``; ``betas``, ``acceptance`` and ``scales`` per move;
        ``n_chains``.

    Raises
    ------
    SMCError
        No starting cloud inside the support, or ``max_stages`` reached.
    """
    n_chains = max(2, int(n_particles) // int(chain_length))
    n_states = n_chains * int(chain_length)
    max_prior_draws = max_prior_draws or 50 * n_states
    y, ll, inside, ncall = _initial_cloud(lnlike_y, ndim, n_states, rng, max_prior_draws)
    logz = math.log(inside)  # the prior mass inside the likelihood's support
    logz_var = 0.0
    beta = 0.0
    scale = 2.38 / math.sqrt((2 if proposal == "de" else 1) * ndim)
    betas, acceptance, scales = [0.0], [], []

    def move(weights, length, chains):
        nonlocal y, ll, ncall, scale
        y, ll, rate, calls = _metropolis_chains(lnlike_y, y, ll, weights, beta, chains,
                                                length, scale, proposal, rng)
        ncall += calls
        acceptance.append(rate)
        scales.append(scale)
        scale *= math.exp(rate - target_acceptance)  # towards the target for the next move
        logger.debug("SMC move %d: beta %.4g, acceptance %.2f", len(acceptance), beta, rate)

    while beta < 1.0:
        if len(betas) > max_stages:
            raise SMCError(
                f"tempered SMC reached max_stages = {max_stages} at beta = {beta:.3g}: the "
                "likelihood is too sharp for these settings; lower ess_fraction (larger "
                "steps) or raise max_stages")
        new_beta = _next_beta(ll, beta, ess_fraction * len(y))
        lw = (new_beta - beta) * ll
        logz += logsumexp(lw) - math.log(len(y))
        weights = np.exp(lw - logsumexp(lw))
        # chi^2 of the weights over the independent lineages (the chains), not the states
        logz_var += max(0.0, float(len(y) * np.sum(weights ** 2) - 1.0)) / n_chains
        beta = new_beta
        betas.append(beta)
        move(weights, chain_length, n_chains)
    chains, length = n_chains, int(chain_length)
    if final_chain_length:
        chains, length = int(final_chains or n_chains), int(final_chain_length)
        move(np.full(len(y), 1.0 / len(y)), length, chains)
    if max_samples and len(y) > max_samples:  # thin every chain evenly, keeping its last state
        keep_every = math.ceil(len(y) / max_samples)
        steps = np.arange(length - 1, -1, -keep_every)[::-1]
        y = y.reshape(length, chains, ndim)[steps].reshape(-1, ndim)
        ll = ll.reshape(length, chains)[steps].reshape(-1)
    return {"y": y, "lnlike": ll, "logz": float(logz), "logzerr": float(math.sqrt(logz_var)),
            "ncall": int(ncall), "betas": betas, "acceptance": acceptance, "scales": scales,
            "n_chains": n_chains}
