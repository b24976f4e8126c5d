"""Photometric noise that includes the emulator's own error (paper eq. 9).

The paper assumes, per band,

    sigma_assume^2 = sigma_obs^2 + sigma_emul^2 + (0.05 E_nu)^2        (eq. 9)

with sigma_obs the measurement uncertainty, sigma_emul the emulator's test-set
residual scatter and 0.05 E_nu a 5% floor on the observed flux density E_nu
for SPS systematics.  The residual scatter is measured in arsinh magnitudes
(eq. 2); it becomes a flux uncertainty through the exact derivative
d maggies / d mag of eq. 2.

Two ways to use it:

* :class:`EmulatorNoiseModel`, a Prospector noise model passed as
  ``noise=(None, phot_noise)`` to ``prospect.fitting.lnprobfn`` / ``fit_model``.
  It converts sigma_emul at the *model* flux of every likelihood call and can
  use the full residual covariance matrix.
* :func:`inflate_obs_uncertainties`, which rewrites ``obs["maggies_unc"]`` once,
  at the *observed* fluxes, as the paper did; then fit with ``noise=(None, None)``.

Use one or the other, not both (that would count the emulator error twice).
"""
import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ..errors import EmulatorConfigurationError
from ..runtime.error_budget import total_sigma
from ..runtime.magnitudes import dmaggies_dmag, maggies_to_arsinh_mags
from .model import _as_emulator, filter_names_of

__all__ = ["EmulatorNoiseModel", "inflate_obs_uncertainties"]

LN_2PI = np.log(2.0 * np.pi)


def _check_floor(floor):
    floor = float(floor)
    if not (np.isfinite(floor) and floor >= 0):
        raise EmulatorConfigurationError(f"floor must be a finite fraction >= 0; got {floor}")
    return floor


class EmulatorNoiseModel:
    """Prospector photometric noise model with the emulator's error (eq. 9).

    Per band (masked by ``obs["phot_mask"]``)

        Sigma_ii = sigma_obs,i^2 + (J_i sigma_emul,i)^2 + (floor * E_i)^2

    where ``J_i = |d maggies / d mag|`` of eq. 2 at the model's last
    predicted flux f_i, ``J_i = sqrt(f_i^2 + s^2) / a``, ``sigma_emul`` the
    emulator's residual standard deviation (``residual_sigma_at`` the last
    inputs, arsinh mag) and ``E_i`` the observed flux density (maggies).  The
    softening flux s is the emulator's ``error_softening_flux``: 2 exp(-mu0 / a)
    (about 36 mag) for a plain emulator, and for a mass-normalised one that of
    the network's unit-mass magnitudes times the mass, so that its error stays
    the fraction of the flux that it is, however faint the source.  With
    ``covariance=True`` the emulator term is the full ``J C J`` (C = ``residual_covariance_at``, mag^2) and the
    likelihood uses a Cholesky factorisation.  The log-likelihood is the full
    Gaussian, including ``-0.5 log det(2 pi Sigma)``.

    Parameters
    ----------
    model : EmulatedSpecModel, optional
        The model whose last prediction (inputs, arsinh magnitudes, emulator
        restricted to the obs filters) sets the emulator term.  Without it
        (a parameter file's ``build_noise(**extras)``, which has no model) the
        noise model binds to the EmulatedSpecModel that predicts first, i.e.
        the one ``fit_model``/``lnprobfn`` fits.
    floor : float
        Fractional error floor on the observed flux density (0.05 = 5%).
    covariance : bool
        Use the residual covariance matrix instead of its diagonal.

    Examples
    --------
    >>> phot_noise = EmulatorNoiseModel(model, floor=0.05)          # doctest: +SKIP
    >>> lnp = lnprobfn(theta, model=model, obs=obs, sps=None,
    ...                noise=(None, phot_noise))                     # doctest: +SKIP

    Notes
    -----
    Follows Prospector's noise-model protocol as used by
    ``prospect.likelihood.lnlike_phot``: ``update(**params)``,
    ``compute(**vectors)`` (``phot_unc``, ``phot``, ``mask``), then
    ``lnlikelihood(phot_mu, phot_obs)``; it exposes ``Sigma`` (1-d variances,
    or the matrix) and ``log_det``, so Prospector's outlier mixture model works
    with the diagonal version.
    """

    def __init__(self, model=None, floor=0.05, covariance=False):
        if model is not None and not hasattr(model, "last_maggies"):
            raise EmulatorConfigurationError(
                f"EmulatorNoiseModel needs an EmulatedSpecModel; got {type(model).__name__}")
        self.model = model
        self.floor = _check_floor(floor)
        self.covariance = bool(covariance)
        self._checked_emulator = None
        self._diagonal_cache = None
        self.Sigma = None
        self.log_det = None

    def update(self, **params):
        """Nothing to update from the parameters: the emulator term follows the
        model's own last prediction."""

    def _bound_model(self):
        """The model this noise model follows.  Made without one (as in a
        parameter file's ``build_noise``), it binds to the first
        :class:`EmulatedSpecModel` that predicts before it is used -- in
        ``lnprobfn`` the model being fitted -- and then refuses any other."""
        from .model import last_predicting_model
        latest = last_predicting_model()
        if self.model is None:
            if latest is None:
                raise EmulatorConfigurationError(
                    "EmulatorNoiseModel() made without a model was used before any "
                    "EmulatedSpecModel predicted; pass it to fit_model/lnprobfn together with an "
                    "EmulatedSpecModel, or make it with EmulatorNoiseModel(model)")
            self.model = latest
            self._bound_lazily = True
        elif getattr(self, "_bound_lazily", False) and latest is not self.model:
            raise EmulatorConfigurationError(
                "this EmulatorNoiseModel was bound to another EmulatedSpecModel at its first use; "
                "make one noise model per model (EmulatorNoiseModel(model))")
        return self.model

    def _last_prediction(self):
        """(emulator, inputs) of the model's last prediction."""
        model = self._bound_model()
        emu, x = model.last_emulator, model.last_emulator_inputs
        if emu is None:
            raise EmulatorConfigurationError(
                "EmulatorNoiseModel.compute() was called before the model predicted anything; "
                "call model.predict(theta, obs=obs) first (lnprobfn does)")
        if emu is not self._checked_emulator:
            if self.covariance:
                finite = np.isfinite(emu.residual_covariance_at(x)).all(axis=0)
            else:
                finite = np.isfinite(emu.residual_sigma_at(x))
            emu.require_residual_statistics(finite)
            self._checked_emulator = emu
        return emu, x

    def _diagonal_terms(self, emu, x, phot_unc, phot, mask):
        """(k, c, sel) with Sigma = k * (f[sel]^2 + s^2) + c at model flux f (maggies).

        With eq. 2's derivative written through the flux,
        (J sigma_emul)^2 = (sigma_emul / a)^2 (f^2 + s^2), s the emulator's
        ``error_softening_flux``, so k = (sigma_emul / a)^2 and
        c = sigma_obs^2 + (floor E)^2.  Cached per (emulator, obs arrays, mask)
        unless the emulator's residuals vary with its inputs.
        """
        phot_unc = np.asarray(phot_unc, dtype=float)
        phot = np.asarray(phot, dtype=float)
        mask_key = mask.tobytes() if isinstance(mask, np.ndarray) else repr(mask)
        key = (phot_unc.tobytes(), phot.tobytes(), mask_key)
        cached = self._diagonal_cache
        if (cached is not None and cached[0] is emu and cached[1] == key
                and not emu.residuals_vary_with_inputs):
            return cached[2]
        k = (emu.residual_sigma_at(x) / emu.a) ** 2
        c = phot_unc * phot_unc + (self.floor * phot) ** 2
        sel = mask
        if isinstance(mask, slice) and mask == slice(None):
            sel = None
        elif isinstance(mask, np.ndarray) and mask.dtype == bool and mask.all():
            sel = None
        terms = (k, c, None) if sel is None else (k[sel], c[sel], sel)
        self._diagonal_cache = (emu, key, terms)
        return terms

    def compute(self, check_finite=False, phot_unc=None, phot=None, mask=slice(None), **vectors):
        """Build (and for ``covariance=True`` factorise) the covariance matrix.

        Parameters
        ----------
        phot_unc, phot : ndarray, shape (n_filters,)
            ``obs["maggies_unc"]`` and ``obs["maggies"]`` (maggies).
        mask : bool ndarray or slice
            ``obs["phot_mask"]``.
        """
        emu, x = self._last_prediction()
        if phot_unc is None or phot is None:
            raise EmulatorConfigurationError(
                "EmulatorNoiseModel.compute() needs phot_unc= and phot= (obs['maggies_unc'], "
                "obs['maggies'])")
        flux = self.model.last_maggies
        if len(flux) != len(phot):
            raise EmulatorConfigurationError(
                f"the model last predicted {len(flux)} bands but the obs has {len(phot)}: "
                "predict with the same obs that is being fitted")
        # lumdist scales every flux, the softening flux included (the error stays fractional)
        softening = emu.error_softening_flux(x) * self.model.last_flux_scale
        if not self.covariance:
            k, c, sel = self._diagonal_terms(emu, x, phot_unc, phot, mask)
            sigma = flux * flux if sel is None else flux[sel] ** 2
            sigma += softening * softening
            sigma *= k
            sigma += c
            self.Sigma = sigma
            self.log_det = float(np.log(sigma).sum())
            return
        # |d maggies / d mag| at the model flux (eq. 2), in the network's own magnitudes
        jac = np.sqrt(flux * flux + softening * softening) / emu.a
        base_var = phot_unc * phot_unc + (self.floor * phot) ** 2
        sigma = (jac[:, None] * emu.residual_covariance_at(x)) * jac[None, :]
        sigma[np.diag_indices_from(sigma)] += base_var
        if isinstance(mask, slice):
            sigma = sigma[mask, mask]
        else:
            sigma = sigma[np.ix_(mask, mask)]
        self.Sigma = sigma
        self.factorized_Sigma = cho_factor(sigma, lower=True, check_finite=check_finite)
        self.log_det = 2.0 * float(np.sum(np.log(np.diagonal(self.factorized_Sigma[0]))))

    def lnlikelihood(self, phot_mu, phot_obs, check_finite=False, **extras):
        """Gaussian ln-likelihood of the observed photometry (both in maggies,
        already masked), with the covariance from the last :meth:`compute`."""
        residual = phot_obs - phot_mu
        if self.Sigma.ndim == 1:
            chi2 = float(residual @ (residual / self.Sigma))
        else:
            chi2 = float(residual @ cho_solve(self.factorized_Sigma, residual,
                                              check_finite=check_finite))
        return -0.5 * (chi2 + self.log_det + len(residual) * LN_2PI)


def inflate_obs_uncertainties(obs, emulator, floor=0.05):
    """A copy of ``obs`` whose photometric uncertainties include eq. 9, once.

    ``maggies_unc`` becomes ``sqrt(sigma_obs^2 + sigma_emul^2 + (floor E)^2)``,
    with the emulator's residual standard deviation converted to maggies at
    the *observed* flux densities E (the paper's procedure).  Fit the result
    with ``noise=(None, None)``; do not also use :class:`EmulatorNoiseModel`.

    Parameters
    ----------
    obs : dict
        Prospector observation dictionary with ``filters``, ``maggies`` and
        ``maggies_unc`` (maggies).  Not modified.
    emulator : Emulator, StitchedEmulator, EmulatedSpecModel or path
        Supplies per-filter ``residual_sigma`` (arsinh mag).  For a stitched
        emulator this is the worst member's scatter in each band.
    floor : float
        Fractional error floor on the observed flux density.

    Returns
    -------
    dict
        Shallow copy of ``obs`` with a new ``maggies_unc`` array and the
        original uncertainties kept as ``maggies_unc_observed``.
    """
    floor = _check_floor(floor)
    emulator = getattr(emulator, "emulator", emulator)  # an EmulatedSpecModel
    emulator = _as_emulator(emulator)
    for key in ("filters", "maggies", "maggies_unc"):
        if obs.get(key) is None:
            raise EmulatorConfigurationError(
                f"inflate_obs_uncertainties needs obs[{key!r}] (photometry in maggies)")
    names = list(filter_names_of(obs["filters"]))
    sigma = emulator.residual_sigma[emulator.filter_indices(names)]
    emulator.require_residual_statistics(np.isfinite(sigma), names)
    maggies = np.asarray(obs["maggies"], dtype=float)
    unc = np.asarray(obs["maggies_unc"], dtype=float)
    jac = dmaggies_dmag(maggies_to_arsinh_mags(maggies, emulator.mu0, emulator.a),
                        emulator.mu0, emulator.a)
    out = dict(obs)
    out["maggies_unc_observed"] = unc.copy()
    out["maggies_unc"] = total_sigma(unc, jac * sigma, maggies, floor)
    return out
