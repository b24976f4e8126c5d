"""Training-set parameter distributions (paper Table 1, "Train/Test" column).

These are the distributions that *training and test sets* are drawn from.
They are deliberately not Prospector priors: Sec. 4.2 of the paper shows that
an emulator trained on the (narrow) fitting priors is poor for rare galaxies,
so the training distributions have thicker tails than the priors.  The
fitting priors stay with the Prospector model of the fit.

Three families, each truncated to ``[low, high]``:

* :class:`Uniform` ``(low, high)``
* :class:`TruncatedNormal` ``(mean, sigma)`` truncated to ``[low, high]``
* :class:`TruncatedStudentT` -- Student's t with ``df`` degrees of freedom
  (2 in Table 1), shifted to ``loc`` and scaled by ``scale``, truncated.

Every distribution draws its samples by inverse-CDF sampling from one
uniform deviate per sample, so a given :class:`numpy.random.Generator` state
always produces the same values, whatever the sample count is split into.

A distribution is written as a small mapping, e.g. in TOML::

    dust2 = {kind = "truncated_normal", mean = 0.3, sigma = 3.0, low = 0.0, high = 4.0}

(see :func:`distribution_from_dict`).
"""
import math

import numpy as np
from scipy import stats

from ..errors import EmulatorConfigurationError

__all__ = ["Distribution", "Uniform", "TruncatedNormal", "TruncatedStudentT",
           "distribution_from_dict", "DISTRIBUTION_KINDS"]

#: Smallest probability mass a truncated distribution may keep inside its
#: bounds.  Below this the bounds sit so far in a tail that the configuration
#: is surely a mistake (and inverse-CDF sampling would lose precision).
MIN_MASS_IN_BOUNDS = 1e-9


def _finite_float(value, what, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise EmulatorConfigurationError(
            f"{name}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise EmulatorConfigurationError(f"{name}: {what} must be finite, got {value!r}")
    return value


class Distribution:
    """Base class: a one-dimensional distribution truncated to ``[low, high]``.

    Parameters
    ----------
    low, high : float
        Bounds of the support, in the unit of the parameter; ``low < high``.
    name : str, optional
        Name of the parameter the distribution belongs to; only used to make
        error messages say which parameter is misconfigured.
    """

    #: Identifier used in configuration files (``kind = "..."``).
    kind = None

    def __init__(self, low, high, name="distribution"):
        self.name = str(name)
        self.low = _finite_float(low, "low", self.name)
        self.high = _finite_float(high, "high", self.name)
        if not self.low < self.high:
            raise EmulatorConfigurationError(
                f"{self.name}: impossible bounds low={self.low!r} >= high={self.high!r}; "
                "a distribution needs low < high")

    # --- subclasses provide the untruncated ("parent") distribution ---
    def _parent(self):
        raise NotImplementedError

    def _parameters(self):
        """Ordered mapping of the shape parameters (without the bounds)."""
        raise NotImplementedError

    @property
    def bounds(self):
        """``(low, high)``: the support of the distribution."""
        return (self.low, self.high)

    def _cdf_bounds(self):
        parent = self._parent()
        return parent.cdf(self.low), parent.cdf(self.high)

    @property
    def mass_in_bounds(self):
        """Probability mass of the untruncated distribution inside the bounds."""
        parent = self._parent()
        c_low, c_high = self._cdf_bounds()
        if c_low > 0.5:
            # upper tail: a difference of survival functions keeps precision
            return float(parent.sf(self.low) - parent.sf(self.high))
        return float(c_high - c_low)

    def _check_mass(self):
        mass = self.mass_in_bounds
        if not (mass >= MIN_MASS_IN_BOUNDS):
            raise EmulatorConfigurationError(
                f"{self.name}: {self!r} has (almost) no probability inside its bounds "
                f"(mass {mass:.3g} < {MIN_MASS_IN_BOUNDS:g}); move the centre or widen the "
                "scale so that the distribution overlaps [low, high]")

    def ppf(self, u):
        """Quantile function of the truncated distribution.

        Parameters
        ----------
        u : array_like
            Probabilities in [0, 1].

        Returns
        -------
        ndarray
            Values in ``[low, high]``.
        """
        u = np.asarray(u, dtype=float)
        parent = self._parent()
        c_low, c_high = self._cdf_bounds()
        if c_low > 0.5:
            # upper tail: work with survival functions to keep precision
            s_low, s_high = parent.sf(self.low), parent.sf(self.high)
            x = parent.isf(s_low - u * (s_low - s_high))
        else:
            x = parent.ppf(c_low + u * (c_high - c_low))
        return np.clip(x, self.low, self.high)

    def sample(self, rng, size=None):
        """Draw samples.

        Parameters
        ----------
        rng : numpy.random.Generator or int
            Source of randomness (an int is used as a seed).  Exactly one
            uniform deviate is consumed per sample.
        size : int or tuple, optional
            Output shape; ``None`` gives a float.

        Returns
        -------
        float or ndarray
            Samples in ``[low, high]``, in the unit of the parameter.
        """
        rng = np.random.default_rng(rng)
        x = self.ppf(rng.random(size))
        return float(x) if size is None else x

    def pdf(self, x):
        """Probability density of the truncated distribution (0 outside the bounds)."""
        x = np.asarray(x, dtype=float)
        inside = (x >= self.low) & (x <= self.high)
        density = self._parent().pdf(x) / self.mass_in_bounds
        return np.where(inside, density, 0.0)

    def logpdf(self, x):
        """Natural log of :meth:`pdf` (``-inf`` outside the bounds)."""
        x = np.asarray(x, dtype=float)
        inside = (x >= self.low) & (x <= self.high)
        logd = self._parent().logpdf(x) - math.log(self.mass_in_bounds)
        return np.where(inside, logd, -np.inf)

    def cdf(self, x):
        """Cumulative distribution function of the truncated distribution."""
        x = np.clip(np.asarray(x, dtype=float), self.low, self.high)
        c_low, c_high = self._cdf_bounds()
        return np.clip((self._parent().cdf(x) - c_low) / (c_high - c_low), 0.0, 1.0)

    def to_dict(self):
        """Plain mapping (``kind``, shape parameters, ``low``, ``high``) for JSON/TOML."""
        out = {"kind": self.kind}
        out.update(self._parameters())
        out.update(low=self.low, high=self.high)
        return out

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "kind")
        return f"{type(self).__name__}({args})"


class Uniform(Distribution):
    """Uniform distribution on ``[low, high]`` (Table 1: "Uniform (low, high)")."""

    kind = "uniform"

    def _parent(self):
        return stats.uniform(loc=self.low, scale=self.high - self.low)

    def _parameters(self):
        return {}

    def ppf(self, u):
        # exact affine map; no scipy round-off
        return self.low + np.asarray(u, dtype=float) * (self.high - self.low)

    @property
    def mass_in_bounds(self):
        return 1.0


class TruncatedNormal(Distribution):
    """Normal distribution ``N(mean, sigma)`` truncated to ``[low, high]``.

    Table 1 writes it "Normal (mean, sigma), truncated to [low, high]";
    ``sigma`` is the standard deviation of the *untruncated* normal.
    """

    kind = "truncated_normal"

    def __init__(self, mean, sigma, low, high, name="distribution"):
        super().__init__(low, high, name=name)
        self.mean = _finite_float(mean, "mean", self.name)
        self.sigma = _finite_float(sigma, "sigma", self.name)
        if self.sigma <= 0:
            raise EmulatorConfigurationError(f"{self.name}: sigma must be > 0, got {self.sigma!r}")
        self._check_mass()

    def _parent(self):
        return stats.norm(loc=self.mean, scale=self.sigma)

    def _parameters(self):
        return {"mean": self.mean, "sigma": self.sigma}

    def _scipy(self):
        a, b = (self.low - self.mean) / self.sigma, (self.high - self.mean) / self.sigma
        return stats.truncnorm(a, b, loc=self.mean, scale=self.sigma)

    def ppf(self, u):
        # scipy's truncnorm keeps precision deep in either tail
        return np.clip(self._scipy().ppf(np.asarray(u, dtype=float)), self.low, self.high)


class TruncatedStudentT(Distribution):
    """Student's t distribution, shifted and scaled, truncated to ``[low, high]``.

    The density inside the bounds is proportional to
    ``t_df((x - loc) / scale) / scale``.  Table 1 uses ``df = 2`` ("t(2),
    scaled to mu = 0 and sigma = 3"); as in Prospector's ``StudentT`` prior,
    "sigma" is the scale parameter (a t(2) variable has no finite variance).
    """

    kind = "truncated_student_t"

    def __init__(self, loc, scale, low, high, df=2.0, name="distribution"):
        super().__init__(low, high, name=name)
        self.loc = _finite_float(loc, "loc", self.name)
        self.scale = _finite_float(scale, "scale", self.name)
        self.df = _finite_float(df, "df", self.name)
        if self.scale <= 0:
            raise EmulatorConfigurationError(f"{self.name}: scale must be > 0, got {self.scale!r}")
        if self.df <= 0:
            raise EmulatorConfigurationError(f"{self.name}: df must be > 0, got {self.df!r}")
        self._check_mass()

    def _parent(self):
        return stats.t(self.df, loc=self.loc, scale=self.scale)

    def _parameters(self):
        return {"loc": self.loc, "scale": self.scale, "df": self.df}


#: kind name (and accepted aliases) -> class
DISTRIBUTION_KINDS = {
    "uniform": Uniform,
    "truncated_normal": TruncatedNormal,
    "truncnorm": TruncatedNormal,
    "normal": TruncatedNormal,
    "truncated_student_t": TruncatedStudentT,
    "student_t": TruncatedStudentT,
    "studentt": TruncatedStudentT,
    "t": TruncatedStudentT,
}

_FIELDS = {
    Uniform: ("low", "high"),
    TruncatedNormal: ("mean", "sigma", "low", "high"),
    TruncatedStudentT: ("loc", "scale", "low", "high", "df"),
}
_REQUIRED = {
    Uniform: ("low", "high"),
    TruncatedNormal: ("mean", "sigma", "low", "high"),
    TruncatedStudentT: ("loc", "scale", "low", "high"),
}


def distribution_from_dict(spec, name="distribution"):
    """Build a distribution from a mapping such as a TOML table.

    Parameters
    ----------
    spec : mapping or Distribution
        ``{"kind": "uniform", "low": .., "high": ..}``,
        ``{"kind": "truncated_normal", "mean": .., "sigma": .., "low": .., "high": ..}`` or
        ``{"kind": "truncated_student_t", "loc": .., "scale": .., "df": 2, "low": .., "high": ..}``
        (``df`` defaults to 2).  Aliases for kind: ``truncnorm``/``normal``,
        ``student_t``/``t``.  A :class:`Distribution` is returned unchanged.
    name : str
        Parameter name, used in error messages.

    Returns
    -------
    Distribution

    Raises
    ------
    EmulatorConfigurationError
        Unknown kind, missing or unknown fields, impossible bounds.
    """
    if isinstance(spec, Distribution):
        return spec
    if not hasattr(spec, "get"):
        raise EmulatorConfigurationError(
            f"{name}: a distribution must be a table like "
            f"{{kind = \"uniform\", low = 0.0, high = 1.0}}, got {spec!r}")
    spec = dict(spec)
    kind = str(spec.pop("kind", "")).lower()
    if kind not in DISTRIBUTION_KINDS:
        raise EmulatorConfigurationError(
            f"{name}: unknown distribution kind {kind!r}; allowed: "
            + ", ".join(sorted(DISTRIBUTION_KINDS)))
    cls = DISTRIBUTION_KINDS[kind]
    unknown = sorted(set(spec) - set(_FIELDS[cls]))
    missing = [f for f in _REQUIRED[cls] if f not in spec]
    if unknown or missing:
        raise EmulatorConfigurationError(
            f"{name}: a {cls.kind} distribution takes the fields {', '.join(_FIELDS[cls])}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else ""))
    return cls(name=name, **spec)
