"""The total uncertainty of a band: the paper's eq. 9.

    sigma_assume^2 = sigma_obs^2 + sigma_emul^2 + (floor E_nu)^2

sigma_obs is the measurement uncertainty, sigma_emul the emulator's error in
flux units (:meth:`~prospect_emulator.runtime.emulator.EmulatorBase.flux_error`)
and ``floor`` a fractional floor (5% in the paper) on the flux density E_nu.
Every place that needs the total (the obs-inflating helper, the simulations of
the amortized posteriors, their refinement) calls :func:`total_sigma`; the
likelihoods keep the same sum in a cached form (see
:class:`~prospect_emulator.prospector.noise.EmulatorNoiseModel`).
"""
import numpy as np

__all__ = ["total_sigma"]


def total_sigma(sigma_obs, sigma_emul, flux, floor):
    """Eq. 9: sqrt(sigma_obs^2 + sigma_emul^2 + (floor * flux)^2).

    Parameters
    ----------
    sigma_obs : ndarray
        Measurement uncertainties (maggies).
    sigma_emul : ndarray
        The emulator's error in flux units (maggies), e.g.
        :meth:`Emulator.flux_error`.
    flux : ndarray
        Flux densities (maggies) the fractional floor applies to (the observed
        ones in the paper; the model's in a likelihood that converts at the
        model flux).
    floor : float
        Fractional floor (0.05 = 5%).

    Returns
    -------
    ndarray
        Total 1-sigma uncertainty (maggies), broadcast over the inputs.
    """
    return np.sqrt(sigma_obs ** 2 + sigma_emul ** 2 + (floor * flux) ** 2)
