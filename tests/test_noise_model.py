"""EmulatorNoiseModel in prospect.fitting.lnprobfn against a hand-computed
Gaussian likelihood (eq. 9), and the paper's one-off obs inflation."""
import numpy as np
import pytest
from prospect.fitting import lnprobfn
from prospect.models import priors
from prospect.models.parameters import ProspectorParams
from prospect.utils.obsutils import fix_obs
from sedpy.observate import load_filters

from conftest import make_random_emulator
from prospect_emulator import (EmulatorConfigurationError, StitchedEmulator, arsinh_mags_to_maggies,
                               maggies_to_arsinh_mags)
from prospect_emulator.prospector import (EmulatedSpecModel, EmulatorNoiseModel,
                                          inflate_obs_uncertainties)

FILTERS = ["sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0", "twomass_J"]
INPUTS = ["logmass", "logzsol", "dust2", "zred"]
RANGES = [(6.0, 12.5), (-2.0, 0.2), (0.0, 4.0), (0.5, 3.0)]


def stats_with_sigma(sigma):
    """Residual statistics rows (arsinh mag) with the given standard deviations."""
    sigma = np.asarray(sigma, dtype=float)
    quantiles = np.outer(sigma, [-4, -3, -2, -1, 0, 1, 2, 3, 4])
    return np.column_stack([quantiles, np.zeros_like(sigma), sigma])


def emulator(sigma=0.03, covariance=None, zred_range=(0.5, 3.0), seed=1):
    ranges = list(RANGES)
    ranges[3] = zred_range
    return make_random_emulator(
        n_params=4, width=16, n_hidden=2, filter_names=FILTERS, param_names=INPUTS,
        param_ranges=ranges, output_mean=23.0, seed=seed,
        residual_stats=stats_with_sigma(np.broadcast_to(sigma, len(FILTERS))),
        residual_covariance=covariance)


def model_params(zred=1.2):
    return {"logmass": {"N": 1, "isfree": True, "init": 10.0, "prior": priors.TopHat(mini=8, maxi=12)},
            "logzsol": {"N": 1, "isfree": True, "init": -0.5,
                        "prior": priors.ClippedNormal(mean=-0.3, sigma=0.4, mini=-2, maxi=0.2)},
            "dust2": {"N": 1, "isfree": True, "init": 0.6, "prior": priors.TopHat(mini=0, maxi=2)},
            "zred": {"N": 1, "isfree": False, "init": zred}}


def observed(model, theta, snr=15.0, seed=3, mask_band=None):
    """A mock photometric obs around the model at ``theta``, through fix_obs."""
    names = ["sdss_z0", "sdss_g0", "twomass_J", "sdss_r0"]
    obs = {"filters": load_filters(names), "wavelength": None, "spectrum": None}
    _, phot, _ = model.predict(theta, obs=obs)
    rng = np.random.default_rng(seed)
    obs["maggies_unc"] = phot / snr
    obs["maggies"] = phot + rng.normal(size=phot.size) * obs["maggies_unc"]
    if mask_band is not None:
        obs["phot_mask"] = np.array([n != mask_band for n in names])
    return fix_obs(obs)


def hand_lnlike(model, theta, obs, sigma_mag, floor, covariance=None):
    """ln L of eq. 9, computed independently: finite-difference d maggies / d mag,
    explicit inverse and log-determinant."""
    names = [f.name for f in obs["filters"]]
    emu = model.emulator
    x = np.array([model.params[p][0] for p in INPUTS])
    mags = emu.predict_mags(x)[emu.filter_indices(names)]
    h = 1e-6
    jac = (arsinh_mags_to_maggies(mags + h) - arsinh_mags_to_maggies(mags - h)) / (2 * h)
    model_flux = arsinh_mags_to_maggies(mags)
    flux, unc, mask = obs["maggies"], obs["maggies_unc"], obs["phot_mask"]
    if covariance is None:
        cov_mag = np.diag(np.broadcast_to(sigma_mag, len(FILTERS)) ** 2)
    else:
        cov_mag = covariance
    idx = emu.filter_indices(names)
    cov = np.diag(unc ** 2 + (floor * flux) ** 2) + np.outer(jac, jac) * cov_mag[np.ix_(idx, idx)]
    cov = cov[np.ix_(mask, mask)]
    r = (flux - model_flux)[mask]
    sign, logdet = np.linalg.slogdet(2 * np.pi * cov)
    assert sign > 0
    return -0.5 * (r @ np.linalg.inv(cov) @ r + logdet)


def stock_ln_prior(theta, zred=1.2):
    return ProspectorParams(model_params(zred)).prior_product(theta)


THETA = np.array([10.4, -0.7, 0.8])


class TestLikelihood:
    def test_diagonal_noise_equals_hand_computed_gaussian_plus_prior(self):
        model = EmulatedSpecModel(model_params(), emulator=emulator(sigma=0.04))
        obs = observed(model, THETA, mask_band="twomass_J")
        theta = THETA + [0.05, 0.1, -0.1]
        noise = EmulatorNoiseModel(model, floor=0.05)
        lnp = lnprobfn(theta, model=model, obs=obs, sps=None, noise=(None, noise))
        model.set_parameters(theta)
        expected = hand_lnlike(model, theta, obs, 0.04, 0.05) + stock_ln_prior(theta)
        assert lnp == pytest.approx(expected, rel=1e-9)
        assert noise.Sigma.shape == (3,)  # the masked band is left out

    def test_full_covariance_equals_hand_computed_gaussian_plus_prior(self):
        rng = np.random.default_rng(5)
        a = rng.normal(scale=0.03, size=(len(FILTERS), len(FILTERS)))
        cov = a @ a.T + np.diag(np.full(len(FILTERS), 0.01 ** 2))
        model = EmulatedSpecModel(model_params(), emulator=emulator(covariance=cov))
        obs = observed(model, THETA, mask_band="sdss_g0")
        theta = THETA + [-0.05, 0.05, 0.1]
        noise = EmulatorNoiseModel(model, floor=0.02, covariance=True)
        lnp = lnprobfn(theta, model=model, obs=obs, sps=None, noise=(None, noise))
        model.set_parameters(theta)
        expected = hand_lnlike(model, theta, obs, None, 0.02, covariance=cov) + stock_ln_prior(theta)
        assert lnp == pytest.approx(expected, rel=1e-9)
        # ignoring the correlations gives a different answer
        diag = lnprobfn(theta, model=model, obs=obs, sps=None,
                        noise=(None, EmulatorNoiseModel(model, floor=0.02)))
        assert abs(diag - lnp) > 1e-3

    def test_covariance_with_a_diagonal_matrix_equals_the_diagonal_model(self):
        model = EmulatedSpecModel(model_params(), emulator=emulator(sigma=0.05))
        obs = observed(model, THETA)
        values = [lnprobfn(THETA + 0.05, model=model, obs=obs, sps=None,
                           noise=(None, EmulatorNoiseModel(model, covariance=c))) for c in (False, True)]
        assert values[0] == pytest.approx(values[1], rel=1e-12)

    def test_without_emulator_error_or_floor_it_is_prospectors_own_likelihood(self):
        model = EmulatedSpecModel(model_params(), emulator=emulator(sigma=0.0))
        obs = observed(model, THETA, mask_band="sdss_r0")
        ours = lnprobfn(THETA, model=model, obs=obs, sps=None,
                        noise=(None, EmulatorNoiseModel(model, floor=0.0)))
        stock = lnprobfn(THETA, model=model, obs=obs, sps=None, noise=(None, None))
        assert ours == pytest.approx(stock, rel=1e-12)

    def test_nested_mode_leaves_out_the_prior(self):
        model = EmulatedSpecModel(model_params(), emulator=emulator())
        obs = observed(model, THETA)
        noise = (None, EmulatorNoiseModel(model))
        full = lnprobfn(THETA, model=model, obs=obs, sps=None, noise=noise)
        nested = lnprobfn(THETA, model=model, obs=obs, sps=None, noise=noise, nested=True)
        assert full - nested == pytest.approx(stock_ln_prior(THETA), rel=1e-10)

    def test_obs_changed_in_place_or_replaced_changes_the_likelihood(self):
        """The per-obs constants of the diagonal model are cached, but by content."""
        model = EmulatedSpecModel(model_params(), emulator=emulator(sigma=0.03))
        obs = observed(model, THETA)
        noise = (None, EmulatorNoiseModel(model, floor=0.05))
        before = lnprobfn(THETA, model=model, obs=obs, sps=None, noise=noise)
        obs["maggies_unc"] *= 2.0  # in place
        expected = hand_lnlike(model, THETA, obs, 0.03, 0.05) + stock_ln_prior(THETA)
        assert lnprobfn(THETA, model=model, obs=obs, sps=None, noise=noise) == pytest.approx(
            expected, rel=1e-9)
        assert expected != pytest.approx(before, rel=1e-6)
        other = observed(model, THETA, seed=11, mask_band="sdss_g0")
        expected = hand_lnlike(model, THETA, other, 0.03, 0.05) + stock_ln_prior(THETA)
        assert lnprobfn(THETA, model=model, obs=other, sps=None, noise=noise) == pytest.approx(
            expected, rel=1e-9)

    def test_mass_normalised_emulator_error_stays_fractional_for_faint_sources(self):
        """A source fainter than mu0 = 35: the network's error is in unit-mass
        magnitudes (softening mass_mu0), so its flux error is sigma / a of the flux,
        not the ~exp(-mu0/a) floor of the output magnitudes."""
        from prospect_emulator import Emulator
        rng = np.random.default_rng(4)
        sizes = [3, 16, 16, len(FILTERS)]
        mass_mu0 = 35.0 + 2.5 * 12.5
        emu = Emulator([rng.normal(scale=0.3, size=(a, b)) for a, b in zip(sizes[:-1], sizes[1:])],
                       [rng.normal(scale=0.1, size=b) for b in sizes[1:]], INPUTS, FILTERS,
                       input_mean=np.zeros(3), input_std=np.ones(3),
                       output_mean=np.full(len(FILTERS), 52.0), param_ranges=RANGES,
                       residual_stats=stats_with_sigma(np.full(len(FILTERS), 0.04)),
                       mass_param="logmass", mass_mu0=mass_mu0)
        params = model_params()
        params["logmass"]["prior"] = priors.TopHat(mini=6, maxi=8)
        theta = np.array([6.5, -0.7, 0.8])
        model = EmulatedSpecModel(params, emulator=emu)
        obs = observed(model, theta)
        noise = EmulatorNoiseModel(model, floor=0.0)
        lnprobfn(theta, model=model, obs=obs, sps=None, noise=(None, noise))
        flux = model.last_maggies
        assert (flux < 1e-14).all()  # fainter than 35 mag in every band
        # independent: F(m_u) = 10**logmass * maggies(m_u; mass_mu0), derivative by differences
        unit_mags = maggies_to_arsinh_mags(flux / 10 ** 6.5, mass_mu0)
        h = 1e-5
        jac = 10 ** 6.5 * (arsinh_mags_to_maggies(unit_mags + h, mass_mu0)
                           - arsinh_mags_to_maggies(unit_mags - h, mass_mu0)) / (2 * h)
        expected = obs["maggies_unc"] ** 2 + (0.04 * jac) ** 2
        np.testing.assert_allclose(noise.Sigma, expected, rtol=1e-6)
        np.testing.assert_allclose(np.sqrt(noise.Sigma - obs["maggies_unc"] ** 2) / flux,
                                   0.04 / (2.5 * np.log10(np.e)), rtol=1e-6)

    def test_out_of_range_proposal_gives_minus_infinity_with_the_noise_model(self):
        params = model_params()
        params["dust2"]["prior"] = priors.TopHat(mini=0, maxi=5)
        with pytest.warns(UserWarning, match="dust2"):
            model = EmulatedSpecModel(params, emulator=emulator())
        obs = observed(model, THETA)
        lnp = lnprobfn(np.array([10.4, -0.7, 4.5]), model=model, obs=obs, sps=None,
                       noise=(None, EmulatorNoiseModel(model)))
        assert lnp == -np.inf

    def test_stitched_emulator_error_follows_the_redshift(self):
        low, high = emulator(sigma=0.02, zred_range=(0.5, 1.5)), emulator(sigma=0.08, zred_range=(1.2, 3.0))
        stitched = StitchedEmulator([low, high])
        model = EmulatedSpecModel(model_params(zred=1.35), emulator=stitched)
        obs = observed(model, THETA)
        noise = EmulatorNoiseModel(model, floor=0.0)
        lnp = lnprobfn(THETA, model=model, obs=obs, sps=None, noise=(None, noise))
        weights = stitched.weights(1.35)
        sigma = np.sqrt(weights @ [0.02 ** 2, 0.08 ** 2])
        assert 0.02 < sigma < 0.08
        expected = hand_lnlike(model, THETA, obs, sigma, 0.0) + stock_ln_prior(THETA, zred=1.35)
        assert lnp == pytest.approx(expected, rel=1e-8)


class TestMisuse:
    def test_emulator_without_residual_statistics_is_refused(self):
        emu = make_random_emulator(n_params=4, filter_names=FILTERS, param_names=INPUTS,
                                   param_ranges=RANGES)  # residual stats unknown (NaN)
        model = EmulatedSpecModel(model_params(), emulator=emu)
        obs = observed(model, THETA)
        with pytest.raises(EmulatorConfigurationError, match="no residual statistics"):
            lnprobfn(THETA, model=model, obs=obs, sps=None, noise=(None, EmulatorNoiseModel(model)))

    def test_compute_before_any_prediction(self):
        model = EmulatedSpecModel(model_params(), emulator=emulator())
        with pytest.raises(EmulatorConfigurationError, match="before the model predicted"):
            EmulatorNoiseModel(model).compute(phot_unc=np.ones(2), phot=np.ones(2))

    def test_bad_floor_and_wrong_model(self):
        model = EmulatedSpecModel(model_params(), emulator=emulator())
        with pytest.raises(EmulatorConfigurationError, match="floor"):
            EmulatorNoiseModel(model, floor=-0.1)
        with pytest.raises(EmulatorConfigurationError, match="EmulatedSpecModel"):
            EmulatorNoiseModel(ProspectorParams(model_params()))


class TestEmulatorFluxError:
    """Eq. 9's emulator term in maggies, the one conversion the simulations and
    the refinement of the amortized posteriors use."""

    def test_sigma_times_the_flux_per_magnitude_at_the_given_fluxes(self):
        sigma = np.linspace(0.01, 0.06, len(FILTERS))
        emu = emulator(sigma=sigma)
        x = np.array([[10.0, -0.5, 0.6, 1.2], [9.0, 0.0, 1.5, 2.5]])
        flux = emu.predict_maggies(x)
        mags = maggies_to_arsinh_mags(flux)
        flux_per_mag = np.abs(arsinh_mags_to_maggies(mags + 1e-6)
                              - arsinh_mags_to_maggies(mags - 1e-6)) / 2e-6
        np.testing.assert_allclose(emu.flux_error(x, flux), sigma * flux_per_mag, rtol=1e-6)

    def test_stitched_emulator_uses_the_scatter_at_each_rows_redshift(self):
        low, high = emulator(sigma=0.02, zred_range=(0.5, 1.5)), emulator(sigma=0.08, zred_range=(1.2, 3.0))
        stitched = StitchedEmulator([low, high])
        x = np.array([[10.0, -0.5, 0.6, 0.8], [10.0, -0.5, 0.6, 1.35], [10.0, -0.5, 0.6, 2.5]])
        flux = stitched.predict_maggies(x)
        ratio = stitched.flux_error(x, flux) / low.flux_error(x, flux)  # same mu0, a
        np.testing.assert_allclose(ratio[:, 0], [1.0, np.sqrt(stitched.weights(1.35) @ [1, 16]), 4.0],
                                   rtol=1e-12)

    def test_total_is_eq9(self):
        from prospect_emulator.runtime.error_budget import total_sigma
        assert total_sigma(3.0, 4.0, 120.0, 0.1) == pytest.approx(13.0)

    def test_emulator_without_residual_statistics_is_refused(self):
        emu = make_random_emulator(n_params=4, filter_names=FILTERS, param_names=INPUTS,
                                   param_ranges=RANGES)
        x = np.array([[10.0, -0.5, 0.6, 1.2]])
        with pytest.raises(EmulatorConfigurationError, match="no residual statistics.*sdss_u0"):
            emu.flux_error(x, emu.predict_maggies(x))


class TestInflateObsUncertainties:
    def test_eq9_at_the_observed_fluxes(self, tmp_path):
        emu = emulator(sigma=np.linspace(0.01, 0.06, len(FILTERS)))
        model = EmulatedSpecModel(model_params(), emulator=emu)
        obs = observed(model, THETA)
        original = obs["maggies_unc"].copy()
        inflated = inflate_obs_uncertainties(obs, emu, floor=0.05)
        names = [f.name for f in obs["filters"]]
        sigma = emu.residual_sigma[emu.filter_indices(names)]
        mags = maggies_to_arsinh_mags(obs["maggies"])
        flux_per_mag = np.abs(arsinh_mags_to_maggies(mags + 1e-6) - arsinh_mags_to_maggies(mags - 1e-6)) / 2e-6
        expected = np.sqrt(original ** 2 + (flux_per_mag * sigma) ** 2 + (0.05 * obs["maggies"]) ** 2)
        np.testing.assert_allclose(inflated["maggies_unc"], expected, rtol=1e-8)
        np.testing.assert_array_equal(obs["maggies_unc"], original)  # input untouched
        np.testing.assert_array_equal(inflated["maggies_unc_observed"], original)
        # the model or a file path supply the same emulator statistics
        emu.save(tmp_path / "emu.h5")
        for source in (model, str(tmp_path / "emu.h5")):
            np.testing.assert_allclose(inflate_obs_uncertainties(obs, source)["maggies_unc"],
                                       inflated["maggies_unc"], rtol=1e-14)
        # and the inflated obs fits with Prospector's plain likelihood
        assert np.isfinite(lnprobfn(THETA, model=model, obs=inflated, sps=None))

    def test_unknown_filter_and_missing_photometry(self):
        emu = emulator()
        obs = {"filters": load_filters(["sdss_r0", "wise_w4"]), "maggies": np.ones(2),
               "maggies_unc": np.ones(2)}
        with pytest.raises(EmulatorConfigurationError, match="wise_w4"):
            inflate_obs_uncertainties(obs, emu)
        with pytest.raises(EmulatorConfigurationError, match="maggies_unc"):
            inflate_obs_uncertainties({"filters": obs["filters"], "maggies": np.ones(2)}, emu)
