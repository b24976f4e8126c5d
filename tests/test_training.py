"""Training emulators with TensorFlow on a real BagpipesBasis training set.

One small training set (2500 models of the ``default`` preset, 9 filters) and
one width-32 training are shared by the whole module; the other trainings are
a few epochs each.  Everything is real: Prospector + BagpipesBasis photometry,
Keras 3 training, the NumPy runtime, Prospector's SpecModel interface.
"""
import os
import warnings

import h5py
import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("bagpipes")

from prospect_emulator import Emulator, StitchedEmulator, load_emulator  # noqa: E402
from prospect_emulator.cli.main import main  # noqa: E402
from prospect_emulator.errors import (EmulatorConfigurationError, EmulatorFileError,  # noqa: E402
                                      OutOfTrainingRangeError)
from prospect_emulator.runtime.emulator import RESIDUAL_STAT_COLUMNS  # noqa: E402
from prospect_emulator.runtime.magnitudes import (ARSINH_MU0, arsinh_mags_to_maggies,  # noqa: E402
                                                  maggies_to_arsinh_mags)

FILTERS = ["galex_NUV", "sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0",
           "twomass_Ks", "spitzer_irac_ch1", "wise_w3"]
N_SAMPLES = 2500
#: Settings of the shared training: small batches so that 2500 models give
#: enough gradient steps in a few epochs.
QUICK = dict(max_epochs=12, batch_size=100, seed=4, verbose=False)


@pytest.fixture(scope="session")
def training_set(tmp_path_factory):
    """A real training set: the default preset on BagpipesBasis, 2 workers."""
    from prospect_emulator.training import generate_training_set
    path = str(tmp_path_factory.mktemp("trainingset") / "train.h5")
    generate_training_set("default", FILTERS, N_SAMPLES, seed=1, out=path, workers=2,
                          chunk_size=500, progress=False)
    return path


@pytest.fixture(scope="session")
def trained(training_set, tmp_path_factory):
    """Width 32, mass-normalised (the default), written to disk."""
    from prospect_emulator.training.train import train_emulator
    out = str(tmp_path_factory.mktemp("emulator") / "emu_w32.h5")
    result = train_emulator(training_set, 32, out, **QUICK)
    return out, result


def _network_inputs(result):
    emu = result.emulator
    return result.test_params[:, [emu.param_names.index(p) for p in result.network_inputs]]


# ------------------------------------------------------------------ precision
class TestTrainedNetwork:
    def test_test_rmse_is_well_below_predicting_the_training_mean(self, trained, training_set):
        from prospect_emulator.training.train import held_out_mask, read_training_rows
        _, result = trained
        data = read_training_rows(training_set)
        train_rows = ~held_out_mask(data.rows, QUICK["seed"], 0.1)
        mean_mags = data.mags[train_rows].mean(axis=0)
        rmse_of_mean = np.sqrt(np.mean((result.test_mags - mean_mags) ** 2))
        assert rmse_of_mean > 3.0              # magnitudes span ~15 mag
        assert result.test_rmse < 0.25 * rmse_of_mean

    def test_test_set_is_held_out_of_training_and_validation(self, trained, training_set):
        from prospect_emulator.training.train import held_out_mask, read_training_rows
        _, result = trained
        data = read_training_rows(training_set)
        test = held_out_mask(data.rows, QUICK["seed"], 0.1)
        prov = result.emulator.provenance
        assert prov["n_test"] == test.sum() == len(result.test_params)
        assert prov["n_train"] + prov["n_validation"] + prov["n_test"] == len(data)
        np.testing.assert_array_equal(result.test_params, data.params[test])

    def test_three_stages_with_best_weights_restored(self, trained):
        _, result = trained
        assert [s["learning_rate"] for s in result.stages] == [1e-3, 1e-4, 1e-5]
        for stage in result.stages:
            epochs = [h for h in result.history if h["stage"] == stage["stage"]]
            assert len(epochs) == stage["epochs"] <= QUICK["max_epochs"]
            assert stage["best_val_loss"] == min(h["val_loss"] for h in epochs)

    def test_residual_statistics_are_those_of_the_test_set(self, trained):
        from prospect_emulator.training.evaluate import noise_model_residuals
        _, result = trained
        emu = result.emulator
        # the noise model's magnitudes: unit-mass ones for a mass-normalised emulator
        r = noise_model_residuals(emu, result.test_params, result.test_mags)
        if emu.mass_param is not None:
            assert not np.allclose(r, result.test_residuals)
            assert "unit-mass" in emu.provenance["residual_stats_magnitudes"]
        assert emu.residual_stats.shape == (len(FILTERS), len(RESIDUAL_STAT_COLUMNS))
        np.testing.assert_allclose(emu.residual_sigma, r.std(axis=0, ddof=1))
        np.testing.assert_allclose(emu.residual_stats[:, RESIDUAL_STAT_COLUMNS.index("mean")],
                                   r.mean(axis=0))
        np.testing.assert_allclose(emu.residual_stats[:, RESIDUAL_STAT_COLUMNS.index("median")],
                                   np.median(r, axis=0))
        np.testing.assert_allclose(emu.residual_covariance, np.cov(r, rowvar=False))
        # quantile columns increase from -4 to +4 sigma
        assert (np.diff(emu.residual_stats[:, :9], axis=1) >= 0).all()

    def test_mfrac_is_emulated_as_its_log10(self, trained):
        _, result = trained
        mfrac = result.emulator.predict_extra(result.test_params, "mfrac")
        assert (mfrac > 0).all()                      # positive by construction (log10 output)
        dex = np.log10(mfrac) - np.log10(result.test_mfrac)
        stored = result.emulator.provenance["extra_residuals"]["mfrac"]
        assert stored["transform"] == "log10"
        assert stored["std_dex"] == pytest.approx(dex.std(ddof=1))
        assert dex.std() < 0.2                        # a few epochs only: coarse

    def test_provenance_says_how_far_the_float32_pass_is_from_float64(self, trained):
        emulator_file, _ = trained
        emu = load_emulator(emulator_file)
        check = emu.provenance["float32_forward_pass"]
        assert check["n_draws"] == 100_000 and check["allowed"] == 1e-4
        # an independent recount on other draws stays below the recorded worst case x 2
        x = np.random.default_rng(9).uniform(emu.param_ranges[:, 0], emu.param_ranges[:, 1],
                                             (5000, emu.n_params))
        diff = np.abs(emu.as_float32().predict_mags(x) - emu.predict_mags(x)).max()
        assert 0 < diff <= 2 * check["max_mag_difference"]


# ----------------------------------------------------------------- export
class TestExport:
    def test_numpy_emulator_reproduces_keras_to_float32_precision(self, trained):
        from prospect_emulator.training.export import keras_network_outputs
        _, result = trained
        emu = result.emulator
        raw = keras_network_outputs(result.model, _network_inputs(result))
        # mass-normalised: Keras predicts the mags of 1 Msun formed; apply 10**logmass exactly
        logm = result.test_params[:, emu.param_names.index("logmass")]
        unit = arsinh_mags_to_maggies(raw[:, :emu.n_filters], emu.mass_mu0)
        keras_mags = maggies_to_arsinh_mags(unit * 10 ** logm[:, None], emu.mu0)
        mags, extras = emu.predict_mags_and_extras(result.test_params)
        np.testing.assert_allclose(mags, keras_mags, rtol=0, atol=5e-5)
        np.testing.assert_allclose(extras[:, 0], 10 ** raw[:, -1], rtol=1e-5)

    def test_file_round_trip_keeps_everything(self, trained, training_set):
        path, result = trained
        emu = load_emulator(path)
        assert isinstance(emu, Emulator)
        np.testing.assert_array_equal(emu.predict_mags(result.test_params),
                                      result.emulator.predict_mags(result.test_params))
        assert emu.filter_names == FILTERS
        assert emu.extra_names == ["mfrac"] and emu.extra_transforms == ["log10"]
        assert emu.width == 32 and len(emu.weights) == 6
        np.testing.assert_array_equal(emu.output_std, 1.0)
        np.testing.assert_array_equal(emu.residual_stats, result.emulator.residual_stats)
        prov = emu.provenance
        assert prov["sps"].startswith("bagpipes")
        assert prov["training_set"]["n_samples"] == N_SAMPLES
        assert prov["seed"] == QUICK["seed"] and prov["width"] == 32
        assert prov["distributions"]["logmass"] == {"kind": "uniform", "low": 6.0, "high": 12.5}
        assert len(prov["epochs"]) == 3 and prov["n_test"] > 100
        assert not os.path.exists(path + ".checkpoint")     # removed after the export

    def test_training_ranges_are_the_distribution_bounds(self, trained):
        from prospect_emulator.training import get_preset
        _, result = trained
        emu = result.emulator
        np.testing.assert_array_equal(emu.param_ranges, get_preset("default").param_ranges)
        assert emu.mass_param == "logmass"
        assert emu.mass_mu0 == ARSINH_MU0 + 2.5 * 12.5     # softening of 1 Msun at the top mass
        x = result.test_params[0].copy()
        x[emu.param_names.index("logmass")] = 12.6
        with pytest.raises(OutOfTrainingRangeError, match="logmass=12.6"):
            emu.predict_mags(x)

    def test_emulated_spec_model_predicts_the_training_photometry(self, trained):
        from sedpy.observate import load_filters
        from prospect_emulator.prospector import EmulatedSpecModel
        from prospect_emulator.training import get_preset
        path, result = trained
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = EmulatedSpecModel(get_preset("default").build_model_params(), emulator=path)
        obs = {"filters": load_filters(FILTERS), "maggies": np.ones(len(FILTERS)),
               "maggies_unc": np.ones(len(FILTERS)), "wavelength": None, "spectrum": None}
        bright = np.argsort(result.test_params[:, 0])[-20:]       # the 20 most massive test models
        for row in bright:
            theta = result.test_params[row]
            spec, phot, mfrac = model.predict(theta, obs=obs)
            np.testing.assert_array_equal(phot, result.emulator.predict_maggies(theta))
            err = maggies_to_arsinh_mags(phot) - result.test_mags[row]
            assert np.all(np.abs(err) < 6 * result.emulator.residual_sigma + 0.05)
            assert mfrac == pytest.approx(result.emulator.predict_extra(theta), rel=1e-12)


# ------------------------------------------------------------------ resume
class _StopAfter:
    """Raise KeyboardInterrupt (as Ctrl-C does) after ``epoch`` epochs of ``stage``."""

    def __init__(self, stage, epoch):
        self.stage, self.epoch = stage, epoch

    def __call__(self, event):
        if event["stage"] == self.stage and event["epoch"] == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.slow
class TestResume:
    def test_interrupted_training_resumes_where_it_stopped(self, trained, training_set, tmp_path):
        from prospect_emulator.training.train import train_emulator
        out = str(tmp_path / "emu.h5")
        with pytest.raises(KeyboardInterrupt):
            train_emulator(training_set, 32, out, callbacks=[_StopAfter(1, 4)], **QUICK)
        assert not os.path.exists(out)
        assert os.path.exists(os.path.join(out + ".checkpoint", "checkpoint.h5"))

        # a different training refuses the checkpoint instead of mixing runs
        with pytest.raises(EmulatorConfigurationError, match="different training.*width"):
            train_emulator(training_set, 16, out, **QUICK)

        seen = []
        result = train_emulator(training_set, 32, out, callbacks=[seen.append], **QUICK)
        assert result.resumed_from == (1, 4)          # stage 2, after its 4th epoch
        assert (seen[0]["stage"], seen[0]["epoch"]) == (1, 5)
        # the same training as without the interruption
        _, uninterrupted = trained
        assert [h["val_loss"] for h in result.history] == pytest.approx(
            [h["val_loss"] for h in uninterrupted.history], rel=1e-5)
        for w1, w2 in zip(result.emulator.weights, uninterrupted.emulator.weights):
            np.testing.assert_allclose(w1, w2, rtol=0, atol=1e-5)
        assert os.path.exists(out) and not os.path.exists(out + ".checkpoint")


def _checkpoint_contents(path):
    import json
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["state"]), {g: len(f[g]) for g in f}


@pytest.mark.slow
class TestStageBoundaryResume:
    """A checkpoint written at the end of a stage resumes the next stage with a
    fresh optimizer: zero moments, step 0, the stage's own learning rate."""

    def _stop_at_stage_2(self, training_set, out):
        from prospect_emulator.training.train import train_emulator
        # checkpoints only at stage ends: stopping after stage 2's first epoch
        # leaves the checkpoint written when stage 1 ended
        with pytest.raises(KeyboardInterrupt):
            train_emulator(training_set, 32, out, callbacks=[_StopAfter(1, 1)],
                           checkpoint_every=10 ** 6, **QUICK)
        path = os.path.join(out + ".checkpoint", "checkpoint.h5")
        state, groups = _checkpoint_contents(path)
        assert (state["stage"], state["epoch"]) == (1, 0)
        assert groups["optimizer"] == 0 and state["checkpoint_version"] == 2
        return path

    def _resume_and_check(self, training_set, out, trained):
        from prospect_emulator.training.train import train_emulator
        seen = []
        result = train_emulator(training_set, 32, out, callbacks=[seen.append], **QUICK)
        assert result.resumed_from == (1, 0)
        first = seen[0]
        assert (first["stage"], first["epoch"]) == (1, 1)
        steps_per_epoch = -(-result.emulator.provenance["n_train"] // QUICK["batch_size"])
        assert first["optimizer_iterations"] == steps_per_epoch      # counted from 0 in stage 2
        assert first["learning_rate"] == 1e-4
        assert first["optimizer_learning_rate"] == pytest.approx(1e-4, rel=1e-6)
        # and the training is the uninterrupted one
        _, uninterrupted = trained
        assert [h["val_loss"] for h in result.history] == pytest.approx(
            [h["val_loss"] for h in uninterrupted.history], rel=1e-5)
        for w1, w2 in zip(result.emulator.weights, uninterrupted.emulator.weights):
            np.testing.assert_allclose(w1, w2, rtol=0, atol=1e-5)

    def test_stage_2_starts_with_a_fresh_optimizer_after_resume(self, trained, training_set,
                                                               tmp_path):
        out = str(tmp_path / "emu.h5")
        self._stop_at_stage_2(training_set, out)
        self._resume_and_check(training_set, out, trained)

    def test_version_1_checkpoint_with_the_ended_stages_optimizer_is_resumed_correctly(
            self, trained, training_set, tmp_path):
        """Version 1 stored stage 1's Nadam state (step count, learning rate 1e-3,
        moments) at the boundary and resumed stage 2 with it; it is ignored now."""
        import json
        from prospect_emulator.training.train import train_emulator
        mid_stage = str(tmp_path / "mid.h5")
        with pytest.raises(KeyboardInterrupt):
            train_emulator(training_set, 32, mid_stage, callbacks=[_StopAfter(0, 3)], **QUICK)
        mid_path = os.path.join(mid_stage + ".checkpoint", "checkpoint.h5")
        out = str(tmp_path / "emu.h5")
        path = self._stop_at_stage_2(training_set, out)
        with h5py.File(mid_path, "r") as src, h5py.File(path, "r+") as dst:
            assert len(src["optimizer"]) > 0 and src["optimizer/0"][()] > 0   # steps taken
            del dst["optimizer"]
            src.copy("optimizer", dst)
            state = json.loads(dst.attrs["state"])
            del state["checkpoint_version"]
            dst.attrs["state"] = json.dumps(state)
        self._resume_and_check(training_set, out, trained)


# ------------------------------------------------------------- dropped rows
def test_training_on_a_set_with_unfinished_chunks_says_how_many_rows_it_left_out(training_set,
                                                                                tmp_path):
    import shutil
    from prospect_emulator.training.train import DroppedRowsWarning, train_emulator
    partial = tmp_path / "partial.h5"
    shutil.copy(training_set, partial)
    with h5py.File(partial, "r+") as f:       # as if generate had stopped before the last chunk
        f["chunk_done"][-1] = False
    with pytest.warns(DroppedRowsWarning,
                      match=r"training on 2000 rows; .*partial.h5: 500 of 2500 rows left out: "
                            r"500 in unfinished chunks \(generation not finished\)"):
        result = train_emulator(str(partial), 8, None, max_epochs=1, batch_size=250,
                                learning_rates=(1e-3,), verbose=False)
    assert result.emulator.provenance["dropped_rows"] == {
        "in unfinished chunks (generation not finished)": 500}
    assert result.emulator.provenance["n_valid_rows"] == 2000


# ------------------------------------------------------------- training-set size
def test_first_rows_trains_on_a_prefix_of_the_set_and_says_so(training_set, tmp_path):
    """A training-set-size study: ``--first-rows N`` uses the file's first N rows only,
    counts none of the others as dropped, and records N in the emulator's provenance."""
    from prospect_emulator.training.train import read_training_rows
    prefix = read_training_rows(training_set, first_rows=1000)
    whole = read_training_rows(training_set)
    assert len(prefix) == 1000 and prefix.dropped == {}
    np.testing.assert_array_equal(prefix.params, whole.params[:1000])
    np.testing.assert_array_equal(prefix.mags, whole.mags[:1000])

    out = tmp_path / "emu_first1000.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no DroppedRowsWarning for the rows not asked for
        assert main(["train", training_set, "--width", "8", "--out", str(out),
                     "--first-rows", "1000", "--max-epochs", "1", "--learning-rates", "1e-3",
                     "--batch-size", "250", "--quiet"]) == 0
    prov = load_emulator(str(out)).provenance
    assert prov["first_rows"] == 1000 and prov["n_valid_rows"] == 1000
    assert prov["n_train"] + prov["n_validation"] + prov["n_test"] == 1000

    for bad in (3000, 0, 2.5, True):
        with pytest.raises(EmulatorConfigurationError, match="first_rows"):
            read_training_rows(training_set, first_rows=bad)


def test_first_rows_counts_unfinished_and_failed_rows_inside_the_prefix_only(training_set,
                                                                             tmp_path):
    import shutil
    from prospect_emulator.training.train import read_training_rows
    partial = tmp_path / "partial.h5"
    shutil.copy(training_set, partial)
    with h5py.File(partial, "r+") as f:      # chunks of 500 rows: rows 500-999 and 2000-2499
        f["chunk_done"][1] = False            # unfinished, row 10 failed
        f["chunk_done"][4] = False
        f["failed"][10] = True
        f["fail_reason"][10] = "a test failure"
    unfinished = "in unfinished chunks (generation not finished)"
    failed = "failed models (most common reason: a test failure)"
    assert read_training_rows(str(partial), first_rows=400).dropped == {failed: 1}
    assert read_training_rows(str(partial), first_rows=800).dropped == {unfinished: 300,
                                                                        failed: 1}
    assert read_training_rows(str(partial), first_rows=2100).dropped == {unfinished: 600,
                                                                         failed: 1}
    assert read_training_rows(str(partial)).dropped == {unfinished: 1000, failed: 1}
    with pytest.raises(EmulatorFileError, match="no finished chunk yet in its first 300 rows"):
        with h5py.File(partial, "r+") as f:
            f["chunk_done"][0] = False
        read_training_rows(str(partial), first_rows=300)


# ------------------------------------------------------------- bad input
class TestBadInputFailsBeforeWork:
    def test_missing_or_foreign_training_set(self, tmp_path, trained):
        from prospect_emulator.training.train import train_emulator
        with pytest.raises(EmulatorFileError, match="does not exist"):
            train_emulator(str(tmp_path / "missing.h5"), 32)
        junk = tmp_path / "junk.h5"
        junk.write_text("not a training set")
        with pytest.raises(EmulatorFileError, match="not a readable HDF5"):
            train_emulator(str(junk), 32)
        emulator_file, _ = trained
        with pytest.raises(EmulatorFileError, match="not a prospect-emulator training set"):
            train_emulator(emulator_file, 32)

    @pytest.mark.parametrize("kwargs, match", [
        (dict(width=0), "width"), (dict(width=-8), "width"), (dict(width=2.5), "width"),
        (dict(width=8, batch_size=0), "batch_size"), (dict(width=8, max_epochs=0), "max_epochs"),
        (dict(width=8, test_fraction=1.5), "test_fraction"),
        (dict(width=8, zred_domain=(2.0, 1.0)), "low < high"),
        (dict(width=8, zred_domain=(5.0, 6.0)), "too few"),
        (dict(width=8, learning_rates=()), "learning_rates"),
    ])
    def test_bad_settings(self, training_set, tmp_path, kwargs, match):
        from prospect_emulator.training.train import train_emulator
        width = kwargs.pop("width")
        with pytest.raises(EmulatorConfigurationError, match=match):
            train_emulator(training_set, width, str(tmp_path / "emu.h5"), **kwargs)
        assert os.listdir(tmp_path) == []

    def test_output_directory_must_exist(self, training_set, tmp_path):
        from prospect_emulator.training.train import train_emulator
        with pytest.raises(EmulatorConfigurationError, match="does not exist"):
            train_emulator(training_set, 8, str(tmp_path / "nowhere" / "emu.h5"))

    def test_command_line_reports_errors_with_exit_status_2(self, training_set, tmp_path, capsys):
        out = str(tmp_path / "emu.h5")
        assert main(["train", training_set, "--width", "0", "--out", out]) == 2
        assert "width" in capsys.readouterr().err
        assert main(["train", str(tmp_path / "nope.h5"), "--width", "8", "--out", out]) == 2
        assert "nope.h5" in capsys.readouterr().err
        assert main(["stitch", "--train", training_set, "--domains", "0.5:1.5,1.6:3",
                     "--width", "8", "--out", out]) == 2
        assert "do not overlap" in capsys.readouterr().err
        assert not os.path.exists(out)


# ------------------------------------------------------------ the output file
def _unwritable_directories():
    """Directories no file can be created in: chmod'ed (not for root, who may
    write anyway) and, on Linux, /sys (not even root)."""
    import sys
    return [pytest.param("chmod", marks=pytest.mark.skipif(
                os.name != "posix" or os.geteuid() == 0, reason="root writes to any directory")),
            pytest.param("/sys", marks=pytest.mark.skipif(
                not sys.platform.startswith("linux"), reason="/sys is Linux's"))]


@pytest.fixture
def unwritable_dir(request, tmp_path):
    if request.param == "chmod":
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        yield str(locked)
        locked.chmod(0o700)
    else:
        yield request.param


class TestOutputFile:
    """``train --out`` never clobbers a file by accident and fails before any
    work when it could not write."""

    def _existing(self, tmp_path):
        from conftest import make_random_emulator
        out = tmp_path / "emu.h5"
        make_random_emulator().save(out)
        return str(out), out.read_bytes()

    def test_existing_output_is_refused_without_overwrite(self, training_set, tmp_path, capsys):
        from prospect_emulator.training.train import train_emulator
        out, before = self._existing(tmp_path)
        assert main(["train", training_set, "--width", "8", "--out", out]) == 2
        err = capsys.readouterr().err
        assert f"{out} already exists: pass --overwrite" in err
        with pytest.raises(EmulatorConfigurationError, match="already exists"):
            train_emulator(training_set, 8, out)
        # untouched, and no checkpoint started
        assert open(out, "rb").read() == before and os.listdir(tmp_path) == ["emu.h5"]

    def test_overwrite_replaces_it(self, training_set, tmp_path, capsys):
        out, _ = self._existing(tmp_path)
        assert main(["train", training_set, "--width", "8", "--out", out, "--overwrite",
                     "--max-epochs", "1", "--batch-size", "250", "--learning-rates", "1e-3",
                     "--quiet"]) == 0
        emu = load_emulator(out)
        assert emu.width == 8 and emu.provenance["width"] == 8 and len(emu.filter_names) == len(FILTERS)
        assert os.listdir(tmp_path) == ["emu.h5"]
        capsys.readouterr()

    @pytest.mark.parametrize("unwritable_dir", _unwritable_directories(), indirect=True)
    def test_unwritable_output_directory(self, training_set, unwritable_dir, capsys):
        out = os.path.join(unwritable_dir, "emu.h5")
        assert main(["train", training_set, "--width", "8", "--out", out]) == 2
        assert f"cannot write {out}: directory {unwritable_dir} is not writable" in capsys.readouterr().err

    @pytest.mark.parametrize("unwritable_dir", _unwritable_directories(), indirect=True)
    def test_unwritable_checkpoint_directory(self, training_set, unwritable_dir, tmp_path, capsys):
        checkpoint = os.path.join(unwritable_dir, "run1", "ckpt")
        assert main(["train", training_set, "--width", "8", "--out", str(tmp_path / "emu.h5"),
                     "--checkpoint-dir", checkpoint]) == 2
        assert (f"cannot write the checkpoint in {checkpoint}: directory {unwritable_dir} is not "
                "writable") in capsys.readouterr().err
        assert os.listdir(tmp_path) == []

    def test_output_inside_a_file_is_refused(self, training_set, tmp_path, capsys):
        (tmp_path / "notes.txt").write_text("a file, not a directory")
        out = str(tmp_path / "notes.txt" / "emu.h5")
        assert main(["train", training_set, "--width", "8", "--out", out]) == 2
        assert f"{tmp_path / 'notes.txt'} is not a directory" in capsys.readouterr().err

    def test_stitch_out_is_refused_without_overwrite(self, tmp_path, capsys):
        from conftest import make_random_emulator
        members = []
        for i, (zlo, zhi) in enumerate([(0.5, 1.75), (1.25, 3.0)]):
            path = str(tmp_path / f"member{i}.h5")
            make_random_emulator(n_params=3, param_names=["logzsol", "dust2", "zred"],
                                 param_ranges=[(-2.0, 0.2), (0.0, 4.0), (zlo, zhi)], seed=i).save(path)
            members.append(path)
        out, before = self._existing(tmp_path)
        assert main(["stitch", *members, "--out", out]) == 2
        assert f"{out} already exists: pass --overwrite" in capsys.readouterr().err
        assert open(out, "rb").read() == before
        assert main(["stitch", *members, "--out", out, "--overwrite"]) == 0
        assert isinstance(load_emulator(out), StitchedEmulator)
        capsys.readouterr()


# ---------------------------------------------------- variants and stitching
@pytest.mark.slow
class TestVariants:
    def test_logmass_as_a_network_input(self, training_set, tmp_path):
        from prospect_emulator.training.export import keras_network_outputs
        from prospect_emulator.training.train import train_emulator
        result = train_emulator(training_set, 16, None, mass_normalised=False, max_epochs=2,
                                batch_size=250, seed=2, verbose=False)
        emu = result.emulator
        assert emu.mass_param is None and emu.weights[0].shape[0] == emu.n_params == 15
        assert result.network_inputs == emu.param_names
        raw = keras_network_outputs(result.model, result.test_params)
        np.testing.assert_allclose(emu.predict_mags(result.test_params), raw[:, :-1], atol=5e-5)

    def test_stitch_trains_members_on_redshift_domains(self, training_set, tmp_path, capsys):
        from prospect_emulator.training.evaluate import evaluate_emulator
        out = str(tmp_path / "stitched.h5")
        status = main(["stitch", "--train", training_set, "--domains", "1.6:3,0.5:1.9",
                       "--width", "16", "--max-epochs", "2", "--batch-size", "100", "--seed", "3",
                       "--quiet", "--out", out])
        assert status == 0
        stitched = load_emulator(out)
        assert isinstance(stitched, StitchedEmulator)
        np.testing.assert_array_equal(stitched.z_low, [0.5, 1.6])
        np.testing.assert_array_equal(stitched.z_high, [1.9, 3.0])
        members = [load_emulator(str(tmp_path / f"stitched.member{i}.h5")) for i in (0, 1)]
        for m, (zlo, zhi) in zip(members, [(0.5, 1.9), (1.6, 3.0)]):
            assert m.param_ranges[m.param_names.index("zred")].tolist() == [zlo, zhi]
            assert m.provenance["zred_domain"] == [zlo, zhi]
        x = np.array(members[0].param_ranges).mean(axis=1)
        iz = stitched.param_names.index("zred")
        for z, only in [(1.0, 0), (2.5, 1)]:
            x[iz] = z
            np.testing.assert_allclose(stitched.predict_mags(x), members[only].predict_mags(x))
        # combining the member files gives the same emulator
        assert main(["stitch", str(tmp_path / "stitched.member1.h5"),
                     str(tmp_path / "stitched.member0.h5"), "--out", str(tmp_path / "again.h5")]) == 0
        x[iz] = 1.75
        np.testing.assert_array_equal(load_emulator(str(tmp_path / "again.h5")).predict_mags(x),
                                      stitched.predict_mags(x))
        # evaluated on its training file, only rows no member trained on count
        from prospect_emulator.training.train import held_out_mask, read_training_rows
        rows = read_training_rows(training_set).rows
        report = evaluate_emulator(out, training_set, verbose=False)
        assert "held-out" in report.selection
        assert report.n_rows == held_out_mask(rows, 3, 0.1).sum()
        capsys.readouterr()


# ------------------------------------------------------- evaluate a trained one
def test_evaluate_command_reproduces_the_stored_test_statistics(trained, training_set, tmp_path):
    path, result = trained
    report_dir = tmp_path / "report"
    assert main(["evaluate", path, training_set, "--report", str(report_dir)]) == 0
    import json
    numbers = json.loads((report_dir / "residuals.json").read_text())
    assert numbers["n_rows"] == len(result.test_params)
    assert "held-out" in numbers["selection"]
    # the paper's measure, in output arsinh magnitudes (the stored sigma of a
    # mass-normalised emulator is the noise model's unit-mass one)
    np.testing.assert_allclose([f["std"] for f in numbers["filters"]],
                               result.test_residuals.std(axis=0, ddof=1))
    for name in ("precision_vs_wavelength.png", "residual_correlation.png",
                 "residual_histograms.png", "residuals.csv"):
        assert (report_dir / name).stat().st_size > 1000
    with h5py.File(training_set, "r") as f:    # the report's wavelengths are the file's
        np.testing.assert_allclose([r["wave_eff_angstrom"] for r in numbers["filters"]],
                                   f["filter_wave_effective"][()])


def test_evaluate_stores_the_noise_models_statistics_in_a_copy(trained, training_set, tmp_path):
    from prospect_emulator import load_emulator
    from prospect_emulator.training.evaluate import noise_model_residuals
    path, result = trained
    out = str(tmp_path / "restamped.h5")
    assert main(["evaluate", path, training_set, "--store-noise-statistics", out]) == 0
    emu = load_emulator(out)
    r = noise_model_residuals(result.emulator, result.test_params, result.test_mags)
    np.testing.assert_allclose(emu.residual_sigma, r.std(axis=0, ddof=1))
    assert emu.provenance["residual_stats_from"]["n_rows"] == len(result.test_params)
    np.testing.assert_array_equal(emu.predict_mags(result.test_params[:5]),
                                  result.emulator.predict_mags(result.test_params[:5]))
