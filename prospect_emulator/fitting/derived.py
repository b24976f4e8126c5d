"""Physical quantities derived from a fitted model's parameters.

Works for Prospector's non-parametric step SFH (``agebins`` in log10 yr of
lookback time, ``mass`` formed per bin in Msun), which is what the
continuity / Prospector-alpha parameterisations resolve to, and for FSPS's
parametric tau (``sfh`` 1) and delayed-tau (``sfh`` 4) SFHs (``tage``,
``tau`` in Gyr, ``mass`` formed in Msun); :func:`sfh_summary` picks the one a
model has.
"""
import math

import numpy as np

__all__ = ["sfh_summary", "step_sfh_summary", "parametric_sfh_summary", "DERIVED_NAMES"]

#: Names and units of the quantities :func:`step_sfh_summary` returns.
DERIVED_NAMES = {
    "logmass_formed": "log10 stellar mass formed (Msun)",
    "logmstar": "log10 surviving stellar mass, logmass_formed + log10(mfrac) (Msun)",
    "logsfr_100myr": "log10 mean SFR over the last 100 Myr (Msun/yr)",
    "logsfr_30myr": "log10 mean SFR over the last 30 Myr (Msun/yr)",
    "mwa_gyr": "mass-weighted age (Gyr)",
}


def _mass_formed_since(agebins, masses, t_yr):
    """Stellar mass formed in the last ``t_yr`` years of a step SFH (Msun)."""
    lo, hi = 10 ** agebins[:, 0], 10 ** agebins[:, 1]
    lo = np.where(agebins[:, 0] <= 0, 0.0, lo)  # a first edge of 0 means "now"
    frac = np.clip((t_yr - lo) / (hi - lo), 0.0, 1.0)
    return float(np.sum(masses * frac))


def step_sfh_summary(agebins, masses, mfrac=np.nan):
    """Stellar mass, SFR and mass-weighted age of a step SFH.

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
        Keys of :data:`DERIVED_NAMES`.
    """
    agebins = np.asarray(agebins, dtype=float)
    masses = np.atleast_1d(np.asarray(masses, dtype=float))
    lo, hi = 10 ** agebins[:, 0], 10 ** agebins[:, 1]
    lo = np.where(agebins[:, 0] <= 0, 0.0, lo)
    total = masses.sum()
    with np.errstate(divide="ignore"):
        return {
            "logmass_formed": np.log10(total),
            "logmstar": np.log10(total * mfrac),
            "logsfr_100myr": np.log10(_mass_formed_since(agebins, masses, 1e8) / 1e8),
            "logsfr_30myr": np.log10(_mass_formed_since(agebins, masses, 3e7) / 3e7),
            # constant SFR within a bin: its mass has the bin's mid-age
            "mwa_gyr": float(np.sum(masses * 0.5 * (lo + hi)) / total / 1e9),
        }


def _formed_by(t, sfh, tau):
    """Integral of SFR from the start to time ``t`` (Gyr): exp(-t/tau) (sfh 1)
    or t exp(-t/tau) (sfh 4), in units of tau (sfh 1) or tau^2 (sfh 4)."""
    x = max(t, 0.0) / tau
    return -math.expm1(-x) if sfh == 1 else -math.expm1(-x) - x * math.exp(-x)


def _mean_formation_time(t, sfh, tau):
    """Mass-weighted mean time of formation (Gyr since the start) up to ``t``."""
    x = t / tau
    if sfh == 1:   # int t e^-t / int e^-t
        num = 1.0 - math.exp(-x) * (1.0 + x)
        den = -math.expm1(-x)
    else:          # int t^2 e^-t / int t e^-t
        num = 2.0 - math.exp(-x) * (x * x + 2.0 * x + 2.0)
        den = -math.expm1(-x) - x * math.exp(-x)
    return tau * num / den


def parametric_sfh_summary(sfh, tage, tau, mass, mfrac=np.nan):
    """Stellar mass, SFR and mass-weighted age of an FSPS tau or delayed-tau SFH.

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
        Keys of :data:`DERIVED_NAMES`.
    """
    sfh, tage, tau, mass = int(sfh), float(tage), float(tau), float(mass)
    total = _formed_by(tage, sfh, tau)

    def log_sfr(window_gyr):
        formed = total - _formed_by(tage - window_gyr, sfh, tau)
        return math.log10(mass * formed / total / (min(window_gyr, tage) * 1e9)) \
            if formed > 0 else -np.inf

    with np.errstate(divide="ignore"):
        return {"logmass_formed": math.log10(mass), "logmstar": np.log10(mass * mfrac),
                "logsfr_100myr": log_sfr(0.1), "logsfr_30myr": log_sfr(0.03),
                "mwa_gyr": tage - _mean_formation_time(tage, sfh, tau)}


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
        None for an SFH neither function handles.
    """
    sfh = int(np.ravel(params.get("sfh", [3]))[0])
    if "agebins" in params and "mass" in params and sfh in (0, 3):
        return step_sfh_summary(params["agebins"], params["mass"], mfrac)
    if sfh in (1, 4) and "tage" in params and "mass" in params:
        return parametric_sfh_summary(sfh, np.ravel(params["tage"])[0],
                                      np.ravel(params.get("tau", [1.0]))[0],
                                      np.sum(params["mass"]), mfrac)
    return None
