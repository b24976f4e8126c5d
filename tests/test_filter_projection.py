"""FilterProjection: the package's one filter projection, on sedpy's filter objects.

* On one wavelength grid it gives sedpy's numbers to the last bit:
  ``Filter.obj_counts`` (one spectrum or a stack of them), ``Filter.ab_mag``
  and ``getSED`` (through the ``get_sed_maggies`` hook), NaN for filters the
  grid does not reach, also when the grid changes between calls.
* For a batch of spectra at different redshifts (:meth:`maggies_redshifted`)
  every row equals sedpy's photometry on that row's observed grid within
  1e-12 relative.
* Bad input is refused with a clear error.
"""
import numpy as np
import pytest
from sedpy.observate import getSED, list_available_filters, load_filters

from prospect_emulator.data import default_filter_names
from prospect_emulator.errors import EmulatorConfigurationError
from prospect_emulator.sources.bagpipes_basis import _default_wavelengths
from prospect_emulator.sources.filter_projection import FilterProjection


@pytest.fixture(scope="module")
def filters():
    """The 81 default filters and every 5th sedpy filter: UV to far-IR, narrow to broad."""
    names = default_filter_names()
    names += [n for n in list_available_filters()[::5] if n not in names]
    return load_filters(names)


@pytest.fixture(scope="module")
def rest_wave():
    """BagpipesBasis' rest-frame grid (AA), R = 300."""
    return _default_wavelengths(300.0)


def spectra(wave, n, seed=0):
    """Rough galaxy-like f_lambda (erg/s/cm^2/AA): a power law with pixel noise,
    and zero flux blue-ward of 1216 AA * 1.5 in the last row (as behind the IGM)."""
    rng = np.random.default_rng(seed)
    flux = 1e-18 * (wave / 5000.0) ** -2 * np.exp(0.3 * rng.normal(size=(n, wave.size)))
    flux[-1, wave < 1824.0] = 0.0
    return flux


def sedpy_counts(filters, wave, flambda):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.array([f.obj_counts(wave, flambda) for f in filters]).T


class TestOneGridIsSedpyToTheLastBit:

    def test_counts_maggies_and_ab_mags_of_one_spectrum(self, filters, rest_wave):
        projection = FilterProjection(filters)
        flux = spectra(rest_wave, 3)
        for zred, row in ((0.0, 0), (1.3, 1), (2.7, 2), (1.3, 0)):
            wave = rest_wave * (1 + zred)
            expected = sedpy_counts(filters, wave, flux[row])
            np.testing.assert_array_equal(projection.counts(wave, flux[row]), expected)
            np.testing.assert_array_equal(projection.maggies(wave, flux[row]),
                                          expected / np.array([f.ab_zero_counts for f in filters]))
            with np.errstate(divide="ignore", invalid="ignore"):
                mags = np.array([f.ab_mag(wave, flux[row]) for f in filters])
            np.testing.assert_array_equal(projection.ab_mags(wave, flux[row]), mags)

    def test_a_stack_of_spectra_gives_sedpys_stacked_counts(self, filters, rest_wave):
        wave = rest_wave * 1.8
        flux = spectra(rest_wave, 5, seed=1)
        np.testing.assert_array_equal(FilterProjection(filters).counts(wave, flux),
                                      sedpy_counts(filters, wave, flux))

    def test_getsed_with_the_projection_equals_getsed_with_the_list(self, filters, rest_wave):
        projection = FilterProjection(filters)
        wave = rest_wave * 2.2
        flux = spectra(rest_wave, 1, seed=2)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            np.testing.assert_array_equal(getSED(wave, flux, projection),
                                          getSED(wave, flux, filters))
        assert list(projection) == list(filters) and projection[3] is filters[3]
        assert len(projection) == len(filters)

    def test_filters_the_grid_does_not_reach_are_nan_as_in_sedpy(self, filters, rest_wave):
        projection = FilterProjection(filters)
        wave = rest_wave[1500:2600] * 1.5          # ~1000 AA to 1 um observed
        flux = spectra(rest_wave, 1)[0][1500:2600]
        got = projection.maggies(wave, flux)
        expected = sedpy_counts(filters, wave, flux) / projection.ab_zero_counts
        np.testing.assert_array_equal(got, expected)
        assert np.isnan(got).any() and np.isfinite(got).any()

    def test_the_cached_windows_follow_the_grid(self, filters, rest_wave):
        """Calls alternating between grids (a fit whose redshift changes) give each
        grid's own photometry."""
        projection = FilterProjection(filters)
        flux = spectra(rest_wave, 1)[0]
        for zred in (0.5, 0.5, 2.0, 0.5):
            wave = rest_wave * (1 + zred)
            np.testing.assert_array_equal(projection.counts(wave, flux),
                                          sedpy_counts(filters, wave, flux))

    def test_matches_notices_a_filter_replaced_in_a_list(self, filters):
        subset = list(filters[:6])
        projection = FilterProjection(subset)
        assert projection.matches(subset)
        subset[2] = load_filters(["wise_w3"])[0]
        assert not projection.matches(subset)
        assert not projection.matches(subset[:5])


class TestRedshiftedBatch:

    def test_each_row_is_sedpys_photometry_on_its_own_grid(self, filters, rest_wave):
        rng = np.random.default_rng(4)
        zred = np.concatenate([[0.0, 3e-3], rng.uniform(0.0, 3.0, 20), [5.0, 12.0]])
        flux = spectra(rest_wave, zred.size, seed=3)
        projection = FilterProjection(filters)
        got = projection.maggies_redshifted(rest_wave, zred, flux)
        expected = np.array([sedpy_counts(filters, rest_wave * (1 + z), f)
                             for z, f in zip(zred, flux)]) / projection.ab_zero_counts
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        both = np.isfinite(expected)
        assert (expected[both] == 0).any()            # the last row's blue filters
        np.testing.assert_allclose(got[both], expected[both], rtol=1e-12, atol=0)

    def test_a_filter_beyond_the_grid_is_nan(self, rest_wave):
        """Rows whose redshifted grid misses a filter: NaN there, as sedpy."""
        filters = load_filters(["galex_FUV", "sdss_r0"])
        wave = rest_wave[rest_wave > 2000.0]
        flux = spectra(wave, 2)
        got = FilterProjection(filters).maggies_redshifted(wave, np.array([0.0, 1.0]), flux)
        assert np.isnan(got[:, 0]).all() and np.isfinite(got[:, 1]).all()


class TestBadInput:

    def test_objects_that_are_not_sedpy_filters(self):
        with pytest.raises(EmulatorConfigurationError, match="not a sedpy Filter"):
            FilterProjection(["sdss_r0"])
        with pytest.raises(EmulatorConfigurationError, match="at least one filter"):
            FilterProjection([])

    def test_negative_transmission(self):
        f = load_filters(["sdss_r0"])[0]
        f._transmission = f.transmission.copy()
        f._transmission[3] = -0.1
        with pytest.raises(EmulatorConfigurationError, match="sdss_r0.*>= 0"):
            FilterProjection([f])

    def test_spectra_of_the_wrong_shape(self, rest_wave):
        projection = FilterProjection(load_filters(["sdss_r0"]))
        with pytest.raises(EmulatorConfigurationError, match="flambda must have shape"):
            projection.counts(rest_wave, np.ones(rest_wave.size - 1))
        with pytest.raises(EmulatorConfigurationError, match=r"\(n, nwave\) = \(2, "):
            projection.maggies_redshifted(rest_wave, np.array([0.1, 0.2]),
                                          np.ones((3, rest_wave.size)))
        with pytest.raises(EmulatorConfigurationError, match="increasing"):
            projection.counts(rest_wave[::-1], np.ones(rest_wave.size))
        with pytest.raises(EmulatorConfigurationError, match="zred must be finite"):
            projection.maggies_redshifted(rest_wave, np.array([np.nan]),
                                          np.ones((1, rest_wave.size)))
