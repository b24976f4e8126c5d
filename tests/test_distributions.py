"""Training distributions (paper Table 1) and training-set configurations."""
import numpy as np
import pytest
from scipy import integrate, stats

from prospect_emulator.errors import EmulatorConfigurationError
from prospect_emulator.definition.distributions import (TruncatedNormal, TruncatedStudentT, Uniform,
                                                      distribution_from_dict)
from prospect_emulator.definition.presets import (PAPER_PRIOR_DISTRIBUTIONS,
                                                PAPER_TRAINING_DISTRIBUTIONS, get_preset,
                                                load_config)

N = 200_000


def _moments_by_quadrature(dist):
    """Mean and variance of the truncated distribution from its pdf (independent of sampling)."""
    mean = integrate.quad(lambda x: x * dist.pdf(x), dist.low, dist.high, limit=200)[0]
    second = integrate.quad(lambda x: x * x * dist.pdf(x), dist.low, dist.high, limit=200)[0]
    return mean, second - mean ** 2


# --- sampling ----------------------------------------------------------------
@pytest.mark.parametrize("dist", [
    Uniform(6.0, 12.5),
    TruncatedNormal(0.3, 3.0, 0.0, 4.0),
    TruncatedNormal(1.0, 20.0, 0.1, 25.0),
    TruncatedNormal(-2.0, 0.5, 0.0, 1.0),         # bounds 4 sigma into the upper tail
    TruncatedStudentT(0.0, 3.0, -5.0, 5.0, df=2),
    TruncatedStudentT(0.0, 0.3, -5.0, 5.0, df=2),
], ids=repr)
def test_samples_stay_in_bounds_and_match_scipy_moments(dist):
    x = dist.sample(np.random.default_rng(42), N)
    assert x.shape == (N,)
    assert x.min() >= dist.low and x.max() <= dist.high
    mean, var = _moments_by_quadrature(dist)
    sem = np.sqrt(var / N)
    assert abs(x.mean() - mean) < 5 * sem
    assert abs(x.var() - var) < 0.02 * var
    # the whole shape, not just two moments
    assert stats.kstest(x, dist.cdf).pvalue > 1e-3


def test_truncated_normal_matches_scipy_truncnorm():
    dist = TruncatedNormal(0.3, 3.0, 0.0, 4.0)
    ref = stats.truncnorm((0.0 - 0.3) / 3.0, (4.0 - 0.3) / 3.0, loc=0.3, scale=3.0)
    x = np.linspace(-1, 5, 61)
    np.testing.assert_allclose(dist.pdf(x), ref.pdf(x), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(dist.cdf(x), ref.cdf(x), rtol=1e-10, atol=1e-14)


def test_student_t_pdf_is_the_renormalised_scaled_t():
    dist = TruncatedStudentT(0.0, 3.0, -5.0, 5.0, df=2)
    parent = stats.t(2, loc=0.0, scale=3.0)
    mass = parent.cdf(5.0) - parent.cdf(-5.0)
    x = np.array([-6.0, -5.0, -1.0, 0.0, 2.5, 5.0, 7.0])
    expected = np.where(np.abs(x) <= 5, parent.pdf(x) / mass, 0.0)
    np.testing.assert_allclose(dist.pdf(x), expected, rtol=1e-12)
    assert integrate.quad(dist.pdf, -5, 5)[0] == pytest.approx(1.0, abs=1e-10)
    assert np.all(np.isneginf(dist.logpdf([-5.1, 5.1])))


def test_uniform_pdf_and_bounds():
    dist = Uniform(-1.2, 0.4)
    assert dist.bounds == (-1.2, 0.4)
    np.testing.assert_allclose(dist.pdf([-2.0, -1.0, 0.0, 1.0]), [0, 1 / 1.6, 1 / 1.6, 0])


def test_same_seed_same_samples_regardless_of_how_they_are_split():
    dist = TruncatedStudentT(0.0, 3.0, -5.0, 5.0)
    whole = dist.sample(np.random.default_rng(7), 1000)
    rng = np.random.default_rng(7)
    parts = np.concatenate([dist.sample(rng, 300), dist.sample(rng, 700)])
    np.testing.assert_array_equal(whole, parts)
    assert not np.array_equal(whole, dist.sample(np.random.default_rng(8), 1000))


def test_paper_training_distributions_have_thicker_tails_than_the_priors():
    """Sec. 4.2: the training set puts far more samples at extreme SFR ratios."""
    train, prior = PAPER_TRAINING_DISTRIBUTIONS, PAPER_PRIOR_DISTRIBUTIONS
    x_train = train["logsfr_ratios_1"].sample(0, N)
    x_prior = prior["logsfr_ratios_1"].sample(0, N)
    tail_train = np.mean(np.abs(x_train) >= 4)
    tail_prior = np.mean(np.abs(x_prior) >= 4)
    assert tail_prior < 0.005          # paper: ~0.2% of prior draws with 4 <= |x| <= 5
    assert tail_train > 10 * tail_prior
    for name in ("dust2", "dust1_fraction", "duste_qpah", "duste_umin", "log_duste_gamma"):
        assert train[name].sigma > prior[name].sigma
        assert train[name].bounds == prior[name].bounds


# --- configuration errors --------------------------------------------------------
@pytest.mark.parametrize("make, message", [
    (lambda: Uniform(1.0, 1.0, name="zred"), "low=1.0 >= high=1.0"),
    (lambda: Uniform(2.0, 1.0, name="zred"), "impossible bounds"),
    (lambda: Uniform(0.0, np.inf, name="zred"), "must be finite"),
    (lambda: TruncatedNormal(0.0, 1.0, 50.0, 60.0, name="dust2"), "no probability"),
    (lambda: TruncatedNormal(0.0, -1.0, 0.0, 1.0, name="dust2"), "sigma must be > 0"),
    (lambda: TruncatedStudentT(0.0, 0.0, -5.0, 5.0, name="logsfr_ratios_1"), "scale must be > 0"),
    (lambda: TruncatedStudentT(0.0, 1e-5, 4.0, 5.0, name="logsfr_ratios_1"), "no probability"),
])
def test_impossible_distributions_are_refused_with_the_parameter_name(make, message):
    with pytest.raises(EmulatorConfigurationError, match=message) as err:
        make()
    assert not isinstance(err.value, ValueError)


def test_distribution_from_dict_errors_name_what_is_allowed():
    with pytest.raises(EmulatorConfigurationError, match="unknown distribution kind 'gaussian'"):
        distribution_from_dict({"kind": "gaussian", "low": 0, "high": 1}, name="dust2")
    with pytest.raises(EmulatorConfigurationError, match="missing sigma"):
        distribution_from_dict({"kind": "truncated_normal", "mean": 0, "low": 0, "high": 1})
    with pytest.raises(EmulatorConfigurationError, match="unknown width"):
        distribution_from_dict({"kind": "uniform", "low": 0, "high": 1, "width": 2})


def test_dict_round_trip_of_each_kind():
    for dist in (Uniform(0.5, 3.0), TruncatedNormal(2.0, 4.0, 0.0, 7.0),
                 TruncatedStudentT(0.0, 3.0, -5.0, 5.0, df=2)):
        assert distribution_from_dict(dist.to_dict()) == dist
    assert distribution_from_dict({"kind": "t", "loc": 0, "scale": 1, "low": -1, "high": 1}).df == 2


# --- presets and TOML ----------------------------------------------------------
def test_presets_inputs_follow_the_paper():
    paper18, default = get_preset("paper18"), get_preset("default")
    assert paper18.n_params == 18 and default.n_params == 15
    assert paper18.param_names[:8] == ["logmass", "logzsol"] + [f"logsfr_ratios_{i}" for i in range(1, 7)]
    assert set(paper18.param_names) - set(default.param_names) == {"log_fagn", "log_agn_tau", "gas_logz"}
    assert default.distributions["zred"].bounds == (0.5, 3.0)
    assert default.distributions["logsfr_ratios_3"] == TruncatedStudentT(0.0, 3.0, -5.0, 5.0, df=2)
    assert paper18.sps == "fsps" and default.sps == "bagpipes"


def test_redshift_range_override():
    config = get_preset("default", zred_range=(1.0, 2.0))
    assert config.distributions["zred"].bounds == (1.0, 2.0)
    z = config.sample(500, seed=3)[:, config.param_names.index("zred")]
    assert z.min() >= 1.0 and z.max() <= 2.0


def test_sampling_is_per_parameter_and_reproducible():
    default, paper18 = get_preset("default"), get_preset("paper18")
    a = default.sample(300, seed=11)
    np.testing.assert_array_equal(a, default.sample(300, seed=11))
    np.testing.assert_array_equal(a[:100], default.sample(100, seed=11))
    # a column depends on the seed and its own name only: shared inputs agree across presets
    b = paper18.sample(300, seed=11)
    for j, name in enumerate(default.param_names):
        np.testing.assert_array_equal(a[:, j], b[:, paper18.param_names.index(name)])
    assert not np.array_equal(a, default.sample(300, seed=12))
    lo, hi = default.param_ranges.T
    assert np.all((a >= lo) & (a <= hi))


def test_toml_round_trip(tmp_path):
    config = get_preset("default").with_changes(
        distributions={"dust2": {"kind": "truncated_normal", "mean": 0.5, "sigma": 2.0,
                                 "low": 0.0, "high": 3.0},
                       "logsfr_ratios": {"kind": "student_t", "loc": 0.0, "scale": 1.0,
                                         "low": -4.0, "high": 4.0}},
        fixed={"gas_logu": -2.5}, zred_range=(0.2, 1.0))
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    again = load_config(path)
    assert again == config
    np.testing.assert_array_equal(again.sample(50, 1), config.sample(50, 1))


def test_toml_file_changes_a_preset(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'preset = "default"\n'
        "[distributions]\n"
        'zred = {kind = "uniform", low = 0.1, high = 0.5}\n'
        'logsfr_ratios = {kind = "truncated_student_t", loc = 0.0, scale = 0.3, low = -5.0, high = 5.0}\n'
        "[fixed]\n"
        "log_duste_gamma = -2.0\n")
    config = load_config(path)
    assert "log_duste_gamma" not in config.param_names and config.n_params == 14
    assert config.distributions["logsfr_ratios_6"].scale == 0.3
    assert config.distributions["zred"].bounds == (0.1, 0.5)
    model = config.build_model()
    assert model.theta_labels() == config.param_names
    model.set_parameters(config.sample(1, 0)[0])
    assert model.params["duste_gamma"] == pytest.approx(0.01)
    # command-line style override applied after the file
    assert load_config(path, zred_range=(2.0, 2.5)).distributions["zred"].bounds == (2.0, 2.5)


@pytest.mark.parametrize("toml, message", [
    ('[distributions]\nlogmas = {kind = "uniform", low = 6, high = 12}\n',
     "unknown input parameter 'logmas'.*closest: logmass"),
    ('[distributions]\nzred = {kind = "uniform", low = 3, high = 1}\n', "impossible bounds"),
    ('[distributions]\ndust2 = {kind = "truncated_normal", mean = 0.3, sigma = 0.01, low = 3, high = 4}\n',
     "no probability"),
    ('[distributions]\nzred = {kind = "uniform", low = 0.5, high = 40}\n', "too high"),
    ('[fixed]\nagebins = 1.0\n', "computed from the inputs"),
    ('[fixed]\ngas_logx = -2\n', "unknown fixed parameter 'gas_logx'.*gas_logu"),
    ('presett = "default"\n', "unknown configuration key"),
    ('preset = "paper19"\n', "unknown preset 'paper19'.*paper18"),
    ("[distributions\n", "not valid TOML"),
])
def test_bad_toml_configurations_fail_with_a_clear_message(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(EmulatorConfigurationError, match=message):
        load_config(path)


def test_a_distribution_for_a_fixed_model_parameter_makes_it_an_input():
    config = get_preset("default").with_changes(
        distributions={"gas_logu": {"kind": "uniform", "low": -3.0, "high": -1.0}})
    assert config.param_names[-1] == "gas_logu" and "gas_logu" not in config.fixed
    assert config.build_model().theta_labels() == config.param_names
    with pytest.raises(EmulatorConfigurationError, match="both a fixed value and a distribution"):
        get_preset("default").with_changes(
            distributions={"gas_logu": {"kind": "uniform", "low": -3.0, "high": -1.0}},
            fixed={"gas_logu": -2.0})


def test_the_model_maps_inputs_to_sps_parameters():
    """Prospector-alpha transforms: agebins from zred, masses, dust1, duste_gamma."""
    from prospect.sources.constants import cosmo
    config = get_preset("default")
    model = config.build_model()
    theta = config.sample(1, 4)[0]
    model.set_parameters(theta)
    p = dict(zip(config.param_names, theta))
    agebins = model.params["agebins"]
    tuniv = cosmo.age(p["zred"]).to("yr").value
    assert agebins.shape == (7, 2)
    np.testing.assert_allclose(10 ** agebins[:2, 1], [3e7, 1e8], rtol=1e-4)
    np.testing.assert_allclose(10 ** agebins[-1], [0.85 * tuniv, tuniv], rtol=1e-10)
    np.testing.assert_allclose(np.diff(agebins[2:-1, 1]), np.diff(agebins[2:-1, 1])[0])  # log-spaced
    assert model.params["mass"].sum() == pytest.approx(10 ** p["logmass"], rel=1e-10)
    sfr = model.params["mass"] / np.diff(10 ** agebins, axis=1).ravel()
    np.testing.assert_allclose(np.log10(sfr[:-1] / sfr[1:]),
                               [p[f"logsfr_ratios_{i}"] for i in range(1, 7)], atol=1e-8)
    assert model.params["dust1"] == pytest.approx(p["dust1_fraction"] * p["dust2"])
    assert model.params["duste_gamma"] == pytest.approx(10 ** p["log_duste_gamma"])
    assert model.params["gas_logz"] == pytest.approx(p["logzsol"])
    assert model.params["dust_type"] == 4 and model.params["add_igm_absorption"]
    paper18 = get_preset("paper18")
    model = paper18.build_model()
    theta = paper18.sample(1, 4)[0]
    model.set_parameters(theta)
    p = dict(zip(paper18.param_names, theta))
    assert model.params["fagn"] == pytest.approx(10 ** p["log_fagn"])
    assert model.params["agn_tau"] == pytest.approx(10 ** p["log_agn_tau"])
    assert model.params["gas_logz"] == pytest.approx(p["gas_logz"])


def test_spec_model_works_without_sps_home(monkeypatch):
    """Prospector's SpecModel raises TypeError when SPS_HOME is unset; ours does not."""
    monkeypatch.delenv("SPS_HOME", raising=False)
    from prospect.models import SpecModel
    params = get_preset("default").build_model_params()
    with pytest.raises(TypeError):
        SpecModel(params)
    model = get_preset("default").build_model()
    assert len(model.emline_info) == 0
