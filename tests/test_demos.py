"""The Prospector parameter-file twins in demos/ build and evaluate the likelihood."""
import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("bagpipes")

DEMOS = os.path.join(os.path.dirname(__file__), os.pardir, "demos")


def load_param_file(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(DEMOS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def twins():
    return {kind: load_param_file(f"param_file_{kind}") for kind in ("sps", "emulator")}


def test_twins_differ_only_in_model_sps_and_noise(twins):
    import warnings
    from prospect.fitting import lnprobfn
    from prospect_emulator import EmulatedSpecModel, EmulatorNoiseModel, EmulatorSPS
    from prospect_emulator.sources import BagpipesBasis
    built = {}
    for kind, module in twins.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # prior wider than the training range: expected
            built[kind] = module.build_all()
    (obs_s, model_s, sps_s, noise_s), (obs_e, model_e, sps_e, noise_e) = built["sps"], built["emulator"]
    assert isinstance(sps_s, BagpipesBasis) and isinstance(sps_e, EmulatorSPS)
    assert noise_s == (None, None) and isinstance(noise_e[1], EmulatorNoiseModel)
    assert isinstance(model_e, EmulatedSpecModel) and not isinstance(model_s, EmulatedSpecModel)
    assert list(model_s.theta_labels()) == list(model_e.theta_labels())
    np.testing.assert_array_equal(obs_s["maggies"], obs_e["maggies"])
    theta = model_e.theta.copy()
    lnp_s = lnprobfn(theta, model=model_s, obs=obs_s, sps=sps_s, noise=noise_s)
    lnp_e = lnprobfn(theta, model=model_e, obs=obs_e, sps=sps_e, noise=noise_e)
    assert np.isfinite(lnp_s) and np.isfinite(lnp_e)
    # same physics: the emulator's photometry is close to the SPS it was trained on
    _, phot_s, _ = model_s.predict(theta, obs=obs_s, sps=sps_s)
    _, phot_e, _ = model_e.predict(theta, obs=obs_e, sps=None)
    mag_diff = -2.5 * np.log10(phot_e / phot_s)
    assert np.median(np.abs(mag_diff)) < 0.2
