"""blackjax's No-U-Turn sampler on the JAX likelihood (sampler ``blackjax-nuts``).

Hamiltonian Monte Carlo needs the gradient of the ln posterior, which JAX
differentiates through the emulator, the eq.-9 noise model and the prior
transform.  It samples the prior's whitened coordinates y = Phi^-1(u) (u the
unit cube of the prior transform, Phi the standard-normal CDF), where the prior
is a standard normal and every parameter is unbounded and smooth
(:meth:`~prospect_emulator.fitting.jax_likelihood.JaxLikelihood.lnlike_normal`
plus ``lnprior_normal``): the ln posterior is ln L(prior_transform(Phi(y))) -
|y|^2 / 2.  ``-inf`` outside the emulator's training range, where a
trajectory is rejected.

``num_chains`` chains run side by side (``jax.vmap``), each started at the
most probable of ``n_init`` prior draws of its own, tuned by Stan's window
adaptation (step size and a dense or diagonal mass matrix; ``num_warmup``
steps, not kept) and then run for ``num_samples`` steps.  The split-R-hat and the
effective sample size of every parameter are reported; chains that disagree
(R-hat above ``max_rhat``) raise a :class:`SamplerConvergenceError` when
``require_converged`` is set and a warning otherwise, because NUTS, unlike
nested sampling, explores one mode per chain.

Needs the ``jax`` extra (``pip install 'prospect-emulator[jax]'``); called
through :func:`~prospect_emulator.fitting.samplers.run_sampler`.
"""
import logging
import time

import numpy as np

from ..errors import EmulatorConfigurationError
from .jax_likelihood import JaxLikelihood, jax_float64, prng_key

log = logging.getLogger(__name__)


def run_blackjax_nuts(likelihood, seed, settings):
    """Sample with blackjax NUTS; the dict of
    :func:`~prospect_emulator.fitting.samplers.run_sampler`.

    Parameters
    ----------
    likelihood : VectorisedLikelihood
        ``nested=True``; its model, obs and noise model define the posterior.
    seed : int or None
        JAX PRNG seed; None draws one.
    settings : dict
        ``num_chains``, ``num_warmup``, ``num_samples`` (steps per chain),
        ``n_init``, ``target_acceptance``, ``mass_matrix``, ``max_num_doublings``,
        ``max_rhat``, ``require_converged`` (see ``DEFAULT_SETTINGS``).

    Returns
    -------
    dict
        ``samples`` (num_chains x num_samples, ndim) in parameter units,
        equal ``weights``, ``lnlikelihood``, ``lnprobability``, ``logz`` None,
        ``ncall`` (ln-posterior and gradient evaluations, warm-up included),
        ``seconds``, ``raw`` (None) and ``diagnostics`` (``rhat`` and ``ess``
        per parameter, ``divergences``, ``step_size`` per chain,
        ``converged``).

    Raises
    ------
    EmulatorConfigurationError
        jax or blackjax missing, a model :class:`JaxLikelihood` does not
        serve, or no prior draw with a finite likelihood.
    SamplerConvergenceError
        ``require_converged`` and an R-hat above ``max_rhat``.
    """
    try:
        import blackjax
        import jax
        import jax.numpy as jnp
        from blackjax.diagnostics import effective_sample_size, potential_scale_reduction
    except ImportError:
        raise EmulatorConfigurationError(
            "sampler 'blackjax-nuts' needs jax and blackjax: pip install "
            "'prospect-emulator[jax]'") from None
    jl = JaxLikelihood(likelihood)
    n_chains, n_init = int(settings["num_chains"]), int(settings["n_init"])
    n_warmup, n_samples = int(settings["num_warmup"]), int(settings["num_samples"])
    t0 = time.time()
    with jax_float64():
        def logdensity(y):
            return jl.lnlike_normal(y) + jl.lnprior_normal(y)

        _, init_key, warm_key, run_key = jax.random.split(prng_key(seed), 4)
        start = _starting_points(jax, jnp, logdensity, init_key, n_chains, n_init, jl.ndim)
        warmup = blackjax.window_adaptation(
            blackjax.nuts, logdensity, is_mass_matrix_diagonal=settings["mass_matrix"] == "diagonal",
            target_acceptance_rate=float(settings["target_acceptance"]),
            max_num_doublings=int(settings["max_num_doublings"]))

        def tune(k, y):
            (state, params), info = warmup.run(k, y, num_steps=n_warmup)
            return state, params, jnp.sum(info.info.num_integration_steps)

        states, params, warm_steps = jax.jit(jax.vmap(tune))(
            jax.random.split(warm_key, n_chains), start)

        def one_chain(k, state, step_size, inverse_mass_matrix):
            kernel = blackjax.nuts(logdensity, step_size=step_size,
                                   inverse_mass_matrix=inverse_mass_matrix,
                                   max_num_doublings=int(settings["max_num_doublings"]))

            def body(s, step_key):
                s, info = kernel.step(step_key, s)
                return s, (s.position, info.num_integration_steps, info.is_divergent)

            return jax.lax.scan(body, state, jax.random.split(k, n_samples))[1]

        positions, steps, divergent = jax.jit(jax.vmap(one_chain))(
            jax.random.split(run_key, n_chains), states, params["step_size"],
            params["inverse_mass_matrix"])
        from jax.scipy.special import ndtr
        unit = np.asarray(ndtr(positions))            # (chains, samples, ndim)
        # split R-hat: each chain's halves as two chains, so that one chain drifting
        # within itself shows too (and a single chain is checked)
        half = n_samples // 2
        halves = positions[:, :2 * half].reshape(2 * n_chains, half, jl.ndim)
        rhat = np.asarray(potential_scale_reduction(halves))
        ess = np.asarray(effective_sample_size(positions))
        ncall = int(np.sum(warm_steps) + np.sum(steps) + n_chains * n_init)
        n_divergent = int(np.sum(divergent))
        step_size = np.asarray(params["step_size"]).tolist()
    seconds = time.time() - t0
    converged = bool(np.all(rhat <= float(settings["max_rhat"])))
    if not converged:
        worst = int(np.nanargmax(rhat))
        message = (f"blackjax-nuts: the chains disagree (split R-hat over {n_chains} chain(s) "
                   f"{rhat[worst]:.3f} > {settings['max_rhat']} for "
                   f"{likelihood.model.theta_labels()[worst]}): the posterior is multimodal or "
                   "the chains too short; raise num_warmup/num_samples or use a nested sampler")
        from .samplers import not_converged
        not_converged(message, settings, RuntimeWarning, stacklevel=5)
    if n_divergent:
        log.warning("blackjax-nuts: %d divergent transitions of %d", n_divergent,
                    n_chains * n_samples)
    samples = likelihood.prior_transform(unit.reshape(-1, jl.ndim))
    lnlike = np.asarray(likelihood.lnlike(samples))
    return {"samples": samples, "weights": np.full(len(samples), 1.0 / len(samples)),
            "lnlikelihood": lnlike,
            "lnprobability": lnlike + likelihood.model.prior_product(samples),
            "logz": None, "logzerr": None, "ncall": ncall, "seconds": seconds, "raw": None,
            "diagnostics": {"rhat": [float(r) for r in rhat], "ess": [float(e) for e in ess],
                            "divergences": n_divergent, "step_size": step_size,
                            "converged": converged}}


def _starting_points(jax, jnp, logdensity, key, n_chains, n_init, ndim):
    """Per chain, the most probable of ``n_init`` standard-normal draws (its own draws)."""
    draws = jax.random.normal(key, (n_chains, n_init, ndim), dtype=jnp.float64)
    values = np.asarray(jax.jit(jax.vmap(jax.vmap(logdensity)))(draws))
    if not np.isfinite(values).any(axis=1).all():
        raise EmulatorConfigurationError(
            f"none of {n_init} prior draws has a finite likelihood (all outside the "
            "emulator's training range?)")
    return draws[jnp.arange(n_chains), np.argmax(np.where(np.isfinite(values), values, -np.inf),
                                                 axis=1)]
