"""The drop-in promise: a Prospector parameter file with the model class swapped
gets the emulator's right answer, or an error that says what to change."""
import warnings

import numpy as np
import pytest
from prospect.fitting import lnprobfn
from prospect.models import priors
from prospect.models.templates import TemplateLibrary

from prospect_emulator import (EmulatedSpecModel, EmulatorConfigurationError, EmulatorNoiseModel,
                               EmulatorSPS, TrainingRangeWarning)
from prospect_emulator.data import default_emulator, shipped_emulator_for
from prospect_emulator.fitting.run import make_obs
from prospect_emulator.prospector.physics import PARAMETER_TREATMENTS

BANDS = ["galex_NUV", "sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0", "spitzer_irac_ch1"]


def default_model_params(zred=1.0, **overrides):
    from prospect_emulator.fitting.models import fitting_model_params
    return fitting_model_params(zred, **overrides)


class TestModelFromTheEmulator:
    def test_shipped_default_builds_its_model_without_range_warnings(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error", TrainingRangeWarning)
            model = EmulatedSpecModel.from_emulator("default", zred=1.3)
        assert model.params["zred"][0] == 1.3
        assert type(model.config_dict["logsfr_ratios"]["prior"]) is \
            priors.FastTruncatedEvenStudentTFreeDeg2
        assert set(model.parameter_treatments.values()) <= set(PARAMETER_TREATMENTS)

    def test_shipped_parametric_builds_the_template_model_without_range_warnings(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error", TrainingRangeWarning)
            model = EmulatedSpecModel.from_emulator("parametric", zred=0.1, lumdist=1e-5)
        assert model.theta_labels() == ["mass", "logzsol", "dust2", "tage", "tau"]
        template = TemplateLibrary["parametric_sfh"]
        for name in ("logzsol", "dust2", "tage", "tau"):
            assert model.config_dict[name]["prior"].range == template[name]["prior"].range
        assert model.parameter_treatments["lumdist"] == "applied"

    def test_redshift_is_free_over_the_training_range_unless_given(self):
        model = EmulatedSpecModel.from_emulator("default")
        lo, hi = default_emulator().param_ranges[default_emulator().param_names.index("zred")]
        assert "zred" in model.free_params
        assert lo <= model.config_dict["zred"]["prior"].range[0] < model.config_dict["zred"]["prior"].range[1] <= hi

    def test_overrides_fix_or_respecify_parameters(self):
        model = EmulatedSpecModel.from_emulator(
            "default", zred=1.0, dust_index=-0.3,
            logzsol={"prior": priors.TopHat(mini=-1.0, maxi=0.0)})
        assert "dust_index" not in model.free_params and model.params["dust_index"][0] == -0.3
        assert model.config_dict["logzsol"]["prior"].range == (-1.0, 0.0)

    def test_the_shipped_emulator_is_chosen_by_the_models_sfh(self):
        assert shipped_emulator_for(TemplateLibrary["parametric_sfh"]) == "parametric"
        assert shipped_emulator_for(TemplateLibrary["continuity_sfh"]) == "default"
        assert shipped_emulator_for(default_model_params()) == "default"


class TestPhysicsTheEmulatorCannotHonour:
    """Each parameter that would be ignored is an error naming it, both values and the fix."""

    @pytest.mark.parametrize("name, value, expect", [
        ("add_neb_emission", False, r"add_neb_emission = False \(set\).*trained with add_neb_emission = True"),
        ("imf_type", 1, r"imf_type = 1 .*imf_type = 2"),
        ("dust_type", 0, r"dust_type = 0 .*dust_type = 4"),
        ("gas_logu", -3.0, r"gas_logu = -3 .*gas_logu = -2"),
        ("add_igm_absorption", False, r"add_igm_absorption = False"),
        ("tage", 5.0, r"tage = 5 \(set\).*tage = 0 \(FSPS default\)"),
        ("tau", 2.0, r"tau = 2 \(set\)"),
        ("fagn", 0.1, r"fagn = 0.1 \(set\)"),
        ("dust1", 0.2, r"dust1 = 0.2 \(set\).*computed from the inputs"),
    ])
    def test_a_fixed_parameter_that_differs_is_refused(self, name, value, expect):
        params = default_model_params()
        params.pop(name, None)
        params[name] = {"N": 1, "isfree": False, "init": value}
        with pytest.raises(EmulatorConfigurationError, match=expect) as err:
            EmulatedSpecModel(params, emulator="default")
        assert "docs/replace_fsps.md" in str(err.value) and "from_emulator" in str(err.value)

    def test_agebins_not_following_the_redshift_is_refused(self):
        params = default_model_params(zred=1.0)
        params["agebins"].pop("depends_on")
        params["agebins"]["init"] = params["agebins"]["init"] * 0.99
        with pytest.raises(EmulatorConfigurationError, match="agebins = "):
            EmulatedSpecModel(params, emulator="default")

    def test_a_missing_physics_switch_is_compared_with_fsps_default(self):
        params = default_model_params()
        del params["add_dust_emission"]   # FSPS default True: as trained
        EmulatedSpecModel(params, emulator="default")
        del params["add_neb_emission"]    # FSPS default False: the emulator has nebular emission
        with pytest.raises(EmulatorConfigurationError, match=r"add_neb_emission = False \(FSPS default\)"):
            EmulatedSpecModel(params, emulator="default")

    def test_lines_removed_or_mass_units_changed_are_refused(self):
        params = default_model_params()
        params["elines_to_ignore"] = {"N": 1, "isfree": False, "init": ["H alpha 6563"]}
        params["mass_units"] = {"N": 1, "isfree": False, "init": "mstar"}
        with pytest.raises(EmulatorConfigurationError) as err:
            EmulatedSpecModel(params, emulator="default")
        assert "elines_to_ignore" in str(err.value) and "mass_units" in str(err.value)

    def test_spectrum_only_and_private_parameters_are_accepted_and_recorded(self):
        params = default_model_params()
        params["sigma_smooth"] = {"N": 1, "isfree": False, "init": 200.0}
        params["my_note"] = {"N": 1, "isfree": False, "init": 3.0}
        model = EmulatedSpecModel(params, emulator="default")
        assert model.parameter_treatments["sigma_smooth"] == "spectrum only"
        assert model.parameter_treatments["my_note"] == "not an SPS parameter"
        assert model.parameter_treatments["imf_type"] == "physics"
        assert model.parameter_treatments["logmass"] == "input"

    def test_a_parametric_model_on_the_continuity_emulator_names_the_missing_inputs(self):
        with pytest.raises(EmulatorConfigurationError, match="logsfr_ratios_1.*not a parameter"):
            EmulatedSpecModel(TemplateLibrary["parametric_sfh"], emulator="default")


class TestLuminosityDistance:
    def test_lumdist_scales_fluxes_by_the_squared_distance_ratio(self):
        from astropy.cosmology import WMAP9
        obs = make_obs(BANDS, np.ones(len(BANDS)), np.ones(len(BANDS)))
        near = EmulatedSpecModel.from_emulator("default", zred=0.9, lumdist=10.0)
        far = EmulatedSpecModel.from_emulator("default", zred=0.9)
        theta = far.theta.copy()
        ratio = near.predict(theta, obs=obs)[1] / far.predict(theta, obs=obs)[1]
        expected = (WMAP9.luminosity_distance(0.9).to("Mpc").value / 10.0) ** 2
        np.testing.assert_allclose(ratio, expected, rtol=1e-12)

    def test_lumdist_must_be_positive(self):
        with pytest.raises(EmulatorConfigurationError, match="lumdist"):
            EmulatedSpecModel.from_emulator("default", zred=0.9, lumdist=0.0)

    def test_the_noise_model_keeps_the_emulator_error_fractional(self):
        # the same galaxy at its own distance and at 10 pc, observed at S/N 10 at each
        fractions = []
        for extra in ({}, {"lumdist": 10.0}):
            model = EmulatedSpecModel.from_emulator("default", zred=0.9, **extra)
            obs = make_obs(BANDS, np.ones(len(BANDS)), np.ones(len(BANDS)))
            phot = model.predict(model.theta, obs=obs)[1]
            obs = make_obs(BANDS, phot, 0.1 * phot)
            noise = EmulatorNoiseModel(model)
            assert np.isfinite(lnprobfn(model.theta, model=model, obs=obs, sps=None,
                                        noise=(None, noise)))
            fractions.append(np.sqrt(noise.Sigma) / phot)
        np.testing.assert_allclose(fractions[1], fractions[0], rtol=1e-10)


class TestParameterFileIdiom:
    def test_build_noise_without_a_model_binds_to_the_fitted_model(self):
        model = EmulatedSpecModel.from_emulator("default", zred=1.1)
        obs = make_obs(BANDS, np.ones(len(BANDS)), np.ones(len(BANDS)))
        phot = model.predict(model.theta, obs=obs)[1]
        obs = make_obs(BANDS, phot * 1.1, 0.05 * phot)
        bound = lnprobfn(model.theta, model=model, obs=obs, sps=None,
                         noise=(None, EmulatorNoiseModel(model)))
        unbound_noise = EmulatorNoiseModel()
        unbound = lnprobfn(model.theta, model=model, obs=obs, sps=EmulatorSPS(),
                           noise=(None, unbound_noise))
        assert unbound == bound and unbound_noise.model is model
        other = EmulatedSpecModel.from_emulator("default", zred=1.2)
        with pytest.raises(EmulatorConfigurationError, match="bound to another"):
            lnprobfn(other.theta, model=other, obs=obs, sps=None, noise=(None, unbound_noise))

    def test_emulator_sps_answers_what_prospector_scripts_ask(self, tmp_path):
        from prospect.io import read_results, write_results
        sps = EmulatorSPS(default_emulator())
        assert sps.ssp.libraries[0] == "emulator" and "bagpipes" in sps.ssp.libraries[1]
        model = EmulatedSpecModel.from_emulator("default", zred=1.1)
        obs = make_obs(BANDS, np.ones(len(BANDS)), np.ones(len(BANDS)))
        phot = model.predict(model.theta, obs=obs)[1]
        obs = make_obs(BANDS, phot, 0.1 * phot)
        from prospect.fitting import fit_model
        output = fit_model(obs, model, sps, noise=(None, EmulatorNoiseModel()), optimize=False,
                           dynesty=True, nested_nlive_init=20, nested_maxcall=1500,
                           nested_maxiter_init=300, nested_maxbatch=0, print_progress=False)
        path = str(tmp_path / "r.h5")
        write_results.write_hdf5(path, {}, model, obs, output["sampling"][0], None,
                                 tsample=output["sampling"][1], sps=sps)
        res, _, _ = read_results.results_from(path)
        best = res["bestfit"]
        np.testing.assert_allclose(best["photometry"], model.predict(best["parameter"], obs=obs)[1])
        assert 0.3 < best["mfrac"] < 1.0
        with pytest.raises(EmulatorConfigurationError, match="no spectra"):
            sps.get_galaxy_spectrum()


class TestCheckCommand:
    GOOD = '''
import numpy as np
from prospect_emulator import EmulatedSpecModel, EmulatorNoiseModel, EmulatorSPS
from prospect_emulator.fitting.run import make_obs
run_params = {"nested_nlive_init": 100, "zred": 1.1, "scale": 1.0}
BANDS = %r

def build_model(zred=1.1, **extras):
    return EmulatedSpecModel.from_emulator("default", zred=zred)

def build_obs(scale=1.0, **extras):
    model = build_model()
    phot = model.predict(model.theta, obs=make_obs(BANDS, np.ones(len(BANDS)), np.ones(len(BANDS))))[1]
    return make_obs(BANDS, phot * scale, 0.1 * phot * scale)

def build_sps(**extras):
    return EmulatorSPS()

def build_noise(**extras):
    return None, EmulatorNoiseModel()
''' % (BANDS,)

    def run_check(self, tmp_path, text):
        from prospect_emulator.cli.main import main
        path = tmp_path / "params.py"
        path.write_text(text)
        return main(["check", str(path)])

    def test_a_good_parameter_file_passes(self, tmp_path, capsys):
        assert self.run_check(tmp_path, self.GOOD) == 0
        assert "0 error(s)" in capsys.readouterr().out

    def test_wrong_units_missing_noise_and_few_live_points_are_errors(self, tmp_path, capsys):
        bad = (self.GOOD.replace('"scale": 1.0', '"scale": 3631.0e9')
               .replace('"nested_nlive_init": 100', '"nested_nlive_init": 10')
               .replace("return None, EmulatorNoiseModel()", "return None, None"))
        assert self.run_check(tmp_path, bad) == 1
        out = capsys.readouterr().out
        assert "flux units" in out and "nested_nlive_init = 10" in out and "eq. 9" in out

    def test_a_physics_mismatch_is_reported_with_its_fix(self, tmp_path, capsys):
        bad = self.GOOD.replace('return EmulatedSpecModel.from_emulator("default", zred=zred)',
                                'return EmulatedSpecModel.from_emulator("default", zred=zred, '
                                'imf_type=1)')
        assert self.run_check(tmp_path, bad) == 1
        assert "imf_type = 1" in capsys.readouterr().out


def test_the_documented_parameter_table_is_current():
    import runpy
    import os
    script = os.path.join(os.path.dirname(__file__), "..", "docs", "make_parameter_table.py")
    module = runpy.run_path(script)
    assert module["main"](["--check"]) == 0, "run: python docs/make_parameter_table.py"


class TestCheckCatalogue:
    def test_the_example_galaxy_passes_and_a_wrong_unit_is_an_error(self, capsys):
        from prospect_emulator.cli.main import main
        from prospect_emulator.data import EXAMPLE_GALAXY_PATH
        assert main(["check", EXAMPLE_GALAXY_PATH]) == 0
        assert main(["check", EXAMPLE_GALAXY_PATH, "--flux-unit", "nJy"]) == 1
        assert "nJy" in capsys.readouterr().out

    def test_redshifts_outside_the_emulator_are_reported(self, tmp_path, capsys):
        from astropy.table import Table
        from prospect_emulator.cli.main import main
        from prospect_emulator.data import EXAMPLE_GALAXY_PATH
        table = Table.read(EXAMPLE_GALAXY_PATH)
        table["z"] = 4.5
        path = str(tmp_path / "far.ecsv")
        table.write(path)
        assert main(["check", path]) == 1
        assert "outside the emulator's [0.5, 3]" in capsys.readouterr().out
