"""Photometry of spectra through sedpy filters: sedpy's projection, done once.

:class:`FilterProjection` holds a list of ``sedpy.observate.Filter`` objects
and computes what ``Filter.obj_counts`` (``obj_counts_hires``),
``Filter.ab_mag`` and ``sedpy.observate.getSED`` compute, with the work that
does not depend on the spectrum done once per wavelength grid:

* :meth:`FilterProjection.counts`, :meth:`~FilterProjection.maggies`,
  :meth:`~FilterProjection.ab_mags`: one wavelength grid, one spectrum or
  ``(n, nwave)`` spectra; the same numbers as sedpy to the last bit;
* :meth:`FilterProjection.get_sed_maggies`: the hook ``getSED`` (and so
  Prospector's ``SpecModel.predict_phot``) calls for an object that has it;
* :meth:`FilterProjection.maggies_redshifted`: ``n`` spectra on ``n``
  different grids ``rest_wave * (1 + zred[i])`` (a batch of models at
  different redshifts), as array operations over the batch; equal to sedpy
  row by row within 1e-12 relative (same terms, summed in another order).

Units: wavelengths in AA, ``f_lambda`` in erg/s/cm^2/AA, photometry in
maggies (``counts / ab_zero_counts``: flux density relative to 3631 Jy) or
AB magnitudes.  As in sedpy, a filter whose transmission is zero at every
wavelength of the grid gives NaN.

How sedpy projects (``Filter.obj_counts_hires``): the transmission ``T`` is
interpolated linearly onto the spectrum's wavelengths ``x`` (zero outside
the curve), and ``lambda T f_lambda`` is integrated with
``numpy.trapezoid`` from the pixel before the first to the pixel after the
last with ``T > 0``.  Here each filter's window is found by a binary search
and ``T`` is interpolated on the window only (the same values: linear
interpolation is pointwise); the trapezoid terms are computed in numpy's
order of operations and each window's terms summed as numpy sums them.
"""
import operator

import numpy as np

from ..errors import EmulatorConfigurationError

__all__ = ["FilterProjection"]

_WAVELENGTH = operator.attrgetter("wavelength")
_TRANSMISSION = operator.attrgetter("transmission")
_add_reduce = np.add.reduce


def _filter_list(filters):
    """A list of filter objects from a list, a sedpy ``FilterSet`` or a FilterProjection."""
    inner = getattr(filters, "filters", None)   # FilterSet, FilterProjection
    return list(inner if inner is not None else filters)


class _GridWindows:
    """The filters' windows on one wavelength grid, and ``lambda * T`` on them.

    The windows and ``x * T`` of all filters are concatenated; per spectrum the
    trapezoid terms of all filters are one set of array operations, and each
    window's terms are summed as ``numpy.trapezoid`` sums them (a contiguous
    ``add.reduce``), which makes the result sedpy's to the last bit.
    """

    def __init__(self, wave, curves):
        self.wave = np.array(wave, dtype=float)      # a private copy: the cache key
        self.wave.setflags(write=False)
        n = self.wave.size
        firsts = np.array([lam[0] for lam, _ in curves])
        lasts = np.array([lam[-1] for lam, _ in curves])
        # T can be > 0 only at lo <= index < hi
        lows = self.wave.searchsorted(firsts, side="left").tolist()
        highs = self.wave.searchsorted(lasts, side="right").tolist()
        pixels, wave_trans, dx = [], [], []
        self.sums = []    # (filter, start, stop) of its trapezoid terms
        offset = 0
        for k, ((lam, trans), lo, hi) in enumerate(zip(curves, lows, highs)):
            a, b = max(lo - 1, 0), min(hi + 1, n)
            newtrans = np.interp(self.wave[a:b], lam, trans, left=0.0, right=0.0)
            positive = np.flatnonzero(newtrans > 0.0)
            if positive.size == 0:
                continue                              # sedpy: NaN
            # sedpy's range: first to last positive pixel, one pixel either side
            start, stop = max(a + positive[0] - 1, 0), min(a + positive[-1] + 2, n)
            x = self.wave[start:stop]
            pixels.append(np.arange(start, stop))
            wave_trans.append(x * newtrans[start - a:stop - a])   # sedpy's (x * T) * f
            # numpy.trapezoid's diff(x); the term joining two windows is never summed
            dx.append(np.append(x[1:] - x[:-1], 0.0))
            self.sums.append((k, offset, offset + x.size - 1))
            offset += x.size
        self.n_filters = len(curves)
        self.pixels = np.concatenate(pixels) if pixels else np.zeros(0, int)
        self.wave_trans = np.concatenate(wave_trans) if pixels else np.zeros(0)
        self.dx = np.concatenate(dx)[:-1] if pixels else np.zeros(0)

    def counts(self, flambda):
        """Detector signal, shape ``flambda.shape[:-1] + (n_filters,)``."""
        y = self.wave_trans * flambda[..., self.pixels]
        # numpy.trapezoid's terms, in its order of operations, then each window's sum
        terms = self.dx * (y[..., 1:] + y[..., :-1]) / 2.0
        counts = np.full(flambda.shape[:-1] + (self.n_filters,), np.nan)
        if terms.ndim == 1:
            for k, start, stop in self.sums:
                counts[k] = _add_reduce(terms[start:stop])
        else:
            # rows of a contiguous copy: numpy reduces them as it reduces sedpy's array
            for k, start, stop in self.sums:
                counts[:, k] = _add_reduce(np.ascontiguousarray(terms[:, start:stop]), axis=-1)
        return counts


class _RestGrid:
    """What :meth:`FilterProjection.maggies_redshifted` needs of a rest-frame grid."""

    def __init__(self, rest_wave):
        self.wave = np.array(rest_wave, dtype=float)
        self.wave.setflags(write=False)
        dw = np.diff(self.wave)
        # trapezoid weight of each pixel on the full grid (half a step at the ends)
        weight = np.empty(self.wave.size)
        weight[0], weight[-1] = dw[0] / 2.0, dw[-1] / 2.0
        weight[1:-1] = (dw[:-1] + dw[1:]) / 2.0
        self.wave_weight = self.wave * weight


class FilterProjection:
    """sedpy's filter projection for a fixed list of filters.

    Parameters
    ----------
    filters : sequence of sedpy.observate.Filter, or a sedpy FilterSet
        The filters, in the order of the output columns.  Their curves
        (``wavelength`` in AA, increasing; ``transmission`` >= 0, as sedpy
        stores them) and ``ab_zero_counts`` are read once, here.

    Notes
    -----
    Iterating, ``len`` and indexing give the sedpy ``Filter`` objects (as for
    a list), so the object can stand wherever Prospector takes
    ``obs["filters"]``; Prospector's ``SpecModel.predict_phot`` then calls
    :meth:`get_sed_maggies`.  The windows of the last wavelength grid are
    kept: repeated calls on the same grid (a fit at fixed redshift) skip the
    binary searches and interpolations.

    Examples
    --------
    >>> from sedpy.observate import load_filters
    >>> proj = FilterProjection(load_filters(["sdss_g0", "sdss_r0"]))
    >>> wave = np.geomspace(3000.0, 11000.0, 2000)            # AA
    >>> flambda = 1e-17 * (wave / 5000.0) ** -2               # erg/s/cm^2/AA
    >>> proj.maggies(wave, flambda).shape
    (2,)
    """

    def __init__(self, filters):
        self.filters = _filter_list(filters)
        if not self.filters:
            raise EmulatorConfigurationError("FilterProjection needs at least one filter")
        curves, zero = [], []
        for f in self.filters:
            name = getattr(f, "name", repr(f))
            try:
                lam = np.asarray(f.wavelength, dtype=float)
                trans = np.asarray(f.transmission, dtype=float)
                zero.append(float(f.ab_zero_counts))
            except (AttributeError, TypeError, ValueError):
                raise EmulatorConfigurationError(
                    f"filter {name!r} is not a sedpy Filter (it needs wavelength, transmission "
                    "and ab_zero_counts)") from None
            if lam.ndim != 1 or lam.shape != trans.shape or lam.size < 2:
                raise EmulatorConfigurationError(
                    f"filter {name!r}: wavelength and transmission must be 1-d arrays of the "
                    "same length (at least 2)")
            if np.any(np.diff(lam) < 0) or not np.all(np.isfinite(lam)):
                raise EmulatorConfigurationError(
                    f"filter {name!r}: wavelengths must be finite and increasing (AA)")
            if not np.all(np.isfinite(trans)) or np.any(trans < 0):
                raise EmulatorConfigurationError(
                    f"filter {name!r}: transmission must be finite and >= 0 (sedpy cleans "
                    "curves it reads this way)")
            curves.append((lam, trans))
        self._curves = curves
        self._firsts = np.array([lam[0] for lam, _ in curves])
        self._lasts = np.array([lam[-1] for lam, _ in curves])
        self.ab_zero_counts = np.array(zero)
        self.ab_zero_counts.setflags(write=False)
        # the arrays the curves were read from (to notice a filter changed in place)
        self._wavelength_objects = [f.wavelength for f in self.filters]
        self._transmission_objects = [f.transmission for f in self.filters]
        self._windows = None     # _GridWindows of the last grid
        self._rest = None        # _RestGrid of the last rest-frame grid

    # --- a list of filters ----------------------------------------------------
    def __len__(self):
        return len(self.filters)

    def __iter__(self):
        return iter(self.filters)

    def __getitem__(self, i):
        return self.filters[i]

    @property
    def names(self):
        """The filters' names (sedpy ``Filter.name``)."""
        return [getattr(f, "name", str(k)) for k, f in enumerate(self.filters)]

    def matches(self, filters):
        """True when ``filters`` are these very filter objects, in this order, with
        the same curve arrays (a filter replaced in a list is noticed)."""
        try:
            return (len(filters) == len(self.filters)
                    and all(map(operator.is_, filters, self.filters))
                    and all(map(operator.is_, map(_WAVELENGTH, filters), self._wavelength_objects))
                    and all(map(operator.is_, map(_TRANSMISSION, filters),
                                self._transmission_objects)))
        except (TypeError, AttributeError):
            return False

    # --- one wavelength grid -----------------------------------------------------
    def _windows_for(self, wave):
        windows = self._windows
        if windows is None or not np.array_equal(wave, windows.wave):
            wave = np.asarray(wave, dtype=float)
            if wave.ndim != 1 or wave.size < 2:
                raise EmulatorConfigurationError(
                    f"wavelengths must be a 1-d array of at least 2 values (AA); got shape "
                    f"{wave.shape}")
            # sedpy's own check
            if not wave[1] > wave[0]:
                raise EmulatorConfigurationError("wavelengths must be increasing (AA)")
            windows = self._windows = _GridWindows(wave, self._curves)
        return windows

    def counts(self, wave, flambda):
        """Detector signal of spectra in every filter: sedpy's ``Filter.obj_counts``.

        Parameters
        ----------
        wave : ndarray of shape (nwave,)
            Increasing wavelengths, AA (observed frame).
        flambda : ndarray of shape (nwave,) or (n, nwave)
            Flux density, erg/s/cm^2/AA.

        Returns
        -------
        ndarray of shape (n_filters,) or (n, n_filters)
            ``integral lambda T(lambda) f_lambda dlambda`` (erg/s/cm^2); NaN for
            a filter whose transmission is zero on the whole grid.
        """
        flambda = np.asarray(flambda, dtype=float)
        if flambda.shape[-1:] != np.shape(wave)[-1:] or flambda.ndim > 2:
            raise EmulatorConfigurationError(
                f"flambda must have shape (nwave,) or (n, nwave) with nwave = "
                f"{np.size(wave)} wavelengths; got {flambda.shape}")
        return self._windows_for(wave).counts(flambda)

    def maggies(self, wave, flambda):
        """Photometry in maggies (``counts / ab_zero_counts``); see :meth:`counts`."""
        return self.counts(wave, flambda) / self.ab_zero_counts

    def ab_mags(self, wave, flambda):
        """AB magnitudes, sedpy's ``Filter.ab_mag`` (``-2.5 log10(maggies)``);
        +inf for zero flux, NaN where :meth:`counts` is NaN."""
        with np.errstate(divide="ignore"):
            return -2.5 * np.log10(self.counts(wave, flambda) / self.ab_zero_counts)

    def get_sed_maggies(self, sourceflux, sourcewave=None):
        """Maggies of a spectrum in every filter: the hook ``sedpy.observate.getSED``
        calls on an object that has it (Prospector's ``predict_phot`` goes through it).

        Parameters
        ----------
        sourceflux : ndarray of shape (nwave,) or (n, nwave)
            f_lambda, erg/s/cm^2/AA.
        sourcewave : ndarray of shape (nwave,)
            Increasing wavelengths, AA.

        Returns
        -------
        ndarray of shape (n_filters,) or (n, n_filters)
            Maggies (NaN for a filter the grid does not reach, as sedpy).
        """
        if sourcewave is None:
            raise EmulatorConfigurationError("get_sed_maggies needs sourcewave (AA)")
        return self.maggies(sourcewave, sourceflux)

    # --- many grids: a batch of redshifts -----------------------------------------
    def maggies_redshifted(self, rest_wave, zred, flambda):
        """Photometry of ``n`` spectra, row ``i`` on the grid ``rest_wave * (1 + zred[i])``.

        Row by row this is ``self.maggies(rest_wave * (1 + zred[i]), flambda[i])``
        (sedpy's photometry) within 1e-12 relative: the same interpolated
        transmissions and trapezoid terms, summed in another order, and
        computed for the whole batch with array operations (a loop over the
        filters only).

        Parameters
        ----------
        rest_wave : ndarray of shape (nwave,)
            Increasing rest-frame wavelengths, AA.
        zred : ndarray of shape (n,)
            Redshifts (> -1).
        flambda : ndarray of shape (n, nwave)
            Observed-frame flux density on each row's grid, erg/s/cm^2/AA.

        Returns
        -------
        ndarray of shape (n, n_filters)
            Maggies; NaN where a filter's transmission is zero on that row's grid.
        """
        rest = self._rest
        if rest is None or not np.array_equal(rest_wave, rest.wave):
            rest_wave = np.asarray(rest_wave, dtype=float)
            if rest_wave.ndim != 1 or rest_wave.size < 2 or np.any(np.diff(rest_wave) <= 0) \
                    or not np.all(np.isfinite(rest_wave)):
                raise EmulatorConfigurationError(
                    "rest_wave must be a finite, strictly increasing 1-d array (AA)")
            rest = self._rest = _RestGrid(rest_wave)
        wave = rest.wave
        nwave = wave.size
        zred = np.asarray(zred, dtype=float).reshape(-1)
        flambda = np.asarray(flambda, dtype=float)
        n = zred.size
        if flambda.shape != (n, nwave):
            raise EmulatorConfigurationError(
                f"flambda must have shape (n, nwave) = ({n}, {nwave}) for {n} redshifts; got "
                f"{flambda.shape}")
        if not np.all(np.isfinite(zred)) or np.any(zred <= -1.0):
            raise EmulatorConfigurationError("zred must be finite and > -1")
        out = np.full((n, len(self._curves)), np.nan)
        if n == 0:
            return out
        opz = 1.0 + zred
        # sedpy's trapezoid sum_p d_p (y_p + y_p+1) / 2 with y = x T f, x = w (1 + z):
        # = (1 + z)^2 sum_p T(x_p) f_p w_p weight_p, weight_p the rest-frame trapezoid
        # weight of pixel p.  Pixels with T = 0 add exact zeros, so each row may be
        # given a window wider than sedpy's (all rows the same length).
        weighted = (flambda * rest.wave_weight).ravel()
        # every row's observed wavelengths, SpecModel's wave * (1 + z), flattened as
        # weighted is: one flat index then picks both
        observed = (wave * opz[:, None]).ravel()
        row_offsets = np.arange(n) * nwave
        offsets = np.arange(nwave)[:, None]
        lows = np.searchsorted(wave, self._firsts[:, None] / opz, side="left") - 2
        highs = np.searchsorted(wave, self._lasts[:, None] / opz, side="right") + 2
        np.clip(lows, 0, nwave, out=lows)
        np.clip(highs, 0, nwave, out=highs)
        for k, (lam, trans) in enumerate(self._curves):
            lo, hi = lows[k], highs[k]
            length = int((hi - lo).max())
            if length <= 0:
                continue                  # no row reaches this filter: NaN
            start = np.minimum(lo, nwave - length)
            # one column per row, the rows in the order of their first observed
            # wavelength: along a column of the (length, n) array the wavelengths then
            # increase in small steps, and np.interp finds each one's interval of
            # the curve next to the previous one's (its fast path)
            order = np.argsort(wave[start] * opz, kind="stable")
            pixels = (start + row_offsets)[order] + offsets[:length]
            x = np.take(observed, pixels)
            t = np.interp(x, lam, trans, left=0.0, right=0.0)
            counts = np.einsum("ij,ij->j", t, np.take(weighted, pixels))
            # sedpy: NaN where the transmission is zero on the whole grid
            zero = np.flatnonzero(counts == 0.0)
            if zero.size:
                counts[zero[~(t[:, zero] > 0.0).any(axis=0)]] = np.nan
            out[order, k] = counts
        return out * (opz * opz)[:, None] / self.ab_zero_counts
