"""BatchedPhotometry: a chunk of training-set models with array operations.

* Every row equals the per-model path, ``model.predict(theta, obs, sps)`` on
  the model of :meth:`TrainingSetConfig.build_model` (photometry in maggies
  through ``BagpipesSpecModel.predict_phot``/``flux_norm``, and ``mfrac``),
  within 1e-6 relative -- for random draws across the whole training range
  of the ``default`` preset (continuity SFH, nebular and dust emission, IGM,
  redshift 0.5-3) and the ``parametric`` preset (delayed tau, z down to
  0.003), at the corners of the ranges, beyond Bagpipes' IGM table (z > 10)
  and at z = 0.
* Its cosmology (luminosity distance, age of the universe) is astropy's, and
  its parameters are those of ``set_parameters``.
* Rows it does not take go to the per-model path, which raises their error;
  models whose physics it does not compute are refused at once.
"""
import numpy as np
import pytest
from prospect.models.templates import TemplateLibrary
from prospect.models.transforms import cosmo
from sedpy.observate import load_filters

from prospect_emulator.data import default_filter_names
from prospect_emulator.definition.presets import get_preset
from prospect_emulator.sources import BagpipesSpecModel, SPSParameterRangeError, make_spec_model
from prospect_emulator.sources.batched import (BatchedPhotometry, BatchUnsupportedError,
                                               age_of_universe_gyr, luminosity_distance_mpc,
                                               model_parameters_batch)

pytestmark = pytest.mark.usefixtures("no_sps_home")  # no FSPS data needed

#: The issue's tolerance; the batch is in practice within ~1e-12.
RTOL = 1e-6
#: Fluxes below this (maggies: magnitude ~ 725, the far UV behind thick dust or the
#: IGM) are subnormal-level floats with fewer significant digits in either path;
#: they are compared absolutely.
ATOL = 1e-290


@pytest.fixture(scope="module")
def filters():
    return load_filters(default_filter_names())


def per_model(model, sps, filters, theta):
    """The per-model path: SpecModel.predict row by row."""
    obs = {"filters": filters, "wavelength": None, "spectrum": None}
    maggies, mfrac = [], []
    with np.errstate(divide="ignore"):   # sedpy's log10 of a zero flux (IGM)
        for row in theta:
            _, phot, frac = model.predict(row, obs=obs, sps=sps)
            maggies.append(phot)
            mfrac.append(float(np.squeeze(frac)))
    return np.array(maggies), np.array(mfrac)


def assert_equal_to_per_model(config, sps, filters, theta):
    model = config.build_model(sps)
    maggies, mfrac, batched = BatchedPhotometry(model, sps, filters).predict_batch(theta)
    assert batched.all()
    expected, expected_mfrac = per_model(config.build_model(sps), sps, filters, theta)
    np.testing.assert_allclose(maggies, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(mfrac, expected_mfrac, rtol=RTOL, atol=0)
    return maggies, expected


def corners(config, n, seed):
    """Rows with every input at the low or the high end of its training range."""
    lo, hi = config.param_ranges.T
    pick = np.random.default_rng(seed).integers(0, 2, size=(n, lo.size)).astype(bool)
    return np.where(pick, hi, lo)


# ---------------------------------------------------------------------------
# equal to the per-model path
# ---------------------------------------------------------------------------
class TestEqualsPerModel:

    @pytest.mark.parametrize("preset", ["default", "parametric"])
    def test_random_draws_across_the_training_range(self, preset, sps, filters):
        config = get_preset(preset)
        theta = config.sample(60, seed=11)
        maggies, expected = assert_equal_to_per_model(config, sps, filters, theta)
        # the draws do span the range: faint and bright, IGM-dark filters included
        assert (expected == 0).any() if preset == "default" else True
        assert np.ptp(np.log10(maggies[maggies > 0])) > 5

    @pytest.mark.parametrize("preset", ["default", "parametric"])
    def test_corners_of_the_training_range(self, preset, sps, filters):
        config = get_preset(preset)
        assert_equal_to_per_model(config, sps, filters, corners(config, 16, seed=3))

    def test_redshifts_beyond_bagpipes_igm_table(self, sps, filters):
        """z > 10: the Inoue et al. (2014) IGM evaluated per row, as per model."""
        config = get_preset("default", zred_range=(9.5, 12.0))
        assert_equal_to_per_model(config, sps, filters, config.sample(6, seed=2))

    def test_zero_redshift_is_at_10_pc(self, sps, filters):
        """A parametric model at zred = 0 (SpecModel puts it at 10 pc), fixed
        dust1_index and free mass: the non-training branches."""
        params = TemplateLibrary["parametric_sfh"]
        params["zred"]["init"] = 0.0
        params["dust1"] = {"N": 1, "isfree": True, "init": 0.2,
                           "prior": params["dust2"]["prior"]}
        params["mass"]["isfree"] = True
        model = make_spec_model(params, sps)
        assert isinstance(model, BagpipesSpecModel)
        rng = np.random.default_rng(8)
        theta = np.array([model.prior_transform(rng.uniform(size=model.ndim)) for _ in range(8)])
        maggies, mfrac, batched = BatchedPhotometry(model, sps, filters).predict_batch(theta)
        assert batched.all()
        expected, expected_mfrac = per_model(model, sps, filters, theta)
        np.testing.assert_allclose(maggies, expected, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(mfrac, expected_mfrac, rtol=RTOL, atol=0)

    def test_the_same_rows_give_the_same_bits_other_blocks_the_same_numbers(self, sps, filters):
        """Deterministic for a given set of rows (a chunk); other blockings change the
        order of summation in the matrix products only (~1e-15)."""
        config = get_preset("default")
        batch = BatchedPhotometry(config.build_model(sps), sps, filters)
        theta = config.sample(30, seed=5)
        maggies, mfrac = batch.predict(theta)
        again = batch.predict(theta)
        np.testing.assert_array_equal(maggies, again[0])
        np.testing.assert_array_equal(mfrac, again[1])
        small_blocks = batch.predict_batch(theta, block_rows=7)
        np.testing.assert_allclose(maggies, small_blocks[0], rtol=1e-12, atol=ATOL)
        np.testing.assert_allclose(mfrac, small_blocks[1], rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------
# its pieces
# ---------------------------------------------------------------------------
class TestPieces:

    def test_cosmology_is_astropys(self):
        zred = np.array([1e-3, 0.01, 0.1, 0.5, 1.0, 2.0, 3.0, 6.0, 10.0, 15.0, 20.0])
        np.testing.assert_allclose(luminosity_distance_mpc(zred),
                                   cosmo.luminosity_distance(zred).to("Mpc").value, rtol=1e-11)
        np.testing.assert_allclose(age_of_universe_gyr(zred), cosmo.age(zred).value, rtol=1e-11)

    @pytest.mark.parametrize("preset", ["default", "parametric"])
    def test_parameters_are_those_of_set_parameters(self, preset, sps):
        config = get_preset(preset)
        model = config.build_model(sps)
        theta = config.sample(10, seed=1)
        varying, fixed = model_parameters_batch(model, theta)
        for i, row in enumerate(theta):
            model.set_parameters(row)
            for name, values in varying.items():
                np.testing.assert_allclose(values[i], model.params[name], rtol=1e-11, atol=0,
                                           err_msg=name)
            for name, value in fixed.items():
                assert np.array_equal(np.asarray(value), np.asarray(model.params[name])), name


# ---------------------------------------------------------------------------
# what the batch does not take
# ---------------------------------------------------------------------------
class TestWhatTheBatchLeaves:

    def test_rows_outside_the_grids_go_to_the_per_model_path(self, sps, filters):
        config = get_preset("default")
        model = config.build_model(sps)
        batch = BatchedPhotometry(model, sps, filters)
        theta = config.sample(4, seed=9)
        theta[1, config.param_names.index("logzsol")] = 1.5     # beyond BC03's Z = 5 Zsun
        theta[2, config.param_names.index("dust2")] = np.nan
        maggies, mfrac, batched = batch.predict_batch(theta)
        assert batched.tolist() == [True, False, False, True]
        assert np.isnan(maggies[1:3]).all() and np.isnan(mfrac[1:3]).all()
        with pytest.raises(SPSParameterRangeError, match="logzsol"):
            batch.predict(theta[:2])

    def test_lines_added_by_prospector_are_refused(self, sps, filters):
        config = get_preset("default")
        model = config.build_model(sps)
        model.params["nebemlineinspec"] = np.array([False])
        with pytest.raises(BatchUnsupportedError, match="nebemlineinspec"):
            BatchedPhotometry(model, sps, filters).predict_batch(config.sample(2, seed=1))

    def test_varying_physics_switches_are_refused(self, sps, filters):
        params = TemplateLibrary["parametric_sfh"]
        params["dust_type"]["isfree"] = True
        params["dust_type"]["prior"] = params["dust2"]["prior"]
        with pytest.raises(BatchUnsupportedError, match="dust_type"):
            BatchedPhotometry(make_spec_model(params, sps), sps, filters)

    def test_other_sources_are_refused(self, filters):
        config = get_preset("default")
        with pytest.raises(BatchUnsupportedError, match="BagpipesBasis"):
            BatchedPhotometry(config.build_model(), object(), filters)
