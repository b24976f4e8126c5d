"""Tempered waste-free SMC (fitting.smc) against posteriors known in closed form.

A 14-parameter Gaussian likelihood under the N(0, I) prior of the whitened
coordinates has a Gaussian posterior and evidence one can write down: the
sampler must give the posterior mean and standard deviations and ln Z.  The
sampler on the real emulator likelihood is tested with the others in
test_samplers.py (recovery, seeds, results files).
"""
import numpy as np
import pytest

from prospect_emulator.errors import EmulatorConfigurationError
from prospect_emulator.fitting.samplers import sampler_settings
from prospect_emulator.fitting.smc import SMCError, run_tempered_smc, whitened_to_unit

NDIM = 14


@pytest.fixture(scope="module")
def gaussian_problem():
    """ln L = ln N(y; m, S) up to a constant: posterior N(mu, C), C = (I + S^-1)^-1,
    mu = C S^-1 m; evidence N(m; 0, I + S) times (2 pi)^(d/2) |S|^(1/2)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(NDIM, NDIM))
    s = a @ a.T / NDIM * 0.01 + np.diag(rng.uniform(0.001, 0.05, NDIM))
    m = rng.normal(size=NDIM) * 0.8
    s_inv = np.linalg.inv(s)
    cov = np.linalg.inv(np.eye(NDIM) + s_inv)
    mean = cov @ s_inv @ m
    c = np.eye(NDIM) + s
    logz = (-0.5 * m @ np.linalg.solve(c, m) - 0.5 * np.linalg.slogdet(c)[1]
            + 0.5 * np.linalg.slogdet(s)[1])

    def lnlike(y):
        r = y - m
        return -0.5 * np.einsum("ij,jk,ik->i", r, s_inv, r)

    return lnlike, mean, cov, logz


@pytest.mark.parametrize("proposal", ["de", "rw"])
def test_gaussian_posterior_and_evidence_are_recovered(gaussian_problem, proposal):
    lnlike, mean, cov, logz = gaussian_problem
    out = run_tempered_smc(lnlike, NDIM, np.random.default_rng(1), n_particles=8000,
                           chain_length=40, proposal=proposal, final_chain_length=None,
                           ess_fraction=0.8, max_samples=None)  # gentler steps: a tighter evidence
    sd = np.sqrt(np.diag(cov))
    assert out["y"].shape == (8000, NDIM) and out["lnlike"].shape == (8000,)
    np.testing.assert_allclose(out["lnlike"], lnlike(out["y"]))
    assert np.all(np.abs(out["y"].mean(0) - mean) < 0.25 * sd)  # ~3 Monte Carlo errors
    np.testing.assert_allclose(out["y"].std(0), sd, rtol=0.1)
    assert 0 < out["logzerr"] < 0.5
    assert abs(out["logz"] - logz) < 3 * out["logzerr"]
    assert out["betas"][0] == 0.0 and out["betas"][-1] == 1.0
    assert np.all(np.diff(out["betas"]) > 0)
    assert out["ncall"] >= 8000 * (len(out["betas"]) - 1) * 39 / 40


def test_final_move_returns_its_chains_states(gaussian_problem):
    lnlike, mean, cov, _ = gaussian_problem
    out = run_tempered_smc(lnlike, NDIM, np.random.default_rng(2), n_particles=4000,
                           chain_length=20, final_chain_length=50, final_chains=100,
                           max_samples=None)
    assert out["y"].shape == (5000, NDIM)
    assert len(out["acceptance"]) == len(out["betas"])  # every stage's move, and the final
    np.testing.assert_allclose(out["y"].std(0), np.sqrt(np.diag(cov)), rtol=0.15)


def test_max_samples_thins_every_chain_evenly(gaussian_problem):
    lnlike = gaussian_problem[0]
    out = run_tempered_smc(lnlike, NDIM, np.random.default_rng(3), n_particles=2000,
                           chain_length=20, final_chain_length=100, final_chains=50,
                           max_samples=1000)
    assert out["y"].shape == (1000, NDIM)  # 50 chains x every 5th of their 100 states
    np.testing.assert_allclose(out["lnlike"], lnlike(out["y"]))


def test_same_seed_same_draws(gaussian_problem):
    lnlike = gaussian_problem[0]
    a, b, c = (run_tempered_smc(lnlike, NDIM, np.random.default_rng(seed), n_particles=400,
                                chain_length=10, final_chain_length=20) for seed in (5, 5, 6))
    np.testing.assert_array_equal(a["y"], b["y"])
    assert not np.array_equal(a["y"], c["y"])


def test_the_evidence_counts_the_prior_mass_outside_the_support():
    # L = 1 on y_0 > 0, 0 elsewhere: Z = P(y_0 > 0) = 1/2 exactly; a flat likelihood inside
    # its support also gives equal weights (their variance rounds to just below zero)
    def half(y):
        return np.where(y[:, 0] > 0, 0.0, -np.inf)

    out = run_tempered_smc(half, 2, np.random.default_rng(0), n_particles=2400,
                           chain_length=20, final_chain_length=None)
    assert abs(out["logz"] - np.log(0.5)) < 0.03
    assert out["logzerr"] >= 0
    assert np.all(out["y"][:, 0] > 0)


def test_every_chain_can_start_the_final_move(gaussian_problem):
    # equal weights over states stored step by step: the starts must not all fall in a
    # few chains (systematic resampling in storage order picked 20 of 400)
    from prospect_emulator.fitting.smc import _metropolis_chains
    rng = np.random.default_rng(0)
    chains, length = 40, 10
    y = np.repeat(np.arange(chains, dtype=float)[None, :], length, 0).reshape(-1, 1)
    states, _, _, _ = _metropolis_chains(lambda v: np.zeros(len(v)), y, np.zeros(len(y)),
                                         np.full(len(y), 1 / len(y)), 1.0, chains, 2, 1e-9,
                                         "rw", rng)
    starts = states[:chains, 0]  # the first state of each new chain: its start
    assert len(np.unique(np.round(starts))) > chains / 2


def test_a_likelihood_that_is_nowhere_finite_is_an_error():
    with pytest.raises(SMCError, match="finite likelihood.*training range"):
        run_tempered_smc(lambda y: np.full(len(y), -np.inf), 3, np.random.default_rng(0),
                         n_particles=100, chain_length=10, max_prior_draws=1000)


def test_too_many_stages_is_an_error_not_a_hang():
    def sharp(y):  # a posterior 1e-4 prior widths across needs many tempering stages
        return -0.5 * np.sum((y / 1e-4) ** 2, axis=1)

    with pytest.raises(SMCError, match="max_stages = 3.*lower ess_fraction"):
        run_tempered_smc(sharp, 3, np.random.default_rng(0), n_particles=200, chain_length=10,
                         max_stages=3)


def test_whitened_coordinates_map_into_the_open_unit_cube():
    u = whitened_to_unit(np.array([[-40.0, 0.0, 40.0]]))
    assert np.all((u > 0) & (u < 1)) and u[0, 1] == 0.5


def test_settings_name_what_is_allowed():
    s = sampler_settings("smc", ndim=14)
    assert s["proposal"] == "de"
    with pytest.raises(EmulatorConfigurationError, match="ess_fraction = 1.*0 < ess_fraction < 1"):
        sampler_settings("smc", ndim=3, ess_fraction=1.0)
    with pytest.raises(EmulatorConfigurationError, match="proposal = 'hmc'.*'rw' or 'de'"):
        sampler_settings("smc", ndim=3, proposal="hmc")
    with pytest.raises(EmulatorConfigurationError, match="n_particles = 10"):
        sampler_settings("smc", ndim=3, n_particles=10, chain_length=20)
    with pytest.raises(EmulatorConfigurationError, match="allowed"):
        sampler_settings("smc", ndim=3, nlive=100)
    assert sampler_settings("smc", ndim=3, max_samples="2000")["max_samples"] == 2000
    for bad, message in (({"float32": "false"}, "true or false"),
                         ({"chain_length": None}, "an integer"),
                         ({"ess_fraction": "half"}, "a number")):
        with pytest.raises(EmulatorConfigurationError, match=message):
            sampler_settings("smc", ndim=3, **bad)
