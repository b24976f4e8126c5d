"""The JAX twin of the vectorised likelihood (the ``jax`` extra): the same
numbers as ``VectorisedLikelihood.lnlike`` row by row, and clear errors for
what it does not serve."""
import warnings

import numpy as np
import pytest

pytest.importorskip("jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from prospect.models import priors  # noqa: E402

from prospect_emulator import EmulatedSpecModel, EmulatorNoiseModel  # noqa: E402
from prospect_emulator.data import COSMOS_FILTERS  # noqa: E402
from prospect_emulator.errors import EmulatorConfigurationError  # noqa: E402
from prospect_emulator.fitting.jax_likelihood import JaxLikelihood, jax_float64  # noqa: E402
from prospect_emulator.fitting.run import make_obs  # noqa: E402
from prospect_emulator.prospector.vectorised import VectorisedLikelihood  # noqa: E402


def shipped_model(name, **fixed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EmulatedSpecModel.from_emulator(name, **fixed)


def mock_obs(model, filters, seed=1):
    """Photometry of the model's initial parameters, 10% noise."""
    flux = model.predict(model.theta, obs=make_obs(filters, np.ones(len(filters)),
                                                   np.ones(len(filters))))[1].copy()
    rng = np.random.default_rng(seed)
    return make_obs(filters, flux * (1 + 0.1 * rng.normal(size=flux.size)), 0.1 * flux)


def both(like, unit):
    """(JAX ln L on the unit cube, NumPy ln L of the same parameters)."""
    with jax_float64():
        jax_values = np.asarray(jax.jit(jax.vmap(JaxLikelihood(like).lnlike_unit))(
            jnp.asarray(unit)))
    return jax_values, like.lnlike(like.prior_transform(unit))


@pytest.mark.parametrize("covariance", [False, True])
def test_default_model_equals_the_vectorised_likelihood(covariance):
    model = shipped_model("default", zred=1.2)
    obs = mock_obs(model, list(COSMOS_FILTERS))
    like = VectorisedLikelihood(model, obs, EmulatorNoiseModel(model, covariance=covariance),
                                nested=True)
    unit = np.random.default_rng(2).uniform(size=(300, model.ndim))
    got, expected = both(like, unit)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)


def test_whitened_coordinates_are_the_unit_cube_through_the_normal_cdf():
    """lnlike_normal(y) = ln L(prior_transform(Phi(y))); lnprior_normal is N(0, 1)."""
    from scipy.special import ndtr
    from scipy.stats import norm
    model = shipped_model("default", zred=1.2)
    like = VectorisedLikelihood(model, mock_obs(model, list(COSMOS_FILTERS)),
                                EmulatorNoiseModel(model), nested=True)
    y = np.random.default_rng(5).normal(size=(200, model.ndim))
    jl = JaxLikelihood(like)
    with jax_float64():
        got = np.asarray(jax.jit(jax.vmap(jl.lnlike_normal))(jnp.asarray(y)))
        prior = np.asarray(jax.vmap(jl.lnprior_normal)(jnp.asarray(y)))
    np.testing.assert_allclose(got, like.lnlike(like.prior_transform(ndtr(y))), rtol=1e-10)
    np.testing.assert_allclose(prior, norm.logpdf(y).sum(axis=1), rtol=1e-12)
    far = np.zeros((2, model.ndim))
    far[:, 2] = [-40.0, 9.0]  # Phi(y) rounds to 0 or 1: outside the open cube, not NaN
    with jax_float64():
        assert np.all(np.asarray(jax.vmap(jl.lnlike_normal)(jnp.asarray(far))) == -np.inf)


def test_log10_inputs_and_no_noise_model():
    """The parametric model's emulator takes log10 of mass and tage."""
    model = shipped_model("parametric", zred=0.3, tau=1.0, logzsol=-0.3)
    obs = mock_obs(model, ["sdss_u0", "sdss_g0", "sdss_r0", "twomass_Ks"])
    like = VectorisedLikelihood(model, obs, None, nested=True)
    unit = np.random.default_rng(3).uniform(size=(200, model.ndim))
    got, expected = both(like, unit)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)


def test_outside_the_prior_or_the_unit_cube_is_minus_infinity():
    model = shipped_model("default", zred=1.2)
    like = VectorisedLikelihood(model, mock_obs(model, list(COSMOS_FILTERS)),
                                EmulatorNoiseModel(model), nested=True)
    jl = JaxLikelihood(like)
    theta = np.array(model.theta, dtype=float)
    theta[0] = 13.0  # logmass above its prior (6 - 12.5)
    unit = np.full(model.ndim, 0.5)
    unit[3] = 1.2
    with jax_float64():
        assert float(jl.lnlike(jnp.asarray(theta))) == -np.inf == like.lnlike(theta)
        assert float(jl.lnlike_unit(jnp.asarray(unit))) == -np.inf


def test_an_input_computed_by_a_transform_is_refused():
    model = shipped_model("default", zred=1.2)
    config = model.config_list if hasattr(model, "config_list") else None
    assert config is not None
    params = {p["name"]: dict(p) for p in config}
    # dust1_fraction computed from dust2: no longer a free parameter or a fixed value
    params["dust1_fraction"] = {"N": 1, "isfree": False, "init": 1.0,
                                "depends_on": lambda dust2=None, **extras: 0.5 + 0.2 * dust2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        derived = EmulatedSpecModel(params, emulator=model.emulator)
    like = VectorisedLikelihood(derived, mock_obs(derived, list(COSMOS_FILTERS)), None,
                                nested=True)
    with pytest.raises(EmulatorConfigurationError, match=r"input\(s\) \['dust1_fraction'\] are computed"):
        JaxLikelihood(like)


def test_a_prior_without_a_jax_transform_is_refused():
    model = shipped_model("default", zred=1.2)
    params = {p["name"]: dict(p) for p in model.config_list}
    params["dust_index"]["prior"] = priors.StudentT(mean=-0.4, scale=0.3, df=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = EmulatedSpecModel(params, emulator=model.emulator)
    like = VectorisedLikelihood(other, mock_obs(other, list(COSMOS_FILTERS)), None, nested=True)
    with pytest.raises(EmulatorConfigurationError, match="no closed form for \\['student_t'\\]"):
        JaxLikelihood(like)


def test_outside_float64_or_for_a_batch_it_says_how_to_call_it():
    model = shipped_model("default", zred=1.2)
    like = VectorisedLikelihood(model, mock_obs(model, list(COSMOS_FILTERS)), None, nested=True)
    jl = JaxLikelihood(like)
    with pytest.raises(EmulatorConfigurationError, match="inside `with jax_float64"):
        jl.lnlike(np.asarray(model.theta))
    with jax_float64(), pytest.raises(EmulatorConfigurationError, match="use jax.vmap"):
        jl.lnlike(jnp.zeros((3, model.ndim)))


def test_a_fixed_input_outside_the_training_range_is_refused():
    model = shipped_model("default", zred=1.2)
    params = {p["name"]: dict(p) for p in model.config_list}
    params["zred"]["init"] = 5.0  # the default emulator is trained for 0.5 < z < 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        far = EmulatedSpecModel(params, emulator=model.emulator)
    obs = mock_obs(model, list(COSMOS_FILTERS))
    like = VectorisedLikelihood(far, obs, None, nested=True)
    with pytest.raises(EmulatorConfigurationError, match="zred=5 not in"):
        JaxLikelihood(like)
