"""Every sampler of fitting.samplers on a small problem with a known answer.

The problem: the shipped ``parametric`` emulator's model at z = 0.3 with tau
and the metallicity fixed (free: mass, dust2, tage), a mock made with the
same emulator at a known truth, 10 bands at S/N 20 plus the emulator's own
eq.-9 error.  Each sampler must recover the truth within its posterior
(|median - truth| < 3 sigma), give identical samples for the same seed, and
write a results file that Prospector's ``results_from`` and the package's
``load_fit`` read.
"""
import json
import warnings

import numpy as np
import pytest

from prospect_emulator import EmulatedSpecModel, EmulatorNoiseModel
from prospect_emulator.data import PARAMETRIC_EMULATOR_PATH
from prospect_emulator.errors import EmulatorConfigurationError
from prospect_emulator.fitting.quality import weighted_quantiles
from prospect_emulator.fitting.results import load_fit, model_recipe
from prospect_emulator.fitting.run import fit_galaxy, make_obs
from prospect_emulator.fitting.samplers import (DEFAULT_SAMPLER, SAMPLERS,
                                                SamplerConvergenceError,
                                                ShortChainWarning, run_sampler,
                                                sampler_settings, settings_from_cli)

BANDS = ["sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0", "twomass_J", "twomass_H",
         "twomass_Ks", "spitzer_irac_ch1", "spitzer_irac_ch2"]
ZRED = 0.3
FIXED = {"tau": 1.0, "logzsol": -0.3}
TRUTH = np.array([1e10, 0.5, 3.0])  # mass (Msun formed), dust2, tage (Gyr)

#: Small settings: seconds per run on a shared 2-core machine.
SMALL = {
    "dynesty": {"nlive": 40, "n_effective": 300},
    "dynesty-pool": {"nlive": 40, "n_effective": 300},
    "ultranest": {"nlive": 60, "min_ess": 200, "popsize": 10},
    "emcee": {"min_steps": 1000, "max_steps": 4000},
    "smc": {"n_particles": 2000, "chain_length": 20, "final_chain_length": 100},
    "blackjax-nss": {"nlive": 100, "num_delete": 20},
    "blackjax-nuts": {"num_chains": 2, "num_warmup": 200, "num_samples": 300, "n_init": 200},
}
#: Smaller still, for the results-file round trip (the posterior is not checked there).
TINY = {
    "dynesty": {"nlive": 20, "n_effective": 100, "maxcall": 5000},
    "dynesty-pool": {"nlive": 20, "n_effective": 100, "maxcall": 5000},
    "ultranest": {"nlive": 20, "min_ess": 50, "popsize": 5, "max_ncalls": 20000},
    "emcee": {"min_steps": 300, "max_steps": 300},
    "smc": {"n_particles": 200, "chain_length": 10, "final_chain_length": None},
    "blackjax-nss": {"nlive": 20, "num_delete": 5, "max_steps": 40},
    "blackjax-nuts": {"num_chains": 1, "num_warmup": 20, "num_samples": 50, "n_init": 20},
}


def small_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EmulatedSpecModel.from_emulator("parametric", zred=ZRED, **FIXED)


@pytest.fixture(scope="module")
def problem():
    """(model, obs, noise): a mock made with the emulator itself at TRUTH, S/N 20."""
    model = small_model()
    assert list(model.free_params) == ["mass", "dust2", "tage"]
    flux = model.predict(TRUTH, obs=make_obs(BANDS, np.ones(10), np.ones(10)))[1].copy()
    unc = flux / 20.0
    rng = np.random.default_rng(7)
    obs = make_obs(BANDS, flux + rng.normal(size=flux.size) * unc, unc)
    return model, obs, EmulatorNoiseModel(model, floor=0.0)


@pytest.fixture(scope="module")
def fits(problem):
    """Two runs with seed 3 and one with seed 4 of every sampler."""
    model, obs, noise = problem
    out = {}
    for name in SAMPLERS:
        out[name] = [run_sampler(name, model, obs, noise, seed=seed, **SMALL[name])
                     for seed in (3, 3, 4)]
    return out


@pytest.mark.slow
class TestEverySamplerRecoversTheTruth:
    @pytest.mark.parametrize("name", SAMPLERS)
    def test_truth_within_three_sigma(self, fits, name):
        fit = fits[name][0]
        q = weighted_quantiles(fit["samples"], fit["weights"], [0.16, 0.5, 0.84])
        sigma = 0.5 * (q[2] - q[0])
        assert np.all(sigma > 0)
        assert np.all(np.abs(q[1] - TRUTH) < 3 * sigma), (q[1], TRUTH, sigma)

    @pytest.mark.parametrize("name", SAMPLERS)
    def test_result_is_weighted_samples_with_costs(self, fits, problem, name):
        fit = fits[name][0]
        n = len(fit["samples"])
        assert fit["samples"].shape == (n, problem[0].ndim)
        assert fit["weights"].shape == fit["lnprobability"].shape == (n,)
        assert np.isclose(fit["weights"].sum(), 1.0)
        assert np.isfinite(fit["lnprobability"]).all()
        assert fit["ncall"] > n / 10 and fit["seconds"] > 0
        assert fit["sampler"] == name
        json.dumps(fit["settings"]), json.dumps(fit["diagnostics"])
        if name in ("emcee", "blackjax-nuts"):
            assert fit["logz"] is None
        else:  # nested samplers agree on the evidence, within 5 of their combined errors
            reference = fits["dynesty"][0]
            tolerance = max(5 * np.hypot(fit["logzerr"], reference["logzerr"]), 0.5)
            assert abs(fit["logz"] - reference["logz"]) < tolerance, (fit["logzerr"],
                                                                    reference["logzerr"])


@pytest.mark.slow
def test_blackjax_nss_in_the_unit_cube_samples_the_same_posterior(problem, fits):
    """space="unit-cube" (the default is "normal", y = Phi^-1(u) under a standard-normal
    prior): the same posterior and evidence, sampled in other coordinates."""
    pytest.importorskip("blackjax")
    model, obs, noise = problem
    whitened = fits["blackjax-nss"][0]
    assert whitened["settings"]["space"] == "normal"
    fit = run_sampler("blackjax-nss", model, obs, noise, seed=3, space="unit-cube",
                      **SMALL["blackjax-nss"])
    assert fit["settings"]["space"] == "unit-cube"
    q = weighted_quantiles(fit["samples"], fit["weights"], [0.16, 0.5, 0.84])
    r = weighted_quantiles(whitened["samples"], whitened["weights"], [0.16, 0.5, 0.84])
    sigma = 0.5 * (q[2] - q[0])
    assert np.all(np.abs(q[1] - TRUTH) < 3 * sigma), (q[1], TRUTH, sigma)
    assert np.all(np.abs(q[1] - r[1]) < 0.5 * sigma)
    assert abs(fit["logz"] - whitened["logz"]) < max(
        5 * np.hypot(fit["logzerr"], whitened["logzerr"]), 0.5)


@pytest.mark.slow
def test_blackjax_nuts_chains_that_disagree_are_refused_when_required(problem):
    """Split R-hat above max_rhat: NUTS explores one mode per chain, so disagreeing
    chains are an error with require_converged (a warning otherwise)."""
    pytest.importorskip("blackjax")
    model, obs, noise = problem
    strict = dict(SMALL["blackjax-nuts"], num_warmup=20, num_samples=20, max_rhat=1.000001)
    with pytest.raises(SamplerConvergenceError, match="R-hat .* for (mass|dust2|tage)"):
        run_sampler("blackjax-nuts", model, obs, noise, seed=3, require_converged=True, **strict)
    with pytest.warns(RuntimeWarning, match="chains disagree"):
        fit = run_sampler("blackjax-nuts", model, obs, noise, seed=3, **strict)
    assert fit["diagnostics"]["converged"] is False


@pytest.mark.slow
class TestSeeds:
    @pytest.mark.parametrize("name", SAMPLERS)
    def test_same_seed_identical_samples(self, fits, name):
        a, b, _ = fits[name]
        np.testing.assert_array_equal(a["samples"], b["samples"])
        np.testing.assert_array_equal(a["weights"], b["weights"])

    @pytest.mark.parametrize("name", SAMPLERS)
    def test_other_seed_other_samples(self, fits, name):
        a, _, c = fits[name]
        assert a["samples"].shape != c["samples"].shape or not np.array_equal(a["samples"],
                                                                               c["samples"])


class TestEmceeChainLength:
    def test_short_chain_warns(self, problem):
        model, obs, noise = problem
        with pytest.warns(ShortChainWarning, match="autocorrelation times"):
            fit = run_sampler("emcee", model, obs, noise, seed=1, min_steps=100, max_steps=100)
        assert fit["diagnostics"]["converged"] is False
        assert fit["diagnostics"]["chain_length_in_autocorr_times"] < 50

    def test_short_chain_refused_when_required(self, problem):
        model, obs, noise = problem
        with pytest.raises(SamplerConvergenceError, match="max_steps"):
            run_sampler("emcee", model, obs, noise, seed=1, min_steps=100, max_steps=100,
                        require_converged=True)


class TestResultsFiles:
    @pytest.mark.parametrize("name", SAMPLERS)
    def test_results_from_and_load_fit_read_it(self, problem, tmp_path, name):
        from prospect.io.read_results import results_from
        model, obs, noise = problem
        path = str(tmp_path / f"{name}.h5")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortChainWarning)  # a tiny emcee run
            fit = fit_galaxy(obs, model, noise, seed=5, results_path=path, sampler=name,
                             sampler_settings=TINY[name],
                             run_params=model_recipe(PARAMETRIC_EMULATOR_PATH, zred=ZRED,
                                                     **FIXED))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res, res_obs, _ = results_from(path)
        np.testing.assert_array_equal(res["chain"], fit["samples"])
        np.testing.assert_allclose(res["weights"] / res["weights"].sum(), fit["weights"])
        np.testing.assert_allclose(res["lnprobability"], fit["lnprobability"])
        assert res["run_params"]["sampler"] == name
        assert res["run_params"]["seed"] == 5
        assert res["theta_labels"] == list(model.theta_labels())
        assert len(res["bestfit"]["photometry"]) == len(BANDS)
        assert [f.name for f in res_obs["filters"]] == BANDS

        loaded, loaded_obs, rebuilt = load_fit(path)
        assert list(rebuilt.free_params) == list(model.free_params)
        np.testing.assert_array_equal(loaded["chain"], fit["samples"])
        assert loaded["fit_quality"]["n_bands"] == len(BANDS)
        assert loaded["run_params"]["sampler_settings"] == fit["settings"]
        ncall = loaded["ncall"]  # dynesty's file: calls per iteration
        assert (sum(ncall) if isinstance(ncall, list) else ncall) == fit["ncall"]


class TestDemoCommand:
    def test_demo_takes_a_sampler(self):
        from prospect_emulator.cli.main import build_parser
        args = build_parser().parse_args(["demo", "--sampler", "ultranest", "--nlive", "300"])
        assert args.sampler == "ultranest"
        assert settings_from_cli(args.sampler, args.nlive, args.n_effective) == {"nlive": 300}

    def test_demo_fit_and_fit_galaxy_default_to_the_calibrated_numpy_sampler(self):
        import inspect
        from prospect_emulator.cli.main import build_parser
        from prospect_emulator.fitting.catalog import fit_catalog
        assert DEFAULT_SAMPLER == "smc"
        assert build_parser().parse_args(["demo"]).sampler == DEFAULT_SAMPLER
        assert build_parser().parse_args(["fit", "cat.fits", "--out", "o"]).sampler == "smc"
        for function in (fit_galaxy, fit_catalog):
            assert inspect.signature(function).parameters["sampler"].default == "smc"

    def test_sampler_settings_come_as_a_json_object(self, capsys):
        from prospect_emulator.cli.fit import cli_sampler_settings
        from prospect_emulator.cli.main import build_parser
        args = build_parser().parse_args(["fit", "cat.fits", "--out", "o", "--sampler-settings",
                                          '{"final_chain_length": 2000}'])
        assert cli_sampler_settings(args) == {"final_chain_length": 2000}
        with pytest.raises(SystemExit):
            build_parser().parse_args(["demo", "--sampler-settings", "[2000]"])
        assert "not a JSON object" in capsys.readouterr().err
        twice = build_parser().parse_args(["fit", "c.fits", "--out", "o", "--sampler", "dynesty",
                                           "--nlive", "300", "--sampler-settings",
                                           '{"nested_nlive_init": 500}'])
        with pytest.raises(EmulatorConfigurationError, match="nested_nlive_init given twice"):
            cli_sampler_settings(twice)

    def test_demo_refuses_an_unknown_sampler(self, capsys):
        from prospect_emulator.cli.main import build_parser
        with pytest.raises(SystemExit):
            build_parser().parse_args(["demo", "--sampler", "nautilus"])
        assert "invalid choice" in capsys.readouterr().err


class TestSettings:
    def test_unknown_sampler_named_with_the_choices(self, problem):
        model, obs, noise = problem
        with pytest.raises(EmulatorConfigurationError, match="ultranest"):
            run_sampler("nautilus", model, obs, noise)

    @pytest.mark.parametrize("name, bad", [("ultranest", "walks"), ("emcee", "nlive"),
                                           ("dynesty", "popsize")])
    def test_unknown_setting_lists_the_allowed_ones(self, name, bad):
        with pytest.raises(EmulatorConfigurationError, match="allowed|short names"):
            sampler_settings(name, ndim=3, **{bad: 1})

    def test_a_dynesty_keyword_prospector_would_ignore_is_refused(self):
        """Prospector 1.4's fit_model swallows unknown nested_* keywords (**extras): refused."""
        with pytest.raises(EmulatorConfigurationError, match="nested_slices.*would ignore it"):
            sampler_settings("dynesty", ndim=3, nested_slices=5)
        with pytest.raises(EmulatorConfigurationError, match="would ignore it"):
            sampler_settings("dynesty", ndim=3, slices=5)

    def test_nested_kwargs_with_another_sampler_are_refused_for_one_fit_and_a_catalogue(
            self, problem):
        from prospect_emulator.fitting.catalog import catalog_sampler_settings
        from prospect_emulator.fitting.run import fit_galaxy
        model, obs, noise = problem
        with pytest.raises(EmulatorConfigurationError, match="nested_kwargs are dynesty's"):
            fit_galaxy(obs, model, noise, nested_kwargs={"nlive": 50}, sampler="smc")
        with pytest.raises(EmulatorConfigurationError, match="sampler 'smc' takes sampler_settings"):
            catalog_sampler_settings("smc", 3, nested_kwargs={"nlive": 50})
        assert catalog_sampler_settings("dynesty", 3, nested_kwargs={"nlive": 50},
                                        settings={"walks": 30})["nested_walks"] == 30

    def test_dynesty_short_names_are_fit_model_keywords(self):
        s = sampler_settings("dynesty", nlive=123, walks=50)
        assert s["nested_nlive_init"] == 123 and s["nested_walks"] == 50

    def test_emcee_walkers_must_be_even_and_enough(self):
        with pytest.raises(EmulatorConfigurationError, match="even"):
            sampler_settings("emcee", ndim=14, nwalkers=21)

    def test_blackjax_nss_settings_name_what_is_allowed(self):
        s = sampler_settings("blackjax-nss", ndim=14)
        assert s["nsteps"] == 56 and s["num_delete"] < s["nlive"]   # 4 x ndim: calibrated
        with pytest.raises(EmulatorConfigurationError,
                           match="num_delete = 500.*1 <= num_delete < nlive"):
            sampler_settings("blackjax-nss", ndim=3, num_delete=500)
        with pytest.raises(EmulatorConfigurationError, match="frac_remain = 0"):
            sampler_settings("blackjax-nss", ndim=3, frac_remain=0)
        with pytest.raises(EmulatorConfigurationError, match="space 'unit-cube' or 'normal'"):
            sampler_settings("blackjax-nss", ndim=3, space="cube")

    def test_blackjax_nuts_settings_name_what_is_allowed(self):
        s = sampler_settings("blackjax-nuts", ndim=14)
        assert (s["num_chains"], s["num_warmup"], s["num_samples"]) == (4, 1000, 1000)
        with pytest.raises(EmulatorConfigurationError, match="target_acceptance = 1.5.*allowed"):
            sampler_settings("blackjax-nuts", ndim=3, target_acceptance=1.5)
        with pytest.raises(EmulatorConfigurationError, match="mass_matrix = 'full'.*'dense'"):
            sampler_settings("blackjax-nuts", ndim=3, mass_matrix="full")
        with pytest.raises(EmulatorConfigurationError, match="nlive"):
            sampler_settings("blackjax-nuts", ndim=3, nlive=100)

    def test_cli_options_map_per_sampler(self):
        assert settings_from_cli("dynesty", 200, 2000) == {
            "nested_nlive_init": 200, "nested_target_n_effective": 2000}
        assert settings_from_cli("ultranest", 300, 1000) == {"nlive": 300, "min_ess": 1000}
        assert settings_from_cli("emcee") == settings_from_cli("smc") == {}
        assert settings_from_cli("blackjax-nss", 300) == {"nlive": 300}
        assert settings_from_cli("dynesty") == {}  # DEFAULT_NESTED_KWARGS then

    @pytest.mark.parametrize("name, nlive, n_effective, refused", [
        ("smc", 200, None, "--nlive"), ("emcee", None, 2000, "--n-effective"),
        ("blackjax-nss", 300, 1000, "--n-effective"), ("blackjax-nuts", 1, 1, "--nlive and")])
    def test_cli_options_a_sampler_has_no_use_for_are_refused(self, name, nlive, n_effective,
                                                               refused):
        with pytest.raises(EmulatorConfigurationError, match=f"{refused}.*not used by"):
            settings_from_cli(name, nlive, n_effective)

    def test_nested_kwargs_refused_for_other_samplers(self, problem):
        model, obs, noise = problem
        with pytest.raises(EmulatorConfigurationError, match="sampler_settings"):
            fit_galaxy(obs, model, noise, sampler="emcee",
                       nested_kwargs={"nested_nlive_init": 100})

    def test_too_few_live_points_refused_for_dynesty(self, problem):
        model, obs, noise = problem
        with pytest.raises(EmulatorConfigurationError, match="twice"):
            run_sampler("dynesty-pool", model, obs, noise, nlive=4)
