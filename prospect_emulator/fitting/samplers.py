"""Posterior samplers on one likelihood, behind one interface (issue 13).

:func:`run_sampler` samples the posterior of an
:class:`~prospect_emulator.EmulatedSpecModel` given photometry and an
:class:`~prospect_emulator.EmulatorNoiseModel` with one of :data:`SAMPLERS`
and returns weighted samples in one format; :func:`write_sampler_results`
writes them as a Prospector HDF5 results file that
``prospect.io.read_results.results_from`` and
:func:`~prospect_emulator.fitting.results.load_fit` read::

    fit = run_sampler("ultranest", model, obs, noise, seed=1, nlive=400)
    fit["samples"], fit["weights"], fit["ncall"], fit["seconds"]

``dynesty``
    Today's path: Prospector's ``fit_model`` with dynesty
    (:data:`~prospect_emulator.fitting.run.DEFAULT_NESTED_KWARGS`, any
    ``nested_*`` keyword of ``fit_model``), one process, Prospector's
    ``lnprobfn`` per call.
``dynesty-pool``
    The same dynesty run with its proposals spread over ``processes`` worker
    processes (default 2) through :class:`dynesty.pool.Pool`, which hands the
    likelihood to each worker once (a plain ``multiprocessing`` pool given
    to ``fit_model(pool=...)`` would pickle the model, the filters and the
    emulator with every proposal, and Prospector's default ``queue_size=1``
    leaves any pool unused).  Prospector's own ``run_dynesty_sampler`` drives
    it, with the same stopping and weight functions as ``fit_model``.
``ultranest``
    UltraNest's ``ReactiveNestedSampler`` with ``vectorized=True`` on
    :meth:`VectorisedLikelihood.lnlike
    <prospect_emulator.prospector.VectorisedLikelihood.lnlike>` and its
    batched prior transform, and a slice step sampler with
    ``generate_mixture_random_direction`` (the population version by default,
    whose likelihood calls are batched).
``emcee``
    An affine-invariant ensemble (``vectorize=True``) on the full
    ln-posterior of :class:`~prospect_emulator.prospector.VectorisedLikelihood`,
    walkers started from prior draws, run until the chain is at least
    ``min_tau_multiple`` (50) integrated autocorrelation times long or
    ``max_steps`` is reached; burn-in and thinning from the autocorrelation
    time.  A shorter chain gives a :class:`ShortChainWarning` (or, with
    ``require_converged=True``, a :class:`SamplerConvergenceError`).
``smc``
    Waste-free sequential Monte Carlo with adaptive tempering
    (:mod:`~prospect_emulator.fitting.smc`, NumPy only) in the whitened prior
    coordinates of ``blackjax-nss``: one batched
    :class:`~prospect_emulator.prospector.VectorisedLikelihood` call per
    Metropolis step of all chains together.
``blackjax-nss``
    blackjax's nested slice sampling on the likelihood as jitted JAX
    functions, in whitened prior coordinates (``space="normal"``) or the unit
    cube (:mod:`~prospect_emulator.fitting.blackjax_nss`; the ``jax`` extra).
    JAX is imported only when this sampler is picked.
``blackjax-nuts``
    blackjax's No-U-Turn sampler on the same JAX likelihood in whitened prior
    coordinates, its gradient from JAX; ``num_chains`` chains with window
    adaptation, split R-hat per parameter
    (:mod:`~prospect_emulator.fitting.blackjax_nuts`; the ``jax`` extra).

Every sampler is seeded: the same seed, data and settings give identical
samples.  UltraNest draws from NumPy's global random state: it is seeded for
the run and restored afterwards.
"""
import contextlib
import json
import math
import os
import time
import warnings

import numpy as np

from ..errors import EmulatorConfigurationError, EmulatorError
from .smc import DEFAULTS as _SMC_DEFAULTS

__all__ = ["run_sampler", "write_sampler_results", "sampler_settings", "settings_from_cli",
           "SAMPLERS", "DEFAULT_SAMPLER",
           "DEFAULT_SETTINGS", "ShortChainWarning", "SamplerConvergenceError",
           "ULTRANEST_FLOOR_LNLIKE"]

#: The samplers :func:`run_sampler` knows.
SAMPLERS = ("dynesty", "dynesty-pool", "ultranest", "emcee", "smc", "blackjax-nss",
            "blackjax-nuts")

#: The sampler of ``fit_galaxy``, ``fit_catalog``, ``prospect-emulator fit`` and ``demo``
#: unless another is named: the only NumPy sampler measured here that is calibrated for
#: the 14-parameter model (simulation-based calibration, docs/samplers.md), and the
#: fastest of those that are.
DEFAULT_SAMPLER = "smc"

#: ln-likelihood UltraNest is given where the likelihood is -inf (outside the
#: prior's support or the emulator's training range): UltraNest needs finite
#: values; this is what its own ``make_safe`` wrapper uses.
ULTRANEST_FLOOR_LNLIKE = -1e100

#: Short names accepted for dynesty's ``fit_model`` keywords.
_DYNESTY_ALIASES = {"nlive": "nested_nlive_init", "nlive_batch": "nested_nlive_batch",
                    "n_effective": "nested_target_n_effective", "sample": "nested_sample",
                    "walks": "nested_walks", "bound": "nested_bound",
                    "maxcall": "nested_maxcall", "dlogz": "nested_dlogz_init"}


def _prospector_nested_keywords():
    """The ``nested_*`` keywords Prospector 1.4's ``fit_model`` passes on to dynesty.

    Any other ``nested_*`` keyword would be swallowed by ``**extras`` and do
    nothing (``nested_slices``, for one: ``rslice`` then uses dynesty's own
    3 + ndim slices).
    """
    import inspect
    from prospect.fitting.nested import run_dynesty_sampler
    names = {n for n in inspect.signature(run_dynesty_sampler).parameters if n.startswith("nested_")}
    return names | {"nested_target_n_effective"}

#: Default settings per sampler (dynesty: see
#: :data:`~prospect_emulator.fitting.run.DEFAULT_NESTED_KWARGS`).
DEFAULT_SETTINGS = {
    "dynesty-pool": {"processes": 2},
    "ultranest": {
        "nlive": 400,             # min_num_live_points
        "step_sampler": "population-slice",  # "slice", or "none" (MLFriends region sampling)
        "nsteps": None,           # slice steps per new point; None: 2 x ndim
        "popsize": 50,            # points evolved together (one batched call each step)
        "dlogz": 0.5, "min_ess": 2000, "frac_remain": 0.01,
        "max_ncalls": None,
    },
    "emcee": {
        "nwalkers": None,         # None: max(32, 4 x ndim), rounded up to even
        "moves": "stretch",       # "stretch" (emcee's default) or "de-snooker" (DE 0.8 + snooker 0.2)
        "min_steps": 2000,        # steps before convergence is first judged
        "max_steps": 50000,
        "check_every": 1000,      # steps between autocorrelation estimates
        "min_tau_multiple": 50,   # chain length / autocorrelation time required
        "burn_tau_multiple": 5,   # burn-in = this x the largest autocorrelation time
        "require_converged": False,
    },
    # fitting.smc.DEFAULTS (n_particles, chain_length, ess_fraction, target_acceptance,
    # proposal, final_chain_length, final_chains, max_samples, max_stages), and the float32
    # forward pass where it is within 1e-4 mag of float64
    "smc": dict(_SMC_DEFAULTS, float32=True),
    "blackjax-nss": {
        "nlive": 500,             # live points
        "num_delete": 50,         # replaced per step (evaluated together)
        "nsteps": None,           # slice moves per replacement; None: 4 x ndim (calibrated;
                                  # 2 x ndim under-covers, docs/samplers.md)
        "frac_remain": 0.01,      # stop when the live points' Z / the dead points' Z < this
        "n_volume_draws": 100,    # simulations of the volume shrinkage for weights and ln Z
        "max_steps": 100000,
        "space": "normal",        # y = Phi^-1(u) under a standard-normal prior, or "unit-cube"
    },
    "blackjax-nuts": {
        "num_chains": 4,          # run side by side (one vmapped, jitted call)
        "num_warmup": 1000,       # window-adaptation steps per chain (not kept)
        "num_samples": 1000,      # kept steps per chain
        "n_init": 1000,           # prior draws per chain; the chain starts at the most probable
        "target_acceptance": 0.8,
        "mass_matrix": "diagonal",  # adapted inverse mass matrix: "diagonal" or "dense"
        "max_num_doublings": 10,  # tree depth: at most 2^10 leapfrog steps per NUTS step
        "max_rhat": 1.05,         # split R-hat above this: the chains disagree
        "require_converged": False,  # True: an error instead of a warning then
    },
}


class ShortChainWarning(RuntimeWarning):
    """An MCMC chain shorter than ``min_tau_multiple`` autocorrelation times:
    its autocorrelation time, and hence its posterior, are not to be trusted."""


class SamplerConvergenceError(EmulatorError):
    """The sampler stopped (``max_steps``) before its convergence criterion
    was met and ``require_converged=True`` was asked for."""


def not_converged(message, settings, category, stacklevel):
    """An MCMC run that missed its convergence criterion: a
    :class:`SamplerConvergenceError` with ``require_converged``, else a warning
    of ``category`` (``stacklevel``: the frames up to the caller of
    :func:`run_sampler`, counted from this function)."""
    if settings["require_converged"]:
        raise SamplerConvergenceError(message)
    warnings.warn(message, category, stacklevel=stacklevel)


# -------------------------------------------------------------- settings
def merged_nested_kwargs(name, nested_kwargs=None, settings=None):
    """``settings`` with Prospector-style ``nested_kwargs`` under them (dynesty only).

    Raises
    ------
    EmulatorConfigurationError
        ``nested_kwargs`` given for a sampler other than dynesty.
    """
    if nested_kwargs and name not in ("dynesty", "dynesty-pool"):
        raise EmulatorConfigurationError(
            f"nested_kwargs are dynesty's settings; sampler {name!r} takes sampler_settings=")
    return dict(nested_kwargs or {}, **(settings or {}))


def sampler_settings(name, ndim=None, **settings):
    """The complete settings of sampler ``name``: the defaults updated by ``settings``.

    Parameters
    ----------
    name : str
        One of :data:`SAMPLERS`.
    ndim : int, optional
        Number of free parameters (fills ``None`` defaults that depend on it).
    **settings
        For ``dynesty``/``dynesty-pool``: Prospector ``fit_model`` keywords
        (``nested_*``, ``print_progress``, ``verbose``) or their short names
        ``nlive``, ``nlive_batch``, ``n_effective``, ``sample``, ``walks``,
        ``bound``, ``maxcall``, ``dlogz``; ``dynesty-pool`` also
        ``processes``.  Others: the keys of :data:`DEFAULT_SETTINGS`.

    Returns
    -------
    dict

    Raises
    ------
    EmulatorConfigurationError
        An unknown sampler or setting (the message lists what is allowed), or
        (with ``ndim``) fewer live points than twice the free parameters
        (dynesty, dynesty-pool, ultranest, blackjax-nss).
    """
    if name not in SAMPLERS:
        raise EmulatorConfigurationError(
            f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    if name in ("dynesty", "dynesty-pool"):
        return _dynesty_settings(name, ndim, settings)
    defaults = DEFAULT_SETTINGS[name]
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise EmulatorConfigurationError(
            f"unknown {name} setting(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(defaults))}")
    out = dict(defaults, **settings)
    _CHECKS[name](out, ndim)
    return out


def _dynesty_settings(name, ndim, settings):
    """dynesty's and dynesty-pool's settings: ``DEFAULT_NESTED_KWARGS`` updated by the
    ``fit_model`` keywords (or their short names) in ``settings``."""
    from .run import DEFAULT_NESTED_KWARGS, check_nlive
    out = dict(DEFAULT_NESTED_KWARGS, **DEFAULT_SETTINGS.get(name, {}))
    allowed = _prospector_nested_keywords()
    for key, value in settings.items():
        key = _DYNESTY_ALIASES.get(key, key)
        if not (key in allowed or key in out):
            raise EmulatorConfigurationError(
                f"unknown {name} setting {key!r}: Prospector's fit_model would ignore it. "
                f"Use its keywords ({', '.join(sorted(allowed))}, print_progress, verbose"
                f"{', processes' if name == 'dynesty-pool' else ''}) or the short names "
                f"{', '.join(sorted(_DYNESTY_ALIASES))}")
        out[key] = value
    if name == "dynesty-pool" and int(out["processes"]) < 1:
        raise EmulatorConfigurationError(
            f"dynesty-pool needs processes >= 1; got {out['processes']}")
    if ndim is not None:
        check_nlive(out["nested_nlive_init"], ndim)
    return out


def _check_ultranest(out, ndim):
    from .run import check_nlive
    if ndim is not None:
        check_nlive(out["nlive"], ndim, option="nlive (--nlive)")
    allowed = ("population-slice", "slice", "none")
    if out["step_sampler"] not in allowed:
        raise EmulatorConfigurationError(
            f"ultranest step_sampler {out['step_sampler']!r} is not one of {allowed}")
    if ndim is not None and out["nsteps"] is None:
        out["nsteps"] = 2 * int(ndim)


def _check_blackjax_nss(out, ndim):
    from .run import check_nlive
    if ndim is not None:
        check_nlive(out["nlive"], ndim, option="nlive (--nlive)")
        if out["nsteps"] is None:
            out["nsteps"] = 4 * int(ndim)
    checks = {"num_delete": 1 <= int(out["num_delete"]) < int(out["nlive"]),
              "max_steps": int(out["max_steps"]) >= 1,
              "n_volume_draws": int(out["n_volume_draws"]) >= 2,
              "frac_remain": 0 < float(out["frac_remain"]) < 1,
              "nsteps": out["nsteps"] is None or int(out["nsteps"]) >= 1,
              "space": out["space"] in ("unit-cube", "normal")}
    _refuse_unless(checks, "blackjax-nss", out,
                   f"1 <= num_delete < nlive ({out['nlive']}), max_steps >= 1, "
                   "n_volume_draws >= 2, 0 < frac_remain < 1, nsteps >= 1, space "
                   "'unit-cube' or 'normal'")


def _check_smc(out, ndim):
    _coerce("smc", out, ints=("n_particles", "chain_length", "max_stages"),
            floats=("ess_fraction", "target_acceptance"),
            optional_ints=("final_chain_length", "final_chains", "max_samples"),
            bools=("float32",))
    checks = {"chain_length": out["chain_length"] >= 2,  # numbers now (_coerce)
              "n_particles": out["n_particles"] >= 2 * out["chain_length"],
              "ess_fraction": 0 < out["ess_fraction"] < 1,
              "target_acceptance": 0 < out["target_acceptance"] < 1,
              "proposal": out["proposal"] in ("rw", "de"),
              "max_stages": out["max_stages"] >= 1,
              "final_chain_length": out["final_chain_length"] is None
              or out["final_chain_length"] >= 2,
              "final_chains": out["final_chains"] is None or out["final_chains"] >= 2,
              "max_samples": out["max_samples"] is None or out["max_samples"] >= 1}
    _refuse_unless(checks, "smc", out,
                   "chain_length >= 2, n_particles >= 2 x chain_length, 0 < ess_fraction "
                   "< 1, 0 < target_acceptance < 1, proposal 'rw' or 'de', max_stages >= 1, "
                   "final_chain_length and final_chains None or >= 2, max_samples None "
                   "or >= 1")


def _check_blackjax_nuts(out, ndim):
    checks = {"num_chains": int(out["num_chains"]) >= 1,
              "num_warmup": int(out["num_warmup"]) >= 10,
              "num_samples": int(out["num_samples"]) >= 10,
              "n_init": int(out["n_init"]) >= 1,
              "target_acceptance": 0 < float(out["target_acceptance"]) < 1,
              "max_num_doublings": 1 <= int(out["max_num_doublings"]) <= 20,
              "max_rhat": float(out["max_rhat"]) > 1,
              "mass_matrix": out["mass_matrix"] in ("dense", "diagonal")}
    _refuse_unless(checks, "blackjax-nuts", out,
                   "num_chains >= 1, num_warmup >= 10, num_samples >= 10, n_init >= 1, "
                   "0 < target_acceptance < 1, 1 <= max_num_doublings <= 20, max_rhat > 1, "
                   "mass_matrix 'dense' or 'diagonal'")


def _check_emcee(out, ndim):
    if out["moves"] not in ("stretch", "de-snooker"):
        raise EmulatorConfigurationError(
            f"emcee moves {out['moves']!r} is not one of ('stretch', 'de-snooker')")
    if ndim is not None and out["nwalkers"] is None:
        n = max(32, 4 * int(ndim))
        out["nwalkers"] = n + n % 2
    if out["nwalkers"] is not None and (int(out["nwalkers"]) < 2 * (ndim or 1)
                                        or int(out["nwalkers"]) % 2):
        raise EmulatorConfigurationError(
            f"emcee nwalkers = {out['nwalkers']}: it must be even and at least twice the "
            f"{ndim} free parameters")
    if int(out["max_steps"]) < int(out["min_steps"]):
        raise EmulatorConfigurationError(
            f"emcee max_steps ({out['max_steps']}) is below min_steps ({out['min_steps']})")


#: The checks of :func:`sampler_settings` for each sampler of ``DEFAULT_SETTINGS`` but
#: dynesty's: each completes ``None`` defaults that depend on ``ndim`` and refuses values
#: out of range, naming what is allowed.
_CHECKS = {"ultranest": _check_ultranest, "blackjax-nss": _check_blackjax_nss, "smc": _check_smc,
           "blackjax-nuts": _check_blackjax_nuts, "emcee": _check_emcee}


def _coerce(name, settings, ints=(), floats=(), optional_ints=(), bools=()):
    """Convert sampler ``name``'s numeric settings in place (``"20"`` and 20.0 become 20);
    a value that is not a number (or, for ``bools``, not true/false) is an
    :class:`EmulatorConfigurationError` naming it."""
    kinds = ([(k, int) for k in ints] + [(k, float) for k in floats]
             + [(k, "optional int") for k in optional_ints] + [(k, bool) for k in bools])
    for key, kind in kinds:
        value = settings[key]
        try:
            if kind is bool:
                if not isinstance(value, (bool, np.bool_)):
                    raise TypeError
                settings[key] = bool(value)
            elif kind == "optional int":
                settings[key] = None if value is None else _as_int(value)
            else:
                settings[key] = _as_int(value) if kind is int else float(value)
        except (TypeError, ValueError):
            what = {int: "an integer", float: "a number", bool: "true or false",
                    "optional int": "an integer or null"}[kind]
            raise EmulatorConfigurationError(
                f"{name} setting {key} = {value!r} must be {what}") from None


def _as_int(value):
    number = float(value)
    if number != int(number):
        raise ValueError(value)
    return int(number)


def _refuse_unless(checks, name, settings, allowed):
    """An :class:`EmulatorConfigurationError` naming every failed check of
    sampler ``name``'s ``settings`` and what is ``allowed``."""
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise EmulatorConfigurationError(
            f"{name} settings {', '.join(f'{k} = {settings[k]!r}' for k in bad)}: allowed are "
            f"{allowed}")


def settings_from_cli(name, nlive=None, n_effective=None):
    """Settings of sampler ``name`` from the command line's ``--nlive`` and ``--n-effective``.

    dynesty and dynesty-pool: ``nested_nlive_init`` and
    ``nested_target_n_effective``; ultranest: ``nlive`` (minimum live points)
    and ``min_ess`` (minimum effective sample size); blackjax-nss: ``nlive``.
    ``None``: the sampler's default.

    Raises
    ------
    EmulatorConfigurationError
        An unknown sampler name, or an option the sampler has no use for
        (smc, emcee and blackjax-nuts have no live points; blackjax-nss no
        effective-sample-size target): refused rather than ignored.
    """
    if name not in SAMPLERS:
        raise EmulatorConfigurationError(
            f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    keys = {"dynesty": ("nested_nlive_init", "nested_target_n_effective"),
            "dynesty-pool": ("nested_nlive_init", "nested_target_n_effective"),
            "ultranest": ("nlive", "min_ess"), "blackjax-nss": ("nlive",)}.get(name, ())
    values = (nlive, n_effective)
    unused = [option for k, (option, value) in enumerate(zip(("--nlive", "--n-effective"), values))
              if value is not None and k >= len(keys)]
    if unused:
        raise EmulatorConfigurationError(
            f"{' and '.join(unused)} not used by sampler {name!r}: --nlive is for dynesty, "
            "dynesty-pool, ultranest and blackjax-nss, --n-effective for dynesty, dynesty-pool "
            "and ultranest; leave it out (the sampler's own settings: "
            "fitting.samplers.DEFAULT_SETTINGS)")
    return {k: int(v) for k, v in zip(keys, values) if v is not None}


# -------------------------------------------------------------- interface
def run_sampler(name, model, obs, noise=None, seed=None, sps=None, **settings):
    """Sample the posterior of one galaxy with sampler ``name``.

    Parameters
    ----------
    name : str
        One of :data:`SAMPLERS`.
    model : EmulatedSpecModel
    obs : dict
        Prospector obs dictionary, photometry only
        (:func:`~prospect_emulator.fitting.run.make_obs`).
    noise : EmulatorNoiseModel, optional
        The photometric noise model (eq. 9); ``None``: ``obs["maggies_unc"]`` alone.
    seed : int, optional
        The same seed, data and settings give identical samples.  ``None``:
        unseeded.
    sps : SPS source, optional
        ``dynesty`` only: the source of a model that needs one (``None`` for
        an emulator).
    **settings
        See :func:`sampler_settings`.

    Returns
    -------
    dict
        ``samples`` (n, ndim); ``weights`` (n,), summing to 1 (equal for
        emcee, smc and blackjax-nuts); ``lnprobability`` and ``lnlikelihood`` (n,); ``logz`` (ln
        evidence; None for emcee) and ``logzerr``; ``ncall`` (likelihood
        evaluations); ``seconds`` (wall time of the sampling); ``sampler``
        (the name); ``settings`` (the complete settings, JSON-serialisable);
        ``seed``; ``diagnostics`` (sampler-specific, JSON-serialisable: e.g.
        emcee's autocorrelation times); ``raw`` (dynesty: its results object,
        else None).

    Raises
    ------
    EmulatorConfigurationError
        Unknown sampler or setting, a sampler library not installed, or (for
        ultranest, emcee, smc and blackjax-nss) a model :class:`VectorisedLikelihood`
        cannot serve (blackjax-nss: or one
        :class:`~prospect_emulator.fitting.jax_likelihood.JaxLikelihood` cannot).
    SamplerConvergenceError
        emcee with ``require_converged=True`` whose chain stayed shorter than
        ``min_tau_multiple`` autocorrelation times.
    SMCError
        smc: no prior draw inside the likelihood's support, or ``max_stages``
        reached (:class:`~prospect_emulator.fitting.smc.SMCError`).
    """
    full = sampler_settings(name, ndim=model.ndim, **settings)
    if name == "dynesty":
        out = _run_dynesty(model, obs, noise, seed, full, sps)
    elif sps is not None:
        raise EmulatorConfigurationError(
            f"sampler {name!r} runs on the emulator only (sps must be None); use "
            "sampler='dynesty' for a model with an SPS source")
    else:
        runner = {"dynesty-pool": _run_dynesty_pool, "ultranest": _run_ultranest,
                  "emcee": _run_emcee, "smc": _run_smc, "blackjax-nss": _run_blackjax_nss,
                  "blackjax-nuts": _run_blackjax_nuts}[name]
        out = runner(model, obs, noise, seed, full)
    out.update(sampler=name, settings=_jsonable(full), seed=None if seed is None else int(seed))
    return out


def _jsonable(settings):
    return json.loads(json.dumps(settings, default=lambda v: v.item() if hasattr(v, "item")
                                 else str(v)))


def _require(module, extra_hint):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EmulatorConfigurationError(
            f"this sampler needs the '{module}' package: pip install {extra_hint}") from None


def _vectorised_likelihood(model, obs, noise, nested, float32=False):
    from ..prospector.vectorised import VectorisedLikelihood
    return VectorisedLikelihood(model, obs, noise, nested=nested, float32=float32)


# ---------------------------------------------------------------- dynesty
def _dynesty_output(model, res, seconds):
    samples = np.asarray(res["samples"])
    weights = np.exp(res["logwt"] - res["logz"][-1])
    weights /= weights.sum()
    lnlike = np.asarray(res["logl"])
    return {"samples": samples, "weights": weights, "lnlikelihood": lnlike,
            # as Prospector's write_dynesty_h5 stores it
            "lnprobability": lnlike + model.prior_product(samples),
            "logz": float(res["logz"][-1]), "logzerr": float(res["logzerr"][-1]),
            "ncall": int(np.sum(res["ncall"])), "seconds": seconds,
            "diagnostics": {"niter": int(res["niter"]), "efficiency": float(res["eff"])},
            "raw": res}


def _run_dynesty(model, obs, noise, seed, settings, sps=None):
    from prospect.fitting import fit_model
    from .run import seeded_dynesty
    t0 = time.time()
    with seeded_dynesty(seed):
        output = fit_model(obs, model, sps, noise=(None, noise), optimize=False, dynesty=True,
                           **settings)
    out = _dynesty_output(model, output["sampling"][0], time.time() - t0)
    out["fit_model_output"] = output
    return out


def _run_dynesty_pool(model, obs, noise, seed, settings):
    import dynesty.pool
    from dynesty.dynamicsampler import stopping_function, weight_function
    from prospect.fitting import lnprobfn
    from prospect.fitting.fitting import wrap_lnp
    from prospect.fitting.nested import run_dynesty_sampler
    from .run import seeded_dynesty
    kwargs = dict(settings)
    processes = int(kwargs.pop("processes"))
    n_effective = kwargs.pop("nested_target_n_effective")
    # as prospect.fitting.fitting.run_dynesty builds it
    lnp = wrap_lnp(lnprobfn, obs, model, None, noise=(None, noise), nested=True)
    t0 = time.time()
    with seeded_dynesty(seed), dynesty.pool.Pool(processes, lnp, model.prior_transform) as pool:
        res = run_dynesty_sampler(pool.loglike, pool.prior_transform, model.ndim,
                                  stop_function=stopping_function, wt_function=weight_function,
                                  nested_stop_kwargs={"target_n_effective": n_effective},
                                  pool=pool, queue_size=processes, **kwargs)
    return _dynesty_output(model, res, time.time() - t0)


# -------------------------------------------------------------- ultranest
@contextlib.contextmanager
def _global_numpy_seed(seed):
    """Seed NumPy's global random state inside the block, restore it after."""
    if seed is None:
        yield
        return
    state = np.random.get_state()
    np.random.seed(int(seed) % 2 ** 32)
    try:
        yield
    finally:
        np.random.set_state(state)


def _run_ultranest(model, obs, noise, seed, settings):
    _require("ultranest", "ultranest")
    import logging
    from ultranest import ReactiveNestedSampler
    like = _vectorised_likelihood(model, obs, noise, nested=True)
    ncall = [0]

    def loglike(theta):
        ncall[0] += len(theta)
        lnl = like.lnlike(theta)
        return np.where(np.isfinite(lnl), lnl, ULTRANEST_FLOOR_LNLIKE)

    logger = logging.getLogger("ultranest")
    level = logger.level
    t0 = time.time()
    with _global_numpy_seed(seed):
        try:
            sampler = ReactiveNestedSampler(list(model.theta_labels()), loglike,
                                            transform=like.prior_transform, vectorized=True,
                                            num_test_samples=0)
            logger.setLevel(logging.WARNING)  # its progress lines (INFO)
            sampler.stepsampler = _step_sampler(settings)
            result = sampler.run(min_num_live_points=int(settings["nlive"]),
                                 dlogz=settings["dlogz"], min_ess=int(settings["min_ess"]),
                                 frac_remain=settings["frac_remain"],
                                 max_ncalls=settings["max_ncalls"], show_status=False,
                                 viz_callback=False)
        finally:
            logger.setLevel(level)
    seconds = time.time() - t0
    weighted = result["weighted_samples"]
    samples = np.asarray(weighted["points"])[:, :model.ndim]
    weights = np.asarray(weighted["weights"], dtype=float)
    keep = weights > 0
    samples, weights = samples[keep], weights[keep] / weights[keep].sum()
    lnlike = np.asarray(weighted["logl"], dtype=float)[keep]
    return {"samples": samples, "weights": weights, "lnlikelihood": lnlike,
            "lnprobability": lnlike + model.prior_product(samples),
            "logz": float(result["logz"]), "logzerr": float(result["logzerr"]),
            "ncall": int(ncall[0]), "seconds": seconds, "raw": None,
            "diagnostics": {"niter": int(result["niter"]), "ess": float(result["ess"]),
                            "ultranest_ncall": int(result["ncall"]),
                            "insertion_order_MWW_test": _jsonable(
                                result.get("insertion_order_MWW_test", {}))}}


def _run_blackjax_nss(model, obs, noise, seed, settings):
    from .blackjax_nss import run_blackjax_nss
    return run_blackjax_nss(_vectorised_likelihood(model, obs, noise, nested=True), seed, settings)


def _run_blackjax_nuts(model, obs, noise, seed, settings):
    from .blackjax_nuts import run_blackjax_nuts
    return run_blackjax_nuts(_vectorised_likelihood(model, obs, noise, nested=True), seed,
                             settings)


def _step_sampler(settings):
    kind = settings["step_sampler"]
    if kind == "none":
        return None
    nsteps = int(settings["nsteps"])
    if kind == "slice":
        from ultranest.stepsampler import SliceSampler, generate_mixture_random_direction
        return SliceSampler(nsteps=nsteps, generate_direction=generate_mixture_random_direction)
    from ultranest.popstepsampler import PopulationSliceSampler
    from ultranest.stepfuncs import generate_mixture_random_direction
    return PopulationSliceSampler(popsize=int(settings["popsize"]), nsteps=nsteps,
                                  generate_direction=generate_mixture_random_direction)


# ------------------------------------------------------------------ emcee
def _run_emcee(model, obs, noise, seed, settings):
    emcee = _require("emcee", "emcee")
    like = _vectorised_likelihood(model, obs, noise, nested=False)
    ndim, nwalkers = model.ndim, int(settings["nwalkers"])
    rng = np.random.default_rng(seed)
    start, n_drawn = _prior_draws_with_finite_posterior(like, nwalkers, rng)
    if settings["moves"] == "stretch":
        moves = None
    else:  # the mixture emcee's documentation suggests for multimodal posteriors
        moves = [(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)]
    ncall = [n_drawn]

    def lnprob(theta):
        ncall[0] += len(theta)
        return like(theta)

    sampler = emcee.EnsembleSampler(nwalkers, ndim, lnprob, vectorize=True, moves=moves)
    sampler.random_state = np.random.RandomState(rng.integers(2 ** 32)).get_state()
    multiple = float(settings["min_tau_multiple"])
    state, tau, converged = start, None, False
    t0 = time.time()
    with np.errstate(invalid="ignore"):  # DE moves propose outside the prior: -inf - -inf
        while sampler.iteration < int(settings["max_steps"]):
            steps = (int(settings["min_steps"]) if sampler.iteration == 0 else
                     min(int(settings["check_every"]),
                         int(settings["max_steps"]) - sampler.iteration))
            state = sampler.run_mcmc(state, steps, progress=False)
            tau = sampler.get_autocorr_time(tol=0)
            if np.all(np.isfinite(tau)) and sampler.iteration >= multiple * np.max(tau):
                converged = True
                break
    seconds = time.time() - t0
    tau_max = float(np.max(tau))
    burn = int(min(math.ceil(float(settings["burn_tau_multiple"]) * tau_max),
                   sampler.iteration // 2))
    thin = max(1, int(0.5 * float(np.min(tau))))
    length_in_tau = sampler.iteration / tau_max
    if not converged:
        message = (f"emcee stopped at max_steps = {sampler.iteration} steps, "
                   f"{length_in_tau:.1f} autocorrelation times (tau = {tau_max:.0f} steps); "
                   f"at least {multiple:g} are needed for a trustworthy posterior: raise "
                   "max_steps or choose another sampler")
        not_converged(message, settings, ShortChainWarning, stacklevel=4)
    samples = sampler.get_chain(discard=burn, thin=thin, flat=True)
    lnprob = sampler.get_log_prob(discard=burn, thin=thin, flat=True)
    return {"samples": samples, "weights": np.full(len(samples), 1.0 / len(samples)),
            "lnprobability": lnprob, "lnlikelihood": lnprob - model.prior_product(samples),
            "logz": None, "logzerr": None, "ncall": int(ncall[0]), "seconds": seconds,
            "raw": None,
            "diagnostics": {"autocorr_time": [float(t) for t in tau],
                            "chain_length_in_autocorr_times": float(length_in_tau),
                            "converged": bool(converged), "n_steps": int(sampler.iteration),
                            "burn": burn, "thin": thin, "nwalkers": nwalkers,
                            "acceptance_fraction": float(np.mean(sampler.acceptance_fraction))}}


# -------------------------------------------------------------------- smc
def _run_smc(model, obs, noise, seed, settings):
    from .smc import run_tempered_smc, whitened_to_unit
    like = _vectorised_likelihood(model, obs, noise, nested=True, float32=settings["float32"])

    def lnlike_whitened(y):
        return like.lnlike(like.prior_transform(whitened_to_unit(y)))

    sizes = {k: settings[k] for k in _SMC_DEFAULTS}
    t0 = time.time()
    run = run_tempered_smc(lnlike_whitened, model.ndim, np.random.default_rng(seed), **sizes)
    seconds = time.time() - t0
    samples = like.prior_transform(whitened_to_unit(run["y"]))
    n = len(samples)
    return {"samples": samples, "weights": np.full(n, 1.0 / n), "lnlikelihood": run["lnlike"],
            "lnprobability": run["lnlike"] + model.prior_product(samples),
            "logz": run["logz"], "logzerr": run["logzerr"], "ncall": run["ncall"],
            "seconds": seconds, "raw": None,
            "diagnostics": {"n_stages": len(run["betas"]) - 1, "n_chains": run["n_chains"],
                            "betas": [float(b) for b in run["betas"]],
                            "acceptance": [float(a) for a in run["acceptance"]],
                            "float32": bool(like.float32)}}


def _prior_draws_with_finite_posterior(like, n, rng, max_draws=200000):
    """``n`` prior draws whose ln-posterior is finite (inside the training range), and
    the number of draws evaluated."""
    found, drawn = [], 0
    while sum(len(f) for f in found) < n and drawn < max_draws:
        theta = like.prior_transform(rng.uniform(size=(4 * n, like.ndim)))
        drawn += len(theta)
        found.append(theta[np.isfinite(like(theta))])
    found = np.concatenate(found)
    if len(found) < n:
        raise EmulatorConfigurationError(
            f"only {len(found)} of {drawn} prior draws have a finite ln-posterior (the rest lie "
            "outside the emulator's training range): the priors do not fit the emulator")
    return found[:n], drawn


# ---------------------------------------------------------------- writing
def write_sampler_results(path, fit, model, obs, run_params=None, quality=None):
    """Write a :func:`run_sampler` result as a Prospector HDF5 results file.

    dynesty results are written by Prospector's ``write_hdf5`` as always.  For
    the other samplers ``write_hdf5`` writes the header, ``run_params`` and
    ``obs``, and the ``sampling`` group gets what Prospector's
    ``write_dynesty_h5`` writes for weighted samples: datasets ``chain``
    (n, ndim), ``weights`` (summing to 1), ``lnprobability`` (ln-posterior),
    ``lnlikelihood`` and (nested samplers) ``logz``/``logzerr``; attributes
    ``ncall``, ``theta_labels``, ``sampling_duration`` (JSON), plus
    ``sampler`` and ``diagnostics``.  ``run_params`` records ``sampler``,
    ``sampler_settings`` and ``seed`` in every case.  With ``quality``
    (:func:`~prospect_emulator.fitting.quality.fit_quality`) the ``bestfit``
    group and the quality record are added
    (:func:`~prospect_emulator.fitting.results.write_bestfit`).

    Parameters
    ----------
    path : str
        The file to create (written beside and renamed into place).
    fit : dict
        From :func:`run_sampler`.
    model : EmulatedSpecModel
    obs : dict
    run_params : dict, optional
        Extra entries (e.g. :func:`~prospect_emulator.fitting.results.model_recipe`).
    quality : dict, optional
    """
    from prospect.io import write_results
    from ..fileio import atomic_path
    from .results import write_bestfit
    recorded = dict(run_params or {})
    if fit["sampler"] == "dynesty":  # fit_model's keywords at the top level, as before
        recorded.update(fit["settings"])
    recorded.update(sampler=fit["sampler"], sampler_settings=fit["settings"], seed=fit["seed"])
    with atomic_path(path) as tmp:
        if os.path.exists(tmp):
            os.remove(tmp)
        with warnings.catch_warnings():
            # Prospector's notes that it has no version hash, no parameter file and
            # pickled model_params (load_fit rebuilds the model without them)
            for message in ("Could not obtain prospector version", "Could not store paramfile",
                            "Could not JSON serialize model_params"):
                warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
            write_results.write_hdf5(tmp, recorded, model, obs, fit["raw"], None,
                                     tsample=fit["seconds"], toptimize=0.0)
        if fit["raw"] is None:
            _write_weighted_sampling(tmp, fit, model)
        else:
            import h5py
            with h5py.File(tmp, "a") as hf:
                hf["sampling"].attrs["sampler"] = json.dumps(fit["sampler"])
                hf["sampling"].attrs["diagnostics"] = json.dumps(fit["diagnostics"])
        if quality is not None:
            write_bestfit(tmp, quality)


def _write_weighted_sampling(path, fit, model):
    import h5py
    with h5py.File(path, "a") as hf:
        group = hf.require_group("sampling")
        group.create_dataset("chain", data=np.asarray(fit["samples"], dtype=float))
        group.create_dataset("weights", data=np.asarray(fit["weights"], dtype=float))
        group.create_dataset("lnprobability", data=np.asarray(fit["lnprobability"], dtype=float))
        group.create_dataset("lnlikelihood", data=np.asarray(fit["lnlikelihood"], dtype=float))
        if fit["logz"] is not None:
            group.create_dataset("logz", data=np.atleast_1d(float(fit["logz"])))
            group.create_dataset("logzerr", data=np.atleast_1d(float(fit["logzerr"])))
        group.attrs["ncall"] = json.dumps(int(fit["ncall"]))
        group.attrs["theta_labels"] = json.dumps(list(model.theta_labels()))
        group.attrs["sampling_duration"] = json.dumps(float(fit["seconds"]))
        group.attrs["sampler"] = json.dumps(fit["sampler"])
        group.attrs["diagnostics"] = json.dumps(fit["diagnostics"])
