"""VectorisedLikelihood: Prospector's lnprobfn for a batch of parameter vectors,
row by row, for the shipped emulators (issue 13)."""
import warnings

import numpy as np
import pytest
from prospect.fitting import lnprobfn
from prospect.models import priors
from prospect.models import transforms as stock
from prospect.utils.obsutils import fix_obs
from sedpy.observate import load_filters

from prospect_emulator.data import COSMOS_FILTERS, default_emulator
from prospect_emulator.definition.fitting_model import definition_of, fitting_model_params
from prospect_emulator.errors import EmulatorConfigurationError
from prospect_emulator.prospector.model import EmulatedSpecModel
from prospect_emulator.prospector.noise import EmulatorNoiseModel
from prospect_emulator.prospector.vectorised import VectorisedLikelihood
from prospect_emulator.transforms import (logsfr_ratios_to_masses_batch, tage_from_tuniv_batch,
                                          zred_to_agebins_batch)

RTOL = 1e-10


@pytest.fixture(scope="module")
def filters():
    return load_filters(list(COSMOS_FILTERS))


def quiet_model(name, **overrides):
    """The fitting model of a shipped emulator with ``overrides`` of its parameter
    specifications (``fitting_model_params``), e.g. a prior wider than the training range."""
    emulator = default_emulator(name)
    ranges = dict(zip(emulator.param_names, emulator.param_ranges.tolist()))
    params = fitting_model_params(definition_of(emulator), param_ranges=ranges)
    for name, value in overrides.items():
        if isinstance(value, dict):
            params.setdefault(name, {"N": 1}).update(value)
        else:
            params[name] = {"N": 1, "isfree": False, "init": value}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # priors wider than the training range, on purpose
        return EmulatedSpecModel(params, emulator=emulator)


def mock_obs(model, filters, seed=0, mask_band=None):
    """27-band photometry of a prior draw with 10% noise (maggies), through fix_obs."""
    rng = np.random.default_rng(seed)
    truth = model.prior_transform(rng.uniform(0.3, 0.7, size=model.ndim))
    obs = {"filters": filters, "wavelength": None, "spectrum": None}
    _, phot, _ = model.predict(truth, obs=obs)
    obs["maggies_unc"] = 0.1 * np.abs(phot)
    obs["maggies"] = phot + rng.normal(size=phot.size) * obs["maggies_unc"]
    if mask_band is not None:
        obs["phot_mask"] = np.array([f.name != mask_band for f in filters])
    return fix_obs(obs)


def draws(model, n=120, seed=1):
    """Prior draws, some pushed outside the prior, and one NaN row."""
    rng = np.random.default_rng(seed)
    theta = model.prior_transform(rng.uniform(size=(n, model.ndim)))
    theta[: n // 6] += rng.normal(scale=1.5, size=(n // 6, model.ndim))
    theta[-1, 0] = np.nan
    return theta


def reference(theta, model, obs, noise, nested=False):
    return np.array([lnprobfn(t, model=model, obs=obs, sps=None, noise=(None, noise), nested=nested)
                     for t in theta])


def assert_rows_equal(values, expected):
    finite = np.isfinite(expected)
    assert np.array_equal(np.isfinite(values), finite)
    assert np.array_equal(values[~finite], expected[~finite])  # -inf where lnprobfn gives -inf
    np.testing.assert_allclose(values[finite], expected[finite], rtol=RTOL, atol=0)


@pytest.fixture(scope="module")
def wide_zred_model():
    """The default emulator's fitting model with a redshift prior reaching
    beyond the training range (0.5 < z < 3): such draws get ln p = -inf."""
    return quiet_model("default", zred={"prior": priors.TopHat(mini=0.2, maxi=3.6)})


@pytest.fixture(scope="module")
def default_obs(wide_zred_model, filters):
    return mock_obs(wide_zred_model, filters, mask_band="vista_vircam_H")


class TestEqualsLnprobfnRowByRow:
    @pytest.mark.parametrize("noise_kind", ["diagonal", "covariance", "none"])
    @pytest.mark.parametrize("nested", [False, True])
    def test_default_emulator_over_prior_draws(self, wide_zred_model, default_obs, noise_kind,
                                               nested):
        model = wide_zred_model
        noise = None if noise_kind == "none" else EmulatorNoiseModel(
            model, covariance=noise_kind == "covariance")
        like = VectorisedLikelihood(model, default_obs, noise, nested=nested)
        theta = draws(model)
        expected = reference(theta, model, default_obs, noise, nested=nested)
        assert_rows_equal(like(theta), expected)

    def test_rows_outside_the_training_range_give_minus_infinity(self, wide_zred_model,
                                                                  default_obs):
        model = wide_zred_model
        like = VectorisedLikelihood(model, default_obs, EmulatorNoiseModel(model))
        theta = draws(model, n=200)
        zred = theta[:, model.theta_index["zred"].start]
        in_prior = np.isfinite(model.prior_product(theta))
        outside = in_prior & ((zred < 0.5) | (zred > 3.0))
        assert outside.sum() >= 10  # the test exercises such rows
        values = like(theta)
        assert np.all(values[outside] == -np.inf)
        assert np.all(np.isfinite(values[in_prior & ~outside]))

    def test_parametric_emulator_log_inputs_and_lumdist(self, filters):
        # mass, tage, tau and zred are read as logmass, logtage, logtau, logzred;
        # lumdist rescales the fluxes by (d_L(zred) / lumdist)^2
        model = quiet_model("parametric", lumdist=3000.0)
        obs = mock_obs(model, filters, seed=4)
        noise = EmulatorNoiseModel(model)
        theta = draws(model, seed=5)
        assert_rows_equal(VectorisedLikelihood(model, obs, noise)(theta),
                          reference(theta, model, obs, noise))

    def test_inputs_computed_by_a_batched_depends_on_transform(self, filters):
        model = quiet_model("parametric", tage={"isfree": False, "depends_on": stock.tage_from_tuniv},
                            tage_tuniv={"N": 1, "isfree": True, "init": 0.5,
                                        "prior": priors.TopHat(mini=0.01, maxi=1.0)})
        obs = mock_obs(model, filters, seed=6)
        noise = EmulatorNoiseModel(model, covariance=True)
        like = VectorisedLikelihood(model, obs, noise)
        assert not like._batched.row_by_row
        theta = draws(model, seed=7)
        assert_rows_equal(like(theta), reference(theta, model, obs, noise))

    def test_an_unknown_transform_is_run_row_by_row_with_the_same_result(self, filters):
        def half_of_dust_ratio(dust_ratio=1.0, **extras):
            return 0.5 * dust_ratio

        model = quiet_model("parametric", dust2={"isfree": False, "depends_on": half_of_dust_ratio},
                            dust_ratio={"N": 1, "isfree": True, "init": 1.0,
                                        "prior": priors.TopHat(mini=0.0, maxi=4.0)})
        obs = mock_obs(model, filters, seed=8)
        noise = EmulatorNoiseModel(model)
        like = VectorisedLikelihood(model, obs, noise)
        assert like._batched.row_by_row
        theta = draws(model, n=40, seed=9)
        assert_rows_equal(like(theta), reference(theta, model, obs, noise))

    def test_one_vector_gives_a_float(self, wide_zred_model, default_obs):
        model = wide_zred_model
        noise = EmulatorNoiseModel(model)
        theta = model.prior_transform(np.full(model.ndim, 0.4))
        value = VectorisedLikelihood(model, default_obs, noise)(theta)
        assert isinstance(value, float)
        assert value == pytest.approx(lnprobfn(theta, model=model, obs=default_obs, sps=None,
                                               noise=(None, noise)), rel=RTOL)


class TestForSamplers:
    def test_lnlike_is_lnprobfn_in_nested_mode(self, wide_zred_model, default_obs):
        model = wide_zred_model
        noise = EmulatorNoiseModel(model)
        theta = draws(model)
        assert_rows_equal(VectorisedLikelihood(model, default_obs, noise).lnlike(theta),
                          reference(theta, model, default_obs, noise, nested=True))

    def test_prior_transform_of_a_batch_equals_prospectors_row_by_row(self, wide_zred_model,
                                                                        default_obs):
        model = wide_zred_model
        u = np.random.default_rng(3).uniform(size=(50, model.ndim))
        batch = VectorisedLikelihood(model, default_obs).prior_transform(u)
        stock_rows = np.array([super(EmulatedSpecModel, model).prior_transform(row) for row in u])
        np.testing.assert_allclose(batch, stock_rows, rtol=1e-10)


class TestFloat32:
    def test_float32_is_used_when_accurate_and_stays_close(self, wide_zred_model, default_obs):
        model = wide_zred_model
        noise = EmulatorNoiseModel(model)
        like64 = VectorisedLikelihood(model, default_obs, noise)
        like32 = VectorisedLikelihood(model, default_obs, noise, float32=True)
        assert like32.float32 and like32.emulator.precision == "float32"
        assert like32.float32_max_mag_difference < 1e-4
        theta = draws(model, n=300)
        v64, v32 = like64(theta), like32(theta)
        assert np.array_equal(np.isfinite(v64), np.isfinite(v32))
        finite = np.isfinite(v64)
        # a magnitude error delta moves ln L by ~sum_i chi_i delta / sigma_i (mag) <=
        # sqrt(chi^2) sqrt(27) delta / 0.1 for 10% photometry: ~1.6e-3 sqrt(2 |ln L|) at 3e-5 mag
        bound = 2e-3 * np.sqrt(2.0 * (1.0 + np.abs(v64[finite])))
        assert np.all(np.abs(v32[finite] - v64[finite]) < bound)


class TestErrors:
    def test_an_obs_with_a_spectrum_is_refused(self, wide_zred_model, default_obs):
        obs = dict(default_obs, spectrum=np.ones(10), wavelength=np.arange(10.0))
        with pytest.raises(EmulatorConfigurationError, match="spectrum"):
            VectorisedLikelihood(wide_zred_model, obs)

    def test_a_noise_model_of_another_model_is_refused(self, wide_zred_model, default_obs):
        other = quiet_model("default")
        with pytest.raises(EmulatorConfigurationError, match="another EmulatedSpecModel"):
            VectorisedLikelihood(wide_zred_model, default_obs, EmulatorNoiseModel(other))

    def test_a_wrong_theta_shape_names_the_free_parameters(self, wide_zred_model, default_obs):
        like = VectorisedLikelihood(wide_zred_model, default_obs)
        with pytest.raises(EmulatorConfigurationError, match="logmass"):
            like(np.zeros((3, 4)))

    def test_a_fixed_parameter_outside_the_training_range_raises_like_lnprobfn(self, filters):
        model = quiet_model("default", zred=0.3)
        obs = mock_obs(quiet_model("default", zred=1.0), filters)
        theta = model.prior_transform(np.full(model.ndim, 0.5))
        with pytest.raises(EmulatorConfigurationError, match="zred"):
            lnprobfn(theta, model=model, obs=obs, sps=None)
        with pytest.raises(EmulatorConfigurationError, match="zred"):
            VectorisedLikelihood(model, obs)(theta[None, :])


class TestBatchedTransforms:
    def test_zred_to_agebins_batch_equals_prospector(self):
        agebins = np.array([[0.0, 7.47712], [7.47712, 8.0], [8.0, 8.5], [8.5, 9.0], [9.0, 9.5],
                            [9.5, 9.8], [9.8, 10.13]])
        zred = np.array([0.5, 1.3, 1.3, 2.9])
        batch = zred_to_agebins_batch(zred[:, None], agebins)
        for z, bins in zip(zred, batch):
            np.testing.assert_allclose(bins, stock.zred_to_agebins(zred=z, agebins=agebins),
                                       rtol=1e-13)

    def test_logsfr_ratios_to_masses_batch_equals_prospector(self):
        rng = np.random.default_rng(0)
        edges = np.array([0.0, 7.47712, 8.0, 8.5, 9.0, 9.5, 9.8, 10.13])
        agebins = stock.zred_to_agebins(zred=1.0, agebins=np.column_stack([edges[:-1], edges[1:]]))
        ratios = rng.normal(scale=3.0, size=(20, 6))
        ratios[0, 0] = 30.0  # beyond Prospector's clip at +-10
        logmass = rng.uniform(8, 12, size=20)
        batch = logsfr_ratios_to_masses_batch(logmass[:, None], ratios, agebins)
        for lm, r, masses in zip(logmass, ratios, batch):
            np.testing.assert_allclose(
                masses, stock.logsfr_ratios_to_masses(logmass=lm, logsfr_ratios=r, agebins=agebins),
                rtol=1e-12)

    def test_tage_from_tuniv_batch_equals_prospector(self):
        zred, frac = np.array([[0.1], [1.0], [2.5]]), np.array([[0.2], [0.5], [0.9]])
        expected = [stock.tage_from_tuniv(zred=z[0], tage_tuniv=f[0]) for z, f in zip(zred, frac)]
        np.testing.assert_allclose(tage_from_tuniv_batch(zred, frac)[:, 0], expected, rtol=1e-13)
