"""blackjax's nested slice sampling on the JAX likelihood (sampler ``blackjax-nss``).

Nested sampling of the prior's whitened coordinates y = Phi^-1(u) (u the unit
cube of the prior transform, Phi the standard-normal CDF) under a standard-normal
prior, the prior transform inside the likelihood (``JaxLikelihood.lnprior_normal``,
``lnlike_normal``); ``space="unit-cube"`` samples u itself under a uniform prior,
as dynesty and UltraNest do.  Both define the same posterior and evidence, but in
y the slice moves never meet the cube's faces, where heavy-tailed or truncated
priors pile up the posterior's tails: on the 14-parameter default model they mix
much better at the same cost (``docs/samplers.md``, Calibration).  ``nlive`` live
points, ``num_delete`` of them replaced per step, each by ``nsteps`` hit-and-run
slice moves along directions shaped by the live points' covariance, all
replacements of a step evaluated together (``jax.vmap``) in one jitted call of
:class:`~prospect_emulator.fitting.jax_likelihood.JaxLikelihood`.  The run stops
when the live points' estimated evidence falls below ``frac_remain`` times the
evidence accumulated so far (Z_live / Z_dead < frac_remain).
Posterior weights and the ln-evidence come from blackjax's
``ns.utils.log_weights`` (``n_volume_draws`` simulations of the prior-volume
shrinkage; their mean weights, and the mean and standard deviation of ln Z).

Needs the ``jax`` extra (``pip install 'prospect-emulator[jax]'``: jax and
blackjax); called through :func:`~prospect_emulator.fitting.samplers.run_sampler`.
"""
import logging
import time

import numpy as np

from ..errors import EmulatorConfigurationError
from .jax_likelihood import JaxLikelihood, jax_float64, prng_key

log = logging.getLogger(__name__)


def run_blackjax_nss(likelihood, seed, settings):
    """Sample with blackjax NSS; the dict of
    :func:`~prospect_emulator.fitting.samplers.run_sampler`.

    Parameters
    ----------
    likelihood : VectorisedLikelihood
        ``nested=True``; its model, obs and noise model define the posterior.
    seed : int or None
        JAX PRNG seed; None draws one.
    settings : dict
        ``nlive``, ``num_delete``, ``nsteps``, ``frac_remain``,
        ``n_volume_draws``, ``max_steps``, ``space`` (``"normal"`` or
        ``"unit-cube"``; see ``DEFAULT_SETTINGS``).

    Returns
    -------
    dict
        ``samples`` (n, ndim) in parameter units, ``weights`` (n,) summing to
        1, ``lnlikelihood``, ``lnprobability``, ``logz`` and ``logzerr`` (the
        mean and standard deviation over the volume draws), ``ncall``,
        ``seconds``, ``raw`` (None) and ``diagnostics`` (``niter`` steps,
        ``converged``, ``ess``).

    Raises
    ------
    EmulatorConfigurationError
        jax or blackjax missing, a model :class:`JaxLikelihood` does not
        serve, or no prior draw with a finite likelihood.
    """
    try:
        import blackjax
        import jax
        import jax.numpy as jnp
        from blackjax.ns.integrator import init_integrator, update_integrator
        from blackjax.ns.utils import finalise, log_weights
    except ImportError:
        raise EmulatorConfigurationError(
            "sampler 'blackjax-nss' needs jax and blackjax: pip install "
            "'prospect-emulator[jax]'") from None
    jl = JaxLikelihood(likelihood)
    ndim = jl.ndim
    nlive, num_delete = int(settings["nlive"]), int(settings["num_delete"])
    t0 = time.time()
    with jax_float64():
        normal = settings["space"] == "normal"
        algo = blackjax.nss(logprior_fn=jl.lnprior_normal if normal else jl.lnprior_unit,
                            loglikelihood_fn=jl.lnlike_normal if normal else jl.lnlike_unit,
                            num_inner_steps=int(settings["nsteps"]), num_delete=num_delete)
        key, init_key = jax.random.split(prng_key(seed))
        draw = jax.random.normal if normal else jax.random.uniform
        state = algo.init(draw(init_key, (nlive, ndim), dtype=jnp.float64))
        if not np.isfinite(np.asarray(state.particles.loglikelihood)).any():
            raise EmulatorConfigurationError(
                f"none of {nlive} prior draws has a finite likelihood (all outside the "
                "emulator's training range?)")
        step = jax.jit(algo.step)
        integrator = init_integrator(state.particles)
        dead, ncall, converged = [], nlive, False
        stop = float(np.log1p(settings["frac_remain"]))
        for n_steps in range(1, int(settings["max_steps"]) + 1):
            key, step_key = jax.random.split(key)
            state, info = step(step_key, state)
            dead.append(info)
            integrator = update_integrator(integrator, state.particles, info.particles)
            slices = info.update_info
            ncall += int(2 * np.size(slices.num_shrink) + np.sum(slices.num_expansions)
                         + np.sum(slices.num_shrink))
            remaining = float(jnp.logaddexp(integrator.logZ, integrator.logZ_live)
                              - integrator.logZ)
            if n_steps % 50 == 0:
                log.info("blackjax-nss: step %d, ln Z %.2f, live share %.3g, %d calls",
                         n_steps, float(integrator.logZ), remaining, ncall)
            if remaining < stop:
                converged = True
                break
        final = finalise(state, dead, update_info=False)
        key, weight_key = jax.random.split(key)
        logw = np.asarray(log_weights(weight_key, final, shape=int(settings["n_volume_draws"])))
        position = final.particles.position
        if normal:  # back to the unit cube, with the likelihood's own Phi
            from jax.scipy.special import ndtr
            position = ndtr(position)
        unit = np.asarray(position)
        lnlike = np.asarray(final.particles.loglikelihood)
    seconds = time.time() - t0
    if not converged:
        log.warning("blackjax-nss stopped at max_steps = %d before the live points' share of "
                    "the evidence fell below frac_remain", settings["max_steps"])
    from scipy.special import logsumexp
    logz_draws = logsumexp(logw, axis=0)
    mean_w = logsumexp(logw - logz_draws, axis=1)
    keep = np.isfinite(mean_w)
    weights = np.exp(mean_w[keep] - mean_w[keep].max())
    weights /= weights.sum()
    samples = likelihood.prior_transform(unit[keep])
    lnlike = lnlike[keep]
    return {"samples": samples, "weights": weights, "lnlikelihood": lnlike,
            "lnprobability": lnlike + likelihood.model.prior_product(samples),
            "logz": float(np.mean(logz_draws)), "logzerr": float(np.std(logz_draws)),
            "ncall": int(ncall), "seconds": seconds, "raw": None,
            "diagnostics": {"niter": n_steps, "converged": converged,
                            "ess": float(1.0 / np.sum(weights ** 2))}}
