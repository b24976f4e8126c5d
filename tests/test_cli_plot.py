"""``prospect-emulator plot RESULT.h5``: corner plot with derived quantities and
truths, SED plot with the total sigma and masked bands, from a real tiny fit."""
import os
import warnings

import numpy as np
import pytest

from prospect_emulator.cli.main import main
from prospect_emulator.data import DEFAULT_EMULATOR_PATH, EXAMPLE_GALAXY_PATH, default_emulator
from prospect_emulator.fitting import load_fit
from prospect_emulator.fitting.catalog import CatalogColumns, read_catalog
from prospect_emulator.fitting.models import build_fitting_model
from prospect_emulator.fitting.plots import corner_columns
from prospect_emulator.fitting.results import model_recipe
from prospect_emulator.fitting.run import fit_galaxy, make_obs
from prospect_emulator.prospector import EmulatorNoiseModel


@pytest.fixture(scope="module")
def results_file(tmp_path_factory):
    emulator = default_emulator()
    (rec,), filters = read_catalog(EXAMPLE_GALAXY_PATH, CatalogColumns(), emulator.filter_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_fitting_model(emulator, zred=rec["zred"])
    user_mask = np.ones(len(filters), bool)
    user_mask[3] = False
    obs = make_obs(filters, rec["maggies"], rec["maggies_unc"], phot_mask=user_mask)
    path = str(tmp_path_factory.mktemp("plot") / "galaxy.h5")
    truths = {"logmass": 10.0, "logmstar": 9.8}
    fit_galaxy(obs, model, EmulatorNoiseModel(model), seed=1, results_path=path, sampler="dynesty",
               nested_kwargs={"nested_nlive_init": 30, "nested_maxbatch": 0,
                              "nested_dlogz_init": 5.0},
               run_params=dict(model_recipe(DEFAULT_EMULATOR_PATH, zred=rec["zred"]),
                               object_id="galaxy", truths=truths))
    return path


def test_plot_command_writes_both_figures(results_file, tmp_path, capsys):
    out = str(tmp_path / "figures")
    assert main(["plot", results_file, "--out", out, "--draws", "300"]) == 0
    for name in ("galaxy_corner.png", "galaxy_sed.png"):
        assert os.path.getsize(os.path.join(out, name)) > 10_000
    printed = capsys.readouterr().out
    assert "chi2 =" in printed and "1 masked" in printed


def test_corner_columns_add_derived_quantities_with_units_and_truths(results_file):
    results, _, model = load_fit(results_file)
    names, labels, draws, truths = corner_columns(
        model, results["chain"], results["weights"], n=200,
        truths=results["run_params"]["truths"])
    assert names[:model.ndim] == list(model.theta_labels())
    assert names[model.ndim:] == ["logmstar", "logsfr_100myr", "mwa_gyr"]
    assert labels[0] == "logmass [log10 Msun]"
    assert "Gyr" in labels[-1] and "yr$^{-1}$" in labels[-2]
    assert truths[0] == 10.0 and truths[names.index("logmstar")] == 9.8
    assert truths[names.index("mwa_gyr")] is None
    assert draws.shape == (200, len(names)) and np.isfinite(draws).all()
    # surviving mass is below the mass formed
    assert np.all(draws[:, names.index("logmstar")] < draws[:, 0])


def test_plot_of_a_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nothing.h5")]) == 2
    assert "no results file at" in capsys.readouterr().err
