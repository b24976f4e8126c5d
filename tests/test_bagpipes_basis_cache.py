"""BagpipesBasis and BagpipesSpecModel cache what stays fixed during a fit;
the numbers must not depend on it.

* A warm source (one instance through a whole sequence of models, its caches
  filled by the models before) gives bit for bit what a cold copy with empty
  caches gives, while the SFH bins (zred), metallicity, logU, dust indices,
  IGM redshift and SFH type change between calls.
* The SSP spectra summed once per SFH bin equal the SSP-by-SSP sum.
* BagpipesSpecModel gives Prospector's own numbers: photometry and flux
  normalisation to the last bit (also when the redshift or the filters
  change), the prior and its transform to rounding, and so ``lnprobfn``.

The configuration is that of the SPS fits of
``benchmarks/validate_posteriors.py`` (``fitting_model_params(zred)``, the
27 COSMOS-like bands).
"""
import copy
import pickle

import numpy as np
import pytest
from prospect.fitting import lnprobfn
from prospect.models import SpecModel
from prospect.models.parameters import ProspectorParams
from sedpy.observate import getSED, load_filters

from prospect_emulator.data import COSMOS_FILTERS
from prospect_emulator.fitting.models import fitting_model_params
from prospect_emulator.fitting.run import make_obs
from prospect_emulator.sources import BagpipesBasis, BagpipesSpecModel, make_spec_model
from prospect_emulator.sources.bagpipes_basis import _ParsedParams
from prospect_emulator.sources.filter_projection import FilterProjection
from prospect_emulator.sources.spec_model import SPSHomeFreeSpecModel
from prospect_emulator.training.trainingset import WindowedFilterList

# metallicities of Bagpipes' BC03 grids (Z/Zsun): logzsol exactly on a grid point
LOGZSOL_ON_GRID = [0.0, np.log10(0.4)]


pytestmark = pytest.mark.usefixtures("no_sps_home")  # no FSPS data needed


def cold_copy(sps):
    """The same source with empty caches (copies, like pickles, leave them out)."""
    return copy.deepcopy(sps)


def fit_model(zred, sps):
    """The model of one validation SPS fit at ``zred``."""
    return make_spec_model(fitting_model_params(zred), sps)


def stock_model(zred, sps):
    """The same model with Prospector's own predict_phot, flux_norm and priors."""
    model = SPSHomeFreeSpecModel(fitting_model_params(zred))
    model.use_eline_info_of(sps)
    return model


def cosmos_obs():
    n = len(COSMOS_FILTERS)
    return make_obs(COSMOS_FILTERS, np.full(n, 1e-9), np.full(n, 1e-10))


def on_grid(k):
    """logzsol on a grid metallicity, the gas metallicity following it."""
    return {"logzsol": LOGZSOL_ON_GRID[k], "gas_logz": LOGZSOL_ON_GRID[k]}


def params_sequence(sps, seed=5):
    """SPS parameter dicts of validation models whose fixed quantities change
    from one to the next, with runs where they stay (as in a fit)."""
    rng = np.random.default_rng(seed)
    steps = [(0.7, {}), (0.7, {"gas_logu": -2.7}), (2.4, {}),
             (2.4, on_grid(0)), (0.7, {"dust_type": 0, "dust1_index": -0.5}),
             (11.5, {}),   # IGM beyond Bagpipes' table (z > 10)
             (2.4, dict(on_grid(1), nebemlineinspec=False)),
             (12.5, {"add_neb_continuum": False}), (0.7, {"add_stellar_remnants": False})]
    sequence = []
    for zred, changes in steps:
        model = fit_model(zred, sps)
        for _ in range(3):
            model.set_parameters(model.prior_transform(rng.uniform(size=model.ndim)))
            sequence.append(dict(model.params, **changes))
    # a parametric SFH in between, then the first step SFH again
    sequence.append(dict(imf_type=2, sfh=4, tage=3.0, tau=1.0, mass=1e10, logzsol=-0.3,
                         dust2=0.5, dust1=0.3, add_neb_emission=True, gas_logz=-0.3,
                         add_igm_absorption=True, zred=2.0))
    sequence.append(sequence[0])
    return sequence


def spectrum_and_lines(sps, params):
    wave, spec, mfrac = sps.get_galaxy_spectrum(**params)
    return spec, mfrac, sps.get_galaxy_elines()[1]


# ---------------------------------------------------------------------------
# The source: cached == computed afresh
# ---------------------------------------------------------------------------
class TestSourceCaches:

    def test_a_warm_source_gives_what_a_cold_one_gives_to_the_last_bit(self, sps):
        warm = cold_copy(sps)
        for params in params_sequence(sps):
            spec, mfrac, lines = spectrum_and_lines(warm, params)
            cold_spec, cold_mfrac, cold_lines = spectrum_and_lines(cold_copy(sps), params)
            np.testing.assert_array_equal(spec, cold_spec)
            assert mfrac == cold_mfrac
            np.testing.assert_array_equal(lines, cold_lines)

    def test_caches_are_reused_while_fixed_quantities_stay_and_renewed_when_they_change(self, sps):
        source = cold_copy(sps)
        model = fit_model(1.0, sps)
        model.set_parameters(model.theta)
        params = dict(model.params, dust1_index=-1.0)
        spectrum_and_lines(source, params)
        basis, igm, dust1 = source._step_basis, source._igm_cached, source._dust1_cached
        # another model of the same fit: other masses, metallicity and dust
        spectrum_and_lines(source, dict(params, logzsol=-1.0, gas_logz=-1.0, dust2=1.5,
                                        dust1=1.5 * params["dust1_fraction"],
                                        mass=params["mass"][::-1].copy()))
        assert source._step_basis is basis and source._igm_cached is igm
        assert source._dust1_cached is dust1
        # another redshift: other agebins, other IGM
        model.params["zred"] = np.array([2.0])
        model.set_parameters(model.theta)
        spectrum_and_lines(source, dict(model.params, dust1_index=-0.7))
        assert source._step_basis is not basis and source._igm_cached is not igm
        assert source._dust1_cached is not dust1

    def test_spectrum_changes_with_what_the_caches_are_keyed_on(self, sps):
        """A stale cache would return the previous redshift's IGM or SFH bins."""
        source = cold_copy(sps)
        model = fit_model(3.0, sps)
        model.set_parameters(model.theta)
        at_z3 = spectrum_and_lines(source, model.params)[0]
        model.params["zred"] = np.array([3.5])
        model.set_parameters(model.theta)
        at_z35 = spectrum_and_lines(source, model.params)[0]
        assert not np.array_equal(at_z3, at_z35)
        np.testing.assert_array_equal(at_z35, spectrum_and_lines(cold_copy(sps), model.params)[0])

    def test_sums_per_sfh_bin_equal_the_ssp_by_ssp_sum(self, sps):
        """The stars (and nebular continuum) of a step SFH, from the SSP spectra
        summed once per SFH bin, equal the sum over the SSP bins of each model."""
        model = fit_model(1.5, sps)
        rng = np.random.default_rng(11)
        for neb in (False, True):
            for _ in range(4):
                model.set_parameters(model.prior_transform(rng.uniform(size=model.ndim)))
                params = dict(model.params, dust2=0.0, dust1=0.0, add_dust_emission=False,
                              add_igm_absorption=False, add_neb_emission=neb,
                              nebemlineinspec=False, gas_logu=-2.3)
                spec = sps.get_galaxy_spectrum(**params)[1]
                np.testing.assert_allclose(spec, ssp_by_ssp_spectrum(sps, params), rtol=1e-12, atol=0)

    def test_copies_and_pickles_leave_the_caches_out(self, sps):
        warm = cold_copy(sps)
        for params in params_sequence(sps)[:4]:
            warm.get_galaxy_spectrum(**params)
        assert warm._step_basis is not None
        restored = pickle.loads(pickle.dumps(warm))
        assert restored._step_basis is None and restored._igm_cached is None
        assert len(pickle.dumps(warm)) == len(pickle.dumps(cold_copy(sps)))


def ssp_by_ssp_spectrum(sps, params):
    """Unattenuated spectrum (Lsun/Hz per Msun) summed SSP bin by SSP bin, as
    BagpipesBasis computes it without its per-agebins cache (stars, and the
    nebular continuum with the ionising photons absorbed)."""
    p = _ParsedParams(params, sps._logzsol_range, sps._logu)
    young_w, old_w = sps._ssp_weights(p, sps._step_basis_for(p.agebins))
    (i0, i1), (f0, f1) = sps._metallicity_weights(p.zsol)
    weights = np.stack([young_w, old_w], axis=1)
    stars = f0 * (sps._stellar[i0] @ weights) + f1 * (sps._stellar[i1] @ weights)
    young, old = stars[:, 0].copy(), stars[:, 1]
    if p.add_neb:
        young[sps.wavelengths < 912.0] = 0.0
        wy = young_w[:sps._n_young]
        for i, fz in ((i0, f0), (i1, f1)):
            for j, fu in zip(p.logu_index, p.logu_weights):
                young += (fz * fu) * (sps._neb_cont[i, j] @ wy)
    return (young + old) * sps._to_lsun_per_hz


# ---------------------------------------------------------------------------
# The model: Prospector's numbers
# ---------------------------------------------------------------------------
class TestSpecModelShortcuts:

    def test_photometry_is_sedpys_to_the_last_bit_as_redshift_and_filters_change(self, sps):
        obs = cosmos_obs()
        model, stock = fit_model(0.8, sps), stock_model(0.8, sps)
        rng = np.random.default_rng(3)
        subset = load_filters(COSMOS_FILTERS[5:15])
        for zred, filters in [(0.8, obs["filters"]), (0.8, obs["filters"]), (2.2, obs["filters"]),
                              (2.2, subset), (0.8, subset[::-1]), (0.8, obs["filters"])]:
            for m in (model, stock):
                m.params["zred"] = np.array([zred])
            for _ in range(2):
                theta = model.prior_transform(rng.uniform(size=model.ndim))
                _, phot, mfrac = model.predict(theta, obs=dict(obs, filters=filters), sps=sps)
                _, stock_phot, stock_mfrac = stock.predict(theta, obs=dict(obs, filters=filters),
                                                           sps=sps)
                np.testing.assert_array_equal(phot, stock_phot)
                assert mfrac == stock_mfrac

    def test_a_filter_replaced_in_the_same_list_is_noticed(self, sps):
        filters = load_filters(COSMOS_FILTERS[:6])
        model, stock = fit_model(1.0, sps), stock_model(1.0, sps)
        obs = {"filters": filters, "wavelength": None, "spectrum": None}
        model.predict(model.theta, obs=obs, sps=sps)
        filters[2] = load_filters(["wise_w3"])[0]        # the same list object, mutated
        phot = model.predict(model.theta, obs=obs, sps=sps)[1]
        np.testing.assert_array_equal(phot, stock.predict(stock.theta, obs=obs, sps=sps)[1])

    def test_filters_the_grid_does_not_reach_are_nan_as_in_sedpy(self, sps):
        model = fit_model(1.0, sps)
        model.predict(model.theta, obs=cosmos_obs(), sps=sps)
        filters = load_filters(COSMOS_FILTERS)
        wave = model._wave * (1 + model._zred)
        projection = FilterProjection(filters)
        for cut in (slice(None), slice(1500, 2600)):       # the second misses most bands
            flambda = model._norm_spec[cut] * 2.998e18 / wave[cut]**2 * 3631e-23
            got = projection.ab_mags(wave[cut], flambda)
            with np.errstate(divide="ignore", invalid="ignore"):
                expected = getSED(wave[cut], flambda, filters)
            np.testing.assert_array_equal(got, expected)
        assert np.isnan(got).any() and np.isfinite(got).any()

    def test_filter_sets_and_lines_outside_the_spectrum_go_through_prospector(self, sps):
        """Objects with get_sed_maggies (training-set generation) and the lines
        SpecModel adds itself (nebemlineinspec=False): Prospector's path."""
        params = fitting_model_params(1.3)
        params["nebemlineinspec"]["init"] = False
        model = make_spec_model(params, sps)
        stock = SPSHomeFreeSpecModel(params)
        stock.use_eline_info_of(sps)
        for filters in (load_filters(COSMOS_FILTERS), WindowedFilterList(load_filters(COSMOS_FILTERS))):
            obs = {"filters": filters, "wavelength": None, "spectrum": None}
            np.testing.assert_array_equal(model.predict(model.theta, obs=obs, sps=sps)[1],
                                          stock.predict(stock.theta, obs=obs, sps=sps)[1])

    def test_flux_norm_is_prospectors_as_the_redshift_changes(self, sps):
        model = fit_model(0.5, sps)
        for zred in (0.5, 0.5, 3.1, 0.5):
            model.params["zred"] = np.array([zred])
            model.predict(model.theta, obs=cosmos_obs(), sps=sps)
            assert model.flux_norm() == SpecModel.flux_norm(model)
        model.params["lumdist"] = np.array([1e-5])          # 10 pc: Prospector's own branch
        assert model.flux_norm() == SpecModel.flux_norm(model)

    def test_prior_and_prior_transform_are_prospectors(self, sps):
        model = fit_model(1.0, sps)
        units = np.random.default_rng(8).uniform(size=(50, model.ndim))
        for u in units:
            theta = model.prior_transform(u)
            np.testing.assert_allclose(theta, ProspectorParams.prior_transform(model, u),
                                       rtol=1e-12, atol=1e-12)
            assert model.prior_product(theta) == pytest.approx(
                ProspectorParams.prior_product(model, theta), rel=1e-12, abs=1e-12)
            assert model.prior_product(theta, nested=True) == 0.0
        outside = model.prior_transform(units[0])
        outside[model.theta_index["dust2"]] = -1.0
        assert model.prior_product(outside, nested=True) == -np.inf

    def test_lnprobfn_equals_prospectors_in_the_validation_configuration(self, sps):
        obs = cosmos_obs()
        model, stock = fit_model(1.7, sps), stock_model(1.7, sps)
        rng = np.random.default_rng(21)
        for _ in range(10):
            theta = model.prior_transform(rng.uniform(size=model.ndim))
            # nested sampling (dynesty): the likelihood alone, identical
            assert (lnprobfn(theta, model=model, obs=obs, sps=sps, nested=True)
                    == lnprobfn(theta, model=stock, obs=obs, sps=sps, nested=True))
            assert lnprobfn(theta, model=model, obs=obs, sps=sps) == pytest.approx(
                lnprobfn(theta, model=stock, obs=obs, sps=sps), rel=1e-12)

    def test_make_spec_model_gives_the_fast_model_for_bagpipes(self, sps):
        assert isinstance(fit_model(1.0, sps), BagpipesSpecModel)
