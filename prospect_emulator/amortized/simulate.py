"""Simulated catalogues for amortized posteriors: prior draws observed through the emulator.

One simulation is a galaxy drawn from the Prospector model's own prior,
its photometry predicted by the emulator, the emulator's own error and an
SPS floor added as in the paper's eq. 9, and then "observed" as a real
catalogue would observe it:

* per band an uncertainty drawn from :class:`ObservationalNoiseModel`, fitted
  to the catalogue's uncertainties (log10 uncertainty as a function of log10
  flux, binned, with its scatter);
* Gaussian noise of that size (plus eq. 9's emulator and floor terms);
* bands missing in the patterns, and at the rates, of the catalogue.

This module is NumPy only (no JAX): the exact-fitting path never imports
:mod:`prospect_emulator.amortized`, and simulating needs no JAX either.
"""
import numpy as np
from scipy.special import ndtr, ndtri

from ..errors import EmulatorConfigurationError, OutOfTrainingRangeError
from ..priors import prior_cdf
from ..runtime.error_budget import total_sigma

__all__ = ["ObservationalNoiseModel", "ParameterSpace", "Simulations", "simulate",
           "emulator_inputs", "flow_conditions", "valid_bands", "redshift_range_of"]


def valid_bands(maggies, maggies_unc):
    """Bands that count as observed: finite flux and finite, positive uncertainty.

    The same rule as :func:`prospect_emulator.fitting.catalog.read_catalog`
    and :func:`prospect_emulator.fitting.run.make_obs` (a NaN flux or an
    uncertainty <= 0 marks a band as missing).
    """
    maggies = np.asarray(maggies, dtype=float)
    maggies_unc = np.asarray(maggies_unc, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(maggies) & np.isfinite(maggies_unc) & (maggies_unc > 0)


# ------------------------------------------------------------------ noise model
class ObservationalNoiseModel:
    """Per-band photometric uncertainties and missing bands of a real catalogue.

    Per band, the catalogue's log10 uncertainty (maggies) is described as a
    function of log10 flux (maggies) by its median and its standard deviation
    in flux bins (quantile bins of the observed fluxes), interpolated
    linearly between bin centres and held constant beyond the end bins.
    Fluxes at or below zero are put at the band's lowest positive flux.
    Missing-band patterns (which bands each row has) are kept with their
    counts, so simulations miss bands exactly as often, and together, as the
    catalogue does.

    Build it with :meth:`fit`; it is stored as plain arrays
    (:meth:`to_arrays`, :meth:`from_arrays`).

    Attributes
    ----------
    filter_names : list of str
    bin_centres : ndarray, shape (n_filters, n_bins)
        log10 flux (maggies) of each bin's centre (median flux in the bin).
    log_unc_median, log_unc_scatter : ndarray, shape (n_filters, n_bins)
        Median and standard deviation of log10 uncertainty (maggies) in the bin.
    log_unc_range : ndarray, shape (n_filters, 2)
        The lowest and highest log10 uncertainty seen per band.
    flux_scale : ndarray, shape (n_filters,)
        Median uncertainty per band (maggies): the softening of the scaled
        fluxes given to the flow.
    patterns : ndarray of bool, shape (n_patterns, n_filters)
        Distinct observed-band patterns (True = observed).
    pattern_counts : ndarray of int, shape (n_patterns,)
    """

    #: Smallest scatter (dex) used when judging whether an uncertainty is
    #: inside the model's support (a catalogue with one depth per band has ~0).
    MIN_SCATTER_DEX = 0.05

    def __init__(self, filter_names, bin_centres, log_unc_median, log_unc_scatter,
                 log_unc_range, flux_scale, patterns, pattern_counts):
        self.filter_names = [str(f) for f in filter_names]
        self.bin_centres = np.asarray(bin_centres, dtype=float)
        self.log_unc_median = np.asarray(log_unc_median, dtype=float)
        self.log_unc_scatter = np.asarray(log_unc_scatter, dtype=float)
        self.log_unc_range = np.asarray(log_unc_range, dtype=float)
        self.flux_scale = np.asarray(flux_scale, dtype=float)
        self.patterns = np.asarray(patterns, dtype=bool)
        self.pattern_counts = np.asarray(pattern_counts, dtype=np.int64)
        nb = len(self.filter_names)
        if self.bin_centres.shape[0] != nb or self.patterns.shape[1:] != (nb,):
            raise EmulatorConfigurationError(
                f"noise model arrays do not match its {nb} filters")
        self._pattern_keys = {p.tobytes(): i for i, p in enumerate(self.patterns)}

    @classmethod
    def fit(cls, maggies, maggies_unc, filter_names, n_bins=10):
        """Fit the noise model to a catalogue's photometry.

        Parameters
        ----------
        maggies, maggies_unc : array_like, shape (n_objects, n_filters)
            Fluxes and 1-sigma uncertainties (maggies); NaN flux or an
            uncertainty <= 0 marks a band as missing (:func:`valid_bands`).
        filter_names : sequence of str
        n_bins : int
            Flux bins per band (fewer when a band has under 20 objects per bin).

        Raises
        ------
        EmulatorConfigurationError
            A band observed in fewer than 10 objects (nothing to fit), or
            shapes that do not match.
        """
        maggies = np.asarray(maggies, dtype=float)
        unc = np.asarray(maggies_unc, dtype=float)
        filter_names = [str(f) for f in filter_names]
        if maggies.ndim != 2 or maggies.shape != unc.shape or maggies.shape[1] != len(filter_names):
            raise EmulatorConfigurationError(
                f"the catalogue photometry must be (n_objects, {len(filter_names)}) arrays of "
                f"fluxes and uncertainties; got {maggies.shape} and {unc.shape}")
        good = valid_bands(maggies, unc)
        n_rows = good.any(axis=1)
        if not n_rows.any():
            raise EmulatorConfigurationError("no object in the catalogue has any valid band")
        nb = len(filter_names)
        centres = np.zeros((nb, n_bins))
        med = np.zeros((nb, n_bins))
        scat = np.zeros((nb, n_bins))
        lrange = np.zeros((nb, 2))
        scale = np.zeros(nb)
        for b in range(nb):
            sel = good[:, b]
            if sel.sum() < 10:
                raise EmulatorConfigurationError(
                    f"band {filter_names[b]!r} has a valid flux and uncertainty in only "
                    f"{int(sel.sum())} catalogue rows; at least 10 are needed to model its "
                    "uncertainties (drop the band from the catalogue, or train on more objects)")
            f, lu = maggies[sel, b], np.log10(unc[sel, b])
            scale[b] = float(np.median(unc[sel, b]))
            positive = f[f > 0]
            low = positive.min() if positive.size else scale[b]
            lf = np.log10(np.maximum(f, low))
            k = int(max(1, min(n_bins, sel.sum() // 20)))
            edges = np.quantile(lf, np.linspace(0, 1, k + 1))
            which = np.clip(np.searchsorted(edges, lf, side="right") - 1, 0, k - 1)
            used = [i for i in range(k) if (which == i).sum() >= 2]
            c = np.array([np.median(lf[which == i]) for i in used])
            m = np.array([np.median(lu[which == i]) for i in used])
            order = np.argsort(c)
            c, m = c[order], m[order]
            # scatter about the interpolated median curve (not about each bin's median,
            # which would add the curve's slope across the bin); robust: half the 16-84 range
            resid = lu - np.interp(lf, c, m)
            s = np.array([0.5 * np.subtract(*np.percentile(resid[which == i], [84, 16]))
                          for i in used])[order]
            # pad to n_bins by repeating the last bin (a flat extrapolation)
            pad = n_bins - len(c)
            centres[b] = np.concatenate([c, c[-1] + 1e-6 * np.arange(1, pad + 1)])
            med[b] = np.concatenate([m, np.full(pad, m[-1])])
            scat[b] = np.concatenate([s, np.full(pad, s[-1])])
            lrange[b] = lu.min(), lu.max()
        patterns, counts = np.unique(good[n_rows], axis=0, return_counts=True)
        return cls(filter_names, centres, med, scat, lrange, scale, patterns, counts)

    # ------------------------------------------------------------- sampling
    def _median_and_scatter(self, flux):
        """(median, scatter) of log10 uncertainty at fluxes (n, n_filters), maggies."""
        flux = np.asarray(flux, dtype=float)
        med = np.empty(flux.shape)
        scat = np.empty(flux.shape)
        low = 10.0 ** self.bin_centres[:, 0]
        for b in range(len(self.filter_names)):
            lf = np.log10(np.maximum(np.nan_to_num(flux[:, b], nan=low[b]), low[b] * 1e-3))
            med[:, b] = np.interp(lf, self.bin_centres[b], self.log_unc_median[b])
            scat[:, b] = np.interp(lf, self.bin_centres[b], self.log_unc_scatter[b])
        return med, scat

    def sample_uncertainties(self, flux, rng):
        """1-sigma uncertainties (maggies) for true fluxes ``flux`` (n, n_filters)."""
        med, scat = self._median_and_scatter(flux)
        return 10.0 ** (med + scat * rng.standard_normal(med.shape))

    def sample_patterns(self, n, rng):
        """(n, n_filters) observed-band masks drawn at the catalogue's rates."""
        p = self.pattern_counts / self.pattern_counts.sum()
        return self.patterns[rng.choice(len(p), size=n, p=p)]

    # ------------------------------------------------------------- support
    def is_trained_pattern(self, masks):
        """Whether each row's observed-band pattern occurs in the catalogue."""
        masks = np.atleast_2d(np.asarray(masks, dtype=bool))
        return np.array([m.tobytes() in self._pattern_keys for m in masks])

    #: True fluxes tried per band by :meth:`uncertainty_zscores` (evenly over its range).
    PROFILE_POINTS = 25

    def uncertainty_zscores(self, maggies, maggies_unc, masks, flux_range_sigma=0.0):
        """Per band (NaN for missing bands): how atypical the uncertainty is, z, and
        log10 unc - median (dex).

        The noise model gives uncertainties as a function of the *true* flux.
        With ``flux_range_sigma`` = 0, z = (log10 unc - median) / scatter at the
        observed flux (scatter at least :attr:`MIN_SCATTER_DEX`).  Otherwise z
        is profiled over the unknown true flux f within ``flux_range_sigma``
        uncertainties of the observed flux F:

            |z| = min_f sqrt(((F - f) / unc)^2 + ((log10 unc - median(f)) / scatter(f))^2)

        (the sign and the offset are those at the minimising f).  At low
        signal-to-noise the observed flux can lie far below the true one in the
        log, where the typical uncertainty is orders of magnitude smaller: an
        ordinary faint object would look out of support at its observed flux,
        and a limit calibrated on simulations would then depend on how many
        such objects they hold.  An inflated uncertainty stays atypical: to make
        it typical the true flux would have to lie many of its own sigmas away.
        """
        masks = np.asarray(masks, dtype=bool)
        maggies = np.where(masks, maggies, np.nan)
        unc = np.asarray(maggies_unc, dtype=float)
        steps = (np.linspace(-1.0, 1.0, self.PROFILE_POINTS) * float(flux_range_sigma)
                 if flux_range_sigma else np.zeros(1))
        z = offset = None
        for step in steps:
            med, scat = self._median_and_scatter(maggies + step * unc)
            with np.errstate(invalid="ignore", divide="ignore"):
                off = np.log10(unc) - med
            zz = off / np.maximum(scat, self.MIN_SCATTER_DEX)
            zz = np.where(zz < 0, -1.0, 1.0) * np.sqrt(zz * zz + step * step)
            if z is None:
                z, offset = zz, off
            else:
                closer = np.abs(zz) < np.abs(z)
                z, offset = np.where(closer, zz, z), np.where(closer, off, offset)
        return np.where(masks, z, np.nan), np.where(masks, offset, np.nan)

    # ------------------------------------------------------------- storage
    def to_arrays(self):
        """The model as a dict of NumPy arrays (HDF5 datasets, no pickle)."""
        return {"filter_names": np.array(self.filter_names, dtype="S"),
                "bin_centres": self.bin_centres, "log_unc_median": self.log_unc_median,
                "log_unc_scatter": self.log_unc_scatter, "log_unc_range": self.log_unc_range,
                "flux_scale": self.flux_scale, "patterns": self.patterns,
                "pattern_counts": self.pattern_counts}

    @classmethod
    def from_arrays(cls, arrays):
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in arrays["filter_names"]]
        return cls(names, arrays["bin_centres"], arrays["log_unc_median"],
                   arrays["log_unc_scatter"], arrays["log_unc_range"], arrays["flux_scale"],
                   np.asarray(arrays["patterns"], dtype=bool), arrays["pattern_counts"])

    def __repr__(self):
        return (f"ObservationalNoiseModel({len(self.filter_names)} filters, "
                f"{len(self.patterns)} missing-band patterns from "
                f"{int(self.pattern_counts.sum())} objects)")


# ------------------------------------------------------------------ parameters
#: The flow's coordinates for the inferred parameters (:class:`ParameterSpace`).
COORDINATES = ("prior-normal", "logit")


class ParameterSpace:
    """The free parameters a flow infers, and their unbounded coordinates.

    The redshift (``zred``) is known for every object (it conditions the
    flow), so the inferred parameters are the model's free parameters except
    ``zred``.  Each is mapped to an unbounded coordinate, so that every
    posterior draw lies inside the prior's support:

    * ``"prior-normal"`` (the default): ``y = Phi^-1(F(theta))`` with ``F`` the
      parameter's prior CDF (:func:`prospect_emulator.priors.prior_cdf`) and
      ``Phi`` the standard-normal CDF, the whitened coordinates the nested
      sampler also uses.  The prior is exactly a standard normal there, so a
      parameter the data hardly constrain has a near-normal posterior, which a
      flow represents easily; in ``"logit"`` coordinates the Student-t priors
      of the SFR ratios are a sharp core with long tails, and flows trained
      there gave posteriors wider than the prior itself.
    * ``"logit"`` (posterior files written before ``parameter_coordinates``
      was recorded): log10 for a log-uniform or log-normal prior, then a logit
      of the position between the prior's bounds (where both are finite).

    Parameters
    ----------
    model : EmulatedSpecModel
    coordinates : {"prior-normal", "logit"}

    Attributes
    ----------
    theta_names : list of str
        Labels of all free parameters (``model.theta_labels()``).
    inferred : ndarray of int
        Positions in theta of the inferred parameters.
    inferred_names : list of str
    zred_index : int or None
        Position of ``zred`` in theta, None when the model fixes it.
    lower, upper : ndarray
        Prior bounds of the inferred parameters, in their (log) coordinate.
    log10 : ndarray of bool
    """

    #: |y| limit of prior-normal coordinates (Phi(8.3) rounds to 1 in float64; the
    #: largest finite Phi^-1 of a float64 is 8.21)
    MAX_NORMAL = 8.0

    def __init__(self, model, coordinates="prior-normal"):
        if coordinates not in COORDINATES:
            raise EmulatorConfigurationError(
                f"unknown parameter coordinates {coordinates!r}; allowed: {', '.join(COORDINATES)}")
        self.coordinates = coordinates
        self._model = model
        self.theta_names = list(model.theta_labels())
        self.zred_index = model.theta_index["zred"].start if "zred" in model.free_params else None
        self.inferred = np.array([j for j in range(model.ndim) if j != self.zred_index], dtype=int)
        self.inferred_names = [self.theta_names[j] for j in self.inferred]
        self._inferred_params = [n for n in model.free_params if n != "zred"]
        log10 = np.zeros(model.ndim, dtype=bool)
        for name in model.free_params:
            kind = type(model.config_dict[name]["prior"]).__name__
            if kind in ("LogUniform", "LogNormal"):
                log10[model.theta_index[name]] = True
        eps = 1e-12
        lo = np.asarray(model.prior_transform(np.full(model.ndim, eps)), dtype=float)
        hi = np.asarray(model.prior_transform(np.full(model.ndim, 1 - eps)), dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            lo = np.where(log10, np.log10(lo), lo)
            hi = np.where(log10, np.log10(hi), hi)
        self.log10 = log10[self.inferred]
        self.lower, self.upper = lo[self.inferred], hi[self.inferred]
        self.bounded = np.isfinite(self.lower) & np.isfinite(self.upper)

    def to_unbounded(self, theta):
        """Unbounded coordinates (n, n_inferred) of full theta rows (n, ndim)."""
        if self.coordinates == "prior-normal":
            u = prior_cdf(self._model, theta, self._inferred_params)[..., self.inferred]
            return np.clip(ndtri(u), -self.MAX_NORMAL, self.MAX_NORMAL)
        v = np.asarray(theta, dtype=float)[..., self.inferred]
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(self.log10, np.log10(v), v)
            u = np.clip((v - self.lower) / (self.upper - self.lower), 1e-9, 1 - 1e-9)
            return np.where(self.bounded, np.log(u) - np.log1p(-u), v)

    def from_unbounded(self, y):
        """Inferred parameters in their own units from unbounded coordinates."""
        if self.coordinates == "prior-normal":
            y = np.asarray(y, dtype=float)
            u = np.full(y.shape[:-1] + (len(self.theta_names),), 0.5)
            u[..., self.inferred] = ndtr(np.clip(y, -self.MAX_NORMAL, self.MAX_NORMAL))
            return self._model.prior_transform(u)[..., self.inferred]
        v = np.array(y, dtype=float)
        bounded = np.flatnonzero(self.bounded)
        if bounded.size:  # lower + (upper - lower) * logistic(y), without overflow
            u = np.tanh(0.5 * v[..., bounded])
            u += 1.0
            u *= 0.5 * (self.upper - self.lower)[bounded]
            u += self.lower[bounded]
            v[..., bounded] = u
        logs = np.flatnonzero(self.log10)
        if logs.size:
            v[..., logs] = 10.0 ** v[..., logs]
        return v

    def full_theta(self, inferred_values, zred):
        """Full theta (..., ndim) from inferred values (..., n_inferred) and redshifts."""
        inferred_values = np.asarray(inferred_values, dtype=float)
        out = np.empty(inferred_values.shape[:-1] + (len(self.theta_names),))
        out[..., self.inferred] = inferred_values
        if self.zred_index is not None:
            out[..., self.zred_index] = zred
        return out


def redshift_range_of(model):
    """(low, high) of the model's redshift: its prior's bounds when free, else its value."""
    if "zred" in model.free_params:
        i = model.theta_index["zred"].start
        eps = 1e-12
        lo = model.prior_transform(np.full(model.ndim, eps))[i]
        hi = model.prior_transform(np.full(model.ndim, 1 - eps))[i]
        return float(lo), float(hi)
    z = float(np.ravel(model.params["zred"])[0])
    return z, z


# ------------------------------------------------------------------ simulation
def emulator_inputs(model, theta):
    """Emulator input rows (n, n_inputs) of parameter rows theta (n, ndim).

    The ``depends_on`` transforms (continuity SFH, log inputs) are the
    model's own, run once for all rows
    (:class:`~prospect_emulator.prospector.batched_parameters.BatchedParameters`).
    """
    from ..prospector.batched_parameters import BatchedParameters
    return BatchedParameters(model).inputs(np.atleast_2d(np.asarray(theta, dtype=float)))[0]


def _inside_training_range(emulator, x):
    lo, hi = emulator.param_ranges[:, 0], emulator.param_ranges[:, 1]
    return np.all(np.isfinite(x) & (x >= lo) & (x <= hi), axis=1)


class Simulations:
    """A simulated catalogue.

    Attributes
    ----------
    theta : ndarray, shape (n, ndim)
        Free parameters drawn from the prior (``model.theta_labels()`` order).
    zred : ndarray, shape (n,)
    maggies_true : ndarray, shape (n, n_filters)
        Noiseless emulator fluxes (maggies).
    maggies, maggies_unc : ndarray, shape (n, n_filters)
        Observed fluxes and their catalogue-like 1-sigma uncertainties
        (maggies); NaN where the band is missing.
    mask : ndarray of bool, shape (n, n_filters)
        True where the band is observed.
    mfrac : ndarray, shape (n,)
        Surviving stellar mass fraction (NaN if the emulator has none).
    """

    def __init__(self, theta, zred, maggies_true, maggies, maggies_unc, mask, mfrac):
        self.theta, self.zred = theta, zred
        self.maggies_true, self.maggies, self.maggies_unc = maggies_true, maggies, maggies_unc
        self.mask, self.mfrac = mask, mfrac

    def __len__(self):
        return len(self.theta)

    def subset(self, index):
        return Simulations(*(a[index] for a in (self.theta, self.zred, self.maggies_true,
                                                 self.maggies, self.maggies_unc, self.mask,
                                                 self.mfrac)))


def _redshift_sampler(model, catalog_redshifts):
    """A function (n, rng) -> n redshifts inside the prior: a Gaussian KDE of the
    catalogue's redshifts (Scott's bandwidth), reflected at the prior's bounds."""
    lo, hi = redshift_range_of(model)
    z = np.asarray(catalog_redshifts, dtype=float)
    z = z[np.isfinite(z) & (z >= lo) & (z <= hi)]
    if z.size < 2:
        raise EmulatorConfigurationError(
            f"need at least 2 catalogue redshifts inside the prior [{lo:g}, {hi:g}] to draw "
            f"simulated redshifts from; got {z.size}")
    width = 1.06 * z.std() * z.size ** -0.2 + 1e-6 * (hi - lo)

    def draw(n, rng):
        out = rng.choice(z, size=n) + width * rng.standard_normal(n)
        for _ in range(3):  # reflect at the bounds
            out = np.where(out < lo, 2 * lo - out, out)
            out = np.where(out > hi, 2 * hi - out, out)
        return np.clip(out, lo, hi)
    return draw


def simulate(model, noise_model, n, seed=0, catalog_redshifts=None, floor=0.05,
             batch_size=20000, progress=None):
    """Simulate ``n`` observed galaxies from the model's prior.

    Parameters
    ----------
    model : EmulatedSpecModel
        The Prospector model: its priors (``prior_transform``), its parameter
        transforms and its emulator.  The redshift must be free (its prior sets
        the simulated redshifts unless ``catalog_redshifts`` is given).
    noise_model : ObservationalNoiseModel
        Filters, uncertainties and missing-band patterns to observe with.
    n : int
        Number of simulations.
    seed : int
        Seed of everything random here (same seed, same simulations).
    catalog_redshifts : array_like, optional
        Draw redshifts from a KDE of these instead of the prior.
    floor : float
        Fractional SPS floor of eq. 9 (0.05 = 5% of the flux), as in the
        exact fits' likelihood.
    batch_size : int
        Emulator rows per call.
    progress : callable, optional
        Called as ``progress(n_done)`` after each batch.

    Returns
    -------
    Simulations
    """
    if "zred" not in model.free_params:
        raise EmulatorConfigurationError(
            "amortized posteriors are conditioned on each object's redshift: build the model "
            "with a free redshift (EmulatedSpecModel.from_emulator(emulator, zred=None))")
    n = int(n)
    rng = np.random.default_rng(seed)
    emulator = model.emulator.select(noise_model.filter_names)
    mfrac_index = emulator.extra_names.index("mfrac") if "mfrac" in emulator.extra_names else None
    z_index = model.theta_index["zred"].start
    draw_z = _redshift_sampler(model, catalog_redshifts) if catalog_redshifts is not None else None
    parts = []
    done = 0
    while done < n:
        m = min(batch_size, n - done)
        theta = np.asarray(model.prior_transform(rng.random((m, model.ndim))), dtype=float)
        if draw_z is not None:
            theta[:, z_index] = draw_z(m, rng)
        x = emulator_inputs(model, theta)
        keep = _inside_training_range(emulator, x)
        if not keep.any():
            raise OutOfTrainingRangeError(
                "no prior draw lies inside the emulator's training range: the model's priors "
                "do not match the emulator")
        theta, x = theta[keep], x[keep]
        true, extras = emulator.predict_maggies_and_extras(x, check=False)
        sigma_obs = noise_model.sample_uncertainties(true, rng)
        total = total_sigma(sigma_obs, emulator.flux_error(x, true), true, floor)
        observed = true + total * rng.standard_normal(true.shape)
        mask = noise_model.sample_patterns(len(theta), rng)
        parts.append((theta, theta[:, z_index], true, np.where(mask, observed, np.nan),
                      np.where(mask, sigma_obs, np.nan), mask,
                      extras[:, mfrac_index] if mfrac_index is not None
                      else np.full(len(theta), np.nan)))
        done += len(theta)
        if progress is not None:
            progress(min(done, n))
    arrays = [np.concatenate(a)[:n] for a in zip(*parts)]
    return Simulations(*arrays)


def flow_conditions(maggies, maggies_unc, mask, zred, flux_scale):
    """The flow's conditioning vector per object (unstandardised).

    Per band: ``arsinh(f / (2 c))`` (a magnitude-like scaled flux that stays
    finite for faint and negative fluxes; c = the band's median catalogue
    uncertainty), ``log10(sigma / c)``, and the observed flag (1/0); missing
    bands carry 0 in the first two.  Then the redshift.

    Returns
    -------
    ndarray, shape (n, 3 n_filters + 1)
    """
    mask = np.asarray(mask, dtype=bool)
    c = np.asarray(flux_scale, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(mask, np.arcsinh(np.asarray(maggies, dtype=float) / (2 * c)), 0.0)
        log_unc = np.where(mask, np.log10(np.asarray(maggies_unc, dtype=float) / c), 0.0)
    return np.concatenate([scaled, log_unc, mask.astype(float),
                           np.asarray(zred, dtype=float)[:, None]], axis=1)
