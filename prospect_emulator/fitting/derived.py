"""Physical quantities derived from a fitted model's parameters.

Works for Prospector's non-parametric step SFH (``agebins`` in log10 yr of
lookback time, ``mass`` formed per bin in Msun), which is what the
continuity / Prospector-alpha parameterisations resolve to, and for FSPS's
parametric tau (``sfh`` 1) and delayed-tau (``sfh`` 4) SFHs (``tage``,
``tau`` in Gyr, ``mass`` formed in Msun); :func:`sfh_summary` picks the one a
model has.
"""
import numpy as np

__all__ = ["sfh_summary", "sfh_summaries", "step_sfh_summary", "step_sfh_summaries",
           "parametric_sfh_summary", "parametric_sfh_summaries", "DERIVED_NAMES",
           "SFH_PARAMETERS"]

#: Names and units of the quantities :func:`step_sfh_summary` returns.
DERIVED_NAMES = {
    "logmass_formed": "log10 stellar mass formed (Msun)",
    "logmstar": "log10 surviving stellar mass, logmass_formed + log10(mfrac) (Msun)",
    "logsfr_100myr": "log10 mean SFR over the last 100 Myr (Msun/yr)",
    "logsfr_30myr": "log10 mean SFR over the last 30 Myr (Msun/yr)",
    "mwa_gyr": "mass-weighted age (Gyr)",
}


def step_sfh_summaries(agebins, masses, mfrac=np.nan):
    """Stellar mass, SFR and mass-weighted age of many step SFHs at once.

    Parameters
    ----------
    agebins : ndarray, shape (n, n_bins, 2) or (n_bins, 2)
        Bin edges in log10 lookback time (yr); Prospector's ``agebins``
        (one set for all rows, or one per row).
    masses : ndarray, shape (n, n_bins)
        Stellar mass formed in each bin (Msun); Prospector's ``mass``.
    mfrac : float or ndarray, shape (n,)
        Surviving stellar mass fraction (NaN if unknown).

    Returns
    -------
    dict
        Keys of :data:`DERIVED_NAMES`, each an array (n,).
    """
    agebins = np.asarray(agebins, dtype=float)
    masses = np.atleast_2d(np.asarray(masses, dtype=float))
    lo, hi = 10 ** agebins[..., 0], 10 ** agebins[..., 1]
    lo = np.where(agebins[..., 0] <= 0, 0.0, lo)  # a first edge of 0 means "now"
    total = masses.sum(axis=-1)

    def formed_since(t_yr):
        return np.sum(masses * np.clip((t_yr - lo) / (hi - lo), 0.0, 1.0), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "logmass_formed": np.log10(total),
            "logmstar": np.log10(total * np.asarray(mfrac, dtype=float)),
            "logsfr_100myr": np.log10(formed_since(1e8) / 1e8),
            "logsfr_30myr": np.log10(formed_since(3e7) / 3e7),
            # constant SFR within a bin: its mass has the bin's mid-age
            "mwa_gyr": np.sum(masses * 0.5 * (lo + hi), axis=-1) / total / 1e9,
        }


def step_sfh_summary(agebins, masses, mfrac=np.nan):
    """Stellar mass, SFR and mass-weighted age of one step SFH.

    Parameters
    ----------
    agebins : ndarray, shape (n_bins, 2)
        Bin edges in log10 lookback time (yr); Prospector's ``agebins``.
    masses : ndarray, shape (n_bins,)
        Stellar mass formed in each bin (Msun); Prospector's ``mass``.
    mfrac : float
        Surviving stellar mass fraction (NaN if unknown).

    Returns
    -------
    dict
        Keys of :data:`DERIVED_NAMES` (floats).
    """
    out = step_sfh_summaries(agebins, np.atleast_1d(masses)[None, :], mfrac)
    return {k: float(v[0]) for k, v in out.items()}


def _formed_by(t, sfh, tau):
    """Integral of SFR from the start to time ``t`` (Gyr): exp(-t/tau) (sfh 1)
    or t exp(-t/tau) (sfh 4), in units of tau (sfh 1) or tau^2 (sfh 4)."""
    x = np.maximum(t, 0.0) / tau
    return np.where(sfh == 1, -np.expm1(-x), -np.expm1(-x) - x * np.exp(-x))


def _mean_formation_time(t, sfh, tau):
    """Mass-weighted mean time of formation (Gyr since the start) up to ``t``."""
    x = t / tau
    num = np.where(sfh == 1, 1.0 - np.exp(-x) * (1.0 + x),        # int t e^-t / int e^-t
                   2.0 - np.exp(-x) * (x * x + 2.0 * x + 2.0))     # int t^2 e^-t / int t e^-t
    den = np.where(sfh == 1, -np.expm1(-x), -np.expm1(-x) - x * np.exp(-x))
    return tau * num / den


def parametric_sfh_summaries(sfh, tage, tau, mass, mfrac=np.nan):
    """Stellar mass, SFR and mass-weighted age of FSPS tau or delayed-tau SFHs.

    Parameters
    ----------
    sfh : {1, 4} or ndarray of them
        FSPS SFH type: SFR ~ exp(-t/tau) or t exp(-t/tau).
    tage : float or ndarray (n,)
        Age of the population, time since star formation began (Gyr).
    tau : float or ndarray (n,)
        e-folding time (Gyr).
    mass : float or ndarray (n,)
        Stellar mass formed (Msun).
    mfrac : float or ndarray (n,)
        Surviving stellar mass fraction (NaN if unknown).

    Returns
    -------
    dict
        Keys of :data:`DERIVED_NAMES`, each an array (n,).
    """
    sfh, tage, tau, mass, mfrac = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, dtype=float)) for v in (sfh, tage, tau, mass, mfrac)))
    total = _formed_by(tage, sfh, tau)

    def log_sfr(window_gyr):
        formed = total - _formed_by(tage - window_gyr, sfh, tau)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.log10(mass * formed / total / (np.minimum(window_gyr, tage) * 1e9))
        return np.where(formed > 0, value, -np.inf)

    with np.errstate(divide="ignore", invalid="ignore"):
        return {"logmass_formed": np.log10(mass), "logmstar": np.log10(mass * mfrac),
                "logsfr_100myr": log_sfr(0.1), "logsfr_30myr": log_sfr(0.03),
                "mwa_gyr": tage - _mean_formation_time(tage, sfh, tau)}


def parametric_sfh_summary(sfh, tage, tau, mass, mfrac=np.nan):
    """Stellar mass, SFR and mass-weighted age of one FSPS tau or delayed-tau SFH.

    Parameters
    ----------
    sfh : {1, 4}
        FSPS SFH type: SFR ~ exp(-t/tau) or t exp(-t/tau).
    tage : float
        Age of the population, time since star formation began (Gyr).
    tau : float
        e-folding time (Gyr).
    mass : float
        Stellar mass formed (Msun).
    mfrac : float
        Surviving stellar mass fraction (NaN if unknown).

    Returns
    -------
    dict
        Keys of :data:`DERIVED_NAMES` (floats).
    """
    out = parametric_sfh_summaries(int(sfh), float(tage), float(tau), float(mass), mfrac)
    return {k: float(v[0]) for k, v in out.items()}


#: Model parameters :func:`sfh_summaries` reads (those a model has).
SFH_PARAMETERS = ("sfh", "agebins", "mass", "tage", "tau")


def sfh_summaries(rows, mfrac=np.nan):
    """:data:`DERIVED_NAMES` of many parameter rows (step or parametric SFH).

    Parameters
    ----------
    rows : dict
        name -> array (n, *shape) of the model parameters of
        :data:`SFH_PARAMETERS` (e.g.
        :meth:`BatchedParameters.rows <prospect_emulator.prospector.batched_parameters.BatchedParameters.rows>`);
        ``sfh`` may be a fixed (unbatched) value.
    mfrac : float or ndarray (n,)

    Returns
    -------
    dict or None
        Arrays (n,); None for an SFH neither kind handles.
    """
    sfh = int(np.ravel(rows.get("sfh", [3]))[0])
    if "agebins" in rows and "mass" in rows and sfh in (0, 3):
        masses = np.asarray(rows["mass"], dtype=float)
        return step_sfh_summaries(rows["agebins"], masses.reshape(len(masses), -1), mfrac)
    if sfh in (1, 4) and "tage" in rows and "mass" in rows:
        mass = np.asarray(rows["mass"], dtype=float)
        n = len(mass)
        tau = rows.get("tau", np.ones(n))
        return parametric_sfh_summaries(
            sfh, np.asarray(rows["tage"], dtype=float).reshape(n, -1)[:, 0],
            np.asarray(tau, dtype=float).reshape(n, -1)[:, 0], mass.reshape(n, -1).sum(axis=1),
            mfrac)
    return None


def sfh_summary(params, mfrac=np.nan):
    """:data:`DERIVED_NAMES` of a model's current parameters (step or parametric SFH).

    Parameters
    ----------
    params : dict
        A Prospector model's ``params`` (after ``set_parameters``).
    mfrac : float

    Returns
    -------
    dict or None
        Floats; None for an SFH neither function handles.
    """
    rows = {k: np.asarray(params[k], dtype=float)[None] for k in SFH_PARAMETERS if k in params}
    out = sfh_summaries(rows, mfrac)
    return None if out is None else {k: float(np.ravel(v)[0]) for k, v in out.items()}
