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
