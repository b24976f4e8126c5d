"""Training-set generation on the real BagpipesBasis through Prospector.

Every set here is computed for real (BagpipesBasis + SpecModel + sedpy), small:
a few dozen models in five filters.
"""
import os
import shutil
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

pytest.importorskip("bagpipes")

from prospect_emulator.cli.main import main as cli_main  # noqa: E402
from prospect_emulator.errors import (EmulatorConfigurationError, EmulatorFileError,  # noqa: E402
                                      OutOfTrainingRangeError)
from prospect_emulator.runtime import maggies_to_arsinh_mags  # noqa: E402
from prospect_emulator.training import (generate_training_set, get_preset,  # noqa: E402
                                        read_training_set)

FILTERS = ["galex_NUV", "sdss_g0", "sdss_r0", "twomass_Ks", "spitzer_irac_ch1"]
N, SEED, CHUNK = 60, 7, 15


def _arrays(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in ("params", "mags", "mfrac", "failed", "chunk_done")}


def assert_same_training_set(a, b):
    """Equality of the scientific content of two files: parameters and failures
    bit for bit, photometry and mfrac to 1e-12 relative (the batched path's
    matrix products may sum in another order for a row in another batch)."""
    x, y = _arrays(a), _arrays(b)
    assert x["chunk_done"].all() and y["chunk_done"].all()
    for key in ("params", "mags", "mfrac", "failed"):
        if key in ("mags", "mfrac"):
            same = np.isclose(x[key], y[key], rtol=1e-12, atol=0)
        else:
            same = x[key] == y[key]
        if x[key].dtype.kind == "f":
            same |= np.isnan(x[key]) & np.isnan(y[key])
        differ = np.flatnonzero(~same.reshape(len(same), -1).all(axis=1))
        assert differ.size == 0, f"{key} differs in rows {differ[:20]} of {len(x[key])}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run with 2 workers: the set every other run must reproduce."""
    path = tmp_path_factory.mktemp("reference") / "train.h5"
    summary = generate_training_set("default", FILTERS, N, SEED, path, chunk_size=CHUNK,
                                    workers=2, progress=False)
    assert summary.complete and summary.n_done == N and summary.n_computed == N
    return path


# --- what a training set holds ----------------------------------------------------
def test_file_follows_the_training_set_contract(reference):
    config = get_preset("default")
    with h5py.File(reference, "r") as f:
        assert f.attrs["format"] == "prospect-emulator-trainingset"
        assert f.attrs["schema_version"] == 1
        assert f.attrs["preset"] == "default" and f.attrs["seed"] == SEED
        assert f.attrs["n_samples"] == N and f.attrs["chunk_size"] == CHUNK
        assert f.attrs["sps"].startswith("bagpipes")
        assert f.attrs["mu0"] == 35.0 and f.attrs["a"] == pytest.approx(2.5 * np.log10(np.e))
        assert list(f["param_names"].asstr()[...]) == config.param_names
        assert list(f["filter_names"].asstr()[...]) == FILTERS
        assert f["params"].shape == (N, 15) and f["mags"].shape == (N, len(FILTERS))
        assert f["chunk_done"].shape == (N // CHUNK,) and f["chunk_done"][...].all()
        assert f["filter_wave_effective"][2] == pytest.approx(6200, rel=0.05)  # sdss r
    data = read_training_set(reference)
    assert not data["failed"].any() and data["mags"].shape == (N, len(FILTERS))
    # arsinh magnitudes: finite, never fainter than mu0 = 35
    assert np.isfinite(data["mags"]).all() and data["mags"].max() <= 35.0
    assert ((data["mfrac"] > 0.3) & (data["mfrac"] <= 1.0)).all()
    lo, hi = data["param_ranges"].T
    assert ((data["params"] >= lo) & (data["params"] <= hi)).all()
    # parameters are the seed's draws, in file order
    np.testing.assert_array_equal(data["params"], config.sample(N, SEED))


def test_magnitudes_are_prospector_photometry_of_the_stored_parameters(reference):
    """Recompute three rows with Prospector's own SpecModel class and BagpipesBasis."""
    from sedpy.observate import load_filters
    from prospect_emulator.sources.bagpipes_basis import BagpipesBasis, BagpipesSpecModel
    data = read_training_set(reference)
    model = BagpipesSpecModel(get_preset("default").build_model_params())
    sps = BagpipesBasis()
    # generate skips the smoothing of the unused spectrum; Prospector's path does not
    assert get_preset("default").build_model(sps).skip_unused_smoothing
    assert not model.skip_unused_smoothing
    obs = {"filters": load_filters(FILTERS), "wavelength": None, "spectrum": None}
    for row in (0, 31, N - 1):
        _, phot, mfrac = model.predict(data["params"][row], obs=obs, sps=sps)
        # the batched path equals Prospector's per-model photometry to 1e-12
        np.testing.assert_allclose(data["mags"][row], maggies_to_arsinh_mags(phot), rtol=1e-12)
        assert data["mfrac"][row] == pytest.approx(mfrac, rel=1e-12)
    # brighter for more mass at fixed everything else: +1 dex = -2.5 mag when bright
    theta = data["params"][0].copy()
    base = model.predict(theta, obs=obs, sps=sps)[1]
    theta[0] += 1.0
    np.testing.assert_allclose(model.predict(theta, obs=obs, sps=sps)[1], 10 * base, rtol=1e-10)


def test_windowed_filter_projection_is_sedpy_to_the_last_bit():
    """The projection generate uses gives exactly sedpy's per-filter photometry."""
    from sedpy.observate import getSED, list_available_filters, load_filters
    from prospect_emulator.sources.bagpipes_basis import BagpipesBasis
    from prospect_emulator.training.trainingset import WindowedFilterList
    config = get_preset("default")
    model = config.build_model()
    sps = BagpipesBasis()
    filters = load_filters(list_available_filters()[::4])    # ~70, UV to far-IR
    model.predict(config.sample(1, 5)[0], obs={"filters": filters}, sps=sps)
    wave = model._wave * (1 + model._zred)
    flambda = model._norm_spec * 2.998e18 / wave**2
    for w, f in ((wave, flambda), (wave[1000:], flambda[1000:])):  # partly outside a filter too
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = getSED(w, f, filters)
            got = getSED(w, f, WindowedFilterList(filters))
        np.testing.assert_array_equal(got, expected)
    assert np.isnan(got).any()   # filters the cut spectrum does not reach: NaN in both


# --- determinism and resume -----------------------------------------------------
def test_same_seed_gives_the_same_set_with_one_worker_and_other_chunks(reference, tmp_path):
    out = tmp_path / "one_worker.h5"
    generate_training_set("default", FILTERS, N, SEED, out, chunk_size=25, workers=1,
                          progress=False)
    assert_same_training_set(reference, out)


def test_a_run_stopped_after_some_chunks_resumes_to_the_same_set(reference, tmp_path):
    out = tmp_path / "partial.h5"
    first = generate_training_set("default", FILTERS, N, SEED, out, chunk_size=CHUNK, workers=2,
                                  progress=False, max_chunks=2)
    assert not first.complete and first.n_done == 2 * CHUNK
    partial = read_training_set(out, valid_only=False)
    assert partial["valid"].sum() == 2 * CHUNK
    assert np.isnan(partial["mags"][~partial["valid"]]).all()   # unfinished rows hold nothing
    assert read_training_set(out)["mags"].shape == (2 * CHUNK, len(FILTERS))
    # what a reader leaves out is said, not dropped silently
    assert partial["dropped"] == {"in unfinished chunks (generation not finished)": N - 2 * CHUNK}

    second = generate_training_set("default", FILTERS, N, SEED, out, chunk_size=CHUNK,
                                   workers=2, progress=False)
    assert second.complete and second.n_computed == N - 2 * CHUNK
    assert_same_training_set(reference, out)
    # a finished file is left alone
    assert generate_training_set("default", FILTERS, N, SEED, out, progress=False).n_computed == 0


@pytest.mark.slow
@pytest.mark.parametrize("signum, whole_group", [
    (signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGHUP, False),
    (signal.SIGTERM, True)], ids=["ctrl-c", "kill", "hangup", "scancel"])
def test_interrupted_command_line_run_continues_where_it_stopped(tmp_path, signum, whole_group):
    """Ctrl-C, kill, a closed terminal or a batch system's stop of the whole process
    group (workers included) on `prospect-emulator generate`, then the same command again."""
    n, chunk, seed = 400, 10, 3
    out = tmp_path / "killed.h5"
    cmd = [sys.executable, "-m", "prospect_emulator.cli.main", "generate", "--preset", "default",
           "--filters", ",".join(FILTERS), "--n-samples", str(n), "--seed", str(seed),
           "--out", str(out), "--chunk-size", str(chunk), "--workers", "2"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=whole_group,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    # the first progress line is printed once the first chunk is on disk
    line = proc.stderr.readline()
    assert line.startswith("generate:"), line
    if whole_group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, rest
    assert "run the same command again to resume" in rest
    with h5py.File(out, "r") as f:
        done_when_stopped = f["chunk_done"][...].sum()
    assert 0 < done_when_stopped < n // chunk

    assert cli_main(cmd[3:] + ["--no-progress"]) == 0
    reference = tmp_path / "uninterrupted.h5"
    generate_training_set("default", FILTERS, n, seed, reference, chunk_size=200, workers=2,
                          progress=False)
    assert_same_training_set(reference, out)


def test_resuming_a_different_training_set_is_refused_and_leaves_the_file_alone(reference,
                                                                               tmp_path):
    out = tmp_path / "copy.h5"
    shutil.copy(reference, out)
    before = out.read_bytes()
    with pytest.raises(EmulatorConfigurationError, match=r"seed \(file: 7, asked: 8\)"):
        generate_training_set("default", FILTERS, N, SEED + 1, out, progress=False)
    with pytest.raises(EmulatorConfigurationError, match="n_samples"):
        generate_training_set("default", FILTERS, N + 1, SEED, out, progress=False)
    with pytest.raises(EmulatorConfigurationError, match="filters"):
        generate_training_set("default", FILTERS[:-1], N, SEED, out, progress=False)
    with pytest.raises(EmulatorConfigurationError, match="configuration.*distributions"):
        generate_training_set("default", FILTERS, N, SEED, out, zred_range=(0.5, 2.0),
                              progress=False)
    assert out.read_bytes() == before
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(EmulatorFileError, match="not a prospect-emulator training set"):
        generate_training_set("default", FILTERS, N, SEED, foreign, progress=False)


@pytest.mark.skipif(not os.getenv("SPS_HOME"),
                    reason="FSPS needs SPS_HOME and its data, which this machine does not have")
def test_paper18_on_fsps(tmp_path):
    """The same machinery with prospect.sources.FastStepBasis (where FSPS can run)."""
    out = tmp_path / "fsps.h5"
    summary = generate_training_set("paper18", FILTERS, 6, SEED, out, workers=1, progress=False)
    data = read_training_set(out)
    assert summary.complete and data["params"].shape == (6, 18)
    assert np.isfinite(data["mags"]).all() and data["attrs"]["sps"].startswith("fsps")


# --- failures, user filters, progress ------------------------------------------------
def test_models_the_sps_cannot_compute_are_flagged_not_fatal(tmp_path, capfd):
    """gas_logu below -4 lies outside Bagpipes' Cloudy grid: BagpipesBasis raises."""
    config = get_preset("default").with_changes(
        distributions={"gas_logu": {"kind": "uniform", "low": -4.5, "high": -1.0}})
    assert config.param_names[-1] == "gas_logu"
    out = tmp_path / "with_failures.h5"
    summary = generate_training_set(config, FILTERS[:2], 40, 1, out, chunk_size=20, workers=1)
    data = read_training_set(out, valid_only=False)
    outside = data["params"][:, -1] < -4.0
    assert outside.any() and (~outside).any()
    np.testing.assert_array_equal(data["failed"], outside)
    assert summary.n_failed == outside.sum() and summary.complete
    assert all("gas_logu" in r and "outside" in r for r in data["fail_reason"][outside])
    assert all(r == "" for r in data["fail_reason"][~outside])
    assert np.isnan(data["mags"][outside]).all() and np.isfinite(data["mags"][~outside]).all()
    assert read_training_set(out)["params"].shape[0] == (~outside).sum()
    (why, count), = data["dropped"].items()
    assert count == outside.sum() and why.startswith("failed models (most common reason: ")
    assert "gas_logu" in why
    # the progress line: count, rate and ETA, on stderr
    err = capfd.readouterr().err
    assert "generate: 40/40 models (100.0%)" in err and "models/s" in err and "ETA" in err
    assert f"failed {outside.sum()}" in err


def test_user_filter_files_in_sedpy_format(reference, tmp_path):
    import sedpy
    curves = tmp_path / "my_filters"
    curves.mkdir()
    shutil.copy(os.path.join(os.path.dirname(sedpy.__file__), "data", "filters", "sdss_r0.par"),
                curves / "my_r.par")
    out = tmp_path / "user.h5"
    generate_training_set("default", ["my_r", "sdss_g0"], 20, SEED, out, workers=1,
                          filter_files=[curves], progress=False)
    data, ref = read_training_set(out), read_training_set(reference)
    assert data["filter_names"] == ["my_r", "sdss_g0"]
    # the same curve as sdss_r0 gives the same magnitudes for the same draws
    np.testing.assert_array_equal(data["mags"][:, 0], ref["mags"][:20, FILTERS.index("sdss_r0")])
    with h5py.File(out, "r") as f:
        assert f["filter_curves/my_r"].shape[0] == 2


# --- bad configuration fails before any work ---------------------------------------------
def test_unknown_filter_names_the_closest_sedpy_filters(tmp_path):
    out = tmp_path / "never.h5"
    with pytest.raises(EmulatorConfigurationError, match="unknown filter 'sdss_r'.*sdss_r0"):
        generate_training_set("default", ["sdss_g0", "sdss_r"], 10, 0, out)
    assert not out.exists()


def test_command_line_reports_bad_configuration_before_any_work(tmp_path, capsys):
    out = tmp_path / "never.h5"
    base = ["generate", "--n-samples", "10", "--out", str(out)]
    assert cli_main(base + ["--filters", "twomass_K"]) == 2
    assert "unknown filter 'twomass_K'" in capsys.readouterr().err

    bad_name = tmp_path / "bad_name.toml"
    bad_name.write_text('[distributions]\ndust3 = {kind = "uniform", low = 0, high = 1}\n')
    assert cli_main(base + ["--filters", "sdss_r0", "--config", str(bad_name)]) == 2
    err = capsys.readouterr().err
    assert "dust3" in err and "dust2" in err

    bad_bounds = tmp_path / "bad_bounds.toml"
    bad_bounds.write_text('[distributions]\nduste_umin = {kind = "truncated_normal", '
                          'mean = 1.0, sigma = 20.0, low = 25.0, high = 0.1}\n')
    assert cli_main(base + ["--filters", "sdss_r0", "--config", str(bad_bounds)]) == 2
    assert "duste_umin: impossible bounds" in capsys.readouterr().err

    assert cli_main(base + ["--filters", "sdss_r0", "--zred-min", "2", "--zred-max", "1"]) == 2
    assert "zred: impossible bounds" in capsys.readouterr().err

    assert cli_main(base + ["--filters", "sdss_r0", "--preset", "paper18"]) == 2
    assert "SPS_HOME" in capsys.readouterr().err or os.getenv("SPS_HOME")
    assert not out.exists()


def test_a_model_the_sps_cannot_honour_is_refused_before_the_file_is_written(tmp_path):
    """paper18 has AGN and a Chabrier IMF: BagpipesBasis says so, and nothing is written."""
    out = tmp_path / "never.h5"
    with pytest.raises(EmulatorConfigurationError, match="cannot compute the 'paper18' model"):
        generate_training_set("paper18", ["sdss_r0"], 10, 0, out, sps="bagpipes", workers=1)
    assert not out.exists()


def test_print_config_writes_a_reusable_toml(tmp_path, capsys):
    assert cli_main(["generate", "--print-config", "--zred-min", "1.0", "--zred-max", "2.0"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "printed.toml"
    path.write_text(text)
    from prospect_emulator.training import load_config
    config = load_config(path)
    assert config.distributions["zred"].bounds == (1.0, 2.0)
    assert config == get_preset("default", zred_range=(1.0, 2.0))


def test_configuration_errors_are_not_value_errors():
    """They must never be mistaken for an out-of-range proposal (-inf) by Prospector."""
    assert not issubclass(EmulatorConfigurationError, ValueError)
    assert issubclass(OutOfTrainingRangeError, ValueError)
