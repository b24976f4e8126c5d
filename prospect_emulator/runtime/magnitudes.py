"""The arsinh ("asinh") AB magnitude system of the emulators (paper eq. 2).

``mu(f) = -a * arsinh(f / 2 * exp(mu0 / a)) + mu0`` with ``f`` in maggies
(flux density in units of 3631 Jy), ``a = 2.5 log10(e)`` so that bright
sources follow ordinary AB magnitudes, and ``mu0 = 35`` the faint-end
softening: ``mu -> mu0`` smoothly as ``f -> 0``.
"""
import math

import numpy as np

__all__ = ["ARSINH_A", "ARSINH_MU0", "maggies_to_arsinh_mags",
           "arsinh_mags_to_maggies", "dmaggies_dmag"]

#: Slope of the arsinh magnitude system, 2.5 log10(e) (mag per e-fold).
ARSINH_A = 2.5 * np.log10(np.e)
#: Softening magnitude mu0 of the published emulators (mag).
ARSINH_MU0 = 35.0


def _exp(v):
    """exp(v): math.exp for scalars (a NumPy scalar round trip costs microseconds
    per likelihood call), np.exp for arrays."""
    try:
        return math.exp(v)
    except (TypeError, OverflowError):  # arrays; overflow gives inf as np.exp does
        return np.exp(v)


def maggies_to_arsinh_mags(maggies, mu0=ARSINH_MU0, a=ARSINH_A):
    """Arsinh AB magnitudes of flux densities (eq. 2).

    Parameters
    ----------
    maggies : array_like
        Flux densities in maggies (may be zero or negative).
    mu0, a : float
        Softening magnitude and slope of the system (mag).

    Returns
    -------
    ndarray
        Arsinh magnitudes (mag).
    """
    return mu0 - a * np.arcsinh(0.5 * _exp(mu0 / a) * np.asarray(maggies, dtype=float))


def arsinh_mags_to_maggies(mags, mu0=ARSINH_MU0, a=ARSINH_A):
    """Flux densities (maggies) of arsinh AB magnitudes; inverse of eq. 2."""
    return 2.0 * _exp(-mu0 / a) * np.sinh((mu0 - np.asarray(mags, dtype=float)) / a)


def dmaggies_dmag(mags, mu0=ARSINH_MU0, a=ARSINH_A):
    """Exact derivative d(maggies)/d(mag) of the inverse of eq. 2 (maggies per mag).

    Negative everywhere: brighter means a smaller magnitude.  Used to turn the
    emulator's residual scatter (mag) into a flux uncertainty at a model flux.
    """
    return -(2.0 / a) * _exp(-mu0 / a) * np.cosh((mu0 - np.asarray(mags, dtype=float)) / a)
