"""The network's analytic Jacobian, the float32 forward pass, and the gradient
of the vectorised likelihood, against central finite differences (issue 13)."""
import warnings

import numpy as np
import pytest
from prospect.models import priors
from prospect.models import transforms as stock

from prospect_emulator.data import default_emulator
from prospect_emulator.prospector.noise import EmulatorNoiseModel
from prospect_emulator.prospector.vectorised import VectorisedLikelihood
from prospect_emulator.runtime.emulator import Float32Emulator, float32_mag_difference

from conftest import make_random_emulator
from test_vectorised_likelihood import mock_obs, quiet_model


def uniform_inputs(emulator, n, seed=0):
    """n input vectors drawn uniformly over the training ranges."""
    lo, hi = emulator.param_ranges.T
    return lo + (hi - lo) * np.random.default_rng(seed).uniform(size=(n, emulator.n_params))


def central_difference_jacobian(emulator, x, h=1e-5):
    jac = np.zeros((len(x), emulator.n_filters, emulator.n_params))
    for j in range(emulator.n_params):
        up, down = x.copy(), x.copy()
        up[:, j] += h
        down[:, j] -= h
        jac[:, :, j] = (emulator.predict_maggies(up, check=False) -
                        emulator.predict_maggies(down, check=False)) / (2 * h)
    return jac


class TestNetworkJacobian:
    @pytest.mark.parametrize("name", ["default", "parametric"])
    def test_shipped_emulators_match_finite_differences(self, name):
        # mass-normalised: the logmass column is ln(10) maggies, the rest runs
        # through the GELU layers and the folded normalisation
        emulator = default_emulator(name)
        x = uniform_inputs(emulator, 8)
        maggies, jac = emulator.predict_maggies_and_jacobian(x)
        # relative to the flux of each band (the derivatives are fractions of it),
        # bands of a row whose flux crosses zero relative to that row's brightest
        flux_scale = np.abs(maggies) + 1e-6 * np.abs(maggies).max(axis=1, keepdims=True)
        np.testing.assert_array_less(np.abs(maggies - emulator.predict_maggies(x)),
                                     1e-12 * flux_scale)
        numerical = central_difference_jacobian(emulator, x)
        error = np.abs(jac - numerical) / flux_scale[:, :, None]
        assert error.max() < 2e-5

    def test_a_plain_network_without_mass_normalisation(self):
        emulator = make_random_emulator(n_params=4, width=24, n_hidden=3)
        x = uniform_inputs(emulator, 5, seed=2)
        maggies, jac = emulator.predict_maggies_and_jacobian(x)
        error = np.abs(jac - central_difference_jacobian(emulator, x)) / np.abs(maggies)[:, :, None]
        assert error.max() < 1e-6

    def test_one_vector_gives_the_row_of_the_batch(self):
        emulator = default_emulator("parametric")
        x = uniform_inputs(emulator, 3)
        maggies, jac = emulator.predict_maggies_and_jacobian(x)
        one_maggies, one_jac = emulator.predict_maggies_and_jacobian(x[1])
        assert one_jac.shape == (emulator.n_filters, emulator.n_params)
        # one vector (gemv) and a batch (gemm) may sum in another order: 1e-10
        np.testing.assert_allclose(one_jac, jac[1], rtol=1e-10)
        np.testing.assert_allclose(one_maggies, maggies[1], rtol=1e-12)


class TestFloat32ForwardPass:
    def test_a_float32_emulator_keeps_its_names_file_and_precision_through_select(self):
        emulator = default_emulator("default")
        fast = emulator.as_float32()
        assert isinstance(fast, Float32Emulator) and fast.precision == "float32"
        assert fast.param_names == emulator.param_names
        assert fast.checksum == emulator.checksum  # it saves as the float64 emulator
        assert fast.select(emulator.filter_names[:5]).precision == "float32"
        assert fast.as_float64() is emulator and emulator.as_float64() is emulator

    @pytest.mark.parametrize("name", ["default", "parametric"])
    def test_magnitudes_within_1e4_mag_of_float64_over_1e5_draws(self, name):
        emulator = default_emulator(name)
        worst = max(float32_mag_difference(emulator, uniform_inputs(emulator, 20000, seed=s))
                    for s in range(10, 15))  # 10^5 draws in 5 batches
        assert worst < 1e-4

    def test_float32_check_measures_the_same_difference_and_refuses_what_it_cannot_draw(self):
        from prospect_emulator import StitchedEmulator
        from prospect_emulator.errors import EmulatorConfigurationError
        from prospect_emulator.runtime.emulator import float32_check
        emulator = default_emulator("parametric")
        check = float32_check(emulator, n_draws=3000, seed=4, chunk=1000)
        lo, hi = emulator.param_ranges.T
        rng = np.random.default_rng(4)     # the same draws, chunk by chunk
        worst = max(float32_mag_difference(emulator, rng.uniform(lo, hi, (1000, len(lo))))
                    for _ in range(3))
        assert check["max_mag_difference"] == worst and check["n_draws"] == 3000
        assert check["within"] and check["allowed"] == 1e-4
        with pytest.raises(EmulatorConfigurationError, match="n_draws must be >= 1"):
            float32_check(emulator, n_draws=0)
        unbounded = emulator.select(emulator.filter_names)
        unbounded.param_ranges = np.array(emulator.param_ranges, dtype=float)
        unbounded.param_ranges[0, 1] = np.inf
        with pytest.raises(EmulatorConfigurationError, match=r"\['logmass'\] have none"):
            float32_check(unbounded)
        with pytest.raises(EmulatorConfigurationError, match="single Emulator"):
            float32_check(StitchedEmulator.__new__(StitchedEmulator))


def finite_difference_gradient(like, theta):
    step = 1e-6 * (1.0 + np.abs(theta))
    return np.array([(like(theta + h * e) - like(theta - h * e)) / (2 * h)
                     for h, e in zip(step, np.eye(len(theta)))])


def assert_gradient_matches(like, model, seeds=(0, 1)):
    for seed in seeds:
        # away from the priors' edges, so that the differences stay inside
        u = np.random.default_rng(seed).uniform(0.15, 0.85, size=model.ndim)
        theta = model.prior_transform(u)
        lnp, grad = like.lnprob_and_grad(theta)
        assert lnp == pytest.approx(like(theta), rel=1e-12)
        numerical = finite_difference_gradient(like, theta)
        scale = max(1.0, np.abs(numerical).max())
        np.testing.assert_allclose(grad, numerical, rtol=1e-5, atol=1e-6 * scale)


@pytest.fixture(scope="module")
def filters():
    from sedpy.observate import load_filters
    from prospect_emulator.data import COSMOS_FILTERS
    return load_filters(list(COSMOS_FILTERS))


class TestLnprobGradient:
    @pytest.mark.parametrize("noise_kind", ["diagonal", "covariance", "none"])
    def test_default_emulator(self, filters, noise_kind):
        model = quiet_model("default")
        obs = mock_obs(model, filters, mask_band="wfc3_ir_f140w")
        noise = None if noise_kind == "none" else EmulatorNoiseModel(
            model, covariance=noise_kind == "covariance")
        assert_gradient_matches(VectorisedLikelihood(model, obs, noise), model)

    def test_nested_mode_is_the_likelihood_gradient(self, filters):
        model = quiet_model("default")
        obs = mock_obs(model, filters)
        assert_gradient_matches(VectorisedLikelihood(model, obs, EmulatorNoiseModel(model),
                                                     nested=True), model, seeds=(2,))

    def test_log_inputs_log_uniform_priors_and_lumdist(self, filters):
        # d x / d mass = 1 / (mass ln 10); (d_L(zred) / lumdist)^2 depends on the free zred
        model = quiet_model("parametric", lumdist=3000.0)
        obs = mock_obs(model, filters, seed=4)
        assert_gradient_matches(VectorisedLikelihood(model, obs, EmulatorNoiseModel(model)), model)

    def test_inputs_from_a_depends_on_transform_use_finite_differences(self, filters):
        model = quiet_model("parametric", tage={"isfree": False, "depends_on": stock.tage_from_tuniv},
                            tage_tuniv={"N": 1, "isfree": True, "init": 0.5,
                                        "prior": priors.TopHat(mini=0.01, maxi=1.0)})
        obs = mock_obs(model, filters, seed=6)
        like = VectorisedLikelihood(model, obs, EmulatorNoiseModel(model, covariance=True))
        assert not like._batched.inputs_direct
        assert_gradient_matches(like, model)

    def test_outside_the_prior_or_training_range_the_gradient_is_nan(self, filters):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = quiet_model("default", zred={"prior": priors.TopHat(mini=0.2, maxi=3.6)})
        like = VectorisedLikelihood(model, mock_obs(model, filters))
        theta = model.prior_transform(np.full(model.ndim, 0.5))
        theta[model.theta_index["zred"].start] = 0.3  # inside the prior, outside the training range
        lnp, grad = like.lnprob_and_grad(theta)
        assert lnp == -np.inf and np.isnan(grad).all()
        theta[model.theta_index["zred"].start] = 4.0  # outside the prior
        lnp, grad = like.lnprob_and_grad(theta)
        assert lnp == -np.inf and np.isnan(grad).all()
