"""Amortized posteriors: simulations, a small real flow trained in seconds, its file, sampling,
bad input and out-of-support detection.

The catalogue here is made from the shipped parametric emulator: fluxes of prior draws,
uncertainties from a sky term per band (with a depth that varies object to object) plus 2%
of the flux, and bands missing as in a real survey (u sometimes, the three near-IR bands
together for 30% of objects).
"""
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("flowjax")
h5py = pytest.importorskip("h5py")

from prospect_emulator.amortized import (AmortizedInputError, AmortizedPosterior,  # noqa: E402
                                         ObservationalNoiseModel, Observations, ParameterSpace,
                                         fit_catalog_amortized, simulate)
from prospect_emulator.amortized.simulate import emulator_inputs  # noqa: E402
from prospect_emulator.errors import EmulatorConfigurationError, EmulatorFileError  # noqa: E402

FILTERS = ["sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0", "twomass_J", "twomass_H",
           "twomass_Ks"]
MISSING_RATE = np.array([0.1, 0, 0, 0, 0.05, 0.3, 0.3, 0.3])
TINY_FLOW = ["--flow-layers", "2", "--nn-width", "24", "--nn-depth", "1"]


def parametric_model():
    from prospect_emulator import EmulatedSpecModel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EmulatedSpecModel.from_emulator("parametric", zred=None)


def make_catalog(model, n, seed=1):
    """(maggies, maggies_unc, zred, theta) of a survey-like catalogue (NaN = missing band)."""
    rng = np.random.default_rng(seed)
    theta = model.prior_transform(rng.random((n, model.ndim)))
    flux = model.emulator.select(FILTERS).predict_maggies(emulator_inputs(model, theta))
    sky = 10 ** (-0.4 * np.linspace(28.0, 26.0, len(FILTERS))) / 5  # 5-sigma depths 25.5-23.5
    sky = sky[None, :] * 10 ** (0.1 * rng.standard_normal((n, 1)))
    unc = np.sqrt(sky ** 2 + (0.02 * flux) ** 2)
    maggies = flux + unc * rng.standard_normal(flux.shape)
    missing = rng.random(flux.shape) < MISSING_RATE
    missing[:, 5:] = missing[:, [5]]
    maggies[missing] = np.nan
    return maggies, unc, theta[:, model.theta_index["zred"].start], theta


def write_catalog(path, maggies, unc, zred):
    from astropy.table import Table
    table = Table({"id": [f"g{i}" for i in range(len(zred))], "z": zred})
    for b, name in enumerate(FILTERS):
        table[f"f_{name}"] = maggies[:, b]
        table[f"e_{name}"] = unc[:, b]
    table.write(path, overwrite=True)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("amortized")


@pytest.fixture(scope="module")
def catalog(workdir):
    model = parametric_model()
    maggies, unc, zred, _ = make_catalog(model, 2000)
    return write_catalog(str(workdir / "catalog.ecsv"), maggies, unc, zred)


@pytest.fixture(scope="module")
def posterior_path(workdir, catalog):
    """A small real flow trained through the command line (1e4 simulations, a few epochs)."""
    from prospect_emulator.cli.main import main
    out = str(workdir / "posterior.h5")
    code = main(["amortize", "train", "--emulator", "parametric", "--catalog", catalog,
                 "--n-sims", "10000", "--out", out, "--epochs", "8", "--batch-size", "256",
                 "--learning-rate", "3e-3", "--n-calibration", "300", "--quiet", *TINY_FLOW])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def posterior(posterior_path):
    return AmortizedPosterior.load(posterior_path)


@pytest.fixture(scope="module")
def held_out(posterior):
    """200 in-distribution simulations the flow never saw (another seed)."""
    return simulate(posterior.model, posterior.noise_model, 200, seed=12345)


def as_obs(sims, rows=slice(None)):
    return Observations(FILTERS, sims.maggies[rows], sims.maggies_unc[rows], sims.zred[rows])


# ------------------------------------------------------------------ simulations
class TestSimulations:
    def test_missing_bands_and_uncertainties_follow_the_catalogue(self):
        model = parametric_model()
        maggies, unc, zred, _ = make_catalog(model, 3000, seed=4)
        noise = ObservationalNoiseModel.fit(maggies, unc, FILTERS)
        sims = simulate(model, noise, 20000, seed=0, catalog_redshifts=zred)
        observed = np.isfinite(maggies)
        np.testing.assert_allclose(sims.mask.mean(axis=0), observed.mean(axis=0), atol=0.02)
        # the near-IR bands go missing together, as in the catalogue
        assert np.array_equal(sims.mask[:, 5], sims.mask[:, 7])
        # median uncertainty per band within 0.05 dex of the catalogue's
        med_sim = np.nanmedian(np.log10(sims.maggies_unc), axis=0)
        med_cat = np.median(np.log10(unc), axis=0)
        np.testing.assert_allclose(med_sim, med_cat, atol=0.05)
        assert np.all(np.isnan(sims.maggies[~sims.mask]))
        lo, hi = zred.min(), zred.max()
        assert sims.zred.min() >= 0 and sims.zred.max() <= 3
        assert abs(np.median(sims.zred) - np.median(zred)) < 0.1 * (hi - lo)

    def test_same_seed_same_simulations_and_rate(self):
        import time
        model = parametric_model()
        maggies, unc, _, _ = make_catalog(model, 500)
        noise = ObservationalNoiseModel.fit(maggies, unc, FILTERS)
        t0 = time.perf_counter()
        a = simulate(model, noise, 20000, seed=3)
        rate = len(a) / (time.perf_counter() - t0) * 60
        b = simulate(model, noise, 20000, seed=3)
        assert np.array_equal(a.maggies, b.maggies, equal_nan=True)
        assert rate > 1e5, f"{rate:.3g} simulations per minute"

    def test_emulator_error_and_floor_widen_the_scatter(self):
        model = parametric_model()
        maggies, unc, _, _ = make_catalog(model, 500)
        noise = ObservationalNoiseModel.fit(maggies, unc, FILTERS)
        sims = simulate(model, noise, 5000, seed=1, floor=0.05)
        # bright objects: scatter of (observed - true) / sigma_obs well above 1 (5% floor)
        bright = sims.maggies_true[:, 2] > 100 * sims.maggies_unc[:, 2]
        pull = (sims.maggies[bright, 2] - sims.maggies_true[bright, 2]) / sims.maggies_unc[bright, 2]
        assert np.std(pull) > 3

    def test_noise_model_round_trips_through_arrays(self):
        model = parametric_model()
        maggies, unc, _, _ = make_catalog(model, 300)
        noise = ObservationalNoiseModel.fit(maggies, unc, FILTERS)
        again = ObservationalNoiseModel.from_arrays(noise.to_arrays())
        assert again.filter_names == FILTERS
        assert np.array_equal(again.patterns, noise.patterns)
        np.testing.assert_array_equal(again.log_unc_median, noise.log_unc_median)

    def test_noise_model_refuses_a_band_with_no_data(self):
        model = parametric_model()
        maggies, unc, _, _ = make_catalog(model, 300)
        maggies[:, 3] = np.nan
        with pytest.raises(Exception, match="sdss_i0"):
            ObservationalNoiseModel.fit(maggies, unc, FILTERS)

    @pytest.mark.parametrize("coordinates", ["prior-normal", "logit"])
    def test_parameter_space_maps_into_the_prior_and_back(self, coordinates):
        model = parametric_model()
        space = ParameterSpace(model, coordinates)
        assert space.inferred_names == ["mass", "logzsol", "dust2", "tage", "tau"]
        theta = model.prior_transform(np.random.default_rng(0).random((100, model.ndim)))
        back = space.full_theta(space.from_unbounded(space.to_unbounded(theta)),
                                theta[:, space.zred_index])
        np.testing.assert_allclose(back, theta, rtol=1e-6)
        # any unbounded value lands inside the prior
        wild = space.from_unbounded(np.random.default_rng(1).normal(0, 30, (100, 5)))
        lo = np.where(space.log10, 10 ** space.lower, space.lower)
        hi = np.where(space.log10, 10 ** space.upper, space.upper)
        slack = 1e-9 * (hi - lo)
        assert np.all((wild >= lo - slack) & (wild <= hi + slack))

    def test_the_prior_is_a_standard_normal_in_prior_normal_coordinates(self):
        from scipy.stats import kstest
        model = parametric_model()
        theta = model.prior_transform(np.random.default_rng(2).random((4000, model.ndim)))
        y = ParameterSpace(model).to_unbounded(theta)
        for column in y.T:   # log-uniform mass, uniform ages, clipped-normal dust alike
            assert kstest(column, "norm").pvalue > 1e-3

    def test_unknown_coordinates_are_an_error_listing_the_allowed(self):
        with pytest.raises(EmulatorConfigurationError, match="prior-normal, logit"):
            ParameterSpace(parametric_model(), "unit-cube")


# ------------------------------------------------------------------ the file
class TestPosteriorFile:
    def test_save_load_round_trip_gives_identical_samples(self, posterior, posterior_path,
                                                         held_out, tmp_path):
        copy = str(tmp_path / "copy.h5")
        posterior.save(copy)
        again = AmortizedPosterior.load(copy)
        a = posterior.sample(as_obs(held_out, slice(0, 20)), 300, seed=7, check_support=False)
        b = again.sample(as_obs(held_out, slice(0, 20)), 300, seed=7, check_support=False)
        assert np.array_equal(a.samples, b.samples)
        assert again.filter_names == FILTERS
        assert again.calibration == posterior.calibration

    def test_files_without_recorded_coordinates_are_read_as_logit(self, posterior_path,
                                                                  tmp_path):
        # posterior files written before the coordinates were recorded learned logits
        assert AmortizedPosterior.load(posterior_path).param_space.coordinates == "prior-normal"
        with h5py.File(posterior_path, "r") as f:   # readers of version 1 refuse it
            assert f.attrs["schema_version"] == 2
        old = str(tmp_path / "old.h5")
        shutil.copy(posterior_path, old)
        with h5py.File(old, "r+") as f:
            del f.attrs["parameter_coordinates"]
        assert AmortizedPosterior.load(old).param_space.coordinates == "logit"

    def test_files_without_a_recorded_invert_are_read_with_flowjax_default(
            self, posterior, posterior_path, held_out, tmp_path):
        # files written before ``invert`` was stored were built with flowjax's invert=True;
        # the same weights in the other direction are another posterior
        assert posterior.hyperparameters["invert"] is False   # a coupling flow's default
        versions = {}
        for name, change in [("true", True), ("unrecorded", None)]:
            path = str(tmp_path / f"{name}.h5")
            shutil.copy(posterior_path, path)
            with h5py.File(path, "r+") as f:
                hyper = json.loads(f.attrs["hyperparameters"])
                hyper.pop("invert")
                if change is not None:
                    hyper["invert"] = change
                f.attrs["hyperparameters"] = json.dumps(hyper)
            again = AmortizedPosterior.load(path)
            assert again.hyperparameters["invert"] is True
            versions[name] = again.sample(as_obs(held_out, slice(0, 5)), 50, seed=3,
                                          check_support=False).samples
        now = posterior.sample(as_obs(held_out, slice(0, 5)), 50, seed=3,
                               check_support=False).samples
        assert np.array_equal(versions["true"], versions["unrecorded"])
        assert not np.allclose(versions["true"], now)

    def test_unknown_flow_hyperparameters_are_an_error_listing_the_allowed(self):
        from prospect_emulator.amortized.flow import resolved_hyperparameters
        assert resolved_hyperparameters({})["invert"] is False
        assert resolved_hyperparameters({"kind": "maf"})["invert"] is True
        with pytest.raises(ValueError, match="unknown flow hyperparameter.*knots"):
            resolved_hyperparameters({"knot": 4})
        with pytest.raises(ValueError, match="allowed: coupling, maf"):
            resolved_hyperparameters({"kind": "realnvp"})

    def test_a_file_with_unknown_flow_hyperparameters_is_refused(self, posterior_path,
                                                                 tmp_path):
        path = str(tmp_path / "future.h5")
        shutil.copy(posterior_path, path)
        with h5py.File(path, "r+") as f:
            f.attrs["hyperparameters"] = json.dumps(
                dict(json.loads(f.attrs["hyperparameters"]), residual_blocks=3))
        with pytest.raises(EmulatorFileError, match="future.h5: unknown flow hyperparameter"):
            AmortizedPosterior.load(path)

    def test_file_holds_no_pickle_only_numbers_and_strings(self, posterior_path):
        kinds = set()

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                kinds.add(obj.dtype.kind)
                assert obj.dtype.kind in "biufS", f"{name}: dtype {obj.dtype}"
            for key, value in obj.attrs.items():
                assert isinstance(value, (str, bytes, int, float, np.number, np.ndarray)), key
                if isinstance(value, np.ndarray):
                    assert value.dtype.kind in "biufS", f"{name} attribute {key}"
        with h5py.File(posterior_path, "r") as f:
            visit("/", f)
            f.visititems(visit)
            assert f.attrs["format"] == "prospect-emulator-amortized"
            assert len(f.attrs["emulator_checksum"]) == 64
            assert "parametric" in f.attrs["model_definition"]
            assert f["flow"].attrs["n_arrays"] > 0
        with open(posterior_path, "rb") as f:
            assert b"cnumpy" not in f.read()  # a pickle's opcode for numpy objects
        assert "f" in kinds and "S" in kinds

    def test_records_the_emulator_and_refuses_another(self, posterior_path):
        from prospect_emulator.data import default_emulator
        with pytest.raises(EmulatorFileError, match="checksum"):
            AmortizedPosterior.load(posterior_path, emulator=default_emulator("default"))

    def test_refuses_a_foreign_file(self, tmp_path):
        path = str(tmp_path / "other.h5")
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "something-else"
        with pytest.raises(EmulatorFileError, match="not an amortized posterior"):
            AmortizedPosterior.load(path)


# ------------------------------------------------------------------ sampling
class TestSampling:
    def test_shape_reproducibility_and_prior_support(self, posterior, held_out):
        obs = as_obs(held_out, slice(0, 30))
        a = posterior.sample(obs, 500, seed=1)
        b = posterior.sample(obs, 500, seed=1)
        c = posterior.sample(obs, 500, seed=2)
        assert a.samples.shape == (30, 500, 6)
        assert a.theta_names == ["zred", "mass", "logzsol", "dust2", "tage", "tau"]
        assert np.array_equal(a.samples, b.samples)
        assert not np.array_equal(a.samples, c.samples)
        np.testing.assert_array_equal(a.samples[:, :, 0],
                                      np.broadcast_to(held_out.zred[:30, None], (30, 500)))
        space = posterior.param_space
        lo = np.where(space.log10, 10 ** space.lower, space.lower)
        hi = np.where(space.log10, 10 ** space.upper, space.upper)
        slack = 1e-9 * (hi - lo)
        inferred = a.samples[:, :, space.inferred]
        assert np.all((inferred >= lo - slack) & (inferred <= hi + slack))

    def test_the_same_draws_on_one_core_or_several(self, posterior, held_out, monkeypatch):
        # 30 objects of 500 draws: 4 objects per flow call (8 calls, the last padded),
        # run on threads; the draws depend on the seed and objects only
        from prospect_emulator.amortized import posterior as posterior_module
        obs = as_obs(held_out, slice(0, 30))
        from prospect_emulator.fitting import executor
        monkeypatch.setattr(posterior_module, "ROWS_PER_CALL", 2000)
        monkeypatch.setattr(executor, "usable_cpu_count", lambda: 1)
        one = posterior.sample(obs, 500, seed=6, check_support=False)
        monkeypatch.setattr(executor, "usable_cpu_count", lambda: 3)
        three = posterior.sample(obs, 500, seed=6, check_support=False)
        assert np.array_equal(one.samples, three.samples)
        # the same object in every chunk: each chunk draws with its own key
        same = as_obs(held_out, [0] * 12)
        again = posterior.sample(same, 500, seed=6, check_support=False).samples
        assert len({a.tobytes() for a in again[::4]}) == 3
        # more draws than one call holds: one object per call
        many = posterior.sample(as_obs(held_out, slice(0, 3)), 2500, seed=6,
                                check_support=False)
        assert many.samples.shape == (3, 2500, 6) and np.isfinite(many.samples).all()

    def test_one_prospector_obs_dictionary(self, posterior, held_out):
        obs = {"filters": FILTERS, "maggies": held_out.maggies[0],
               "maggies_unc": held_out.maggies_unc[0], "zred": held_out.zred[0]}
        result = posterior.sample(obs, 200, seed=0)
        assert result.samples.shape == (1, 200, 6) and result.status[0] == "ok"

    def test_calibration_smoke_68_percent_coverage(self, posterior, held_out):
        result = posterior.sample(as_obs(held_out), 400, seed=5, check_support=False)
        space = posterior.param_space
        coverage = []
        for j in space.inferred:
            lo, hi = np.percentile(result.samples[:, :, j], [16, 84], axis=1)
            truth = held_out.theta[:, j]
            coverage.append(np.mean((truth >= lo) & (truth <= hi)))
        # a tiny flow trained for seconds: loosely calibrated, never wildly off
        assert 0.5 < np.mean(coverage) < 0.85, coverage
        assert min(coverage) > 0.35, coverage


# ------------------------------------------------------------------ bad input
class TestBadInput:
    def test_filter_not_trained_is_an_error_naming_it(self, posterior, held_out):
        obs = Observations(FILTERS + ["galex_NUV"], np.c_[held_out.maggies[:2], [1e-9, 1e-9]],
                           np.c_[held_out.maggies_unc[:2], [1e-10, 1e-10]], held_out.zred[:2])
        with pytest.raises(AmortizedInputError, match="galex_NUV"):
            posterior.sample(obs, 10)

    def test_nan_flux_and_nonpositive_uncertainty_are_masked_bands(self, posterior, held_out):
        rows = np.nonzero(held_out.mask.all(axis=1))[0][:2]
        maggies, unc = held_out.maggies[rows].copy(), held_out.maggies_unc[rows].copy()
        maggies[0, 1] = np.nan
        unc[1, 2] = 0.0
        result = posterior.sample(Observations(FILTERS, maggies, unc, held_out.zred[rows]), 50)
        assert list(result.status) == ["ok", "ok"]
        assert result.masked_bands[0] == ["sdss_g0 (flux not finite)"]
        assert result.masked_bands[1] == ["sdss_r0 (uncertainty <= 0)"]
        # g and r are never missing in the training catalogue: an untrained pattern, flagged
        assert result.out_of_support.all()
        assert all("missing-band pattern" in " ".join(r) for r in result.reasons)

    def test_redshift_outside_the_prior_names_the_object_and_field(self, posterior, held_out):
        obs = Observations(FILTERS, held_out.maggies[:3], held_out.maggies_unc[:3],
                           [0.5, 7.0, np.nan], ids=["a", "far", "noz"])
        with pytest.raises(AmortizedInputError, match="object 'far': field 'zred' = 7"):
            posterior.sample(obs, 10)
        flagged = posterior.sample(obs, 10, on_bad="flag")
        assert list(flagged.status) == ["ok", "failed", "failed"]
        assert "'noz'" in flagged.error[2] and "zred" in flagged.error[2]
        assert np.isnan(flagged.samples[1:]).all() and np.isfinite(flagged.samples[0]).all()

    def test_no_usable_band_is_an_error(self, posterior, held_out):
        unc = held_out.maggies_unc[:1] * -1
        with pytest.raises(AmortizedInputError, match="no band"):
            posterior.sample(Observations(FILTERS, held_out.maggies[:1], unc, held_out.zred[:1]), 5)


# ------------------------------------------------------------------ out of support
class TestOutOfSupport:
    def test_in_distribution_objects_are_rarely_flagged(self, posterior, held_out):
        result = posterior.sample(as_obs(held_out), 200, seed=3)
        assert result.out_of_support.mean() <= 0.08, result.reasons

    def test_uncertainties_ten_times_the_noise_model_are_flagged(self, posterior, held_out):
        obs = Observations(FILTERS, held_out.maggies[:50], held_out.maggies_unc[:50] * 10,
                           held_out.zred[:50])
        result = posterior.sample(obs, 100)
        # not all: this small catalogue's brightest flux bins hold few objects and have
        # 0.4-0.6 dex of uncertainty scatter, so x10 (1 dex) is under 2.5 sigma there
        assert result.out_of_support.mean() >= 0.85
        assert "uncertainty of" in " ".join(result.reasons[0])

    def test_a_faint_object_is_judged_at_a_flux_its_photometry_allows(self, posterior):
        """The noise model gives uncertainties for true fluxes.  In a survey whose
        uncertainties are half the flux (signal-to-noise 2 at every flux), a band observed
        1.5 sigma below its true flux has an uncertainty typical for the true flux but 0.6 dex
        (12 sigma) above the typical one at the observed flux.  Profiled over the true flux
        (within 3 sigma, as calibrate records), its z is that of the 1.5-sigma flux offset."""
        log_flux = np.arange(-12.0, -7.0)
        nm = ObservationalNoiseModel(["sdss_r0"], log_flux[None], log_flux[None] - np.log10(2),
                                     np.full((1, 5), 0.05), np.array([[-12.3, -8.3]]),
                                     np.array([1e-10]), np.ones((1, 1), bool), np.array([10]))
        true_flux, sigma = 1e-10, 0.5e-10
        maggies, unc = np.array([[true_flux - 1.5 * sigma]]), np.array([[sigma]])
        mask = np.ones((1, 1), bool)
        z_at_observed, offset_at_observed = nm.uncertainty_zscores(maggies, unc, mask)
        assert offset_at_observed[0, 0] == pytest.approx(np.log10(4), abs=1e-9)
        assert z_at_observed[0, 0] == pytest.approx(np.log10(4) / 0.05)
        z, offset = nm.uncertainty_zscores(maggies, unc, mask, flux_range_sigma=3.0)
        assert z[0, 0] == pytest.approx(1.5, abs=0.05) and abs(offset[0, 0]) < 0.01
        # unmasked bands only; and calibrate records the range it was set with
        z, _ = nm.uncertainty_zscores(maggies, unc, ~mask, flux_range_sigma=3.0)
        assert np.isnan(z[0, 0])
        assert posterior.calibration["uncertainty_flux_range_sigma"] == 3.0

    def test_photometry_far_off_the_simulations_is_flagged_by_chi2(self, posterior, held_out):
        bright = np.nonzero(held_out.mask.all(axis=1) &
                            (held_out.maggies_true[:, 2] > 30 * held_out.maggies_unc[:, 2]))[0][:20]
        maggies = held_out.maggies[bright].copy()
        maggies[:, 2] *= 10 ** (0.4 * 3.0)  # r band 3 mag brighter than any SED allows
        result = posterior.sample(Observations(FILTERS, maggies, held_out.maggies_unc[bright],
                                               held_out.zred[bright]), 200)
        assert result.out_of_support.mean() > 0.8
        assert any("chi2" in " ".join(r) for r in result.reasons)


    def test_one_band_half_a_magnitude_off_is_flagged_by_its_residual(self, posterior, held_out):
        """0.5 mag in one band is ~10 sigma for these bright objects (eq. 9 sigma incl. the 5%
        floor).  The one-band residual check flags such objects far more often than the same
        objects unshifted; how often depends on the flow (this one is trained in seconds, so its
        calibrated limits are loose: docs/amortized.md measures a well-trained one)."""
        bright = np.nonzero(held_out.mask.all(axis=1) &
                            (held_out.maggies_true[:, 3] > 30 * held_out.maggies_unc[:, 3]))[0][:30]
        unc, zred = held_out.maggies_unc[bright], held_out.zred[bright]
        before = posterior.sample(Observations(FILTERS, held_out.maggies[bright], unc, zred), 200,
                                  seed=5)
        maggies = held_out.maggies[bright].copy()
        maggies[:, 3] *= 10 ** (0.4 * 0.5)
        after = posterior.sample(Observations(FILTERS, maggies, unc, zred), 200, seed=5)
        assert after.out_of_support.mean() >= before.out_of_support.mean() + 0.25
        assert any("one band off the SED" in " ".join(r) for r in after.reasons)
        # the reason names the band (the shifted one: sdss_i0) and where the residual was taken
        named = [r for rs in after.reasons for r in rs if "one band off the SED" in r]
        assert sum(FILTERS[3] in r for r in named) >= 0.8 * len(named)
        assert all("at the best fit near the posterior draws" in r for r in named)
        assert posterior.calibration["band_z_threshold"] > 0
        assert posterior.calibration["support_fit"] == "refined"

    def test_a_file_calibrated_at_the_best_draw_keeps_its_statistic(self, posterior, held_out):
        """Limits calibrated before ``support_fit`` existed were set on the best draw's
        residuals; such a file is checked the same way, not against the refined fit."""
        old = AmortizedPosterior(posterior.flow, posterior.hyperparameters, posterior.model,
                                 posterior.noise_model, posterior.standardisation,
                                 posterior.floor, calibration={
                                     k: v for k, v in posterior.calibration.items()
                                     if k != "support_fit"},
                                 coordinates=posterior.param_space.coordinates)
        maggies = held_out.maggies[:40].copy()
        maggies[:, 3] *= 10 ** (0.4 * 3.0)
        obs = Observations(FILTERS, maggies, held_out.maggies_unc[:40], held_out.zred[:40])
        theta = posterior.sample(obs, 64, seed=1, check_support=False).samples
        args = (theta, maggies, held_out.maggies_unc[:40], held_out.mask[:40])
        at_draw = old.posterior_predictive_chi2(*args, seed=2)
        refined = posterior.posterior_predictive_chi2(*args, seed=2)
        # the same best draws, then moved to the best fits (chi^2 + |y|^2 minimised: the chi^2
        # of one object may rise a little where the prior pulls)
        assert np.sum(refined[0]) < np.sum(at_draw[0])
        assert not np.allclose(refined[2], at_draw[2])
        reasons = [r for rs in old.sample(obs, 64, seed=1).reasons for r in rs]
        assert any("at the best posterior-predictive draw" in r for r in reasons)


# ------------------------------------------------------------------ the refined best fit
class TestBestFitRefinement:
    """``refine_best_fit``: every object's best draw moved to the nearby best fit."""

    def test_chi2_and_residuals_are_the_exact_paths_at_the_refined_point(self, held_out):
        from prospect_emulator import EmulatorNoiseModel
        from prospect_emulator.amortized.refine import refine_best_fit
        from prospect_emulator.fitting.run import make_obs
        model = parametric_model()
        rows = np.nonzero(held_out.mask.all(axis=1))[0][:6]
        rng = np.random.default_rng(4)
        # start from prior draws at the objects' redshifts: far from their best fits
        start = model.prior_transform(rng.random((len(rows), model.ndim)))
        iz = model.theta_index["zred"].start
        start[:, iz] = held_out.zred[rows]
        emu = model.emulator.select(FILTERS)
        start = start[np.isfinite(emu.predict_maggies(emulator_inputs(model, start), check=False)
                                  ).all(axis=1)]
        rows = rows[:len(start)]
        maggies, unc = held_out.maggies[rows], held_out.maggies_unc[rows]
        theta, chi2, resid = refine_best_fit(
            model, emu, start, maggies, unc, held_out.mask[rows], held_out.zred[rows], floor=0.0)
        space = ParameterSpace(model, "prior-normal")
        for i in range(len(rows)):
            # independent: Prospector's predict and the exact fits' noise model (floor 0)
            obs = make_obs(FILTERS, maggies[i], unc[i])
            noise = EmulatorNoiseModel(model, floor=0.0)

            def exact_chi2(th):
                flux = model.predict(th, obs=obs)[1]
                noise.compute(phot_unc=obs["maggies_unc"], phot=obs["maggies"],
                              mask=obs["phot_mask"])
                return flux, float(np.sum((maggies[i] - flux) ** 2 / noise.Sigma))

            flux, c2 = exact_chi2(theta[i])
            assert chi2[i] == pytest.approx(c2, rel=1e-8)
            np.testing.assert_allclose(resid[i] * np.sqrt(noise.Sigma), maggies[i] - flux,
                                       rtol=1e-8, atol=1e-14)
            assert theta[i, iz] == held_out.zred[rows[i]]  # the redshift stays the object's
            # the objective chi2 + |y|^2 fell from the start's
            y0, y1 = space.to_unbounded(start[i:i + 1])[0], space.to_unbounded(theta[i:i + 1])[0]
            assert chi2[i] + y1 @ y1 < exact_chi2(start[i])[1] + y0 @ y0

    def test_in_distribution_residuals_are_those_of_a_fit_not_of_the_flow(self, posterior,
                                                                           held_out):
        """The tiny test flow scatters its draws widely; at the refined fit an ordinary
        object's largest band residual is what a fit of 8 bands leaves (a few sigma)."""
        posterior_at_draw = AmortizedPosterior(
            posterior.flow, posterior.hyperparameters, posterior.model, posterior.noise_model,
            posterior.standardisation, posterior.floor,
            calibration=dict(posterior.calibration, support_fit="best-draw"),
            coordinates=posterior.param_space.coordinates)
        theta = posterior.sample(as_obs(held_out), 200, seed=3, check_support=False).samples
        args = (theta, held_out.maggies, held_out.maggies_unc, held_out.mask)
        _, _, z_draw, _ = posterior_at_draw.posterior_predictive_chi2(*args, seed=1)
        _, _, z_fit, worst = posterior.posterior_predictive_chi2(*args, seed=1)
        assert np.quantile(z_fit, 0.95) < 4.0
        assert np.quantile(z_fit, 0.95) < np.quantile(z_draw, 0.95)
        assert np.all((worst >= 0) & (worst < len(FILTERS)))
        # an object none of whose draws the emulator can predict: no fit, no band named
        theta[0] = np.nan
        best, pvalue, z_fit, worst = posterior.posterior_predictive_chi2(*args, seed=1)
        assert best[0] == np.inf and pvalue[0] == 0 and z_fit[0] == np.inf and worst[0] == -1
        assert np.isfinite(best[1:]).all()

# ------------------------------------------------------------------ importance weights
class TestImportanceWeights:
    """Flow draws reweighted by the exact likelihood (``importance_draws=``)."""

    def test_weights_are_likelihood_times_prior_over_the_flow_density(self, posterior, held_out):
        # each ingredient against an independent computation: Prospector's lnprobfn for the
        # likelihood, the flow's own log_prob, the prior-normal coordinates of the draws
        from prospect.fitting import lnprobfn
        from prospect_emulator import EmulatedSpecModel, EmulatorNoiseModel
        from prospect_emulator.amortized.importance import ExactLikelihoodWeights
        i = 0
        cond = posterior.conditions(held_out.maggies[:1], held_out.maggies_unc[:1],
                                    held_out.mask[:1], held_out.zred[:1])
        theta, ln_q, ln_prior = posterior._sample_theta(cond, held_out.zred[:1], 6, seed=3,
                                                        log_density=True)
        np.testing.assert_allclose(
            ln_q[0], posterior.log_prob(theta[0], held_out.maggies[:1], held_out.maggies_unc[:1],
                                        held_out.mask[:1], held_out.zred[:1]), atol=2e-3)
        y = posterior.param_space.to_unbounded(theta[0])
        np.testing.assert_allclose(ln_prior[0], -0.5 * (y * y).sum(axis=1), rtol=1e-9)
        weights = ExactLikelihoodWeights(posterior.model, FILTERS, floor=posterior.floor,
                                         float32=False)
        mask = held_out.mask[i]
        ln_like = weights.ln_likelihood(theta[0], held_out.maggies[i], held_out.maggies_unc[i],
                                        mask)
        from sedpy.observate import load_filters
        model = EmulatedSpecModel.from_emulator("parametric", zred=None)
        obs = {"filters": load_filters(FILTERS), "maggies": np.where(mask, held_out.maggies[i], 0.0),
               "maggies_unc": np.where(mask, held_out.maggies_unc[i], 1.0), "phot_mask": mask,
               "spectrum": None, "wavelength": None}
        noise = EmulatorNoiseModel(model, floor=posterior.floor)
        expected = [lnprobfn(t, model=model, obs=obs, sps=None, noise=(None, noise), nested=True)
                    for t in theta[0]]
        np.testing.assert_allclose(ln_like, expected, rtol=1e-10)

    def test_effective_sample_size_and_systematic_resampling(self):
        from prospect_emulator.amortized.importance import (effective_sample_size,
                                                            resample_by_ln_weights)
        assert effective_sample_size(np.zeros(50)) == pytest.approx(50)
        assert effective_sample_size(np.array([0.0, -np.inf, -np.inf])) == pytest.approx(1)
        assert effective_sample_size(np.log([1.0, 1.0, 2.0])) == pytest.approx(16 / 6)
        ln_w = np.log([0.1, 0.0 + 1e-300, 0.6, 0.3])
        pick = resample_by_ln_weights(ln_w, 1000, np.random.default_rng(0))
        np.testing.assert_array_equal(np.bincount(pick, minlength=4), [100, 0, 600, 300])

    def test_reweighted_draws_agree_with_an_exact_fit(self, posterior, held_out):
        """Where the weights are many, the reweighted draws are the exact posterior's: the
        percentiles of an exact fit (smc, the same likelihood) of the same object."""
        from prospect_emulator import EmulatedSpecModel, EmulatorNoiseModel
        from prospect_emulator.fitting.run import fit_galaxy, posterior_samples
        rows = slice(0, 40)
        result = posterior.sample(as_obs(held_out, rows), 2000, seed=4, check_support=False,
                                  importance_draws=8000)
        assert result.importance_draws == 8000 and result.importance_ess.shape == (40,)
        i = int(np.argmax(result.importance_ess))
        assert result.importance_ess[i] > 300
        model = EmulatedSpecModel.from_emulator("parametric", zred=float(held_out.zred[i]))
        from sedpy.observate import load_filters
        mask = held_out.mask[i]
        obs = {"filters": load_filters(FILTERS), "maggies": np.where(mask, held_out.maggies[i], 0.0),
               "maggies_unc": np.where(mask, held_out.maggies_unc[i], 1.0), "phot_mask": mask,
               "spectrum": None, "wavelength": None}
        fit = fit_galaxy(obs, model, EmulatorNoiseModel(model, floor=posterior.floor), seed=2)
        exact = posterior_samples(fit["samples"], fit["weights"], n=4000, seed=2)
        for j, name in enumerate(model.theta_labels()):
            k = result.theta_names.index(name)
            lo, mid, hi = np.percentile(exact[:, j], [16, 50, 84])
            got = np.percentile(result.samples[i, :, k], [16, 50, 84])
            half = (hi - lo) / 2
            assert abs(got[1] - mid) < 0.3 * half, (name, got, (lo, mid, hi))
            assert abs((got[2] - got[0]) / 2 / half - 1) < 0.25, (name, got, (lo, mid, hi))

    def test_few_effective_draws_flag_the_object_with_the_reason(self, posterior, held_out,
                                                                 monkeypatch):
        from prospect_emulator.amortized import posterior as posterior_module
        monkeypatch.setattr(posterior_module, "IMPORTANCE_ROWS_PER_BLOCK", 40)  # 2 objects
        obs = as_obs(held_out, slice(0, 5))
        # 20 draws can never have the 30 effective ones the default limit asks for
        result = posterior.sample(obs, 20, seed=1, check_support=False, importance_draws=20)
        again = posterior.sample(obs, 20, seed=1, check_support=False, importance_draws=20)
        assert np.array_equal(result.samples, again.samples)
        assert np.isfinite(result.samples).all()
        assert (result.importance_ess <= 20).all()
        assert result.out_of_support.all()
        assert "importance weights: effective sample size" in result.reasons[0][0]
        plain = posterior.sample(obs, 100, seed=1, check_support=False)
        assert plain.importance_draws is None and np.isnan(plain.importance_ess).all()

    def test_an_object_no_draw_of_which_has_a_finite_likelihood_fails_with_the_reason(
            self, posterior, held_out, monkeypatch):
        from prospect_emulator.amortized.importance import ExactLikelihoodWeights
        outside = ExactLikelihoodWeights.ln_likelihood

        def second_object_outside(self, theta, maggies, maggies_unc, mask):
            lnl = outside(self, theta, maggies, maggies_unc, mask)
            is_second = np.array_equal(maggies, held_out.maggies[1], equal_nan=True)
            return np.full_like(lnl, -np.inf) if is_second else lnl

        monkeypatch.setattr(ExactLikelihoodWeights, "ln_likelihood", second_object_outside)
        obs = as_obs(held_out, slice(0, 3))
        with pytest.raises(AmortizedInputError, match="'row1': none of its 200 flow draws"):
            posterior.sample(obs, 100, importance_draws=200)
        result = posterior.sample(obs, 100, importance_draws=200, on_bad="flag")
        assert list(result.status) == ["ok", "failed", "ok"]
        assert "finite likelihood" in result.error[1] and np.isnan(result.samples[1]).all()
        assert np.isfinite(result.samples[[0, 2]]).all()

    def test_a_logit_posterior_or_too_few_draws_is_a_clear_error(self, posterior_path,
                                                                  posterior, held_out, tmp_path):
        with pytest.raises(EmulatorConfigurationError, match="at least as many flow draws"):
            posterior.sample(as_obs(held_out, slice(0, 2)), 10, importance_draws=0)
        with pytest.raises(EmulatorConfigurationError, match=r"n_samples=100\)"):
            posterior.sample(as_obs(held_out, slice(0, 2)), 100, importance_draws=50)
        with pytest.raises(EmulatorConfigurationError, match="floor 0.1 and covariance=False"):
            fit_catalog_amortized(as_obs(held_out, slice(0, 2)).as_table(), posterior,
                                  str(tmp_path / "f"), n_samples=10, importance_draws=100,
                                  exact_settings={"floor": 0.1})
        old = str(tmp_path / "old.h5")
        shutil.copy(posterior_path, old)
        with h5py.File(old, "r+") as f:
            del f.attrs["parameter_coordinates"]
        with pytest.raises(EmulatorConfigurationError, match="prior-normal coordinates"):
            AmortizedPosterior.load(old).sample(as_obs(held_out, slice(0, 2)), 10,
                                                importance_draws=100)


# ------------------------------------------------------------------ catalogues
class TestCatalogue:
    def test_summary_table_and_samples_file(self, posterior_path, catalog, tmp_path):
        from astropy.table import Table
        table = fit_catalog_amortized(Table.read(catalog)[:15], posterior_path, str(tmp_path),
                                      n_samples=200, progress=False)
        assert len(table) == 15 and set(table["method"]) == {"amortized"}
        for name in ("mass", "logzsol", "dust2", "tage", "tau", "logmass_formed", "logmstar",
                     "logsfr_100myr", "mwa_gyr"):
            for p in (16, 50, 84):
                assert f"{name}_p{p}" in table.colnames
        assert np.all(table["mass_p16"] <= table["mass_p84"])
        assert np.all(table["logmstar_p50"] < table["logmass_formed_p50"])
        with h5py.File(str(tmp_path / "samples.h5"), "r") as f:
            samples = f["samples"][()]
            assert samples.shape == (15, 200, 6)
            assert f["derived/logmstar"].shape == (15, 200)
        np.testing.assert_allclose(np.percentile(samples[:, :, 1], 50, axis=1), table["mass_p50"])
        # log10 mass formed of each draw is log10 of its mass parameter
        with h5py.File(str(tmp_path / "samples.h5"), "r") as f:
            np.testing.assert_allclose(f["derived/logmass_formed"][()], np.log10(samples[:, :, 1]))
        assert os.path.exists(tmp_path / "summary.ecsv")

    def test_chunks_on_dask_workers_give_the_draws_of_an_in_process_run(
            self, posterior_path, catalog, tmp_path):
        from astropy.table import Table
        from prospect_emulator.fitting.executor import DaskExecutor
        table = Table.read(catalog)[:12]
        here = fit_catalog_amortized(table, posterior_path, str(tmp_path / "here"),
                                     n_samples=100, chunk_size=5, progress=False, seed=4)
        with DaskExecutor.local(n_workers=2, processes=False, dashboard_address=":0") as dask:
            there = fit_catalog_amortized(table, posterior_path, str(tmp_path / "dask"),
                                          n_samples=100, chunk_size=5, progress=False, seed=4,
                                          executor=dask)
        assert list(there["id"]) == list(table["id"])  # catalogue order, whatever the finish order
        for name in ("mass_p50", "logzsol_p16", "logmstar_p84"):
            np.testing.assert_array_equal(here[name], there[name])
        with h5py.File(str(tmp_path / "here" / "samples.h5"), "r") as a, \
                h5py.File(str(tmp_path / "dask" / "samples.h5"), "r") as b:
            np.testing.assert_array_equal(a["samples"][()], b["samples"][()])
        assert not os.path.exists(tmp_path / "dask" / "chunks")  # merged, then removed

    def test_an_interrupted_catalogue_resumes_from_its_finished_chunks(
            self, posterior_path, catalog, tmp_path, monkeypatch):
        import io
        from astropy.table import Table
        from prospect_emulator.amortized import chunks
        table = Table.read(catalog)[:12]
        straight = fit_catalog_amortized(table, posterior_path, str(tmp_path / "straight"),
                                         n_samples=50, chunk_size=5, progress=False)
        sample = chunks.sample_chunk
        calls = []

        def second_chunk_dies(obs, *args):
            calls.append(len(obs))
            if len(calls) == 2:
                raise KeyboardInterrupt
            return sample(obs, *args)
        monkeypatch.setattr(chunks, "sample_chunk", second_chunk_dies)
        out = str(tmp_path / "resumed")
        with pytest.raises(KeyboardInterrupt):
            fit_catalog_amortized(table, posterior_path, out, n_samples=50, chunk_size=5,
                                  progress=False)
        assert os.listdir(os.path.join(out, "chunks")) == ["chunk-000000.h5"]
        monkeypatch.setattr(chunks, "sample_chunk", sample)
        notes = io.StringIO()
        resumed = fit_catalog_amortized(table, posterior_path, out, n_samples=50, chunk_size=5,
                                        progress=False, stream=notes)
        assert "5 objects in 1 chunk(s) sampled by an earlier run" in notes.getvalue()
        np.testing.assert_array_equal(resumed["mass_p50"], straight["mass_p50"])
        # a chunk sampled with another seed is not reused
        fit_catalog_amortized(table, posterior_path, out, n_samples=50, chunk_size=5,
                              progress=False, seed=9, stream=notes)
        assert notes.getvalue().count("sampled by an earlier run") == 1

    def test_a_failing_chunk_fails_its_objects_and_the_next_run_samples_them(
            self, posterior_path, catalog, tmp_path, monkeypatch):
        from astropy.table import Table
        from prospect_emulator.amortized import chunks
        table = Table.read(catalog)[:9]
        sample = chunks.sample_chunk

        def middle_chunk_breaks(obs, *args):
            if obs.ids[0] == table["id"][3]:
                raise RuntimeError("disk full")
            return sample(obs, *args)
        monkeypatch.setattr(chunks, "sample_chunk", middle_chunk_breaks)
        out = str(tmp_path / "fit")
        first = fit_catalog_amortized(table, posterior_path, out, n_samples=50, chunk_size=3,
                                      progress=False)
        assert list(first["status"]) == ["ok"] * 3 + ["failed"] * 3 + ["ok"] * 3
        assert all("RuntimeError: disk full" in e for e in first["error"][3:6])
        assert np.isnan(first["mass_p50"][3:6]).all()
        monkeypatch.setattr(chunks, "sample_chunk", sample)
        second = fit_catalog_amortized(table, posterior_path, out, n_samples=50, chunk_size=3,
                                       progress=False)
        assert set(second["status"]) == {"ok"}
        np.testing.assert_array_equal(second["mass_p50"][:3], first["mass_p50"][:3])

    def test_workers_read_the_posterior_file_and_check_it(self, posterior, posterior_path,
                                                          catalog, tmp_path):
        from prospect_emulator.amortized import chunks
        from prospect_emulator.errors import EmulatorConfigurationError
        with pytest.raises(EmulatorConfigurationError, match="pass its path"):
            fit_catalog_amortized(catalog, posterior, str(tmp_path / "x"),
                                  executor=lambda: None)
        with pytest.raises(EmulatorFileError, match="every worker must read the same file"):
            chunks._posterior({"path": posterior_path, "sha256": "0" * 64, "emulator": None})

    def test_fit_command_with_exact_fallback_for_out_of_support_objects(
            self, posterior_path, catalog, tmp_path, capsys):
        """``fit CATALOG --amortized POST.h5 --fallback exact``: flagged objects are fitted by
        Prospector + dynesty on the same Dask cluster; the method column says which path."""
        from astropy.table import Table
        from prospect_emulator.cli.main import main
        table = Table.read(catalog)[:6]
        for name in FILTERS:  # two objects with uncertainties 10x the noise model's
            table[f"e_{name}"][:2] *= 10
        path = str(tmp_path / "cat.ecsv")
        table.write(path)
        out = str(tmp_path / "fit")
        code = main(["fit", path, "--amortized", posterior_path, "--fallback", "exact",
                     "--out", out, "--n-samples", "100", "--chunk-size", "3", "--workers", "2",
                     "--sampler", "dynesty", "--nlive", "30", "--n-effective", "200", "--seed", "1",
                     "--no-progress"])
        assert code == 0
        summary = Table.read(os.path.join(out, "summary.ecsv"))
        assert list(summary["id"]) == list(table["id"])
        flagged = np.asarray(summary["out_of_support"], dtype=bool)
        assert flagged[:2].all()
        assert list(summary["method"]) == ["exact" if f else "amortized" for f in flagged]
        assert set(summary["status"]) == {"ok"}
        for row in summary[flagged]:
            assert os.path.exists(os.path.join(out, row["exact_file"]))
            assert row["mass_p16"] < row["mass_p50"] < row["mass_p84"]
        exact = Table.read(os.path.join(out, "exact", "summary.ecsv"))
        assert sorted(exact["id"]) == sorted(summary["id"][flagged])
        assert "objects fitted, 0 failed" in capsys.readouterr().out

    def test_fit_command_refuses_options_that_do_not_apply(self, posterior_path, catalog,
                                                           tmp_path, capsys):
        from prospect_emulator.cli.main import main
        assert main(["fit", catalog, "--out", str(tmp_path / "a"), "--fallback", "exact"]) == 2
        assert "--fallback applies to --amortized fits only" in capsys.readouterr().err
        assert main(["fit", catalog, "--out", str(tmp_path / "b"), "--amortized", posterior_path,
                     "--limit", "3"]) == 2
        assert "--limit applies to exact fits" in capsys.readouterr().err
        assert main(["fit", catalog, "--out", str(tmp_path / "c"), "--amortized", posterior_path,
                     "--sampler", "dynesty"]) == 2
        assert "--sampler set(s) the exact fits" in capsys.readouterr().err
        assert main(["fit", catalog, "--out", str(tmp_path / "d"), "--importance-draws",
                     "100"]) == 2
        assert "--importance-draws applies to --amortized fits only" in capsys.readouterr().err

    def test_fit_command_with_importance_weights(self, posterior_path, catalog, tmp_path):
        from astropy.table import Table
        from prospect_emulator.cli.main import main
        small = str(tmp_path / "small.ecsv")
        Table.read(catalog)[:6].write(small)
        out = str(tmp_path / "is")
        assert main(["fit", small, "--out", out, "--amortized", posterior_path, "--n-samples",
                     "100", "--importance-draws", "400", "--no-progress"]) == 0
        table = Table.read(os.path.join(out, "summary.ecsv"))
        assert set(table["method"]) == {"amortized+importance"}
        assert np.all((table["importance_ess"] >= 1) & (table["importance_ess"] <= 400))
        few = table["importance_ess"] < 30
        assert np.array_equal(np.asarray(table["out_of_support"])[few], np.ones(few.sum(), bool))


def test_the_flow_architecture_benchmark_times_every_variant():
    """``benchmarks/bench_flow_architecture.py``: sampling cost per draw by architecture."""
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks", "bench_flow_architecture.py")
    done = subprocess.run([sys.executable, script, "--draws", "20", "--repeats", "1",
                           "--dim", "5", "--cond-dim", "12", "--nn-width", "16"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    timed = [line for line in done.stdout.splitlines() if line.endswith("us per draw")]
    assert len(timed) == 7 and timed[0].startswith("base ")
    assert all(float(line.split()[-4]) > 0 for line in timed)


# ------------------------------------------------------------------ training
def test_the_sampling_speed_benchmark_runs_on_a_posterior_file(posterior_path):
    """``benchmarks/bench_amortized_sampling.py``: flow-only galaxies/s for A/B runs."""
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks", "bench_amortized_sampling.py")
    done = subprocess.run([sys.executable, script, posterior_path, "--n-objects", "40",
                           "--n-draws", "50", "--repeats", "1"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("flow only, 40 galaxies x 50 draws: ")
    assert float(line.split(": ")[1].split()[0]) > 0


@pytest.mark.slow  # trains a one-layer flow of the default model (~1 min)
def test_the_validation_page_is_made_by_its_script(tmp_path):
    """``benchmarks/validate_amortized.py`` (what makes docs/amortized.md), run with a
    tiny flow of the default model: every section, each target with a verdict, and the
    exact-agreement numbers equal to the JSON written beside the page."""
    import json
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks", "validate_amortized.py")
    page = tmp_path / "amortized.md"
    done = subprocess.run([sys.executable, script, "--posterior", str(tmp_path / "post.h5"),
                           "--n-sims", "3000", "--epochs", "2", "--flow-layers", "1",
                           "--nn-width", "8", "--n-test", "200", "--n-draws", "50",
                           "--n-support", "100", "--out-md", str(page)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    for heading in ("## Calibration on 200 held-out simulations",
                    "## Against exact posteriors (the 100 validation mocks)",
                    "## Out-of-support detection", "## Targets (issue 12)"):
        assert heading in text
    targets = text.split("## Targets (issue 12)")[1].strip().splitlines()[2:]
    assert len(targets) == 14 and all(row.split(" | ")[-1].strip(" |*") in ("yes", "no")
                                      for row in targets)
    numbers = json.loads((tmp_path / "amortized.json").read_text())
    log_mass = numbers["agreement"]["logmass"]
    assert set(log_mass) == {"amortized vs dynesty", "dynesty vs dynesty (floor)"}
    assert f"{log_mass['amortized vs dynesty']['diff68']:.3f} vs" in text
    assert log_mass["dynesty vs dynesty (floor)"]["n"] == 100


class TestTraining:
    @pytest.mark.slow  # three short trainings, each compiling its step (~10-30 s shared)
    def test_interrupted_training_resumes_to_the_same_flow(self, catalog, tmp_path, monkeypatch):
        from prospect_emulator.amortized import train as train_module
        kwargs = dict(seed=2, hyperparameters={"flow_layers": 1, "nn_width": 8, "nn_depth": 1},
                      settings=train_module.TrainingSettings(max_epochs=3, batch_size=256),
                      n_calibration=0, progress=False)
        straight = train_module.train_amortized_posterior("parametric", catalog, 2000, **kwargs)
        out = str(tmp_path / "resumed.h5")
        save = train_module._save_checkpoint

        def save_then_interrupt(*args, **kw):
            save(*args, **kw)
            if args[2] == 1:
                raise KeyboardInterrupt
        monkeypatch.setattr(train_module, "_save_checkpoint", save_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            train_module.train_amortized_posterior("parametric", catalog, 2000, out=out, **kwargs)
        assert os.path.exists(out + ".checkpoint.h5")
        monkeypatch.setattr(train_module, "_save_checkpoint", save)
        resumed = train_module.train_amortized_posterior("parametric", catalog, 2000, out=out,
                                                         **kwargs)
        assert not os.path.exists(out + ".checkpoint.h5")
        from prospect_emulator.amortized.flow import flow_arrays
        for a, b in zip(flow_arrays(straight.flow), flow_arrays(resumed.flow)):
            np.testing.assert_array_equal(a, b)
        assert resumed.training["val_loss"] == straight.training["val_loss"]


def test_exact_fitting_path_never_imports_jax():
    code = ("import sys, prospect_emulator, prospect_emulator.prospector, "
            "prospect_emulator.fitting, prospect_emulator.fitting.catalog, "
            "prospect_emulator.amortized, prospect_emulator.cli.main as m; m.build_parser(); "
            "assert 'jax' not in sys.modules, 'jax imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
