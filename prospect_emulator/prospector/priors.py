"""Vectorised evaluation of a Prospector model's ln-prior.

Prospector's ``ProspectorParams._prior_product`` calls one scipy.stats
``pdf`` per free parameter and takes its log: ~160 microseconds per call for
the continuity-SFH template (the Student-t is the slow part), more than an
emulator prediction.  :class:`FastPriorProduct` gives the same numbers from a
few NumPy operations on the whole parameter vector.

How it stays equal to Prospector
--------------------------------
Every supported prior is a location-scale distribution of the standardised
variable ``s = (x - loc) / scale`` (the same standardisation scipy uses;
Student-t elements are divided by ``sqrt(df)`` as well), so

    ln p(x) = c + shape(s)    inside the support,    -inf outside,

with ``shape`` one of a handful of closed forms.  The constant ``c`` of every
element is *not* derived by hand: it is Prospector's own value
``log(prior.distribution.pdf(x_ref, ...))`` at an interior reference point
minus ``shape(s_ref)``, so any normalisation convention of scipy is inherited
exactly.  The support test is done on ``s`` with scipy's closed bounds.
Agreement with ``_prior_product`` is at the level of floating-point rounding
(tested to 1e-10 on random parameter vectors, in and out of the support, in
``tests/test_prospector_model.py``).

Two deliberate differences, both in regions no sampler visits:

* ``Normal`` and ``ClippedNormal`` more than ~38 sigma from the mean:
  scipy's pdf underflows to 0 and Prospector returns ``-inf``; here the
  finite Gaussian ln p is returned.
* Prior classes not listed in :data:`SUPPORTED_PRIORS` (including subclasses,
  which may override ``__call__``) are evaluated by Prospector itself, element
  block by element block, exactly as in ``_prior_product``.

NaN parameters give NaN, as in Prospector.
"""
import numpy as np
from scipy.special import xlog1py, xlogy

from prospect.models import priors as pp

__all__ = ["FastPriorProduct", "SUPPORTED_PRIORS"]

# shape-function codes
_UNIFORM, _GAUSS, _STUDENT_T, _LOG_UNIFORM, _BETA, _LOG_NORMAL = range(6)

#: Prospector prior classes evaluated in closed form (exact type match).
SUPPORTED_PRIORS = (pp.TopHat, pp.Uniform, pp.Normal, pp.ClippedNormal, pp.StudentT,
                    pp.LogUniform, pp.Beta, pp.LogNormal)


def _elementwise(value, n):
    """A prior parameter (scalar or per-element) as a float array of length n."""
    return np.broadcast_to(np.ravel(np.asarray(value, dtype=float)), (n,)).copy()


def _standardisation(prior, n):
    """(code, loc, scale, s_low, s_high, extra) arrays of length n for one prior."""
    kind = type(prior)
    p = prior.params
    inf = np.full(n, np.inf)
    if kind in (pp.TopHat, pp.Uniform):
        lo, hi = _elementwise(p["mini"], n), _elementwise(p["maxi"], n)
        return _UNIFORM, lo, hi - lo, np.zeros(n), np.ones(n), {}
    if kind is pp.Normal:
        return _GAUSS, _elementwise(p["mean"], n), _elementwise(p["sigma"], n), -inf, inf, {}
    if kind is pp.ClippedNormal:
        mean, sigma = _elementwise(p["mean"], n), _elementwise(p["sigma"], n)
        a = (_elementwise(p["mini"], n) - mean) / sigma  # as in ClippedNormal.args
        b = (_elementwise(p["maxi"], n) - mean) / sigma
        return _GAUSS, mean, sigma, a, b, {}
    if kind is pp.StudentT:
        return (_STUDENT_T, _elementwise(p["mean"], n), _elementwise(p["scale"], n), -inf, inf,
                {"df": _elementwise(p["df"], n)})
    if kind is pp.LogUniform:
        return (_LOG_UNIFORM, np.zeros(n), np.ones(n), _elementwise(p["mini"], n),
                _elementwise(p["maxi"], n), {})
    if kind is pp.Beta:
        lo = _elementwise(p.get("mini", 0.0), n)
        scale = _elementwise(p.get("maxi", 1.0), n) - lo
        return (_BETA, lo, scale, np.zeros(n), np.ones(n),
                {"alpha": _elementwise(p["alpha"], n), "beta": _elementwise(p["beta"], n)})
    if kind is pp.LogNormal:
        sigma = _elementwise(p["sigma"], n)
        scale = np.exp(_elementwise(p["mode"], n) + sigma ** 2)  # as in LogNormal.scale
        # pdf(0) = 0: the support is s > 0, i.e. s >= the smallest positive double
        return (_LOG_NORMAL, np.zeros(n), scale, np.full(n, np.nextafter(0.0, 1.0)), inf,
                {"sigma": sigma})
    raise KeyError(kind)


def _shape(code, s, extra):
    """The non-constant part of ln p in the standardised variable s."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if code == _UNIFORM:
            return np.zeros_like(s)
        if code == _GAUSS:
            return -0.5 * s * s
        if code == _STUDENT_T:
            return -0.5 * (extra["df"] + 1.0) * np.log1p(s * s / extra["df"])
        if code == _LOG_UNIFORM:
            return -np.log(s)
        if code == _BETA:
            return xlogy(extra["alpha"] - 1.0, s) + xlog1py(extra["beta"] - 1.0, -s)
        if code == _LOG_NORMAL:
            ls = np.log(s)
            return -ls - 0.5 * ls * ls / extra["sigma"] ** 2
    raise KeyError(code)


def _reference_point(code, s_low, s_high):
    """An interior point of the support (standardised)."""
    if code in (_UNIFORM, _BETA, _LOG_UNIFORM):
        return 0.5 * (s_low + s_high)
    if code == _LOG_NORMAL:
        return np.ones_like(s_low)
    # Gaussian / Student-t: the mode if inside, else the middle of the window
    ref = np.zeros_like(s_low)
    clipped = np.isfinite(s_low) & np.isfinite(s_high) & ((ref < s_low) | (ref > s_high))
    ref[clipped] = 0.5 * (s_low[clipped] + s_high[clipped])
    return ref


def _prospector_elementwise_lnp(prior, x, n):
    """Prospector's own ln p of each element of ``x`` (length n) under ``prior``."""
    with np.errstate(divide="ignore"):
        return np.broadcast_to(np.asarray(prior(x), dtype=float), (n,))


class FastPriorProduct:
    """ln of the product of a model's priors, vectorised; equals Prospector's.

    Parameters
    ----------
    model : prospect.models.ProspectorParams
        Read once: ``theta_index`` and the ``prior`` of every free parameter.
        Build a new instance if priors or the free parameters change.

    Notes
    -----
    Call with ``theta`` of shape ``(ndim,)`` (returns a float) or
    ``(..., ndim)`` (returns an array of shape ``theta.shape[:-1]``), like
    ``model._prior_product``.  The supported elements are reordered so that
    each shape family is one contiguous block (slices, not fancy indexing).
    """

    def __init__(self, model):
        self.ndim = int(model.ndim)
        blocks = []  # (code, theta positions, loc, scale, s_low, s_high, extra)
        self.fallback = []  # (prior, slice) evaluated by Prospector itself
        const = 0.0
        for name, inds in model.theta_index.items():
            prior = model.config_dict[name]["prior"]
            n = inds.stop - inds.start
            if type(prior) not in SUPPORTED_PRIORS:
                self.fallback.append((prior, inds))
                continue
            code, loc, scale, s_low, s_high, extra = _standardisation(prior, n)
            s_ref = _reference_point(code, s_low, s_high)
            # Prospector's own value at an interior point fixes the normalisation
            c = _prospector_elementwise_lnp(prior, loc + scale * s_ref, n) - _shape(code, s_ref, extra)
            if not np.all(np.isfinite(c)):  # degenerate prior parameters
                self.fallback.append((prior, inds))
                continue
            const += float(np.sum(c))
            blocks.append((code, np.arange(inds.start, inds.stop), loc, scale, s_low, s_high, extra))
        blocks.sort(key=lambda b: b[0])  # stable: parameter order kept within a family
        self.const = const

        def cat(i):
            return np.concatenate([b[i] for b in blocks]) if blocks else np.zeros(0)
        self.index = cat(1).astype(int)
        self.loc, self.scale, self.s_low, self.s_high = cat(2), cat(3), cat(4), cat(5)
        self.all_elements = np.array_equal(self.index, np.arange(self.ndim))
        codes = np.concatenate([[b[0]] * len(b[1]) for b in blocks]).astype(int) if blocks \
            else np.zeros(0, dtype=int)

        def family(code, *keys):
            """Slice of the family's block and its per-element extra parameters."""
            pos = np.nonzero(codes == code)[0]
            block = slice(pos[0], pos[-1] + 1) if pos.size else None
            values = [np.concatenate([b[6][k] for b in blocks if b[0] == code]) if pos.size else None
                      for k in keys]
            return (block, *values)

        self._gauss, = family(_GAUSS)
        self._t, df = family(_STUDENT_T, "df")
        if self._t is not None:
            # Student-t elements are standardised by scale * sqrt(df), so that
            # their shape is -(df + 1) / 2 * log1p(u^2) (their support is unbounded)
            self.scale[self._t] = self.scale[self._t] * np.sqrt(df)
            self._t_coef = -0.5 * (df + 1.0)
        self._logu, = family(_LOG_UNIFORM)
        self._beta, alpha, beta = family(_BETA, "alpha", "beta")
        if self._beta is not None:
            self._beta_am1, self._beta_bm1 = alpha - 1.0, beta - 1.0
        self._lnorm, sigma = family(_LOG_NORMAL, "sigma")
        if self._lnorm is not None:
            self._lnorm_coef = -0.5 / sigma ** 2

    # ----------------------------------------------------------------------
    def __call__(self, theta):
        theta = np.asarray(theta, dtype=float)
        if theta.ndim == 1:
            return self._single(theta)
        return self._batch(theta)

    def _single(self, theta):
        x = theta if self.all_elements else theta[self.index]
        s = (x - self.loc) / self.scale
        # count_nonzero is cheaper than ndarray.all() on short vectors; NaN fails both
        if np.count_nonzero(s >= self.s_low) + np.count_nonzero(s <= self.s_high) != 2 * s.size:
            return np.nan if np.isnan(theta).any() else -np.inf
        lnp = self.const
        if self._gauss is not None:
            g = s[self._gauss]
            lnp -= 0.5 * float(g @ g)
        if self._t is not None:
            u = s[self._t]
            lnp += float(np.log1p(u * u) @ self._t_coef)
        if self._logu is not None:
            lnp -= float(np.log(s[self._logu]).sum())
        if self._beta is not None:
            b = s[self._beta]
            lnp += float((xlogy(self._beta_am1, b) + xlog1py(self._beta_bm1, -b)).sum())
        if self._lnorm is not None:
            ls = np.log(s[self._lnorm])
            lnp += float((self._lnorm_coef * ls * ls - ls).sum())
        for prior, inds in self.fallback:
            with np.errstate(divide="ignore", invalid="ignore"):
                lnp += float(np.sum(prior(theta[inds])))
        return lnp

    def _batch(self, theta):
        x = theta[..., self.index]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (x - self.loc) / self.scale
            inside = ((s >= self.s_low) & (s <= self.s_high)).all(axis=-1)
            lnp = np.full(theta.shape[:-1], self.const)
            if self._gauss is not None:
                lnp = lnp - 0.5 * (s[..., self._gauss] ** 2).sum(axis=-1)
            if self._t is not None:
                u = s[..., self._t]
                lnp = lnp + (self._t_coef * np.log1p(u * u)).sum(axis=-1)
            if self._logu is not None:
                lnp = lnp - np.log(s[..., self._logu]).sum(axis=-1)
            if self._beta is not None:
                b = s[..., self._beta]
                lnp = lnp + (xlogy(self._beta_am1, b) + xlog1py(self._beta_bm1, -b)).sum(axis=-1)
            if self._lnorm is not None:
                ls = np.log(s[..., self._lnorm])
                lnp = lnp + (self._lnorm_coef * ls * ls - ls).sum(axis=-1)
            lnp = np.where(inside, lnp, -np.inf)
            if self.fallback:
                # row by row: not every Prospector prior broadcasts over samples
                rows = theta.reshape(-1, self.ndim)
                extra = np.array([sum(float(np.sum(prior(row[inds]))) for prior, inds in self.fallback)
                                  for row in rows]).reshape(theta.shape[:-1])
                lnp = lnp + extra
        return np.where(np.isnan(theta).any(axis=-1), np.nan, lnp)
