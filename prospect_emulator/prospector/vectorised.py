"""Prospector's ``lnprobfn`` for many parameter vectors in one pass.

:class:`VectorisedLikelihood` evaluates, for an (n, ndim) array of parameter
vectors of an :class:`~prospect_emulator.EmulatedSpecModel` and an
:class:`~prospect_emulator.EmulatorNoiseModel`, the ln-prior (or, in nested
mode, its support), the ``depends_on`` transforms the emulator inputs need,
the emulator's forward pass and the eq.-9 Gaussian likelihood (diagonal or
full covariance) with NumPy array operations over all rows at once::

    model = EmulatedSpecModel.from_emulator("default")
    noise = EmulatorNoiseModel(model)
    like = VectorisedLikelihood(model, obs, noise)
    lnp = like(theta_batch)                       # shape (n,)
    lnp, grad = like.lnprob_and_grad(theta)       # one vector, gradient d lnp / d theta

Every row equals ``prospect.fitting.lnprobfn(theta, model, obs, sps=None,
noise=(None, noise), nested=nested)`` (tested to 1e-10 relative): -inf
outside the prior's support and for inputs outside the emulator's training
range, the same errors for set-up mistakes (a NaN emulator input, a fixed
parameter outside the training range).

What is computed, and what is not
---------------------------------
Only the parameters that the emulator inputs (and, with ``lumdist``, the
redshift and distance) read are computed
(:class:`~prospect_emulator.prospector.batched_parameters.BatchedParameters`),
each ``depends_on`` transform once for all rows.  The model's :attr:`params`
are not changed by a batched call.

Prospector's outlier mixture model (``f_outlier_phot``) is not supported.
"""
import math

import numpy as np

from ..errors import EmulatorConfigurationError
from ..priors import FastPriorProduct, FastPriorTransform
from ..runtime.emulator import (Emulator, FLOAT32_MAX_MAG_DIFFERENCE, float32_mag_difference,
                                softening_flux_per_row)
from .batched_parameters import BatchedParameters
from .noise import LN_2PI, EmulatorNoiseModel

__all__ = ["VectorisedLikelihood", "LINALG_FAILURE_LNLIKE"]

_LN_10 = math.log(10.0)

#: ln-likelihood Prospector's ``lnlike_phot`` returns when the covariance
#: matrix is not positive definite (``np.nan_to_num(-np.inf)``).
LINALG_FAILURE_LNLIKE = float(np.nan_to_num(-np.inf))

#: Number of prior draws on which ``float32=True`` is checked against float64.
FLOAT32_CHECK_DRAWS = 2000

#: Rows per forward pass: larger batches are split so that the hidden-layer
#: activations (rows x width) stay in the CPU cache.
FORWARD_CHUNK_ROWS = 2048


class VectorisedLikelihood:
    """``lnprobfn`` of an emulated model for an (n, ndim) batch of parameter vectors.

    Parameters
    ----------
    model : EmulatedSpecModel
        The model (its priors, ``depends_on`` transforms, emulator and
        ``lumdist`` are read at construction: build a new likelihood after
        changing them).
    obs : dict
        Prospector observation dictionary: ``filters``, ``maggies``,
        ``maggies_unc`` (maggies), optional ``phot_mask``; no spectrum.
    noise : EmulatorNoiseModel, (None, EmulatorNoiseModel), or None
        The photometric noise model of ``lnprobfn``'s ``noise=(None, noise)``
        (its ``floor`` and ``covariance`` are used); None for Prospector's
        plain chi-square with ``obs["maggies_unc"]``.
    nested : bool
        As ``lnprobfn(..., nested=True)``: the prior only decides whether a
        vector is allowed (ln-prior 0 inside its support).
    float32 : bool
        Run the network's forward pass in float32
        (:meth:`~prospect_emulator.Emulator.as_float32`; about 2x faster in
        batches).  Checked at construction on :data:`FLOAT32_CHECK_DRAWS`
        prior draws: if the arsinh magnitudes differ from float64 by more
        than :data:`~prospect_emulator.runtime.emulator.FLOAT32_MAX_MAG_DIFFERENCE`
        (1e-4 mag) the likelihood stays float64 (``self.float32`` is then
        False).  For the shipped emulators the difference is ~3e-5 mag at
        most, i.e. an error in ln L of ~chi * 3e-5 / (a sigma_mag) per band
        (~1e-3 for chi = 1 and a 0.03 mag uncertainty): negligible against
        the emulator's own scatter, but not equal to ``lnprobfn`` to 1e-10.
        Gradients are always float64.

    Attributes
    ----------
    ndim : int
        Number of free parameters.
    float32 : bool
        Whether the forward pass is float32.
    float32_max_mag_difference : float or None
        The largest float32-float64 difference (arsinh mag) found by the check.

    Raises
    ------
    EmulatorConfigurationError
        Not an EmulatedSpecModel, an obs with a spectrum, photometry without
        filters, a noise model of another model or without residual
        statistics, or an outlier model (``f_outlier_phot``).
    """

    def __init__(self, model, obs, noise=None, nested=False, float32=False):
        if not hasattr(model, "_input_sources") or not hasattr(model, "emulator"):
            raise EmulatorConfigurationError(
                f"VectorisedLikelihood needs an EmulatedSpecModel; got {type(model).__name__}")
        self.model = model
        self.nested = bool(nested)
        self.ndim = int(model.ndim)
        self._check_obs(obs)
        self.obs = obs
        self.noise = self._as_noise(noise)
        for name in ("f_outlier_phot", "f_outlier_spec"):
            if name in model.free_params or np.any(np.asarray(model.params.get(name, 0.0)) != 0):
                raise EmulatorConfigurationError(
                    f"VectorisedLikelihood does not support Prospector's outlier model ({name}); "
                    "use prospect.fitting.lnprobfn")
        self._prior = FastPriorProduct(model)
        self._transform = FastPriorTransform(model)
        plan = model._plan_for(obs.get("filters"))
        self._emulator64 = plan.emulator
        self.emulator = plan.emulator
        self._batched = BatchedParameters(model)
        self._build_obs_terms()
        self.float32 = False
        self.float32_max_mag_difference = None
        if float32:
            self._use_float32_if_accurate()

    # ---------------------------------------------------------------- set-up
    @staticmethod
    def _check_obs(obs):
        if not isinstance(obs, dict):
            raise EmulatorConfigurationError(
                f"obs must be a Prospector observation dict; got {type(obs).__name__}")
        if obs.get("spectrum") is not None or obs.get("wavelength") is not None:
            raise EmulatorConfigurationError(
                "this obs asks for a spectrum (obs['spectrum'] or obs['wavelength'] is set), "
                "but the emulator is photometric. Set obs['spectrum'] = obs['wavelength'] = None.")
        if obs.get("maggies") is not None and obs.get("filters") is None:
            raise EmulatorConfigurationError(
                "obs has 'maggies' but no 'filters': name the bands of the photometry")

    def _as_noise(self, noise):
        if isinstance(noise, tuple):
            if len(noise) != 2 or noise[0] is not None:
                raise EmulatorConfigurationError(
                    "noise=(spec_noise, phot_noise) must have spec_noise None (photometry only)")
            noise = noise[1]
        if noise is None:
            return None
        if not isinstance(noise, EmulatorNoiseModel):
            raise EmulatorConfigurationError(
                "noise must be an EmulatorNoiseModel, (None, EmulatorNoiseModel) or None; got "
                f"{type(noise).__name__}")
        if noise.model is not None and noise.model is not self.model:
            raise EmulatorConfigurationError(
                "this EmulatorNoiseModel belongs to another EmulatedSpecModel; make one with "
                "EmulatorNoiseModel(model) for the model being fitted")
        return noise

    def _build_obs_terms(self):
        obs = self.obs
        nf = self.emulator.n_filters
        self._has_phot = obs.get("maggies") is not None
        if not self._has_phot:
            return
        phot = np.asarray(obs["maggies"], dtype=float)
        unc = np.asarray(obs["maggies_unc"], dtype=float)
        if phot.shape != (nf,) or unc.shape != (nf,):
            raise EmulatorConfigurationError(
                f"obs['maggies'] and obs['maggies_unc'] must have one value per filter ({nf}); "
                f"got shapes {phot.shape} and {unc.shape}")
        mask = obs.get("phot_mask", slice(None))
        self._sel = np.arange(nf)[mask]
        self._phot, self._unc = phot, unc
        self._phot_sel = phot[self._sel]
        if self.noise is None:
            self._var = unc[self._sel] ** 2
            return
        emu = self.emulator
        x0 = self._inputs(self.model.theta[None, :])[0][0]
        if self.noise.covariance:
            finite = np.isfinite(emu.residual_covariance_at(x0)).all(axis=0)
        else:
            finite = np.isfinite(emu.residual_sigma_at(x0))
        emu.require_residual_statistics(finite)
        # sigma_obs^2 + (floor E)^2 of eq. 9 (maggies^2), as EmulatorNoiseModel
        self._base_var = unc * unc + (self.noise.floor * phot) ** 2
        self._base_var_sel = self._base_var[self._sel]

    def for_photometry(self, maggies, maggies_unc, phot_mask=None):
        """The same likelihood for another object's photometry in the same filters.

        Shares the model, priors, transforms, noise model and (float32 or
        float64) emulator with this one, so that making it costs only the
        observed-side terms: the way to evaluate many objects of a catalogue.

        Parameters
        ----------
        maggies, maggies_unc : array_like, shape (n_filters,)
            Fluxes and 1-sigma uncertainties (maggies) in ``obs["filters"]``'s order.
        phot_mask : array_like of bool, shape (n_filters,), optional
            Bands used (default: all).

        Returns
        -------
        VectorisedLikelihood
        """
        import copy
        other = copy.copy(self)
        other.obs = dict(self.obs, maggies=np.asarray(maggies, dtype=float),
                         maggies_unc=np.asarray(maggies_unc, dtype=float))
        if phot_mask is None:
            other.obs.pop("phot_mask", None)
        else:
            other.obs["phot_mask"] = np.asarray(phot_mask, dtype=bool)
        other._build_obs_terms()
        return other

    @property
    def float64_emulator(self):
        """The float64 emulator restricted to the obs filters (what the
        gradient and the noise model's statistics use)."""
        return self._emulator64

    def photometry_terms(self):
        """The observed side of the likelihood as arrays, for a
        re-implementation elsewhere (the JAX likelihood).

        Returns
        -------
        dict
            ``sel``: indices of the bands used (``obs["phot_mask"]``);
            ``phot``: their maggies; ``noise``: None (Prospector's chi-square
            with ``var``, the squared uncertainties), ``"diagonal"`` or
            ``"covariance"`` (eq. 9, with ``base_var`` = sigma_obs^2 +
            (floor f_obs)^2 in maggies^2).  Empty without photometry.
        """
        if not self._has_phot:
            return {}
        terms = {"sel": self._sel, "phot": self._phot_sel}
        if self.noise is None:
            return dict(terms, noise=None, var=self._var)
        return dict(terms, noise="covariance" if self.noise.covariance else "diagonal",
                    base_var=self._base_var_sel)

    @property
    def parameters(self):
        """The model's parameters for many rows
        (:class:`~prospect_emulator.prospector.batched_parameters.BatchedParameters`):
        where every emulator input comes from."""
        return self._batched

    def prior_transform_table(self):
        """The prior transform's closed forms as data:
        :meth:`~prospect_emulator.priors.FastPriorTransform.closed_form_table`."""
        return self._transform.closed_form_table()

    def _use_float32_if_accurate(self):
        if not isinstance(self._emulator64, Emulator):
            return  # stitched emulators: float64 only
        rng = np.random.default_rng(20240613)
        theta = self.prior_transform(rng.uniform(size=(FLOAT32_CHECK_DRAWS, self.ndim)))
        x, _, _ = self._inputs(theta)
        inside = ((x >= self.emulator._lo) & (x <= self.emulator._hi)).all(axis=1)
        if not inside.any():
            return
        diff = float32_mag_difference(self._emulator64, x[inside])
        self.float32_max_mag_difference = diff
        if diff <= FLOAT32_MAX_MAG_DIFFERENCE:
            self.emulator = self._emulator64.as_float32()
            self.float32 = True

    # ------------------------------------------------------------- parameters
    def _inputs(self, theta):
        """(emulator inputs (n, n_params), zred (n,) or None, lumdist (n,) or None)."""
        return self._batched.inputs(theta)

    def _distance_factor(self, zred, lumdist):
        """(d_L(zred) / lumdist)^2 per row, as ``EmulatedSpecModel._distance_scale``."""
        if np.any(zred <= 0):
            raise EmulatorConfigurationError(
                f"zred = {zred[zred <= 0][0]:g} with lumdist: the emulator needs zred > 0 (it "
                "predicts observed-frame photometry at that redshift)")
        from prospect.sources.constants import cosmo
        unique, inverse = np.unique(zred, return_inverse=True)
        dl = np.atleast_1d(cosmo.luminosity_distance(unique).to("Mpc").value)[inverse]
        return (dl / lumdist) ** 2

    def _check_rows(self, x):
        """Rows inside the training range; lnprobfn's errors for set-up mistakes."""
        emu = self.emulator
        inside = ((x >= emu._lo) & (x <= emu._hi)).all(axis=1)
        if inside.all():
            return inside
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            emu._raise_bad_inputs(x[bad][:1])  # NonFiniteInputError, not a ValueError
        j = self._batched.fixed_inputs
        if j.size:
            xo = x[~inside][0]
            out = j[~((xo[j] >= emu._lo[j]) & (xo[j] <= emu._hi[j]))]
            if out.size:
                raise EmulatorConfigurationError(
                    "fixed parameter(s) outside the emulator's training range, so every model "
                    "would be rejected: " + "; ".join(
                        f"{emu.param_names[k]}={xo[k]:g} not in {list(emu.param_ranges[k])}"
                        for k in out))
        return inside

    # ------------------------------------------------------------ likelihood
    def __call__(self, theta):
        """ln-posterior (or, with ``nested=True``, ln-likelihood inside the
        prior's support) of every row: ``lnprobfn`` row by row.

        Parameters
        ----------
        theta : ndarray, shape (n, ndim) or (ndim,)

        Returns
        -------
        ndarray, shape (n,), or float for one vector
        """
        return self._lnprob(theta, self.nested)

    def lnlike(self, theta):
        """ln-likelihood of every row inside the prior's support, -inf outside:
        ``lnprobfn(..., nested=True)`` (what nested samplers need).

        Parameters
        ----------
        theta : ndarray, shape (n, ndim) or (ndim,)

        Returns
        -------
        ndarray, shape (n,), or float for one vector
        """
        return self._lnprob(theta, True)

    def prior_transform(self, unit_coords):
        """Parameters at the given prior CDF values (Prospector's
        ``prior_transform``), for an (n, ndim) batch or one vector."""
        return self._transform(np.asarray(unit_coords, dtype=float))

    def _lnprob(self, theta, nested):
        theta = np.asarray(theta, dtype=float)
        single = theta.ndim == 1
        theta = np.atleast_2d(theta)
        if theta.ndim != 2 or theta.shape[1] != self.ndim:
            raise EmulatorConfigurationError(
                f"theta must have shape (n, {self.ndim}) or ({self.ndim},) for the free "
                f"parameters {self.model.free_params}; got shape {theta.shape}")
        lnp = self._prior(theta)
        ok = np.isfinite(lnp)
        lnp = np.where(ok, 0.0 if nested else lnp, -np.inf)
        rows = np.nonzero(ok)[0]
        if rows.size:
            lnp[rows] += self._lnlike_rows(theta[rows])
        return float(lnp[0]) if single else lnp

    def _lnlike_rows(self, theta):
        """ln-likelihood (+ the model's emission-line penalty) of rows whose prior is finite."""
        x, zred, lumdist = self._inputs(theta)
        inside = self._check_rows(x)
        out = np.full(len(theta), -np.inf)
        rows = np.nonzero(inside)[0]
        if not rows.size:
            return out
        x = x[rows]
        if not self._has_phot:
            out[rows] = 0.0
        else:
            scale = None if zred is None else self._distance_factor(zred[rows], lumdist[rows])
            flux = self._forward(x)
            if scale is not None:
                flux = flux * scale[:, None]
            out[rows] = self._lnlike_phot(x, flux, scale)
        out[rows] += getattr(self.model, "_ln_eline_penalty", 0.0)
        return out

    def _forward(self, x):
        """Model fluxes (maggies, n x n_filters) of the emulator at inputs x, in chunks."""
        predict = self.emulator.predict_maggies
        if len(x) <= FORWARD_CHUNK_ROWS:
            return predict(x, check=False)
        return np.concatenate([predict(x[i:i + FORWARD_CHUNK_ROWS], check=False)
                               for i in range(0, len(x), FORWARD_CHUNK_ROWS)])

    def _softening(self, x, scale):
        s = softening_flux_per_row(self._emulator64, x)
        return s if scale is None else s * scale

    def _lnlike_phot(self, x, flux, scale):
        """Gaussian ln L of the masked photometry for model fluxes (n, n_filters), eq. 9."""
        sel = self._sel
        resid = self._phot_sel - flux[:, sel]
        n_bands = len(sel)
        if self.noise is None:  # Prospector's lnlike_phot without a noise model
            var = self._var
            return (-0.5 * (resid * resid / var + np.log(2 * np.pi * var))).sum(axis=1)
        emu = self._emulator64
        softening = self._softening(x, scale)
        if not self.noise.covariance:
            # as EmulatorNoiseModel.compute: k (f^2 + s^2) + c, same operation order
            k = ((emu.residual_sigma_at(x) / emu.a) ** 2)[..., sel]
            sigma = flux[:, sel] ** 2
            sigma += (softening * softening)[:, None]
            sigma *= k
            sigma += self._base_var_sel
            chi2 = np.einsum("ij,ij->i", resid, resid / sigma)
            return -0.5 * (chi2 + np.log(sigma).sum(axis=1) + n_bands * LN_2PI)
        jac = np.sqrt(flux * flux + (softening * softening)[:, None]) / emu.a
        cov = np.asarray(emu.residual_covariance_at(x))
        sigma = (jac[:, :, None] * cov) * jac[:, None, :]
        sigma = sigma[:, sel[:, None], sel[None, :]]
        sigma[:, np.arange(n_bands), np.arange(n_bands)] += self._base_var_sel
        return self._gaussian_lnlike(sigma, resid)

    @staticmethod
    def _gaussian_lnlike(sigma, resid):
        """-0.5 (r^T Sigma^-1 r + log det Sigma + m log 2 pi) per row (Cholesky);
        Prospector's value for a matrix that is not positive definite."""
        m = resid.shape[1]
        try:
            chol = np.linalg.cholesky(sigma)
            good = np.ones(len(sigma), dtype=bool)
        except np.linalg.LinAlgError:
            chol, good = np.zeros_like(sigma), np.zeros(len(sigma), dtype=bool)
            for i, s in enumerate(sigma):
                try:
                    chol[i] = np.linalg.cholesky(s)
                    good[i] = True
                except np.linalg.LinAlgError:
                    chol[i] = np.eye(m)
        y = np.linalg.solve(chol, resid[:, :, None])[:, :, 0]
        log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        lnl = -0.5 * ((y * y).sum(axis=1) + log_det + m * LN_2PI)
        return np.where(good, lnl, LINALG_FAILURE_LNLIKE)

    # -------------------------------------------------------------- gradient
    def lnprob_and_grad(self, theta):
        """ln-posterior of one vector and its gradient d lnp / d theta.

        The same value as :meth:`__call__` (float64 always).  The gradient is
        analytic for a plain :class:`~prospect_emulator.Emulator`: the
        network's Jacobian
        (:meth:`~prospect_emulator.Emulator.predict_maggies_and_jacobian`),
        the chain rule through the noise model (the flux-dependent variance
        of eq. 9, the mass-scaled softening flux, the full covariance), the
        (d_L / lumdist)^2 scaling (d d_L / dz for a flat cosmology), the log10
        of ``logX`` inputs and the priors (closed forms; Prospector prior
        classes without one by central finite differences of that prior).
        Finite differences (central, step 1e-6 (1 + |theta_k|)) are used for
        the emulator inputs when they are computed by ``depends_on``
        transforms, and for the whole ln-posterior with a
        :class:`~prospect_emulator.StitchedEmulator`.

        Parameters
        ----------
        theta : ndarray, shape (ndim,)

        Returns
        -------
        lnp : float
        grad : ndarray, shape (ndim,)
            NaN where ``lnp`` is not finite (outside the prior or the
            training range).
        """
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (self.ndim,):
            raise EmulatorConfigurationError(
                f"lnprob_and_grad takes one vector of shape ({self.ndim},); got {theta.shape}")
        nan_grad = np.full(self.ndim, np.nan)
        lnprior = float(self._prior(theta[None, :])[0])
        if not np.isfinite(lnprior):
            return -np.inf, nan_grad
        if not isinstance(self._emulator64, Emulator):
            return self._lnprob_and_grad_numerical(theta)
        grad_prior = np.zeros(self.ndim) if self.nested else self._ln_prior_gradient(theta)
        if self.nested:
            lnprior = 0.0
        x, zred, lumdist = self._inputs(theta[None, :])
        if not self._check_rows(x).all():
            return -np.inf, nan_grad
        extra = getattr(self.model, "_ln_eline_penalty", 0.0)
        if not self._has_phot:
            return lnprior + extra, grad_prior
        emu = self._emulator64
        maggies, dmaggies = emu.predict_maggies_and_jacobian(x[0], check=False)
        soft = float(softening_flux_per_row(emu, x)[0])
        dsoft = np.zeros(emu.n_params)
        if emu.mass_param is not None:
            dsoft[emu._mass_index] = _LN_10 * soft
        scale = 1.0
        if zred is not None:
            scale = float(self._distance_factor(zred, lumdist)[0])
        lnl, dl_dflux, dl_dsoft = self._lnlike_and_derivatives(x[0], maggies * scale,
                                                                 soft * scale)
        # ln L depends on x through the flux and softening flux, both times the distance factor
        grad_x = scale * (dl_dflux @ dmaggies + dl_dsoft * dsoft)
        dl_dscale = float(dl_dflux @ maggies + dl_dsoft * soft)
        dx, daux = self._input_jacobian(theta)
        grad = grad_prior + grad_x @ dx
        if zred is not None:
            dscale_dz, dscale_dlumdist = self._distance_factor_gradient(zred[0], lumdist[0], scale)
            grad += dl_dscale * (dscale_dz * daux[0] + dscale_dlumdist * daux[1])
        return lnprior + lnl + extra, grad

    def _lnlike_and_derivatives(self, x, flux, soft):
        """ln L (eq. 9) at emulator inputs x for one vector of model fluxes
        (maggies) and softening flux, with d lnL / d flux (n_filters,) and
        d lnL / d softening (the residual statistics of a plain Emulator do
        not depend on x)."""
        sel = self._sel
        resid = self._phot_sel - flux[sel]
        m = len(sel)
        dl_dflux = np.zeros(len(flux))
        if self.noise is None:
            var = self._var
            dl_dflux[sel] = resid / var
            return float((-0.5 * (resid * resid / var + np.log(2 * np.pi * var))).sum()), dl_dflux, 0.0
        emu = self._emulator64
        a = emu.a
        if not self.noise.covariance:
            k = ((emu.residual_sigma_at(x) / a) ** 2)[sel]
            f = flux[sel]
            sigma = k * (f * f + soft * soft) + self._base_var_sel
            lnl = -0.5 * (float(resid @ (resid / sigma)) + float(np.log(sigma).sum()) + m * LN_2PI)
            # d lnL / d Sigma_i = 0.5 (r_i^2 / Sigma_i^2 - 1 / Sigma_i); d lnL / d r = -r / Sigma
            dl_dsigma = 0.5 * (resid * resid / sigma ** 2 - 1.0 / sigma)
            dl_dflux[sel] = resid / sigma + dl_dsigma * 2.0 * k * f
            return lnl, dl_dflux, float(dl_dsigma @ (2.0 * k * soft))
        jac_all = np.sqrt(flux * flux + soft * soft) / a
        cov = np.asarray(emu.residual_covariance_at(x))[np.ix_(sel, sel)]
        jac = jac_all[sel]
        sigma = (jac[:, None] * cov) * jac[None, :]
        sigma[np.diag_indices(m)] += self._base_var_sel
        lnl = float(self._gaussian_lnlike(sigma[None], resid[None])[0])
        inv = np.linalg.inv(sigma)
        alpha = inv @ resid
        # d lnL / d Sigma = (alpha alpha^T - Sigma^-1) / 2 (symmetric), Sigma_ij = J_i C_ij J_j
        g = 0.5 * (np.outer(alpha, alpha) - inv)
        dl_djac = 2.0 * (g * cov) @ jac
        dl_dflux[sel] = alpha + dl_djac * flux[sel] / (a * a * jac)
        return lnl, dl_dflux, float(dl_djac @ (soft / (a * a * jac)))

    def _input_jacobian(self, theta):
        """d x / d theta (n_params, ndim) and d (zred, lumdist) / d theta (2, ndim)."""
        index = self.model.theta_index
        x, zred, lumdist = self._inputs(theta[None, :])
        if self._batched.inputs_direct:
            dx = np.zeros((len(self._batched.sources), self.ndim))
            for j, (base, i) in enumerate(self._batched.sources):
                if base in index:
                    dx[j, index[base].start + i] = 1.0
            if self._batched.log_inputs.size:  # x = log10 X: dx/dX = 1 / (X ln 10)
                logs = self._batched.log_inputs
                dx[logs] /= (_LN_10 * 10.0 ** x[0, logs])[:, None]
            daux = np.zeros((2, self.ndim))
            for row, name in enumerate(("zred", "lumdist")):
                if self._batched.has_lumdist and name in index:
                    daux[row, index[name].start] = 1.0
            return dx, daux
        # inputs computed by depends_on transforms: central differences, one batch
        step = 1e-6 * (1.0 + np.abs(theta))
        shifted = np.concatenate([theta + np.diag(step), theta - np.diag(step)])
        xs, zs, ls = self._inputs(shifted)
        n = self.ndim
        dx = ((xs[:n] - xs[n:]) / (2 * step)[:, None]).T
        daux = np.zeros((2, n))
        if zs is not None:
            daux[0] = (zs[:n] - zs[n:]) / (2 * step)
            daux[1] = (ls[:n] - ls[n:]) / (2 * step)
        return dx, daux

    @staticmethod
    def _distance_factor_gradient(zred, lumdist, scale):
        """d/dzred and d/dlumdist of (d_L(zred) / lumdist)^2."""
        from prospect.sources.constants import cosmo
        dl = float(cosmo.luminosity_distance(zred).to("Mpc").value)
        if cosmo.Ok0 == 0:
            # flat: d_L = (1 + z) D_C and dD_C/dz = D_H / E(z)
            d_h = float(cosmo.hubble_distance.to("Mpc").value)
            ddl_dz = dl / (1.0 + zred) + (1.0 + zred) * d_h / float(cosmo.efunc(zred))
        else:
            h = 1e-6 * (1.0 + zred)
            ddl_dz = float((cosmo.luminosity_distance(zred + h) -
                            cosmo.luminosity_distance(zred - h)).to("Mpc").value) / (2 * h)
        return 2.0 * scale / dl * ddl_dz, -2.0 * scale / lumdist

    def _ln_prior_gradient(self, theta):
        """d ln prior / d theta at one vector inside the support (closed forms
        of :class:`~prospect_emulator.priors.FastPriorProduct`'s families;
        ``FastTruncatedEvenStudentTFreeDeg2`` analytic; other Prospector priors
        by central differences)."""
        from prospect.models import priors as pp
        fp = self._prior
        grad = np.zeros(self.ndim)
        x = theta[fp.index]
        s = (x - fp.loc) / fp.scale
        ds = np.zeros_like(s)  # d shape(s) / ds
        if fp._gauss is not None:
            ds[fp._gauss] = -s[fp._gauss]
        if fp._t is not None:
            u = s[fp._t]
            ds[fp._t] = fp._t_coef * 2.0 * u / (1.0 + u * u)
        if fp._logu is not None:
            ds[fp._logu] = -1.0 / s[fp._logu]
        if fp._beta is not None:
            b = s[fp._beta]
            ds[fp._beta] = fp._beta_am1 / b - fp._beta_bm1 / (1.0 - b)
        if fp._lnorm is not None:
            v = s[fp._lnorm]
            ds[fp._lnorm] = (2.0 * fp._lnorm_coef * np.log(v) - 1.0) / v
        grad[fp.index] = ds / fp.scale
        for prior, inds in fp.fallback:
            t = theta[inds]
            if type(prior) is pp.FastTruncatedEvenStudentTFreeDeg2:
                # ln p = const - 1.5 ln(1 + (t / sig)^2 / 2)
                sig2 = np.asarray(prior.sig, dtype=float) ** 2
                grad[inds] = -1.5 * (t / sig2) / (1.0 + 0.5 * t * t / sig2)
                continue
            for k in range(len(t)):
                h = 1e-6 * (1.0 + abs(t[k]))
                up, down = t.copy(), t.copy()
                up[k] += h
                down[k] -= h
                grad[inds.start + k] = (np.sum(prior(up)) - np.sum(prior(down))) / (2 * h)
        return grad

    def _lnprob_and_grad_numerical(self, theta):
        """Central differences of the ln-posterior, all 2 ndim vectors in one batch."""
        step = 1e-6 * (1.0 + np.abs(theta))
        batch = np.concatenate([theta[None, :], theta + np.diag(step), theta - np.diag(step)])
        lnp = self._lnprob(batch, self.nested)
        n = self.ndim
        if not np.isfinite(lnp[0]):
            return float(lnp[0]), np.full(n, np.nan)
        return float(lnp[0]), (lnp[1:n + 1] - lnp[n + 1:]) / (2 * step)

    def __repr__(self):
        return (f"<VectorisedLikelihood: {self.ndim} free parameters, "
                f"{self.emulator.n_filters} filters, "
                f"{'no noise model' if self.noise is None else ('covariance' if self.noise.covariance else 'diagonal') + ' eq.-9 noise'}"
                f", {'float32' if self.float32 else 'float64'}{', nested' if self.nested else ''}>")
