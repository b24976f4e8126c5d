"""Shared fixtures: small hand-built networks and real sedpy filters."""
import os

import numpy as np
import pytest

# Prospector must work without FSPS data: tests run with SPS_HOME unset unless
# the user really has FSPS.
os.environ.setdefault("MPLBACKEND", "Agg")


def make_random_emulator(n_params=5, width=16, n_hidden=2, filter_names=("f1", "f2", "f3"),
                         extra_names=(), seed=0, param_names=None, param_ranges=None,
                         output_mean=22.0, **kwargs):
    """A hand-built :class:`Emulator` with random weights (for runtime tests)."""
    from prospect_emulator import Emulator
    rng = np.random.default_rng(seed)
    sizes = [n_params] + [width] * n_hidden + [len(filter_names) + len(extra_names)]
    weights = [rng.normal(scale=1 / np.sqrt(a), size=(a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(scale=0.1, size=b) for b in sizes[1:]]
    param_names = param_names or [f"p{i}" for i in range(n_params)]
    if param_ranges is None:
        param_ranges = np.tile([-2.0, 2.0], (n_params, 1))
    return Emulator(weights, biases, param_names, list(filter_names),
                    input_mean=rng.normal(scale=0.1, size=n_params),
                    input_std=rng.uniform(0.5, 2.0, size=n_params),
                    output_mean=np.full(sizes[-1], output_mean), param_ranges=param_ranges,
                    extra_names=extra_names, **kwargs)


@pytest.fixture
def random_emulator():
    return make_random_emulator()


@pytest.fixture
def no_sps_home(monkeypatch):
    """Unset SPS_HOME: what needs no FSPS data must work without it."""
    monkeypatch.delenv("SPS_HOME", raising=False)


@pytest.fixture(scope="module")
def sps():
    """A BagpipesBasis, built once per test module (reading its grids takes seconds)."""
    from prospect_emulator.sources import BagpipesBasis
    return BagpipesBasis()


#: Bands, prior ranges and truth of the small three-parameter emulated model.
SMALL_MODEL_FILTERS = ["galex_NUV", "sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0",
                       "twomass_J", "twomass_H", "twomass_Ks", "wise_w1", "wise_w2", "galex_FUV"]
SMALL_MODEL_PRIOR_RANGES = {"logmass": (8.0, 12.0), "logzsol": (-2.0, 0.2), "dust2": (0.0, 2.0)}
SMALL_MODEL_TRUTH = {"logmass": 10.5, "logzsol": -0.8, "dust2": 0.7}


def make_small_emulated_model():
    """An EmulatedSpecModel of a hand-made 4-input emulator (logmass, logzsol,
    dust2 free with top-hat priors; zred fixed at 1.2) for the 12 bands above."""
    import warnings
    from prospect.models import priors
    from prospect_emulator.prospector import EmulatedSpecModel, PhysicsNotCheckedWarning
    stats = np.tile([-0.08, -0.06, -0.04, -0.02, 0, 0.02, 0.04, 0.06, 0.08, 0, 0.02],
                    (len(SMALL_MODEL_FILTERS), 1))
    emulator = make_random_emulator(
        n_params=4, width=32, n_hidden=2, filter_names=SMALL_MODEL_FILTERS,
        param_names=["logmass", "logzsol", "dust2", "zred"],
        param_ranges=[(6.0, 12.5), (-2.0, 0.2), (0.0, 4.0), (0.5, 3.0)],
        output_mean=23.0, residual_stats=stats, seed=2)
    params = {name: {"N": 1, "isfree": True, "init": np.mean(lim),
                     "prior": priors.TopHat(mini=lim[0], maxi=lim[1])}
              for name, lim in SMALL_MODEL_PRIOR_RANGES.items()}
    params["zred"] = {"N": 1, "isfree": False, "init": 1.2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PhysicsNotCheckedWarning)  # a hand-made emulator
        return EmulatedSpecModel(params, emulator=emulator)
