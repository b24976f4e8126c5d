"""Fitting one galaxy: obs dictionaries, the dynesty run, posterior summaries."""
import os
import time

import numpy as np

from ..fileio import atomic_path
from .derived import step_sfh_summary

__all__ = ["make_obs", "fit_galaxy", "posterior_samples", "posterior_summary",
           "DEFAULT_NESTED_KWARGS", "SUMMARY_PERCENTILES"]

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
    """
    from prospect.utils.obsutils import fix_obs
    from sedpy.observate import load_filters
    maggies = np.asarray(maggies, dtype=float)
    maggies_unc = np.asarray(maggies_unc, dtype=float)
    good = np.isfinite(maggies) & np.isfinite(maggies_unc) & (maggies_unc > 0)
    if phot_mask is not None:
        good &= np.asarray(phot_mask, dtype=bool)
    obs = {"filters": load_filters(list(filter_names)), "maggies": np.where(good, maggies, 0.0),
           "maggies_unc": np.where(good, maggies_unc, 1.0), "phot_mask": good,
           "wavelength": None, "spectrum": None, "unc": None, "mask": None}
    return fix_obs(obs)


def fit_galaxy(obs, model, noise=None, nested_kwargs=None, results_path=None, run_params=None,
               sps=None):
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
        Extra entries recorded in the results file.
    sps : SPS source, optional
        For a model that needs one (``None`` for an emulator).

    Returns
    -------
    dict
        ``samples`` (n, n_free), ``weights`` (n,), ``logz``, ``ncall``,
        ``seconds`` (wall time of the sampling) and ``output`` (what
        ``fit_model`` returned).
    """
    from prospect.fitting import fit_model
    kwargs = dict(DEFAULT_NESTED_KWARGS, **(nested_kwargs or {}))
    t0 = time.time()
    output = fit_model(obs, model, sps, noise=(None, noise), optimize=False, dynesty=True, **kwargs)
    seconds = time.time() - t0
    res = output["sampling"][0]
    weights = np.exp(res["logwt"] - res["logz"][-1])
    if results_path is not None:
        from prospect.io import write_results
        with atomic_path(results_path) as tmp:
            if os.path.exists(tmp):
                os.remove(tmp)
            write_results.write_hdf5(tmp, dict(run_params or {}, **kwargs), model, obs, res,
                                     None, tsample=output["sampling"][1], toptimize=0.0)
    return {"samples": np.asarray(res["samples"]), "weights": weights / weights.sum(),
            "logz": float(res["logz"][-1]), "ncall": int(np.sum(res["ncall"])),
            "seconds": seconds, "output": output}


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
        derived.append(step_sfh_summary(model.params["agebins"], model.params["mass"], mfrac))
    for key in derived[0]:
        columns[key] = np.array([d[key] for d in derived])
    return {k: np.nanpercentile(v, SUMMARY_PERCENTILES) if np.isfinite(v).any()
            else np.full(len(SUMMARY_PERCENTILES), np.nan) for k, v in columns.items()}
