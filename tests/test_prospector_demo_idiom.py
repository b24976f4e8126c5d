"""Prospector v1.4's demo parameter-file idiom (``demo/demo_params.py``) with the
documented swap: the ``parametric_sfh`` template, ``lumdist = 1e-5`` Mpc
(absolute magnitudes), ``SedModel`` -> ``EmulatedSpecModel``, ``build_sps``
-> ``EmulatorSPS()``, ``build_noise`` -> ``EmulatorNoiseModel()``; the rest of the
script (``sps.ssp.libraries``, ``fit_model``, ``write_hdf5(..., sps=sps)``) unchanged.
"""
import numpy as np
import pytest

from prospect_emulator import EmulatedSpecModel, EmulatorNoiseModel, EmulatorSPS

FILTERS = ["galex_FUV", "galex_NUV", "sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0",
           "spitzer_irac_ch1", "spitzer_irac_ch2", "spitzer_irac_ch3", "spitzer_irac_ch4"]


# ---- a parameter file written as Prospector's demo writes one -------------
def build_model(object_redshift=0.0, luminosity_distance=1e-5, **extras):
    from prospect.models import priors
    from prospect.models.templates import TemplateLibrary
    model_params = TemplateLibrary["parametric_sfh"]
    if luminosity_distance > 0:
        model_params["lumdist"] = {"N": 1, "isfree": False, "init": luminosity_distance,
                                   "units": "Mpc"}
    model_params["dust2"]["init"] = 0.1
    model_params["logzsol"]["init"] = -0.3
    model_params["tage"]["init"] = 13.
    model_params["mass"]["init"] = 1e8
    model_params["dust2"]["prior"] = priors.TopHat(mini=0.0, maxi=2.0)
    model_params["tau"]["prior"] = priors.LogUniform(mini=1e-1, maxi=10)
    model_params["mass"]["prior"] = priors.LogUniform(mini=1e6, maxi=1e10)
    if object_redshift != 0.0:
        model_params["zred"]["isfree"] = False
        model_params["zred"]["init"] = object_redshift
    return EmulatedSpecModel(model_params)            # was sedmodel.SedModel(model_params)


def build_sps(**extras):
    return EmulatorSPS()                              # was CSPSpecBasis(zcontinuous=1)


def build_noise(**extras):
    return None, EmulatorNoiseModel()                 # was (None, None)


def build_obs(true_theta, model, snr=15.0, seed=3):
    """Absolute-magnitude photometry (lumdist 10 pc) of a known galaxy, 1/snr errors."""
    from prospect.utils.obsutils import fix_obs
    from sedpy.observate import load_filters
    obs = {"filters": load_filters(FILTERS), "wavelength": None, "spectrum": None,
           "maggies": np.ones(len(FILTERS)), "maggies_unc": np.ones(len(FILTERS))}
    truth = model.predict(true_theta, obs=obs)[1]
    rng = np.random.default_rng(seed)
    obs["maggies"] = truth * (1 + rng.normal(0, 1 / snr, len(FILTERS)))
    obs["maggies_unc"] = truth / snr
    obs["phot_mask"] = np.ones(len(FILTERS), bool)
    return fix_obs(obs)


class TestProspectorDemoIdiom:
    def test_the_model_swap_chooses_the_parametric_emulator_and_applies_lumdist(self):
        model = build_model()
        assert model.emulator.param_names == ["logmass", "logzsol", "logtage", "logtau",
                                              "dust2", "logzred"]
        assert model.parameter_treatments["lumdist"] == "applied"
        assert {model.parameter_treatments[p] for p in ("mass", "tage", "tau", "zred")} == {"input"}
        obs = build_obs(model.theta.copy(), model)
        # absolute magnitudes of a 1e8 Msun, 13 Gyr population: about -13 to -9 in the optical
        mags = -2.5 * np.log10(obs["maggies"][3:7])
        assert np.all((mags > -16) & (mags < -8)), mags

    @pytest.mark.slow
    def test_the_demo_script_runs_and_recovers_the_galaxy(self, tmp_path):
        from prospect.fitting import fit_model
        from prospect.io import read_results, write_results
        run_params = {"object_redshift": 0.0, "luminosity_distance": 1e-5,
                      "nested_nlive_init": 60, "nested_dlogz_init": 0.5,
                      "nested_target_n_effective": 300, "nested_maxbatch": 0,
                      "nested_sample": "rwalk", "print_progress": False,
                      "optimize": False, "dynesty": True}
        model = build_model(**run_params)
        sps = build_sps(**run_params)
        noise = build_noise(**run_params)
        truth = np.array([3e9, -0.5, 0.3, 8.0, 2.0])  # mass, logzsol, dust2, tage, tau
        labels = list(model.theta_labels())
        assert labels == ["mass", "logzsol", "dust2", "tage", "tau"]
        obs = build_obs(truth, model)
        run_params["sps_libraries"] = sps.ssp.libraries   # Prospector's own __main__ line
        output = fit_model(obs, model, sps, noise, **run_params)
        path = str(tmp_path / "demo_result.h5")
        write_results.write_hdf5(path, run_params, model, obs, output["sampling"][0], None,
                                 tsample=output["sampling"][1], sps=sps)
        res, _, _ = read_results.results_from(path)
        weights = np.exp(res["lnprobability"] * 0)  # shape check only; use dynesty weights below
        samples = np.asarray(output["sampling"][0]["samples"])
        w = np.exp(output["sampling"][0]["logwt"] - output["sampling"][0]["logz"][-1])
        w /= w.sum()
        logmass = np.log10(samples[:, 0])
        mean, sd = np.sum(w * logmass), np.sqrt(np.sum(w * (logmass - np.sum(w * logmass)) ** 2))
        assert abs(mean - np.log10(truth[0])) < max(3 * sd, 0.15), (mean, sd)
        assert "bestfit" in res and len(res["bestfit"]["photometry"]) == len(FILTERS)
        assert weights.shape == res["lnprobability"].shape
