"""A short real dynesty fit through prospect.fitting.fit_model with sps=None:
it recovers the parameters of a mock made with the same emulator, and
prospect.io.write_results writes a file Prospector reads back."""
import numpy as np
import pytest
from prospect.fitting import fit_model
from prospect.io import write_results
from prospect.io.read_results import results_from
from sedpy.observate import load_filters

from conftest import (SMALL_MODEL_FILTERS, SMALL_MODEL_PRIOR_RANGES, SMALL_MODEL_TRUTH,
                      make_small_emulated_model)
from prospect_emulator.prospector import EmulatorNoiseModel

FILTERS, TRUTH, PRIOR_RANGES = SMALL_MODEL_FILTERS, SMALL_MODEL_TRUTH, SMALL_MODEL_PRIOR_RANGES


def dynesty_major_version():
    import dynesty
    return int(dynesty.__version__.split(".")[0])


@pytest.mark.slow
def test_dynesty_fit_recovers_the_mock_and_writes_results(tmp_path):
    if dynesty_major_version() >= 3:
        pytest.fail("prospect 1.4.1's run_dynesty_sampler cannot unpack the iterator results of "
                    "dynesty 3.x (17 fields); install dynesty>=2.1,<3")
    model = make_small_emulated_model()
    truth = np.array([TRUTH[p] for p in model.free_params])

    # noiseless mock at S/N 20 made with the same emulator, bands in another order
    obs = {"filters": load_filters(FILTERS[::-1]), "wavelength": None, "spectrum": None}
    _, phot, _ = model.predict(truth, obs=obs, sps=None)
    obs["maggies"], obs["maggies_unc"] = phot.copy(), phot / 20.0

    output = fit_model(obs, model, None, noise=(None, EmulatorNoiseModel(model, floor=0.0)),
                       dynesty=True, nested_nlive_init=150, nested_dlogz_init=0.05,
                       nested_maxbatch=0, print_progress=False)
    result, duration = output["sampling"]
    weights = np.exp(result["logwt"] - result["logz"][-1])
    weights /= weights.sum()
    mean = weights @ result["samples"]
    std = np.sqrt(weights @ (result["samples"] - mean) ** 2)
    prior_std = np.array([np.diff(PRIOR_RANGES[p])[0] for p in model.free_params]) / np.sqrt(12)
    assert np.all(np.abs(mean - truth) < 3 * std), (mean, std, truth)
    assert np.all(std < 0.25 * prior_std), "the photometry should constrain every parameter"

    path = str(tmp_path / "fit.h5")
    write_results.write_hdf5(path, {"nested_nlive_init": 150}, model, obs, result, None,
                             tsample=duration, sps=None)
    res, stored_obs, _ = results_from(path)
    assert res["chain"].shape == result["samples"].shape
    assert res["theta_labels"] == model.theta_labels()
    np.testing.assert_allclose(res["lnprobability"],
                               result["logl"] + model.prior_product(result["samples"]))
    assert [f.name for f in stored_obs["filters"]] == FILTERS[::-1]
