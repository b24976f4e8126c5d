"""The quality record of a fit: chi^2 with the likelihood's total sigma, masked
bands and why, flags raised on bad fits and not on a good one; seeds and the
live-point guard of fit_galaxy.  Real Prospector + dynesty on tiny settings
with a small hand-made emulator (3 free parameters)."""
import numpy as np
import pytest
from prospect.io.read_results import results_from

from conftest import (SMALL_MODEL_FILTERS, SMALL_MODEL_PRIOR_RANGES, SMALL_MODEL_TRUTH,
                      make_small_emulated_model)
from prospect_emulator import EmulatorConfigurationError
from prospect_emulator.fitting.quality import fit_quality, mask_reasons, weighted_quantiles
from prospect_emulator.fitting.run import fit_galaxy, make_obs
from prospect_emulator.prospector import EmulatorNoiseModel

FILTERS = SMALL_MODEL_FILTERS
PRIOR_RANGES = SMALL_MODEL_PRIOR_RANGES
TRUTH = np.array([SMALL_MODEL_TRUTH[p] for p in PRIOR_RANGES])
TINY = {"nested_nlive_init": 40, "nested_maxbatch": 0, "nested_dlogz_init": 0.5}


@pytest.fixture(scope="module")
def model():
    return make_small_emulated_model()


def mock_maggies(model, filters=FILTERS):
    _, phot, _ = model.predict(TRUTH, obs={"filters": list(filters), "wavelength": None,
                                           "spectrum": None})
    return phot.copy()


@pytest.fixture(scope="module")
def good_fit(model, tmp_path_factory):
    """S/N 20 noiseless mock, three bands masked for three different reasons."""
    maggies = mock_maggies(model)
    unc = maggies / 20.0
    maggies[0] = np.nan          # galex_NUV: no measurement
    unc[1] = 0.0                 # sdss_u0: no uncertainty
    user_mask = np.ones(len(FILTERS), bool)
    user_mask[-1] = False        # galex_FUV: masked by the user
    obs = make_obs(FILTERS, maggies, unc, phot_mask=user_mask)
    noise = EmulatorNoiseModel(model, floor=0.05)
    path = str(tmp_path_factory.mktemp("fit") / "good.h5")
    fit = fit_galaxy(obs, model, noise, nested_kwargs=TINY, seed=3, results_path=path,
                     sampler="dynesty")
    return fit, obs, path


class TestGoodFit:
    def test_no_flag_is_raised(self, good_fit):
        quality = good_fit[0]["quality"]
        assert quality["flags"] == {"prior_dominated": [], "at_prior_edge": [],
                                    "few_bands": False, "suspect_units": False}
        assert quality["chi2_per_band"] < 3.0
        assert 0.3 < quality["median_flux_ratio"] < 3.0

    def test_masked_bands_are_named_with_their_reason(self, good_fit):
        quality = good_fit[0]["quality"]
        assert quality["bands_masked"] == {"galex_NUV": "non-finite flux",
                                           "sdss_u0": "non-positive uncertainty",
                                           "galex_FUV": "user mask"}
        assert quality["n_masked"] == 3 and quality["n_bands"] == 9
        assert quality["bands_used"] == FILTERS[2:-1]

    def test_chi2_uses_the_total_sigma_of_the_likelihood(self, good_fit, model):
        """sigma^2 = sigma_obs^2 + (floor E)^2 + (sigma_emul |d maggies/d mag|)^2 (eq. 9)."""
        fit, obs, _ = good_fit
        quality = fit["quality"]
        used = obs["phot_mask"]
        observed, unc = obs["maggies"][used], obs["maggies_unc"][used]
        best = np.array(quality["bestfit"]["maggies"])[used]
        emu = model.emulator
        sigma_emul = emu.residual_sigma[emu.filter_indices(quality["bands_used"])]
        expected = np.sqrt(unc ** 2 + (0.05 * observed) ** 2 + (sigma_emul * best / emu.a) ** 2)
        total = np.array([quality["total_sigma"][n] for n in quality["bands_used"]])
        np.testing.assert_allclose(total, expected, rtol=1e-6)
        assert np.all(total > np.hypot(unc, 0.05 * observed))
        assert quality["chi2"] == pytest.approx(np.sum(((observed - best) / expected) ** 2),
                                                rel=1e-6)
        assert quality["chi2_per_band"] == pytest.approx(quality["chi2"] / 9)

    def test_best_fit_is_the_highest_posterior_sample(self, good_fit):
        fit = good_fit[0]
        best = np.argmax(fit["lnprobability"])
        np.testing.assert_array_equal(fit["quality"]["bestfit"]["theta"], fit["samples"][best])

    def test_prospector_reads_the_bestfit_group(self, good_fit):
        fit, obs, path = good_fit
        res, _, _ = results_from(path)
        best = res["bestfit"]
        np.testing.assert_allclose(best["photometry"], fit["quality"]["bestfit"]["maggies"])
        np.testing.assert_allclose(best["parameter"], fit["quality"]["bestfit"]["theta"])
        assert best["photometry"].shape == (len(FILTERS),)
        assert "mfrac" in best and best["spectrum"].size == 0
        assert best["restframe_wavelengths"].size == 0
        assert res["fit_quality"]["flags"]["few_bands"] is False
        assert res["run_params"]["seed"] == 3 and res["run_params"]["noise_floor"] == 0.05


@pytest.fixture(scope="module")
def example_in_three_bands():
    """The bundled example galaxy in 3 bands, and the shipped emulator's model for it."""
    import warnings
    from prospect_emulator.data import EXAMPLE_GALAXY_PATH, default_emulator
    from prospect_emulator.fitting.catalog import CatalogColumns, read_catalog
    from prospect_emulator.fitting.models import build_fitting_model
    emulator = default_emulator()
    (rec,), filters = read_catalog(EXAMPLE_GALAXY_PATH, CatalogColumns(), emulator.filter_names)
    keep = [filters.index(b) for b in ("subaru_suprimecam_V", "vista_vircam_J",
                                       "spitzer_irac_ch1")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_fitting_model(emulator, zred=rec["zred"])
    return model, [filters[k] for k in keep], rec["maggies"][keep], rec["maggies_unc"][keep]


class TestBadFits:
    def test_fluxes_a_million_times_too_bright_raise_the_flags(self, example_in_three_bands):
        """No model comes near: with a floor of 5% of the observed flux the likelihood is
        flat, the posterior is the prior, and the best fit misses by dex."""
        model, bands, maggies, unc = example_in_three_bands
        obs = make_obs(bands, maggies * 1e6, unc * 1e6)
        fit = fit_galaxy(obs, model, EmulatorNoiseModel(model), seed=1, sampler="dynesty",
                         nested_kwargs={"nested_nlive_init": 30, "nested_maxbatch": 0,
                                        "nested_dlogz_init": 0.5})
        quality = fit["quality"]
        assert quality["flags"]["suspect_units"] and quality["flags"]["few_bands"]
        assert "logmass" in quality["flags"]["prior_dominated"]
        assert quality["median_flux_ratio"] > 1e5
        assert quality["n_bands"] == 3 and quality["n_free"] == 14

    def test_fluxes_beyond_the_mass_prior_put_the_mass_at_its_edge(self, example_in_three_bands):
        model, bands, maggies, unc = example_in_three_bands
        obs = make_obs(bands, maggies * 1e4, unc * 1e4)
        fit = fit_galaxy(obs, model, EmulatorNoiseModel(model), seed=1, sampler="dynesty",
                         nested_kwargs={"nested_nlive_init": 30, "nested_maxbatch": 0,
                                        "nested_dlogz_init": 0.5})
        assert "logmass" in fit["quality"]["flags"]["at_prior_edge"]  # logmass <= 12.5

    def test_uninformative_data_leave_the_prior_in_charge(self, model):
        maggies = mock_maggies(model)
        obs = make_obs(FILTERS, maggies, maggies * 1e4)  # S/N 1e-4
        fit = fit_galaxy(obs, model, EmulatorNoiseModel(model, floor=0.0), nested_kwargs=TINY,
                         seed=1, sampler="dynesty")
        flags = fit["quality"]["flags"]
        assert {"logzsol", "dust2"} <= set(flags["prior_dominated"])
        assert not flags["few_bands"]


class TestSeeds:
    def test_same_seed_same_samples(self, model):
        obs = make_obs(FILTERS, mock_maggies(model), mock_maggies(model) / 20)
        noise = EmulatorNoiseModel(model)
        a = fit_galaxy(obs, model, noise, nested_kwargs=TINY, seed=11, sampler="dynesty")
        b = fit_galaxy(obs, model, noise, nested_kwargs=TINY, seed=11, sampler="dynesty")
        c = fit_galaxy(obs, model, noise, nested_kwargs=TINY, seed=12, sampler="dynesty")
        np.testing.assert_array_equal(a["samples"], b["samples"])
        assert a["ncall"] == b["ncall"]
        assert a["samples"].shape != c["samples"].shape or not np.array_equal(a["samples"],
                                                                               c["samples"])


def test_fewer_live_points_than_twice_the_free_parameters_are_refused(model):
    obs = make_obs(FILTERS, mock_maggies(model), mock_maggies(model) / 20)
    with pytest.raises(EmulatorConfigurationError, match="5 is below twice the 3 free parameters"):
        fit_galaxy(obs, model, EmulatorNoiseModel(model), sampler="dynesty",
                   nested_kwargs={"nested_nlive_init": 5})


class TestHelpers:
    def test_mask_reasons_first_reason_wins(self):
        reasons = mask_reasons([1.0, np.nan, 1.0, 1.0, np.inf], [0.1, 0.1, -1.0, 0.1, 0.0],
                               [True, True, True, False, False])
        assert reasons == ["", "non-finite flux", "non-positive uncertainty", "user mask",
                           "non-finite flux"]

    def test_weighted_quantiles_of_equal_weights_match_numpy(self):
        x = np.random.default_rng(0).normal(size=(20001, 2))
        q = weighted_quantiles(x, np.ones(len(x)), [0.05, 0.5, 0.95])
        np.testing.assert_allclose(q, np.quantile(x, [0.05, 0.5, 0.95], axis=0), atol=2e-3)

    def test_a_plain_chi2_without_noise_model(self, model):
        maggies = mock_maggies(model)
        obs = make_obs(FILTERS, maggies * 1.1, maggies / 10)
        samples = np.array([TRUTH, TRUTH + [0.5, 0, 0]])
        quality = fit_quality(model, obs, None, samples, np.ones(2))
        # the truth has the higher posterior; each band is off by 10% = 1 sigma
        assert quality["bestfit"]["theta"] == pytest.approx(TRUTH)
        assert quality["chi2"] == pytest.approx(len(FILTERS), rel=1e-6)
