"""Vectorised evaluation of a Prospector model's ln-prior and prior transform.

Prospector's ``ProspectorParams._prior_product`` calls one scipy.stats
``pdf`` per free parameter and takes its log: ~160 microseconds per call for
the continuity-SFH template (the Student-t is the slow part), more than an
emulator prediction.  :class:`FastPriorProduct` gives the same numbers from a
few NumPy operations on the whole parameter vector.  Likewise
``ProspectorParams.prior_transform`` (one scipy.stats ``ppf`` per parameter,
milliseconds per call, once per dynesty proposal) is replaced by
:class:`FastPriorTransform`.  Both read the model's priors once through
:func:`parse_model_priors`.

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
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr, ndtri, stdtrit, xlog1py, xlogy
from scipy.stats import truncnorm

from prospect.models import priors as pp

__all__ = ["FastPriorProduct", "FastPriorTransform", "prior_cdf", "SUPPORTED_PRIORS", "ELEMENTWISE_PRIORS",
           "PriorBlock",
           "parse_model_priors"]

# shape-function codes
_UNIFORM, _GAUSS, _STUDENT_T, _LOG_UNIFORM, _BETA, _LOG_NORMAL = range(6)

#: Prospector prior classes evaluated in closed form (exact type match).
SUPPORTED_PRIORS = (pp.TopHat, pp.Uniform, pp.Normal, pp.ClippedNormal, pp.StudentT,
                    pp.LogUniform, pp.Beta, pp.LogNormal)

#: Fallback prior classes (exact type match) whose ``__call__`` and
#: ``unit_transform`` are element-wise NumPy expressions, so Prospector's own
#: code takes an (n, k) block of samples in one call instead of row by row.
ELEMENTWISE_PRIORS = (pp.FastTruncatedEvenStudentTFreeDeg2,)


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


class PriorBlock(NamedTuple):
    """One supported prior of a model, standardised (see the module notes).

    ``inds`` is the slice of theta it covers; ``loc``, ``scale``, ``s_low``,
    ``s_high``, ``lnp_const`` and the arrays in ``extra`` have one entry per
    element.  For ``ClippedNormal``, ``s_low``/``s_high`` are scipy's
    truncation points ``a``/``b`` in standard deviations.
    """
    code: int
    prior: pp.Prior
    inds: slice
    loc: np.ndarray
    scale: np.ndarray
    s_low: np.ndarray
    s_high: np.ndarray
    extra: dict
    lnp_const: np.ndarray


def parse_model_priors(model):
    """Read the priors of a model's free parameters once.

    Parameters
    ----------
    model : prospect.models.ProspectorParams

    Returns
    -------
    blocks : list of PriorBlock
        The priors of :data:`SUPPORTED_PRIORS` with usable parameters, in
        parameter order.
    fallback : list of (prior, slice)
        Priors to be evaluated by Prospector itself: other classes, and
        supported ones whose parameters are degenerate (Prospector's ln p is
        not finite at an interior point, e.g. ``sigma <= 0``).
    """
    blocks, fallback = [], []
    for name, inds in model.theta_index.items():
        prior = model.config_dict[name]["prior"]
        n = inds.stop - inds.start
        if type(prior) not in SUPPORTED_PRIORS:
            fallback.append((prior, inds))
            continue
        code, loc, scale, s_low, s_high, extra = _standardisation(prior, n)
        s_ref = _reference_point(code, s_low, s_high)
        # Prospector's own value at an interior point fixes the normalisation
        c = _prospector_elementwise_lnp(prior, loc + scale * s_ref, n) - _shape(code, s_ref, extra)
        if not np.all(np.isfinite(c)):  # degenerate prior parameters
            fallback.append((prior, inds))
            continue
        blocks.append(PriorBlock(code, prior, inds, loc, scale, s_low, s_high, extra, c))
    return blocks, fallback


class _FamilyLayout:
    """Elements of ``blocks`` concatenated in the given order; ``families[i]``
    labels block i.  Blocks must already be sorted by family so that each
    family is one contiguous slice of the concatenation."""

    def __init__(self, blocks, families, ndim):
        self.blocks, self.families = blocks, list(families)
        self.index = (np.concatenate([np.arange(b.inds.start, b.inds.stop) for b in blocks])
                      if blocks else np.zeros(0, dtype=int))
        self.all_elements = np.array_equal(self.index, np.arange(ndim))
        self.labels = (np.concatenate([[f] * (b.inds.stop - b.inds.start)
                                       for f, b in zip(self.families, blocks)])
                       if blocks else np.zeros(0))

    def cat(self, field):
        """A per-element PriorBlock field over all blocks (a new array)."""
        if not self.blocks:
            return np.zeros(0)
        return np.concatenate([getattr(b, field) for b in self.blocks]).astype(float)

    def block(self, family):
        """The slice of the concatenation holding ``family``, or None."""
        pos = np.nonzero(self.labels == family)[0]
        return slice(pos[0], pos[-1] + 1) if pos.size else None

    def extra(self, family, key):
        """The per-element ``extra[key]`` of the family's blocks."""
        return np.concatenate([b.extra[key] for f, b in zip(self.families, self.blocks)
                               if f == family])


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
        blocks, self.fallback = parse_model_priors(model)
        self.const = float(sum(np.sum(b.lnp_const) for b in blocks))
        blocks = sorted(blocks, key=lambda b: b.code)  # stable: parameter order kept within a family
        layout = _FamilyLayout(blocks, [b.code for b in blocks], self.ndim)
        self.index, self.all_elements = layout.index, layout.all_elements
        self.loc, self.scale = layout.cat("loc"), layout.cat("scale")
        self.s_low, self.s_high = layout.cat("s_low"), layout.cat("s_high")

        self._gauss = layout.block(_GAUSS)
        self._t = layout.block(_STUDENT_T)
        if self._t is not None:
            # Student-t elements are standardised by scale * sqrt(df), so that
            # their shape is -(df + 1) / 2 * log1p(u^2) (their support is unbounded)
            df = layout.extra(_STUDENT_T, "df")
            self.scale[self._t] = self.scale[self._t] * np.sqrt(df)
            self._t_coef = -0.5 * (df + 1.0)
        self._logu = layout.block(_LOG_UNIFORM)
        self._beta = layout.block(_BETA)
        if self._beta is not None:
            self._beta_am1 = layout.extra(_BETA, "alpha") - 1.0
            self._beta_bm1 = layout.extra(_BETA, "beta") - 1.0
        self._lnorm = layout.block(_LOG_NORMAL)
        if self._lnorm is not None:
            self._lnorm_coef = -0.5 / layout.extra(_LOG_NORMAL, "sigma") ** 2
        # Uniform, Gaussian and Student-t shapes are finite everywhere inside
        # their bounds, so there "finite" is just "inside" (nested sampling only
        # asks whether the prior is finite)
        self.finite_inside = (self._logu is None and self._beta is None and self._lnorm is None
                              and not self.fallback)

    # ----------------------------------------------------------------------
    def __call__(self, theta):
        theta = np.asarray(theta, dtype=float)
        if theta.ndim == 1:
            return self._single(theta)
        return self._batch(theta)

    def nested(self, theta):
        """Prospector's ``prior_product(theta, nested=True)`` for one ``theta``
        of shape (ndim,): 0.0 where the prior is finite, else -inf (NaN for a
        NaN theta).  Skips the density where finite means inside the bounds."""
        if not self.finite_inside:
            lnp = self._single(np.asarray(theta, dtype=float))
            return 0.0 if np.isfinite(lnp) else lnp
        x = theta if self.all_elements else theta[self.index]
        s = (x - self.loc) / self.scale
        if np.count_nonzero(s >= self.s_low) + np.count_nonzero(s <= self.s_high) != 2 * s.size:
            return np.nan if np.isnan(theta).any() else -np.inf
        return 0.0

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
                rows = theta.reshape(-1, self.ndim)
                extra = np.zeros(len(rows))
                for prior, inds in self.fallback:
                    if type(prior) in ELEMENTWISE_PRIORS:
                        extra += np.asarray(prior(rows[:, inds]), dtype=float).sum(axis=-1)
                    else:  # row by row: not every Prospector prior broadcasts over samples
                        extra += np.array([float(np.sum(prior(row[inds]))) for row in rows])
                lnp = lnp + extra.reshape(theta.shape[:-1])
        return np.where(np.isnan(theta).any(axis=-1), np.nan, lnp)


# ---------------------------------------------------------------------------
# unit-cube transform (nested sampling)
# transform families: ClippedNormal needs its own (Normal shares _GAUSS with it)
_T_UNIFORM, _T_NORMAL, _T_CLIPPED, _T_STUDENT_T, _T_LOG_UNIFORM, _T_LOG_NORMAL = range(6)
_TRANSFORM_FAMILY = {_UNIFORM: _T_UNIFORM, _GAUSS: _T_NORMAL, _STUDENT_T: _T_STUDENT_T,
                     _LOG_UNIFORM: _T_LOG_UNIFORM, _LOG_NORMAL: _T_LOG_NORMAL}

#: Above this standard-normal quantile, a ClippedNormal element whose lower
#: bound is below the mean is inverted by scipy itself: there Phi(z) is near 1,
#: and both scipy's log-space form and the linear form lose ~eps / phi(z) in z
#: (different rounding, so they would differ by up to ~1e-12 sigma at z = 4).
CLIPPED_NORMAL_UPPER_TAIL_Z = 4.0

#: Smallest truncated-normal mass (and tail probability) handled in closed
#: form: priors with narrower windows (beyond ~37 sigma in a tail) are left to
#: Prospector, smaller tail probabilities (u ~ 1e-290) to scipy's ppf.
_MIN_CLIPPED_MASS = 1e-290


def _truncnorm_linear_form(a, b):
    """(flip, sign, base, mass) so that scipy's truncnorm ppf is
    ``z = sign * ndtri(base + (flip + sign * u) * mass)``.

    The same case split as scipy (``_ppf`` in scipy.stats._continuous_distns):
    a < 0 inverts the lower tail, Phi(z) = Phi(a) + u mass; a >= 0 the upper
    one, Phi(-z) = Phi(-b) + (1 - u) mass, so that a window lying far in the
    upper tail keeps its precision (1 - Phi would cancel there).
    """
    left = a < 0
    central = left & (b > 0)
    with np.errstate(invalid="ignore"):
        mass = np.where(central, (1.0 - ndtr(a)) - ndtr(-b),
                        np.where(left, ndtr(b) - ndtr(a), ndtr(-a) - ndtr(-b)))
    base = np.where(left, ndtr(a), ndtr(-b))
    return np.where(left, 0.0, 1.0), np.where(left, 1.0, -1.0), base, mass


class FastPriorTransform:
    """Prospector's ``prior_transform`` (unit cube -> parameters), vectorised.

    Equal to ``model.prior_transform(u)`` of stock Prospector, which calls
    ``prior.unit_transform`` (a scipy.stats ``ppf``) for every free parameter:
    ~1.5-3 ms per call for the fitting template, called by dynesty for every
    proposal.  Here each element is ``ppf * scale + loc`` with scipy's own
    ``_ppf`` formula:

    * ``TopHat``/``Uniform``: ``mini + u (maxi - mini)``;
    * ``Normal``: ``mean + sigma ndtri(u)``;
    * ``StudentT``: ``mean + scale stdtrit(df, u)``;
    * ``LogUniform``: ``exp(log mini + u (log maxi - log mini))``;
    * ``LogNormal``: ``exp(mode + sigma^2) exp(sigma ndtri(u))``;
    * ``ClippedNormal``: the truncated-normal quantile in linear probability
      space (see :func:`_truncnorm_linear_form`), with scipy's
      ``truncnorm.ppf`` for the elements whose quantile lies beyond
      :data:`CLIPPED_NORMAL_UPPER_TAIL_Z` in the upper tail of a window that
      starts below the mean (ill-conditioned; a fraction ~3e-5 of draws at
      most) or whose tail probability would underflow (u ~ 1e-290), and
      Prospector's for windows further than ~37 sigma in a tail.

    As in scipy, ``u = 0`` and ``u = 1`` give the support's ends and ``u``
    outside [0, 1] or NaN gives NaN.  Other prior classes (``Beta``,
    ``SkewNormal``, ``MultiVariateNormal``, subclasses, ...) and degenerate
    priors are transformed by Prospector's ``unit_transform`` itself.
    Agreement with Prospector is tested to 1e-10 relative in
    ``tests/test_prospector_model.py``.

    Parameters
    ----------
    model : prospect.models.ProspectorParams
        Read once, through :func:`parse_model_priors` (as
        :class:`FastPriorProduct`); build a new instance if priors or the free
        parameters change.

    Notes
    -----
    Call with ``unit_coords`` of shape ``(ndim,)`` (returns ``(ndim,)``) or
    ``(..., ndim)`` (returns the same shape; Prospector's own method takes
    only one vector).
    """

    def __init__(self, model):
        self.ndim = int(model.ndim)
        parsed, fallback = parse_model_priors(model)
        blocks, families = [], []
        for b in parsed:
            family = _TRANSFORM_FAMILY.get(b.code)
            if family == _T_NORMAL and type(b.prior) is pp.ClippedNormal:
                family = _T_CLIPPED
                if not np.all(_truncnorm_linear_form(b.s_low, b.s_high)[3] > _MIN_CLIPPED_MASS):
                    family = None
            if family is None:  # Beta, or a window too far in a tail
                fallback.append((b.prior, b.inds))
                continue
            blocks.append(b)
            families.append(family)
        order = sorted(range(len(blocks)), key=lambda i: families[i])  # stable
        layout = _FamilyLayout([blocks[i] for i in order], [families[i] for i in order], self.ndim)
        self.fallback = sorted(fallback, key=lambda f: f[1].start)
        self.index, self.all_elements = layout.index, layout.all_elements
        self.loc, self.scale = layout.cat("loc"), layout.cat("scale")
        # what scipy's ppf returns at u = 0 and u = 1: _a * scale + loc, _b * scale + loc
        self.lower, self.upper = np.empty(self.index.size), np.empty(self.index.size)

        self._uniform = layout.block(_T_UNIFORM)
        if self._uniform is not None:
            self.lower[self._uniform] = self.loc[self._uniform]
            self.upper[self._uniform] = self.scale[self._uniform] + self.loc[self._uniform]
        self._normal = layout.block(_T_NORMAL)
        self._t = layout.block(_T_STUDENT_T)
        for block in (self._normal, self._t):
            if block is not None:
                self.lower[block], self.upper[block] = -np.inf, np.inf
        if self._t is not None:
            self._t_df = layout.extra(_T_STUDENT_T, "df")
        self._logu = layout.block(_T_LOG_UNIFORM)
        if self._logu is not None:
            mini, maxi = layout.cat("s_low")[self._logu], layout.cat("s_high")[self._logu]
            self._logu_log_mini = np.log(mini)
            self._logu_log_ratio = np.log(maxi) - np.log(mini)
            self.lower[self._logu], self.upper[self._logu] = mini, maxi
        self._lnorm = layout.block(_T_LOG_NORMAL)
        if self._lnorm is not None:
            self._lnorm_sigma = layout.extra(_T_LOG_NORMAL, "sigma")
            self.lower[self._lnorm], self.upper[self._lnorm] = 0.0, np.inf
        self._clipped = layout.block(_T_CLIPPED)
        if self._clipped is not None:
            a, b = layout.cat("s_low")[self._clipped], layout.cat("s_high")[self._clipped]
            self._cn_a, self._cn_b = a, b
            self._cn_flip, self._cn_sign, self._cn_base, self._cn_mass = _truncnorm_linear_form(a, b)
            self._cn_left = a < 0
            sigma, mean = self.scale[self._clipped], self.loc[self._clipped]
            self.lower[self._clipped], self.upper[self._clipped] = a * sigma + mean, b * sigma + mean

    def closed_form_table(self):
        """The closed forms as data, for a re-implementation in another array
        library (:mod:`prospect_emulator.fitting.jax_likelihood`).

        Returns
        -------
        families : dict
            For each family in use (``uniform``, ``normal``, ``clipped_normal``,
            ``student_t``, ``log_uniform``, ``log_normal``): a dict with
            ``theta_index`` (positions in the parameter vector) and the
            arrays its formula in :meth:`_closed_forms` uses (``loc``,
            ``scale``; ``flip``, ``sign``, ``base``, ``mass`` of
            :func:`_truncnorm_linear_form`; ``df``; ``log_mini``,
            ``log_ratio``; ``sigma``).
        fallback : list of (prior, slice)
            Priors that Prospector's own ``unit_transform`` transforms.
        """
        blocks = {"uniform": self._uniform, "normal": self._normal, "clipped_normal": self._clipped,
                  "student_t": self._t, "log_uniform": self._logu, "log_normal": self._lnorm}
        families = {}
        for name, block in blocks.items():
            if block is None:
                continue
            entry = {"theta_index": np.asarray(self.index)[block], "loc": self.loc[block],
                     "scale": self.scale[block]}
            if name == "clipped_normal":
                entry.update(flip=self._cn_flip, sign=self._cn_sign, base=self._cn_base,
                             mass=self._cn_mass)
            elif name == "student_t":
                entry["df"] = self._t_df
            elif name == "log_uniform":
                entry.update(log_mini=self._logu_log_mini, log_ratio=self._logu_log_ratio)
            elif name == "log_normal":
                entry["sigma"] = self._lnorm_sigma
            families[name] = entry
        return families, list(self.fallback)

    # ----------------------------------------------------------------------
    def __call__(self, unit_coords):
        u = np.asarray(unit_coords, dtype=float)
        x = u if self.all_elements else u[..., self.index]
        # inside the open unit interval (NaN fails): the closed forms apply as they are
        if np.count_nonzero((x > 0) & (x < 1)) == x.size:
            out = self._closed_forms(x)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out = self._closed_forms(x)
            out = np.where(x == 0, self.lower, np.where(x == 1, self.upper,
                                                        np.where((x > 0) & (x < 1), out, np.nan)))
        if self.all_elements:
            return out
        theta = np.zeros(u.shape)
        theta[..., self.index] = out
        for prior, inds in self.fallback:
            if u.ndim == 1:
                theta[inds] = prior.unit_transform(u[inds])
            elif type(prior) in ELEMENTWISE_PRIORS:
                theta[..., inds] = prior.unit_transform(u[..., inds])
            else:  # row by row: Prospector's unit_transform takes one vector
                rows, flat = u.reshape(-1, self.ndim), theta.reshape(-1, self.ndim)
                for row, t in zip(rows, flat):
                    t[inds] = prior.unit_transform(row[inds])
        return theta

    def _closed_forms(self, x):
        """Every supported element of ``x`` (unit coordinates, reordered) in
        parameter units, as scipy computes ``_ppf(u) * scale + loc``."""
        out = np.empty(x.shape)
        if self._uniform is not None:
            b = self._uniform
            out[..., b] = x[..., b] * self.scale[b] + self.loc[b]
        if self._normal is not None:
            b = self._normal
            out[..., b] = ndtri(x[..., b]) * self.scale[b] + self.loc[b]
        if self._clipped is not None:
            b = self._clipped
            xc = x[..., b]
            # the tail probability below (a < 0) or above (a >= 0) the quantile
            tail_prob = self._cn_base + (self._cn_flip + self._cn_sign * xc) * self._cn_mass
            z = self._cn_sign * ndtri(tail_prob)
            out[..., b] = z * self.scale[b] + self.loc[b]
            tail = (self._cn_left & (z > CLIPPED_NORMAL_UPPER_TAIL_Z)) | (tail_prob < _MIN_CLIPPED_MASS)
            if tail.any():
                shape = xc.shape
                out[..., b][tail] = truncnorm.ppf(
                    xc[tail], np.broadcast_to(self._cn_a, shape)[tail],
                    np.broadcast_to(self._cn_b, shape)[tail],
                    loc=np.broadcast_to(self.loc[b], shape)[tail],
                    scale=np.broadcast_to(self.scale[b], shape)[tail])
        if self._t is not None:
            b = self._t
            out[..., b] = stdtrit(self._t_df, x[..., b]) * self.scale[b] + self.loc[b]
        if self._logu is not None:
            b = self._logu
            out[..., b] = np.exp(self._logu_log_mini + x[..., b] * self._logu_log_ratio)
        if self._lnorm is not None:
            b = self._lnorm
            out[..., b] = np.exp(self._lnorm_sigma * ndtri(x[..., b])) * self.scale[b]
        return out


def _even_student_t2_cdf(prior, x):
    """CDF of Prospector's ``FastTruncatedEvenStudentTFreeDeg2`` (a Student-t with
    2 degrees of freedom, scale ``sig``, truncated to [-hw, hw]): the inverse of
    its ``unit_transform``.  With ``g(t) = t / (2 sqrt(2 + t^2))`` (the t_2 CDF
    minus 1/2), ``F(x) = 1/2 + g(x / sig) / (2 g(hw / sig))``."""
    t, t_edge = x / prior.sig, np.asarray(prior.hw) / prior.sig
    g = 0.5 * t / np.sqrt(2.0 + t * t)
    g_edge = 0.5 * t_edge / np.sqrt(2.0 + t_edge * t_edge)
    return np.clip(0.5 + g / (2.0 * g_edge), 0.0, 1.0)


def prior_cdf(model, theta, names=None):
    """Prior CDF values (unit-cube coordinates) of parameter vectors: the inverse
    of ``model.prior_transform``.

    Each free parameter's prior is independent, so its CDF maps it alone:
    Prospector's own ``inverse_unit_transform`` (scipy.stats ``cdf``) for the
    scipy-based priors, closed forms for ``FastTruncatedEvenStudentTFreeDeg2``
    and ``FastUniform`` (which Prospector gives no CDF).

    Parameters
    ----------
    model : prospect.models.ProspectorParams
    theta : ndarray, shape (..., ndim)
        Parameter vectors in the priors' units.
    names : list of str, optional
        The free parameters to map (default: all); the others are NaN.

    Returns
    -------
    ndarray, same shape as ``theta``
        Values in [0, 1]; 0 or 1 outside a prior's support.

    Raises
    ------
    EmulatorConfigurationError
        For a prior with no CDF (``MultiVariateNormal`` couples its elements).
    """
    theta = np.asarray(theta, dtype=float)
    u = np.full(theta.shape, np.nan)
    for name in (model.free_params if names is None else names):
        prior, inds = model.config_dict[name]["prior"], model.theta_index[name]
        x = theta[..., inds]
        if isinstance(prior, (pp.FastTruncatedEvenStudentTFreeDeg2,
                              pp.FastTruncatedEvenStudentTFreeDeg2Scalar)):
            u[..., inds] = _even_student_t2_cdf(prior, x)
        elif isinstance(prior, pp.FastUniform):
            u[..., inds] = np.clip((x - prior.a) / prior.diffthing, 0.0, 1.0)
        elif isinstance(prior, pp.MultiVariateNormal) or not hasattr(prior, "distribution"):
            from .errors import EmulatorConfigurationError
            raise EmulatorConfigurationError(
                f"the prior of {name!r} ({type(prior).__name__}) has no per-element CDF; "
                "prior-whitened coordinates need independent priors with a CDF (TopHat, "
                "Uniform, Normal, ClippedNormal, StudentT, LogUniform, LogNormal, Beta, "
                "SkewNormal, FastUniform, FastTruncatedEvenStudentTFreeDeg2)")
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                u[..., inds] = prior.inverse_unit_transform(x)
    return u


class FastPriorsMixin:
    """``prior_product`` and ``prior_transform`` of a Prospector model through
    :class:`FastPriorProduct` and :class:`FastPriorTransform`.

    Put it before ``SpecModel`` in the bases.  The fast versions are built at
    first use and again whenever Prospector re-configures the free parameters
    (a new ``theta_index``); after changing prior objects in place, set
    ``model._fast_prior_key = model._fast_transform_key = None``.
    """

    def prior_product(self, theta, nested=False, **extras):
        """ln of the product of the priors at ``theta`` (same value as Prospector's).

        Parameters
        ----------
        theta : ndarray, shape (ndim,) or (..., ndim)
        nested : bool
            As in Prospector: return 0.0 where the prior is finite (nested
            sampling draws from the prior already).

        Returns
        -------
        float or ndarray
        """
        if getattr(self, "_fast_prior_key", None) is not self.theta_index:
            self._fast_prior = FastPriorProduct(self)
            self._fast_prior_key = self.theta_index
        if nested and type(theta) is np.ndarray and theta.ndim == 1:
            return self._fast_prior.nested(theta)  # dynesty's case: one theta per call
        lpp = self._fast_prior(theta)
        if nested and np.any(np.isfinite(lpp)):
            return 0.0
        return lpp

    def prior_transform(self, unit_coords):
        """Parameters at the given prior CDF values, for nested sampling
        (same values as Prospector's, ~100x faster).

        Parameters
        ----------
        unit_coords : ndarray, shape (ndim,) or (..., ndim)
            Coordinates in the unit hyper-cube.

        Returns
        -------
        theta : ndarray, same shape as ``unit_coords``
        """
        if getattr(self, "_fast_transform_key", None) is not self.theta_index:
            self._fast_transform = FastPriorTransform(self)
            self._fast_transform_key = self.theta_index
        return self._fast_transform(unit_coords)
