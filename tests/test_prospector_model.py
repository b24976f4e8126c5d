"""EmulatedSpecModel inside real Prospector: inputs by name, filter order,
errors that must (or must not) become -inf in lnprobfn, and the fast prior."""
import warnings

import numpy as np
import pytest
from prospect.fitting import lnprobfn
from prospect.models import priors, transforms
from prospect.models.parameters import ProspectorParams
from prospect.models.templates import TemplateLibrary
from sedpy.observate import load_filters

from conftest import make_random_emulator
from prospect_emulator import (EmulatorConfigurationError, EmulatorFileError,
                               NonFiniteInputError, OutOfTrainingRangeError, arsinh_mags_to_maggies)
from prospect_emulator.fitting.models import fitting_model_params
from prospect_emulator.prospector import (EmulatedSpecModel, FastPriorProduct,
                                          TrainingRangeWarning)
from prospect_emulator.priors import FastPriorTransform, prior_cdf

EMULATOR_FILTERS = ["galex_NUV", "sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0",
                    "twomass_J", "twomass_H", "wise_w1", "wise_w2"]
# deliberately not the order of the model's parameters
EMULATOR_INPUTS = ["zred", "logsfr_ratios_1", "logmass", "dust2", "logsfr_ratios_2",
                   "logzsol", "gas_logz"]
TRAINING_RANGES = {"zred": (0.5, 3.0), "logmass": (6.0, 12.5), "logzsol": (-1.98, 0.19),
                   "logsfr_ratios_1": (-5, 5), "logsfr_ratios_2": (-5, 5), "dust2": (0, 4),
                   "gas_logz": (-2, 0.5)}


def continuity_emulator(extra_names=("mfrac",), **kwargs):
    """A small random emulator with the inputs of the continuity-SFH template."""
    n_f = len(EMULATOR_FILTERS)
    stats = np.tile([-0.08, -0.06, -0.04, -0.02, 0, 0.02, 0.04, 0.06, 0.08, 0.0, 0.02], (n_f, 1))
    return make_random_emulator(
        n_params=len(EMULATOR_INPUTS), width=16, n_hidden=2, filter_names=EMULATOR_FILTERS,
        param_names=EMULATOR_INPUTS, param_ranges=[TRAINING_RANGES[p] for p in EMULATOR_INPUTS],
        output_mean=23.5, residual_stats=stats, extra_names=extra_names, seed=4, **kwargs)


def continuity_params():
    """Prospector's continuity-SFH + nebular templates with priors inside the
    training ranges (zred fixed per object, gas_logz tied to logzsol)."""
    params = TemplateLibrary["continuity_sfh"]
    params.update(TemplateLibrary["nebular"])  # gas_logz: depends_on stellar_logzsol
    params["zred"]["init"] = 1.2
    params["logzsol"]["prior"] = priors.TopHat(mini=-1.9, maxi=0.19)
    params["logsfr_ratios"]["prior"] = priors.ClippedNormal(mean=np.zeros(2), sigma=np.full(2, 0.3),
                                                            mini=np.full(2, -5.0), maxi=np.full(2, 5.0))
    return params


def quiet_model(params=None, emulator=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingRangeWarning)  # fixtures must be warning-free
        return EmulatedSpecModel(params or continuity_params(),
                                 emulator=emulator or continuity_emulator(), **kwargs)


def photometry_obs(names, maggies=None):
    filters = load_filters(names)
    maggies = np.full(len(names), 1e-9) if maggies is None else maggies
    return {"filters": filters, "maggies": maggies, "maggies_unc": 0.05 * maggies,
            "wavelength": None, "spectrum": None}


def inputs_by_hand(model, emulator):
    """The emulator input vector assembled independently from model.params."""
    p = model.params
    values = {"zred": p["zred"][0], "logmass": p["logmass"][0], "dust2": p["dust2"][0],
              "logzsol": p["logzsol"][0], "gas_logz": p["gas_logz"][0],
              "logsfr_ratios_1": p["logsfr_ratios"][0], "logsfr_ratios_2": p["logsfr_ratios"][1]}
    return np.array([values[n] for n in emulator.param_names])




# --------------------------------------------------------------- prediction
class TestPredict:
    def test_photometry_follows_the_order_of_obs_filters(self):
        emu = continuity_emulator()
        model = quiet_model(emulator=emu)
        theta = model.theta.copy()
        names = ["wise_w1", "sdss_g0", "twomass_H", "sdss_u0"]
        spec, phot, mfrac = model.predict(theta, obs=photometry_obs(names), sps=None)
        expected = emu.predict_maggies(inputs_by_hand(model, emu))[emu.filter_indices(names)]
        np.testing.assert_allclose(phot, expected, rtol=1e-13)
        assert spec.size == 0
        # names instead of Filter objects give the same photometry
        obs = photometry_obs(names)
        obs["filters"] = list(names)
        np.testing.assert_allclose(model.predict(theta, obs=obs)[1], expected, rtol=1e-13)

    def test_sedpy_filterset_and_no_filters(self):
        from sedpy.observate import FilterSet
        model = quiet_model()
        names = ["sdss_r0", "sdss_g0"]
        by_list = model.predict(model.theta, obs=photometry_obs(names))[1]
        obs = photometry_obs(names)
        obs["filters"] = FilterSet(names)
        np.testing.assert_array_equal(model.predict(model.theta, obs=obs)[1], by_list)
        # no photometry requested: Prospector's convention phot = 0.0; mfrac still given
        spec, phot, mfrac = model.predict(model.theta, obs={"filters": None})
        assert phot == 0.0 and spec.size == 0 and np.isfinite(mfrac)

    def test_switching_between_obs_uses_the_right_filters(self):
        model = quiet_model()
        theta = model.theta.copy()
        a = model.predict(theta, obs=photometry_obs(["sdss_r0", "sdss_i0"]))[1]
        b = model.predict(theta, obs=photometry_obs(["sdss_i0"]))[1]
        c = model.predict(theta, obs=photometry_obs(["sdss_r0", "sdss_i0"]))[1]
        assert b[0] == a[1] and np.array_equal(a, c)

    def test_a_filter_list_changed_in_place_is_noticed(self):
        model = quiet_model()
        obs = photometry_obs(["sdss_r0", "sdss_i0"])
        before = model.predict(model.theta, obs=obs)[1]
        obs["filters"][0] = load_filters(["sdss_z0"])[0]
        after = model.predict(model.theta, obs=obs)[1]
        assert after[1] == before[1] and after[0] != before[0]

    def test_vector_fixed_and_depends_on_parameters_feed_the_inputs(self):
        emu = continuity_emulator()
        model = quiet_model(emulator=emu)
        theta = model.theta.copy()
        theta[model.theta_index["logsfr_ratios"]] = [0.7, -1.3]
        theta[model.theta_index["logzsol"]] = -0.4
        model.predict(theta, obs=photometry_obs(["sdss_r0"]))
        x = model.last_emulator_inputs
        named = dict(zip(emu.param_names, x))
        assert named["logsfr_ratios_1"] == 0.7 and named["logsfr_ratios_2"] == -1.3
        assert named["gas_logz"] == -0.4  # nebular template: gas_logz = logzsol
        assert named["zred"] == 1.2  # fixed
        np.testing.assert_array_equal(x, inputs_by_hand(model, emu))

    def test_a_per_object_fixed_redshift_is_used(self):
        emu = continuity_emulator()
        model = quiet_model(emulator=emu)
        obs = photometry_obs(["sdss_r0", "wise_w1"])
        model.params["zred"] = np.array([2.4])
        phot = model.predict(model.theta, obs=obs)[1]
        x = inputs_by_hand(model, emu)
        assert x[emu.param_names.index("zred")] == 2.4
        np.testing.assert_allclose(phot, emu.predict_maggies(x)[[3, 8]], rtol=1e-13)

    def test_prospector_alpha_style_transform_in_depends_on(self):
        """dust1 computed from dust2 and a free ratio, as in Prospector-alpha."""
        names = ["logmass", "dust2", "dust1", "zred"]
        emu = make_random_emulator(n_params=4, filter_names=("sdss_g0", "sdss_r0"),
                                   param_names=names,
                                   param_ranges=[(6, 13), (0, 4), (0, 8), (0, 3)])
        params = {"logmass": {"N": 1, "isfree": True, "init": 10.0, "prior": priors.TopHat(mini=8, maxi=12)},
                  "dust2": {"N": 1, "isfree": True, "init": 0.5, "prior": priors.TopHat(mini=0, maxi=2)},
                  "dust_ratio": {"N": 1, "isfree": True, "init": 1.0,
                                 "prior": priors.ClippedNormal(mean=1, sigma=0.3, mini=0, maxi=2)},
                  "dust1": {"N": 1, "isfree": False, "init": 0.0,
                            "depends_on": transforms.dustratio_to_dust1},
                  "zred": {"N": 1, "isfree": False, "init": 0.3}}
        model = quiet_model(params, emulator=emu)
        theta = np.array([10.2, 0.8, 1.5])
        model.predict(theta, obs=photometry_obs(["sdss_g0"]))
        assert model.last_emulator_inputs[2] == pytest.approx(1.2)  # 0.8 * 1.5

    def test_mfrac_comes_from_the_emulator_or_is_nan(self):
        emu = continuity_emulator(extra_names=("mfrac",), extra_transforms=["log10"])
        model = quiet_model(emulator=emu)
        obs = photometry_obs(["sdss_r0"])
        mfrac = model.predict(model.theta, obs=obs)[2]
        assert mfrac == pytest.approx(emu.predict_extra(model.last_emulator_inputs, "mfrac"), rel=1e-13)
        no_extra = quiet_model(emulator=continuity_emulator(extra_names=()))
        assert np.isnan(no_extra.predict(no_extra.theta, obs=obs)[2])

    def test_no_sps_home_needed(self, monkeypatch):
        monkeypatch.delenv("SPS_HOME", raising=False)
        model = quiet_model()
        assert model.predict(model.theta, obs=photometry_obs(["sdss_r0"]))[1][0] > 0

    def test_predict_after_theta_changed_in_place_uses_the_new_values(self):
        model = quiet_model()
        obs = photometry_obs(["sdss_r0"])
        theta = model.theta.copy()
        model.set_parameters(theta)
        first = model.predict(theta, obs=obs)[1][0]
        theta[model.theta_index["logmass"]] += 1.0
        second = model.predict(theta, obs=obs)[1][0]
        assert second == pytest.approx(model.predict(theta.copy(), obs=obs)[1][0], rel=1e-14)
        assert second != first

    @pytest.mark.parametrize("which", ["continuity template", "fitting model"])
    def test_set_parameters_equals_prospectors(self, which):
        """Free parameters and every depends_on parameter (for the fitting model:
        zred -> agebins, masses, dust1, duste_gamma, gas_logz through the fast
        transforms, called positionally)."""
        if which == "fitting model":
            from prospect_emulator.fitting.models import fitting_model_params
            from prospect_emulator.definition.presets import get_preset
            emu = make_random_emulator(
                n_params=15, width=8, n_hidden=1, filter_names=["sdss_r0"],
                param_names=get_preset("default").param_names,
                param_ranges=[(-np.inf, np.inf)] * 15, seed=0)
            stock = ProspectorParams(fitting_model_params(1.7))
            model = quiet_model(fitting_model_params(1.7), emulator=emu)
            model.set_parameters(model.theta)
            assert all(argnames is not None for _, _, argnames in model._dependencies)  # fast path
        else:
            stock = ProspectorParams(continuity_params())
            model = quiet_model(continuity_params())
        rng = np.random.default_rng(2)
        for _ in range(20):
            theta = model.prior_transform(rng.uniform(size=model.ndim))
            stock.set_parameters(theta)
            model.set_parameters(theta)
            assert stock.params.keys() == model.params.keys()
            for k in stock.params:
                np.testing.assert_allclose(model.params[k], stock.params[k], rtol=1e-12, err_msg=k)
                assert np.ndim(model.params[k]) == np.ndim(stock.params[k]), k

    def test_native_file_path_gives_the_same_model(self, tmp_path):
        emu = continuity_emulator()
        emu.save(tmp_path / "emu.h5")
        from_file = quiet_model(emulator=str(tmp_path / "emu.h5"))
        from_object = quiet_model(emulator=emu)
        obs = photometry_obs(["sdss_g0", "wise_w2"])
        np.testing.assert_array_equal(from_file.predict(from_file.theta, obs=obs)[1],
                                      from_object.predict(from_object.theta, obs=obs)[1])

    def test_a_float32_emulator_drops_in_and_stays_float32_for_the_obs_filters(self):
        """The single-call speed of issue 10: Prospector's path on the float32 pass."""
        emu = continuity_emulator()
        fast = quiet_model(emulator=emu.as_float32())
        exact = quiet_model(emulator=emu)
        obs = photometry_obs(["sdss_g0", "wise_w2", "twomass_H"])
        f32 = fast.predict(fast.theta, obs=obs)[1]
        f64 = exact.predict(exact.theta, obs=obs)[1]
        assert fast._plan_for(obs["filters"]).emulator.precision == "float32"
        np.testing.assert_allclose(-2.5 * np.log10(f32 / f64), 0.0, atol=1e-4)
        near = photometry_obs(["sdss_g0", "wise_w2", "twomass_H"], maggies=1.05 * f64)
        assert lnprobfn(fast.theta, fast, near, sps=None) == pytest.approx(
            lnprobfn(exact.theta, exact, near, sps=None), abs=1e-3)


# ------------------------------------------------------------------ errors
class TestBadInput:
    def test_unknown_filter_raises_through_lnprobfn_naming_it(self):
        model = quiet_model()
        obs = photometry_obs(["sdss_r0", "twomass_Ks"])
        with pytest.raises(EmulatorConfigurationError, match="twomass_Ks.*closest.*twomass_H"):
            lnprobfn(model.theta, model=model, obs=obs, sps=None)

    def test_spectrum_request_raises_through_lnprobfn(self):
        model = quiet_model()
        obs = photometry_obs(["sdss_r0"])
        obs["wavelength"] = np.linspace(3000, 9000, 50)
        obs["spectrum"] = np.ones(50)
        obs["unc"] = np.ones(50)
        with pytest.raises(EmulatorConfigurationError, match="photometric emulator"):
            lnprobfn(model.theta, model=model, obs=obs, sps=None)

    def test_missing_input_parameter_names_it_and_lists_model_parameters(self):
        params = continuity_params()
        del params["gas_logz"]
        with pytest.raises(EmulatorConfigurationError, match="'gas_logz'.*Model parameters:.*logmass"):
            EmulatedSpecModel(params, emulator=continuity_emulator())

    def test_vector_parameter_of_the_wrong_length(self):
        params = continuity_params()
        params["logsfr_ratios"].update(N=3, init=np.zeros(3), prior=priors.TopHat(
            mini=np.full(3, -1.0), maxi=np.full(3, 1.0)))
        params["agebins"].update(N=4, init=np.array([[0, 8], [8, 8.5], [8.5, 9], [9, 10]]))
        params["mass"].update(N=4, init=np.ones(4))
        with pytest.raises(EmulatorConfigurationError, match="'logsfr_ratios' has 3 elements"):
            EmulatedSpecModel(params, emulator=continuity_emulator())

    def test_nan_input_raises_through_lnprobfn(self):
        model = quiet_model()
        model.params["zred"] = np.array([np.nan])
        with pytest.raises(NonFiniteInputError, match="zred"):
            lnprobfn(model.theta, model=model, obs=photometry_obs(["sdss_r0"]), sps=None)

    def test_proposal_outside_training_range_gets_minus_infinity(self):
        params = continuity_params()
        params["logmass"]["prior"] = priors.TopHat(mini=5.0, maxi=12.0)  # wider than [6, 12.5]
        with pytest.warns(TrainingRangeWarning):
            model = EmulatedSpecModel(params, emulator=continuity_emulator())
        theta = model.theta.copy()
        theta[model.theta_index["logmass"]] = 5.5
        assert np.isfinite(model.prior_product(theta))
        assert lnprobfn(theta, model=model, obs=photometry_obs(["sdss_r0"]), sps=None) == -np.inf
        with pytest.raises(OutOfTrainingRangeError, match="logmass=5.5"):
            model.predict(theta, obs=photometry_obs(["sdss_r0"]))

    def test_fixed_parameter_outside_training_range_is_a_setup_error(self):
        params = continuity_params()
        params["zred"]["init"] = 3.5
        with pytest.warns(TrainingRangeWarning, match="fixed parameter 'zred'"):
            model = EmulatedSpecModel(params, emulator=continuity_emulator())
        with pytest.raises(EmulatorConfigurationError, match=r"zred=3.5 not in \[0.5, 3\]"):
            lnprobfn(model.theta, model=model, obs=photometry_obs(["sdss_r0"]), sps=None)

    def test_unreadable_or_foreign_emulator_files(self, tmp_path):
        with pytest.raises(EmulatorFileError, match="no emulator file"):
            EmulatedSpecModel(continuity_params(), emulator=str(tmp_path / "missing.h5"))
        junk = tmp_path / "junk.h5"
        junk.write_bytes(b"not an emulator")
        with pytest.raises(EmulatorFileError, match="not a readable HDF5"):
            EmulatedSpecModel(continuity_params(), emulator=junk)
        with pytest.raises(EmulatorConfigurationError, match="emulator="):
            EmulatedSpecModel(continuity_params(), emulator={"weights": []})
        # without emulator= the shipped one for the model's SFH is used: this
        # hand-made 2-ratio continuity model does not fit the default emulator
        with pytest.raises(EmulatorConfigurationError, match="logsfr_ratios"):
            EmulatedSpecModel(continuity_params())

    def test_wide_priors_warn_with_both_ranges(self):
        params = continuity_params()
        params["logzsol"]["prior"] = priors.TopHat(mini=-2.5, maxi=0.19)
        with pytest.warns(TrainingRangeWarning) as record:
            EmulatedSpecModel(params, emulator=continuity_emulator())
        (message,) = [str(w.message) for w in record if w.category is TrainingRangeWarning]
        assert "'logzsol'" in message and "[-2.5, 0.19]" in message and "[-1.98, 0.19]" in message

    def test_template_student_t_prior_warns_for_every_element(self):
        params = continuity_params()
        params["logsfr_ratios"]["prior"] = TemplateLibrary["continuity_sfh"]["logsfr_ratios"]["prior"]
        with pytest.warns(TrainingRangeWarning, match="logsfr_ratios_1.*inf.*logsfr_ratios_2"):
            EmulatedSpecModel(params, emulator=continuity_emulator())


# -------------------------------------------------------------- fast prior
def _all_free(template_names, extra=()):
    params = {}
    for name in template_names:
        params.update(TemplateLibrary[name])
    for name, info in params.items():
        if info.get("prior") is not None and info.get("depends_on") is None and name not in extra:
            info["isfree"] = True
    return params


PRIOR_MODELS = {
    "continuity+dust_emission+agn+nebular": lambda: _all_free(
        ["continuity_sfh", "dust_emission", "agn", "nebular"]),
    "prospector_alpha": lambda: _all_free(["alpha"]),
    "every_prior_class": lambda: {
        "a": {"N": 1, "isfree": True, "init": 0.0, "prior": priors.Normal(mean=0.3, sigma=2.0)},
        "b": {"N": 2, "isfree": True, "init": [1.0, 1.0],
              "prior": priors.LogNormal(mode=np.array([0.0, 1.0]), sigma=np.array([0.5, 1.0]))},
        "c": {"N": 1, "isfree": True, "init": 0.5, "prior": priors.Uniform(mini=-1, maxi=3)},
        "d": {"N": 3, "isfree": True, "init": np.zeros(3),
              "prior": priors.StudentT(mean=np.array([0, 1, 2]), scale=np.array([0.3, 1, 3]),
                                              df=np.array([1, 2, 5]))},
        "e": {"N": 1, "isfree": True, "init": 0.5, "prior": priors.Beta(alpha=0.7, beta=3.0)},
        "f": {"N": 1, "isfree": True, "init": 0.0, "prior": priors.SkewNormal(location=0, sigma=1, skew=2)},
        "g": {"N": 1, "isfree": True, "init": 0.5, "prior": priors.FastUniform(a=0.0, b=2.0)},
        "h": {"N": 1, "isfree": True, "init": 1.0,
              "prior": priors.ClippedNormal(mean=5.0, sigma=1.0, mini=0.0, maxi=2.0)},
    },
}


def _random_thetas(model, rng, n):
    """Draws from the prior, a third pushed slightly beyond the support."""
    thetas = np.array([model.prior_transform(rng.uniform(1e-6, 1 - 1e-6, model.ndim))
                       for _ in range(n)])
    jitter = rng.normal(scale=0.1, size=thetas.shape) * np.abs(thetas).clip(0.1)
    thetas[::3] += jitter[::3]
    return thetas


@pytest.mark.parametrize("name", sorted(PRIOR_MODELS))
def test_fast_prior_equals_prospector(name):
    stock = ProspectorParams(PRIOR_MODELS[name]())
    fast = FastPriorProduct(stock)
    rng = np.random.default_rng(7)
    thetas = _random_thetas(stock, rng, 300)
    with np.errstate(all="ignore"):
        expected = np.array([stock.prior_product(t) for t in thetas])
    got = np.array([fast(t) for t in thetas])
    assert np.isneginf(expected).sum() > 10  # the test visits outside the support
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=0, atol=1e-10)
    # batched evaluation (as write_results uses for the whole chain)
    np.testing.assert_allclose(fast(thetas)[finite], expected[finite], rtol=0, atol=1e-10)
    assert np.isneginf(fast(thetas)[~finite]).all()


@pytest.mark.parametrize("name", sorted(PRIOR_MODELS))
def test_nested_prior_equals_prospectors_nested_prior(name):
    """dynesty's mode (nested=True): 0.0 inside the support, -inf outside."""
    stock = ProspectorParams(PRIOR_MODELS[name]())
    fast = FastPriorProduct(stock)
    thetas = _random_thetas(stock, np.random.default_rng(8), 300)
    with np.errstate(all="ignore"):
        expected = np.array([stock.prior_product(t, nested=True) for t in thetas])
    got = np.array([fast.nested(t) for t in thetas])
    assert np.isneginf(expected).sum() > 10 and (expected == 0.0).sum() > 10
    np.testing.assert_array_equal(got, expected)


def test_fast_prior_edges_nan_and_nested_semantics():
    params = continuity_params()
    model = quiet_model(params)
    stock = ProspectorParams(continuity_params())
    theta = model.theta.copy()
    i = model.theta_index["dust2"].start
    for value, inside in [(0.0, True), (2.0, True), (-1e-12, False), (2.0 + 1e-12, False)]:
        theta[i] = value  # dust2 has TopHat(0, 2), a closed interval
        with np.errstate(divide="ignore"):
            expected = stock.prior_product(theta)
        assert np.isfinite(expected) == inside
        assert model.prior_product(theta) == pytest.approx(expected, abs=1e-10)
    theta[i] = 0.5
    assert model.prior_product(theta, nested=True) == 0.0
    theta[i] = np.nan
    with np.errstate(invalid="ignore"):
        assert np.isnan(stock.prior_product(theta)) and np.isnan(model.prior_product(theta))
    theta[i] = 3.0
    assert model.prior_product(theta, nested=True) == -np.inf


def test_prior_product_is_rebuilt_when_the_free_parameters_change():
    model = quiet_model()
    before = model.prior_product(model.theta)
    model.config_dict["dust2"]["isfree"] = False
    model.configure()
    stock = ProspectorParams(continuity_params())
    stock.config_dict["dust2"]["isfree"] = False
    stock.configure()
    assert model.ndim == stock.ndim
    assert model.prior_product(model.theta) == pytest.approx(stock.prior_product(stock.theta), abs=1e-10)
    assert model.prior_product(model.theta) != before


# ------------------------------------------------------- fast prior transform
def stock_prior_transform_rows(model, unit_coords):
    """Prospector's ``model.prior_transform`` applied to every row of
    ``unit_coords``: the same ``prior.unit_transform`` calls, one per
    parameter on all rows at once (scipy's ppf is elementwise)."""
    theta = np.zeros(unit_coords.shape)
    with np.errstate(all="ignore"):
        for name, inds in model.theta_index.items():
            theta[:, inds] = model.config_dict[name]["prior"].unit_transform(unit_coords[:, inds])
    return theta


def unit_vectors_with_extreme_tails(rng, n, ndim):
    """Uniform draws with a tenth of the elements at 1e-12 or 1 - 1e-12."""
    unit = rng.uniform(size=(n, ndim))
    unit[rng.uniform(size=unit.shape) < 0.05] = 1e-12
    unit[rng.uniform(size=unit.shape) < 0.05] = 1.0 - 1e-12
    return unit


def assert_transform_close(got, expected):
    """1e-10 relative, or absolute for values below 1 in magnitude; equal
    infinities and NaNs."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(got[np.isinf(expected)], expected[np.isinf(expected)])
    finite = np.isfinite(expected)
    error = np.abs(got[finite] - expected[finite]) / np.maximum(np.abs(expected[finite]), 1.0)
    assert error.max(initial=0.0) < 1e-10, error.max()


class TestFastPriorTransform:
    def test_the_row_helper_is_prospectors_prior_transform(self):
        stock = ProspectorParams(fitting_model_params(zred=1.3))
        unit = unit_vectors_with_extreme_tails(np.random.default_rng(0), 50, stock.ndim)
        expected = np.array([stock.prior_transform(u) for u in unit])
        np.testing.assert_array_equal(stock_prior_transform_rows(stock, unit), expected)

    def test_fitting_model_equals_prospector_on_ten_thousand_vectors(self):
        # TopHat, truncated Student-t (vector) and ClippedNormal priors of the fitting model
        stock = ProspectorParams(fitting_model_params(zred=1.3))
        fast = FastPriorTransform(stock)
        # every prior in closed form: ours, or Prospector's own closed-form truncated t
        assert [type(p) for p, _ in fast.fallback] == [priors.FastTruncatedEvenStudentTFreeDeg2]
        unit = unit_vectors_with_extreme_tails(np.random.default_rng(1), 10_000, stock.ndim)
        expected = stock_prior_transform_rows(stock, unit)
        got = np.array([fast(u) for u in unit])
        assert_transform_close(got, expected)
        # batched evaluation gives the same numbers as one vector at a time
        np.testing.assert_array_equal(fast(unit), got)
        np.testing.assert_array_equal(fast(unit.reshape(100, 100, -1)), got.reshape(100, 100, -1))

    @pytest.mark.parametrize("name", sorted(PRIOR_MODELS))
    def test_every_prior_class_equals_prospector(self, name):
        # Normal, LogNormal, Uniform, vector StudentT, a ClippedNormal window in
        # the lower tail; Beta, SkewNormal and FastUniform are left to Prospector
        stock = ProspectorParams(PRIOR_MODELS[name]())
        fast = FastPriorTransform(stock)
        unit = unit_vectors_with_extreme_tails(np.random.default_rng(2), 2000, stock.ndim)
        expected = stock_prior_transform_rows(stock, unit)
        got = np.array([fast(u) for u in unit])
        assert_transform_close(got, expected)
        assert_transform_close(fast(unit), expected)

    def test_other_prior_classes_are_transformed_by_prospector(self):
        fast = FastPriorTransform(ProspectorParams(PRIOR_MODELS["every_prior_class"]()))
        assert sorted(type(prior).__name__ for prior, _ in fast.fallback) == \
            ["Beta", "FastUniform", "SkewNormal"]

    @pytest.mark.parametrize("mean, sigma, mini, maxi", [
        (0.0, 1.0, -3.0, 10.0),    # quantiles beyond z = 4 are ill-conditioned: scipy's own
        (0.0, 0.3, -5.0, 5.0),     # +-17 sigma: the mass rounds to 1
        (-3.0, 1.0, 0.0, 7.0),     # a = 3: the window lies in the upper tail
        (0.0, 1.0, 30.0, 31.0),    # far upper tail: the complementary form keeps precision
        (0.0, 1.0, -12.0, -11.9),  # narrow window in the far lower tail
        (5.0, 1.0, 0.0, 2.0),      # both bounds below the mean
        (0.0, 1.0, -0.001, 50.0),  # almost a half-normal
        (1.0, 2.0, 1.0, 9.0),      # a = 0 exactly
        (0.0, 1.0, -45.0, -40.0),  # beyond ~37 sigma: left to Prospector
    ])
    def test_clipped_normal_windows_in_the_tails(self, mean, sigma, mini, maxi):
        prior = priors.ClippedNormal(mean=mean, sigma=sigma, mini=mini, maxi=maxi)
        stock = ProspectorParams({"x": {"N": 1, "isfree": True, "init": 0.5 * (mini + maxi),
                                        "prior": prior}})
        fast = FastPriorTransform(stock)
        rng = np.random.default_rng(3)
        u = np.concatenate([rng.uniform(size=1500), 10 ** -rng.uniform(1, 15, 300),
                            1 - 10 ** -rng.uniform(1, 15, 300), [1e-300, 1e-12, 0.5, 1 - 1e-12]])
        expected = stock_prior_transform_rows(stock, u[:, None])
        got = fast(u[:, None])
        assert_transform_close(got, expected)
        slack = 1e-12 * max(abs(mini), abs(maxi), abs(mean))  # the rounding of mean + sigma z
        assert np.all((got >= mini - slack) & (got <= maxi + slack))

    def test_ends_of_the_unit_interval_and_invalid_coordinates(self):
        stock = ProspectorParams(PRIOR_MODELS["every_prior_class"]())
        stock.config_dict["h"]["prior"] = priors.ClippedNormal(mean=0.3, sigma=1.0, mini=0.0, maxi=4.0)
        stock.config_dict["i"] = {"N": 1, "isfree": True, "init": 1.0,
                                  "prior": priors.LogUniform(mini=0.1, maxi=10.0)}
        stock.configure()
        fast = FastPriorTransform(stock)
        for value in [0.0, 1.0, -0.1, 1.1, np.nan]:
            unit = np.full((1, stock.ndim), value)
            # u = 0 and 1: the ends of the support (-inf for the Student-t,
            # where scipy.special.stdtrit itself gives +inf); outside: NaN
            assert_transform_close(fast(unit[0]), stock_prior_transform_rows(stock, unit)[0])
        student_t = stock.theta_index["d"]
        assert np.all(fast(np.zeros(stock.ndim))[student_t] == -np.inf)

    def test_emulated_spec_model_uses_it_and_rebuilds_it(self):
        model = quiet_model()
        stock = ProspectorParams(continuity_params())
        unit = unit_vectors_with_extreme_tails(np.random.default_rng(4), 200, model.ndim)
        expected = stock_prior_transform_rows(stock, unit)
        assert_transform_close(np.array([model.prior_transform(u) for u in unit]), expected)
        assert_transform_close(model.prior_transform(unit), expected)
        assert isinstance(model._fast_transform, FastPriorTransform)
        # fewer free parameters: a new transform of the new length
        model.config_dict["dust2"]["isfree"] = False
        model.configure()
        stock.config_dict["dust2"]["isfree"] = False
        stock.configure()
        u = unit[0, :model.ndim]
        assert model.prior_transform(u).shape == (model.ndim,)
        assert_transform_close(model.prior_transform(u), stock.prior_transform(u))


def test_arsinh_maggies_of_predict_match_the_emulator_magnitudes():
    model = quiet_model()
    _, phot, _ = model.predict(model.theta, obs=photometry_obs(["sdss_r0", "sdss_u0"]))
    np.testing.assert_allclose(phot, arsinh_mags_to_maggies(model.last_arsinh_mags), rtol=1e-13)


class TestPriorCDF:
    """``prior_cdf`` inverts ``prior_transform``: the whitened coordinates of
    amortized posteriors, y = Phi^-1(prior_cdf(theta)), rest on it."""

    @pytest.mark.parametrize("name", ["fitting_model"] + sorted(PRIOR_MODELS))
    def test_it_inverts_the_prior_transform(self, name):
        params = (fitting_model_params(zred=1.3) if name == "fitting_model"
                  else PRIOR_MODELS[name]())
        stock = ProspectorParams(params)
        unit = np.random.default_rng(5).uniform(1e-6, 1 - 1e-6, size=(2000, stock.ndim))
        theta = stock_prior_transform_rows(stock, unit)
        np.testing.assert_allclose(prior_cdf(stock, theta), unit, rtol=0, atol=1e-9)
        first = stock.free_params[0]
        only = prior_cdf(stock, theta, [first])               # one parameter, the rest NaN
        inds = stock.theta_index[first]
        np.testing.assert_array_equal(only[:, inds], prior_cdf(stock, theta)[:, inds])
        assert np.isnan(np.delete(only, np.r_[inds], axis=1)).all()

    def test_outside_the_support_it_gives_the_ends(self):
        stock = ProspectorParams(fitting_model_params(zred=1.3))
        ratios = stock.theta_index["logsfr_ratios"]
        theta = stock.prior_transform(np.full(stock.ndim, 0.5))
        theta[ratios] = [-7.0, 7.0, 0.0, -5.0, 5.0, 0.1]     # the prior is cut at +-5
        u = prior_cdf(stock, theta)[ratios]
        np.testing.assert_allclose(u[[0, 1, 2, 3, 4]], [0.0, 1.0, 0.5, 0.0, 1.0], atol=1e-12)
        assert 0.5 < u[5] < 1.0

    @pytest.mark.filterwarnings("ignore:m has wrong length prior")
    def test_a_prior_without_a_cdf_is_an_error_naming_it(self):
        stock = ProspectorParams({"m": {"N": 2, "isfree": True, "init": np.zeros(2),
                                        "prior": priors.MultiVariateNormal(
                                            mean=np.zeros(2), Sigma=np.eye(2))}})
        with pytest.raises(EmulatorConfigurationError, match="'m'.*MultiVariateNormal"):
            prior_cdf(stock, np.zeros((3, 2)))
