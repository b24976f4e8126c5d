"""Fitting one galaxy: obs dictionaries, the dynesty run, posterior summaries."""
import contextlib
import os
import threading
import time
import warnings

import numpy as np

from ..errors import EmulatorConfigurationError
from ..fileio import atomic_path
from .derived import sfh_summary
from .quality import fit_quality, mask_reasons

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
               sps=None, seed=None):
    """Sample the posterior of one galaxy with Prospector + dynesty.

    Parameters
    ----------
    obs : dict
        Prospector obs dictionary (see :func:`make_obs`).
    model : EmulatedSpecModel
    noise : EmulatorNoiseModel, optional
        The photometric noise model (``noise=(None, noise)`` in Prospector).
    nested_kwargs : dict, optional
        Overrides of :data:`DEFAULT_NESTED_KWARGS`.
    results_path : str, optional
        Where to write Prospector's HDF5 results (written beside and renamed
        into place, so a finished file is always complete).
    run_params : dict, optional
        Extra entries recorded in the results file.  Include
        :func:`~prospect_emulator.fitting.results.model_recipe` (emulator file,
        its checksum, redshift, overrides) so that
        :func:`~prospect_emulator.fitting.results.load_fit` can rebuild the model.
    sps : SPS source, optional
        For a model that needs one (``None`` for an emulator).
    seed : int, optional
        Seed of dynesty's random state (:func:`seeded_dynesty`): the same seed,
        data and settings give identical samples.  Default: unseeded.

    Returns
    -------
    dict
        ``samples`` (n, n_free), ``weights`` (n,), ``lnprobability`` (n,),
        ``logz``, ``ncall``, ``seconds`` (wall time of the sampling),
        ``quality`` (:func:`~prospect_emulator.fitting.quality.fit_quality`:
        best-fit chi^2, bands, flags) and ``output`` (what ``fit_model``
        returned).  The results file also holds Prospector's ``bestfit``
        group and the quality record (attribute ``fit_quality``).

    Raises
    ------
    EmulatorConfigurationError
        ``nested_nlive_init`` below twice the number of free parameters.
    """
    from prospect.fitting import fit_model
    kwargs = dict(DEFAULT_NESTED_KWARGS, **(nested_kwargs or {}))
    check_nlive(kwargs.get("nested_nlive_init"), model.ndim)
    t0 = time.time()
    with seeded_dynesty(seed):
        output = fit_model(obs, model, sps, noise=(None, noise), optimize=False, dynesty=True,
                           **kwargs)
    seconds = time.time() - t0
    res = output["sampling"][0]
    samples = np.asarray(res["samples"])
    weights = np.exp(res["logwt"] - res["logz"][-1])
    weights /= weights.sum()
    # as Prospector's write_dynesty_h5 stores it
    lnprobability = np.asarray(res["logl"]) + model.prior_product(samples)
    quality = fit_quality(model, obs, noise, samples, weights, lnprobability=lnprobability,
                          sps=sps)
    if results_path is not None:
        from prospect.io import write_results
        from .results import write_bestfit
        recorded = dict(run_params or {}, **kwargs)
        recorded["seed"] = None if seed is None else int(seed)
        recorded["noise_floor"] = getattr(noise, "floor", None)
        recorded["noise_covariance"] = getattr(noise, "covariance", None)
        with atomic_path(results_path) as tmp:
            if os.path.exists(tmp):
                os.remove(tmp)
            with warnings.catch_warnings():
                # Prospector's notes that it has no version hash, no parameter file and
                # pickled model_params (load_fit rebuilds the model without them)
                for message in ("Could not obtain prospector version", "Could not store paramfile",
                                "Could not JSON serialize model_params"):
                    warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
                write_results.write_hdf5(tmp, recorded, model, obs, res, None,
                                         tsample=output["sampling"][1], toptimize=0.0)
            write_bestfit(tmp, quality)
    return {"samples": samples, "weights": weights, "lnprobability": lnprobability,
            "logz": float(res["logz"][-1]), "ncall": int(np.sum(res["ncall"])),
            "seconds": seconds, "quality": quality, "output": output}


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
