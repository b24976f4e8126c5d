"""Fitting one galaxy: obs dictionaries, the dynesty run, posterior summaries."""
import contextlib
import threading

import numpy as np

from ..errors import EmulatorConfigurationError
from .derived import sfh_summary
from .quality import fit_quality, mask_reasons
from .samplers import DEFAULT_SAMPLER

__all__ = ["make_obs", "fit_galaxy", "posterior_samples", "posterior_summary", "check_nlive",
           "seeded_dynesty", "DEFAULT_NESTED_KWARGS", "SUMMARY_PERCENTILES"]

#: dynesty settings through Prospector's ``fit_model``: enough for stable
#: medians and 68% intervals in about a minute per galaxy on one core.
DEFAULT_NESTED_KWARGS = dict(nested_bound="multi", nested_sample="rwalk", nested_nlive_init=200,
                             nested_nlive_batch=100, nested_dlogz_init=0.05,
                             nested_target_n_effective=2000, nested_maxcall=int(3e6),
                             print_progress=False, verbose=False)
#: Percentiles reported for every posterior quantity.
SUMMARY_PERCENTILES = (16.0, 50.0, 84.0)


def make_obs(filter_names, maggies, maggies_unc, phot_mask=None):
    """A Prospector obs dictionary for photometry only.

    Parameters
    ----------
    filter_names : sequence of str
        sedpy filter names.
    maggies, maggies_unc : array_like
        Flux densities and 1-sigma uncertainties (maggies).  Bands with a
        non-finite value or a non-positive uncertainty are masked.
    phot_mask : array_like of bool, optional
        Additional mask (True = use the band).

    Returns
    -------
    dict
        Masked bands get placeholder values (flux 0, uncertainty 1) in
        ``maggies``/``maggies_unc``; the values as given are kept in
        ``maggies_input``/``maggies_unc_input`` (NaN allowed) and
        ``phot_mask_reason`` says why each band is masked (``""`` if used;
        :func:`~prospect_emulator.fitting.quality.mask_reasons`).
    """
    from prospect.utils.obsutils import fix_obs
    from sedpy.observate import load_filters
    maggies = np.asarray(maggies, dtype=float)
    maggies_unc = np.asarray(maggies_unc, dtype=float)
    reasons = mask_reasons(maggies, maggies_unc, phot_mask)
    good = np.array([not r for r in reasons], dtype=bool)
    obs = {"filters": load_filters(list(filter_names)), "maggies": np.where(good, maggies, 0.0),
           "maggies_unc": np.where(good, maggies_unc, 1.0), "phot_mask": good,
           "phot_mask_reason": reasons, "maggies_input": maggies.copy(),
           "maggies_unc_input": maggies_unc.copy(),
           "wavelength": None, "spectrum": None, "unc": None, "mask": None}
    return fix_obs(obs)


def check_nlive(nlive, n_free, option="nested_nlive_init (--nlive)"):
    """Refuse fewer than 2 live points per free parameter.

    dynesty's bounding ellipsoids (``nested_bound="multi"``) are built from
    the live points; with fewer than about twice the dimension they are
    degenerate and the run ends early with the posterior close to the prior.

    Raises
    ------
    EmulatorConfigurationError
    """
    if nlive is not None and int(nlive) < 2 * int(n_free):
        raise EmulatorConfigurationError(
            f"{option} = {nlive} is below twice the {n_free} free parameters of the model: "
            f"dynesty needs at least {2 * n_free} live points (the default is "
            f"{DEFAULT_NESTED_KWARGS['nested_nlive_init']})")


_SEED_LOCK = threading.Lock()


@contextlib.contextmanager
def seeded_dynesty(seed):
    """Make the dynesty samplers created inside the block draw from ``seed``.

    Prospector 1.4's ``run_dynesty_sampler`` passes no random state to
    ``dynesty.DynamicNestedSampler``, which then takes a fresh
    ``numpy.random.Generator`` from ``dynesty.utils.get_random_generator()``
    (unseeded).  Inside this block that call returns ``Generator(PCG64(seed))``
    instead, so two fits with the same seed, data and settings give identical
    samples.  ``seed=None`` changes nothing.
    """
    if seed is None:
        yield
        return
    import dynesty.dynesty as dynesty_module
    original = getattr(dynesty_module, "get_random_generator", None)
    if original is None:
        raise EmulatorConfigurationError(
            "this dynesty version does not create its random state through "
            "dynesty.dynesty.get_random_generator, so seed= cannot be honoured; install "
            "dynesty>=2.0,<3 or fit without a seed")
    seed = int(seed)

    def seeded(given=None):
        return np.random.Generator(np.random.PCG64(seed)) if given is None else original(given)

    with _SEED_LOCK:
        dynesty_module.get_random_generator = seeded
        try:
            yield
        finally:
            dynesty_module.get_random_generator = original


def fit_galaxy(obs, model, noise=None, nested_kwargs=None, results_path=None, run_params=None,
               sps=None, seed=None, sampler=DEFAULT_SAMPLER, sampler_settings=None):
    """Sample the posterior of one galaxy (Prospector's model, likelihood and results file).

    Parameters
    ----------
    obs : dict
        Prospector obs dictionary (see :func:`make_obs`).
    model : EmulatedSpecModel
    noise : EmulatorNoiseModel, optional
        The photometric noise model (``noise=(None, noise)`` in Prospector).
    nested_kwargs : dict, optional
        Overrides of :data:`DEFAULT_NESTED_KWARGS` (``sampler="dynesty"`` and
        ``"dynesty-pool"`` only).
    results_path : str, optional
        Where to write Prospector's HDF5 results (written beside and renamed
        into place, so a finished file is always complete).
    run_params : dict, optional
        Extra entries recorded in the results file.  Include
        :func:`~prospect_emulator.fitting.results.model_recipe` (emulator file,
        its checksum, redshift, overrides) so that
        :func:`~prospect_emulator.fitting.results.load_fit` can rebuild the model.
    sps : SPS source, optional
        For a model that needs one (``None`` for an emulator; ``sampler="dynesty"``
        only).
    seed : int, optional
        Seed of the sampler's random state (dynesty: :func:`seeded_dynesty`):
        the same seed, data and settings give identical samples.  Default: unseeded.
    sampler : str
        One of :data:`~prospect_emulator.fitting.samplers.SAMPLERS`; default
        :data:`~prospect_emulator.fitting.samplers.DEFAULT_SAMPLER` (``"smc"``,
        tempered sequential Monte Carlo on the batched likelihood, NumPy only,
        calibrated for the 14-parameter model); ``"dynesty"`` runs Prospector's
        ``fit_model``.
    sampler_settings : dict, optional
        Settings of that sampler
        (:func:`~prospect_emulator.fitting.samplers.sampler_settings`); for
        dynesty they update ``nested_kwargs``.

    Returns
    -------
    dict
        ``samples`` (n, n_free), ``weights`` (n,), ``lnprobability`` (n,),
        ``logz`` (None for emcee), ``ncall``, ``seconds`` (wall time of the
        sampling), ``quality`` (:func:`~prospect_emulator.fitting.quality.fit_quality`:
        best-fit chi^2, bands, flags), ``sampler``, ``settings``,
        ``diagnostics`` and, for ``dynesty``, ``output`` (what ``fit_model``
        returned).  The results file also holds Prospector's ``bestfit``
        group and the quality record (attribute ``fit_quality``); its
        ``run_params`` record ``sampler``, ``sampler_settings`` and ``seed``.

    Raises
    ------
    EmulatorConfigurationError
        ``nested_nlive_init`` below twice the number of free parameters, an
        unknown sampler or setting, ``nested_kwargs`` or ``sps`` given to a
        sampler that does not take them.
    """
    from .samplers import merged_nested_kwargs, run_sampler, write_sampler_results
    settings = merged_nested_kwargs(sampler, nested_kwargs, sampler_settings)
    fit = run_sampler(sampler, model, obs, noise, seed=seed, sps=sps, **settings)
    samples, weights, lnprobability = fit["samples"], fit["weights"], fit["lnprobability"]
    quality = fit_quality(model, obs, noise, samples, weights, lnprobability=lnprobability,
                          sps=sps)
    if results_path is not None:
        recorded = dict(run_params or {})
        recorded["noise_floor"] = getattr(noise, "floor", None)
        recorded["noise_covariance"] = getattr(noise, "covariance", None)
        write_sampler_results(results_path, fit, model, obs, run_params=recorded,
                              quality=quality)
    out = {"samples": samples, "weights": weights, "lnprobability": lnprobability,
           "logz": fit["logz"], "ncall": fit["ncall"], "seconds": fit["seconds"],
           "quality": quality, "sampler": fit["sampler"], "settings": fit["settings"],
           "diagnostics": fit["diagnostics"]}
    if "fit_model_output" in fit:
        out["output"] = fit["fit_model_output"]
    return out


def posterior_samples(samples, weights, n=2000, seed=0):
    """Equal-weight resample (n, n_free) of weighted nested samples."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(weights), size=n, replace=True, p=weights)
    return np.asarray(samples)[idx]


def posterior_summary(model, samples, weights, n=2000, seed=0, sps=None):
    """Percentiles of the free parameters and the derived physical quantities.

    Derived: log10 stellar mass formed and surviving (Msun), log10 SFR over
    30 and 100 Myr (Msun/yr), mass-weighted age (Gyr); see
    :data:`~prospect_emulator.fitting.derived.DERIVED_NAMES`.

    ``sps`` is the SPS source of a model that needs one (``None`` for an
    :class:`~prospect_emulator.EmulatedSpecModel`).

    Returns
    -------
    dict
        name -> array of :data:`SUMMARY_PERCENTILES`.
    """
    draws = posterior_samples(samples, weights, n=n, seed=seed)
    columns = {}
    labels = list(model.theta_labels())
    for j, label in enumerate(labels):
        columns[label] = draws[:, j]
    derived = []
    for theta in draws:
        _, _, mfrac = model.predict(theta, obs={"filters": None, "wavelength": None, "spectrum": None},
                                    sps=sps)
        derived.append(sfh_summary(model.params, mfrac))
    if derived[0] is None:  # an SFH derived.sfh_summary does not handle
        return {k: np.nanpercentile(v, SUMMARY_PERCENTILES) for k, v in columns.items()}
    for key in derived[0]:
        columns[key] = np.array([d[key] for d in derived])
    return {k: np.nanpercentile(v, SUMMARY_PERCENTILES) if np.isfinite(v).any()
            else np.full(len(SUMMARY_PERCENTILES), np.nan) for k, v in columns.items()}
