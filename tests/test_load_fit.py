"""load_fit: a fit's results, obs and rebuilt model, for a single fit and for one
object of a catalogue fit, without unpickling anything; the emulator's checksum
is verified.  Real fits of the bundled galaxy with the shipped emulator (tiny
dynesty settings)."""
import json
import os
import pickle
import shutil
import warnings

import numpy as np
import pytest

from prospect_emulator import EmulatorConfigurationError, EmulatorFileError
from prospect_emulator.data import DEFAULT_EMULATOR_PATH, EXAMPLE_GALAXY_PATH, default_emulator
from prospect_emulator.fitting import load_fit
from prospect_emulator.fitting.catalog import CatalogColumns, fit_catalog, read_catalog
from prospect_emulator.fitting.models import build_fitting_model
from prospect_emulator.fitting.results import model_recipe
from prospect_emulator.fitting.run import fit_galaxy, make_obs
from prospect_emulator.prospector import EmulatorNoiseModel

TINY = {"nested_nlive_init": 30, "nested_nlive_batch": 30, "nested_target_n_effective": 50,
        "nested_maxbatch": 0, "nested_dlogz_init": 5.0}


@pytest.fixture(scope="module")
def single_fit(tmp_path_factory):
    emulator = default_emulator()
    (rec,), filters = read_catalog(EXAMPLE_GALAXY_PATH, CatalogColumns(), emulator.filter_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_fitting_model(emulator, zred=rec["zred"])
    unc = rec["maggies_unc"].copy()
    unc[0] = -1.0  # one band without a usable uncertainty
    obs = make_obs(filters, rec["maggies"], unc)
    path = str(tmp_path_factory.mktemp("single") / "fit.h5")
    fit = fit_galaxy(obs, model, EmulatorNoiseModel(model, floor=0.1), nested_kwargs=TINY, seed=5,
                     results_path=path, sampler="dynesty",
                     run_params=dict(model_recipe(DEFAULT_EMULATOR_PATH, zred=rec["zred"]),
                                     object_id=rec["id"]))
    return fit, obs, model, path


class TestSingleFit:
    def test_round_trip(self, single_fit):
        fit, obs, model, path = single_fit
        results, loaded_obs, loaded_model = load_fit(path)
        assert loaded_model.theta_labels() == model.theta_labels()
        assert loaded_model.params["zred"][0] == pytest.approx(model.params["zred"][0])
        np.testing.assert_array_equal(results["chain"], fit["samples"])
        np.testing.assert_allclose(results["weights"], fit["weights"])
        np.testing.assert_array_equal(loaded_obs["maggies"], obs["maggies"])
        np.testing.assert_array_equal(loaded_obs["phot_mask"], obs["phot_mask"])
        assert [f.name for f in loaded_obs["filters"]] == [f.name for f in obs["filters"]]
        assert results["fit_quality"]["bands_masked"] == {obs["filters"][0].name:
                                                          "non-positive uncertainty"}
        assert results["run_params"]["noise_floor"] == 0.1 and results["run_params"]["seed"] == 5

    def test_the_rebuilt_model_predicts_the_stored_best_fit(self, single_fit):
        results, obs, model = load_fit(single_fit[3])
        best = results["bestfit"]
        _, phot, mfrac = model.predict(best["parameter"], obs=obs)
        np.testing.assert_allclose(phot, best["photometry"], rtol=1e-10)
        assert mfrac == pytest.approx(best["mfrac"])

    def test_a_good_fit_of_the_example_galaxy_raises_no_data_flag(self, single_fit):
        flags = single_fit[0]["quality"]["flags"]
        assert not flags["suspect_units"] and not flags["few_bands"]
        assert flags["at_prior_edge"] == []

    def test_nothing_is_unpickled(self, single_fit, monkeypatch):
        def refuse(*args, **kwargs):
            raise AssertionError("load_fit unpickled something")
        monkeypatch.setattr(pickle, "loads", refuse)
        monkeypatch.setattr(pickle, "load", refuse)
        results, _, _ = load_fit(single_fit[3])
        assert "model_params" not in results  # Prospector's pickled copy is left unread

    def test_a_changed_emulator_file_is_refused(self, single_fit, tmp_path):
        changed = tmp_path / "emulator.h5"
        shutil.copy(DEFAULT_EMULATOR_PATH, changed)
        with open(changed, "ab") as f:
            f.write(b"\0")
        with pytest.raises(EmulatorFileError, match="has changed since .* was fitted"):
            load_fit(single_fit[3], emulator=str(changed))

    def test_a_moved_emulator_file_is_found_by_the_caller(self, single_fit, tmp_path):
        moved = tmp_path / "moved.h5"
        shutil.copy(DEFAULT_EMULATOR_PATH, moved)
        _, _, model = load_fit(single_fit[3], emulator=str(moved))
        assert model.ndim == single_fit[2].ndim

    def test_a_file_without_a_recipe_says_what_to_do(self, tmp_path):
        import h5py
        path = tmp_path / "foreign.h5"
        with h5py.File(path, "w") as f:
            f.create_group("sampling").create_dataset("chain", data=np.zeros((2, 1)))
            f.create_group("obs")
            f.attrs["run_params"] = json.dumps({"nested_nlive_init": 100})
        with pytest.raises(EmulatorConfigurationError, match="records no emulator"):
            load_fit(str(path))


@pytest.mark.slow
def test_catalogue_object_round_trip_and_summary_units(tmp_path):
    from astropy.table import Table
    out = str(tmp_path / "fits")
    table = fit_catalog(EXAMPLE_GALAXY_PATH, out, DEFAULT_EMULATOR_PATH, workers=1,
                        nested_kwargs=TINY, sampler="dynesty", progress=False, seed=2, floor=0.0)
    for path in (os.path.join(out, "example.json"), os.path.join(out, "example.h5")):
        results, obs, model = load_fit(path)
        assert results["catalog_record"]["status"] == "ok"
        assert results["run_params"]["noise_floor"] == 0.0
        assert model.params["zred"][0] == pytest.approx(results["run_params"]["zred"])
        _, phot, _ = model.predict(results["bestfit"]["parameter"], obs=obs)
        np.testing.assert_allclose(phot, results["bestfit"]["photometry"], rtol=1e-10)
    record = results["catalog_record"]
    assert record["quality"]["n_bands"] == len(obs["filters"])

    summary = Table.read(os.path.join(out, "summary.ecsv"))
    assert summary["n_bands"][0] == record["quality"]["n_bands"]
    assert summary["chi2"][0] == pytest.approx(record["quality"]["chi2"])
    for flag in ("prior_dominated", "at_prior_edge", "few_bands", "suspect_units"):
        assert summary[f"flag_{flag}"].dtype == bool
        assert summary[f"flag_{flag}"].description.startswith("flag:")
    assert str(summary["logmass_p50"].unit) == "dex(solMass)"
    assert str(summary["logsfr_100myr_p16"].unit) == "dex(solMass / yr)"
    assert str(summary["mwa_gyr_p84"].unit) == "Gyr"
    assert str(summary["seconds"].unit) == "s"
    assert all(summary[c].description for c in summary.colnames)
    assert len(table) == 1
