"""The best fit near a flow's draws, for the out-of-support checks.

A flow's posterior draws scatter around an object's best fit, and the best of a
few dozen of them can sit several sigma from it in some band although the
object is perfectly ordinary (most of all for faint galaxies).  A check of one
band's residual at that draw must then allow for residuals of ~10 sigma in
distribution, and a band that is 5 sigma off the SED (a wrong zero point, a
blended neighbour) goes unnoticed.  :func:`refine_best_fit` moves every
object's best draw to the nearby minimum of

    chi2(y) + |y|^2

where ``chi2`` is the photometric chi^2 with eq. 9's variance (observational,
emulator and floor terms, at the model flux) and ``y`` the whitened prior
coordinates of the inferred parameters (y = Phi^-1 of each prior's CDF, where
the prior is a standard normal: |y|^2 is -2 ln prior); the redshift stays at the
object's.  That is the posterior mode in those coordinates, up to eq. 9's
ln-determinant (the variances are held at the current point in each step).

All objects move together: batched Levenberg-Marquardt steps, the Jacobian by
forward differences in y, every object's base point and perturbations in one
emulator call per step.  A step that leaves the emulator's training range or
raises an object's objective is refused for that object and its damping raised.
"""
import numpy as np

from ..runtime.error_budget import total_sigma
from .simulate import ParameterSpace, _inside_training_range, emulator_inputs

__all__ = ["PhotometryResiduals", "refine", "refine_best_fit"]

DIFFERENCE_STEP = 1e-4   # forward-difference step in whitened prior coordinates
MAX_STEPS = 8            # Levenberg-Marquardt steps per object
INITIAL_DAMPING = 1e-2
MAX_REFUSED = 8          # refused steps in a row that end an object's refinement


class PhotometryResiduals:
    """Model fluxes, eq.-9 sigmas and normalised residuals of parameter rows, for a set of
    objects' photometry: the posterior-predictive check's draws and the refinement's steps.

    Parameters
    ----------
    model : EmulatedSpecModel
        The posterior's model (priors, transforms; redshift free).
    band_emulator : Emulator
        Its emulator restricted to the photometry's bands (in their order).
    maggies, unc : ndarray, shape (n_objects, n_filters)
        Photometry and uncertainties (maggies); masked bands are ignored.
    mask : ndarray of bool, shape (n_objects, n_filters)
    zred : ndarray, shape (n_objects,)
    floor : float
        Eq. 9's fractional floor (of the model flux).
    """

    def __init__(self, model, band_emulator, maggies, unc, mask, zred, floor):
        self.model = model
        self.space = ParameterSpace(model, "prior-normal")
        self.emulator = band_emulator
        self.mask = np.asarray(mask, dtype=bool)
        self.observed = np.where(self.mask, maggies, 0.0)
        self.unc = np.where(self.mask, unc, 1.0)
        self.zred = np.asarray(zred, dtype=float)
        self.floor = float(floor)

    def theta(self, y, objects):
        """Full parameter rows of whitened rows ``y`` (n, n_inferred) of ``objects``."""
        return self.space.full_theta(self.space.from_unbounded(y), self.zred[objects])

    def flux(self, theta):
        """(flux (n, n_filters) maggies, emulator inputs, inside the training range (n,))
        of parameter rows ``theta`` (n, ndim)."""
        x = emulator_inputs(self.model, theta)
        inside = _inside_training_range(self.emulator, x)
        flux = np.full((len(x), self.emulator.n_filters), np.nan)
        if inside.any():
            flux[inside] = self.emulator.predict_maggies(x[inside], check=False)
        return flux, x, inside

    def residuals(self, theta, objects):
        """(chi2, normalised residuals, sigma) of parameter rows ``theta`` (n, ndim) of
        ``objects`` (n,): residuals (observed - model) / sigma with eq. 9's total sigma at
        the model flux, 0 in masked bands and outside the training range (chi2 inf there)."""
        flux, x, inside = self.flux(theta)
        resid = np.zeros((len(theta), self.emulator.n_filters))
        sigma = np.ones_like(resid)
        if inside.any():
            on = objects[inside]
            emul = self.emulator.flux_error(x[inside], flux[inside])
            sigma[inside] = total_sigma(self.unc[on], emul, flux[inside], self.floor)
            resid[inside] = np.where(self.mask[on],
                                     (self.observed[on] - flux[inside]) / sigma[inside], 0.0)
        chi2 = np.where(inside, np.sum(resid * resid, axis=1), np.inf)
        return chi2, resid, sigma

    def objective(self, y, objects):
        """(chi2 + |y|^2, chi2, normalised residuals, sigma) of whitened rows ``y``."""
        chi2, resid, sigma = self.residuals(self.theta(y, objects), objects)
        return chi2 + np.sum(y * y, axis=1), chi2, resid, sigma


def _jacobian(phot, y, objects, sigma):
    """d (normalised residual) / d y, shape (n, n_filters, n_inferred), forward differences
    (backward where the forward point leaves the training range) at fixed sigma."""
    n, d = y.shape
    steps = np.repeat(y[:, None, :], d + 1, axis=1)
    steps[:, 1:, :] += DIFFERENCE_STEP * np.eye(d)
    rows = phot.theta(steps.reshape(-1, d), np.repeat(objects, d + 1))
    flux, _, inside = phot.flux(rows)
    flux = flux.reshape(n, d + 1, -1)
    inside = inside.reshape(n, d + 1)
    sign = np.ones((n, d))
    redo = ~inside[:, 1:] & inside[:, :1]
    if redo.any():  # backward differences there
        rows, cols = np.nonzero(redo)
        back = y[rows].copy()
        back[np.arange(len(rows)), cols] -= DIFFERENCE_STEP
        flux_back, _, ok = phot.flux(phot.theta(back, objects[rows]))
        flux[rows, cols + 1] = np.where(ok[:, None], flux_back, np.nan)
        sign[rows, cols] = -1.0
    dflux = (flux[:, 1:, :] - flux[:, :1, :]) * (sign / DIFFERENCE_STEP)[:, :, None]
    dflux = np.where(np.isfinite(dflux), dflux, 0.0)
    jac = -np.swapaxes(dflux, 1, 2) / sigma[:, :, None]
    return np.where(phot.mask[objects][:, :, None], jac, 0.0)


def refine_best_fit(model, band_emulator, theta_start, maggies, maggies_unc, mask, zred,
                    floor=0.05, max_steps=MAX_STEPS):
    """Move each object's starting parameters to the nearby best fit (module docstring).

    Parameters
    ----------
    model, band_emulator, maggies, maggies_unc, mask, zred, floor
        As :class:`PhotometryResiduals` (``maggies_unc`` its ``unc``), one row per object.
    theta_start : ndarray, shape (n, ndim)
        Starting parameter rows (e.g. each object's best posterior draw), inside
        the training range.
    max_steps : int

    Returns
    -------
    theta : ndarray, shape (n, ndim)
        The refined rows (the start where no step lowered the objective).
    chi2 : ndarray, shape (n,)
        Photometric chi^2 there (inf where the start is outside the training range).
    residuals : ndarray, shape (n, n_filters)
        (observed - model) / sigma there, 0 in masked bands.
    """
    phot = PhotometryResiduals(model, band_emulator, maggies, maggies_unc, mask, zred, floor)
    return refine(phot, theta_start, np.arange(len(theta_start)), max_steps)


def refine(photometry, theta_start, objects, max_steps=MAX_STEPS):
    """:func:`refine_best_fit` for rows of ``objects`` of a :class:`PhotometryResiduals`
    (the same returns, one row per entry of ``objects``)."""
    phot = photometry
    y = phot.space.to_unbounded(np.asarray(theta_start, dtype=float))
    obj, chi2, resid, sigma = phot.objective(y, objects)
    damping = np.full(len(y), INITIAL_DAMPING)
    refused = np.zeros(len(y), dtype=int)
    eye = np.eye(y.shape[1])
    active = np.isfinite(obj)
    for _ in range(int(max_steps)):
        idx = np.flatnonzero(active)
        if not idx.size:
            break
        jac = _jacobian(phot, y[idx], objects[idx], sigma[idx])
        normal = np.einsum("nbi,nbj->nij", jac, jac) + eye
        gradient = np.einsum("nbi,nb->ni", jac, resid[idx]) + y[idx]
        lhs = normal + damping[idx, None, None] * normal * eye
        trial = y[idx] - np.linalg.solve(lhs, gradient[:, :, None])[:, :, 0]
        t_obj, t_chi2, t_resid, t_sigma = phot.objective(trial, objects[idx])
        better = t_obj < obj[idx]
        gain = obj[idx] - np.where(better, t_obj, obj[idx])
        take = idx[better]
        y[take], obj[take], chi2[take] = trial[better], t_obj[better], t_chi2[better]
        resid[take], sigma[take] = t_resid[better], t_sigma[better]
        damping[take] /= 3.0
        damping[idx[~better]] *= 4.0
        refused[take] = 0
        refused[idx[~better]] += 1
        # converged: no gain worth a step (0.01 in chi^2), or MAX_REFUSED steps refused in a row
        active[idx[(better & (gain < 1e-2)) | (refused[idx] >= MAX_REFUSED)]] = False
    return phot.theta(y, objects), chi2, resid
