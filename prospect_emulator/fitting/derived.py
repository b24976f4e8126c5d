"""Physical quantities derived from a fitted model's parameters.

Works for Prospector's non-parametric step SFH (``agebins`` in log10 yr of
lookback time, ``mass`` formed per bin in Msun), which is what the
continuity / Prospector-alpha parameterisations resolve to.
"""
import numpy as np

__all__ = ["step_sfh_summary", "DERIVED_NAMES"]

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
