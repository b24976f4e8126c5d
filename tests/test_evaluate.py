"""Evaluating an emulator on a test set: residual statistics and the report.

Needs no TensorFlow: the emulator is a hand-made NumPy one (conftest) with the
inputs and filters of a small real BagpipesBasis test set, so these tests
check the bookkeeping (which rows, which numbers, which files), not the
quality of a trained network (tests/test_training.py does that).
"""
import csv
import json

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("bagpipes")

from conftest import make_random_emulator  # noqa: E402
from prospect_emulator.cli.main import main  # noqa: E402
from prospect_emulator.errors import EmulatorConfigurationError  # noqa: E402
from prospect_emulator.runtime.emulator import RESIDUAL_STAT_COLUMNS  # noqa: E402
from prospect_emulator.training.evaluate import (SIGMA_PROBABILITIES, evaluate_emulator,  # noqa: E402
                                                 residual_statistics)
from prospect_emulator.training.train import (held_out_mask, read_training_rows,  # noqa: E402
                                              training_set_identity)

FILTERS = ["sdss_u0", "sdss_g0", "sdss_r0", "twomass_Ks", "spitzer_irac_ch1"]


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    """400 real models of the default preset (BagpipesBasis)."""
    from prospect_emulator.training import generate_training_set
    path = str(tmp_path_factory.mktemp("testset") / "test.h5")
    generate_training_set("default", FILTERS, 400, seed=7, out=path, workers=1, chunk_size=200,
                          progress=False)
    return path


def emulator_for(path, trained_on_it=False, zred_range=None, filters=FILTERS):
    """A hand-made emulator with the file's inputs, optionally claiming to have
    been trained on it (provenance as written by train_emulator)."""
    data = read_training_rows(path)
    ranges = data.distribution_ranges.copy()
    if zred_range is not None:
        ranges[data.param_names.index("zred")] = zred_range
    emu = make_random_emulator(n_params=len(data.param_names), width=8, param_names=data.param_names,
                               filter_names=filters, extra_names=["mfrac"], param_ranges=ranges,
                               extra_transforms=["log10"])
    if trained_on_it:
        emu.provenance = {"training_set": training_set_identity(data),
                          "test_selection": {"seed": 11, "fraction": 0.25}}
    return emu


class TestResidualStatistics:
    def test_columns_of_gaussian_residuals(self):
        rng = np.random.default_rng(0)
        sigma = np.array([0.01, 0.05, 0.2])
        r = rng.normal(0.003, sigma, size=(400_000, 3))
        table, cov = residual_statistics(r)
        assert table.shape == (3, len(RESIDUAL_STAT_COLUMNS))
        # quantile columns at the Gaussian probabilities of -4..+4 sigma
        for k, col in zip(range(-4, 5), RESIDUAL_STAT_COLUMNS[:9]):
            tol = 0.15 if abs(k) == 4 else 0.03
            error = table[:, RESIDUAL_STAT_COLUMNS.index(col)] - (0.003 + k * sigma)
            assert np.all(np.abs(error) < tol * sigma * max(abs(k), 1)), col
        np.testing.assert_allclose(table[:, -2], 0.003, atol=0.01 * sigma.max())
        np.testing.assert_allclose(table[:, -1], sigma, rtol=0.01)
        np.testing.assert_allclose(cov, np.cov(r, rowvar=False))

    def test_probabilities_are_the_gaussian_sigma_levels(self):
        np.testing.assert_allclose(SIGMA_PROBABILITIES, stats.norm.cdf(np.arange(-4, 5)))
        assert SIGMA_PROBABILITIES[4] == 0.5

    def test_needs_two_samples(self):
        with pytest.raises(EmulatorConfigurationError, match="at least two"):
            residual_statistics(np.zeros((1, 3)))


class TestEvaluate:
    def test_numbers_are_those_of_the_residuals(self, test_set):
        emu = emulator_for(test_set)
        report = evaluate_emulator(emu, test_set, verbose=False)
        data = read_training_rows(test_set)
        cols = [data.filter_names.index(f) for f in FILTERS]
        expected = emu.predict_mags(data.params) - data.mags[:, cols]
        assert report.n_rows == len(data) and "all" in report.selection
        np.testing.assert_allclose(report.residuals, expected)
        np.testing.assert_allclose(report.bias, expected.mean(axis=0))
        np.testing.assert_allclose(report.std, expected.std(axis=0, ddof=1))
        np.testing.assert_allclose(np.diag(report.correlation), 1.0)
        mf = np.log10(emu.predict_extra(data.params)) - np.log10(data.mfrac)
        assert report.extras["mfrac"]["std_dex"] == pytest.approx(mf.std(ddof=1))

    def test_only_held_out_rows_of_the_emulators_own_training_set(self, test_set):
        emu = emulator_for(test_set, trained_on_it=True)
        report = evaluate_emulator(emu, test_set, verbose=False)
        rows = read_training_rows(test_set).rows
        assert report.n_rows == held_out_mask(rows, 11, 0.25).sum() < 0.4 * len(rows)
        assert "held-out" in report.selection
        assert evaluate_emulator(emu, test_set, held_out=False, verbose=False).n_rows == len(rows)

    def test_insisting_on_held_out_rows_of_a_foreign_file_fails(self, test_set):
        with pytest.raises(EmulatorConfigurationError, match="not the training set"):
            evaluate_emulator(emulator_for(test_set), test_set, held_out=True, verbose=False)

    def test_rows_outside_the_training_ranges_are_left_out(self, test_set):
        emu = emulator_for(test_set, zred_range=(0.5, 1.5))
        report = evaluate_emulator(emu, test_set, verbose=False)
        z = read_training_rows(test_set).params[:, emu.param_names.index("zred")]
        assert report.n_rows == np.count_nonzero(z <= 1.5)
        assert "outside the training ranges" in report.selection

    def test_missing_filters_or_inputs_are_named(self, test_set):
        emu = emulator_for(test_set, filters=FILTERS + ["wise_w1"])
        with pytest.raises(EmulatorConfigurationError, match="lacks emulator filters.*wise_w1"):
            evaluate_emulator(emu, test_set, verbose=False)


class TestReport:
    def test_report_files(self, test_set, tmp_path):
        report = evaluate_emulator(emulator_for(test_set), test_set, report_dir=str(tmp_path),
                                   n_histograms=3, verbose=False)
        for name in ("precision_vs_wavelength.png", "residual_correlation.png",
                     "residual_histograms.png"):
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        numbers = json.loads((tmp_path / "residuals.json").read_text())
        assert [f["filter"] for f in numbers["filters"]] == FILTERS
        np.testing.assert_allclose(numbers["correlation"], report.correlation)
        with open(tmp_path / "residuals.csv") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["filter", "wave_eff_angstrom", "bias", "std", "q_m4sigma",
                                 "q_m3sigma", "q_m2sigma", "q_m1sigma", "median", "q_p1sigma",
                                 "q_p2sigma", "q_p3sigma", "q_p4sigma"]
        # effective wavelengths of sedpy's curves, in Angstrom (r band ~ 6200 AA)
        r_band = next(r for r in rows if r["filter"] == "sdss_r0")
        assert 6000 < float(r_band["wave_eff_angstrom"]) < 6400
        np.testing.assert_allclose([float(r["std"]) for r in rows], report.std)

    def test_command_line(self, test_set, tmp_path, capsys):
        emu_path = str(tmp_path / "emu.h5")
        emulator_for(test_set).save(emu_path)
        assert main(["evaluate", emu_path, test_set, "--report", str(tmp_path / "rep")]) == 0
        assert "evaluated on 400 rows" in capsys.readouterr().out
        assert (tmp_path / "rep" / "residuals.json").exists()
        assert main(["evaluate", str(tmp_path / "missing.h5"), test_set]) == 2
        assert "no emulator file" in capsys.readouterr().err
        assert main(["evaluate", emu_path, emu_path]) == 2
        assert "not a prospect-emulator training set" in capsys.readouterr().err
