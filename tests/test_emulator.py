"""The NumPy runtime Emulator: its forward pass against an independent
computation from the raw weights, the arsinh magnitude helpers (eq. 2), filter
selection, mass normalisation, extra outputs and every kind of bad input."""
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_random_emulator
from prospect_emulator import (Emulator, EmulatorConfigurationError, NonFiniteInputError,
                               OutOfTrainingRangeError, arsinh_mags_to_maggies, dmaggies_dmag,
                               maggies_to_arsinh_mags)
from prospect_emulator.runtime import ARSINH_A, ARSINH_MU0

A = 2.5 * np.log10(np.e)  # eq. 2: a = 2.5 log10(e)
MU0 = 35.0


# ---------------------------------------------------------------- references
def raw_network(n_in, widths, n_out, seed=0):
    """Random raw weights, (de)normalisation and ranges of an MLP, as plain arrays."""
    rng = np.random.default_rng(seed)
    sizes = [n_in] + list(widths) + [n_out]
    return dict(
        weights=[rng.normal(scale=1.2 / np.sqrt(a), size=(a, b)) for a, b in zip(sizes[:-1], sizes[1:])],
        biases=[rng.normal(scale=0.3, size=b) for b in sizes[1:]],
        input_mean=rng.normal(size=n_in), input_std=rng.uniform(0.3, 3.0, n_in),
        output_mean=rng.uniform(15.0, 30.0, n_out), output_std=rng.uniform(0.5, 2.0, n_out))


def emulator_from(net, param_names, filter_names, **kwargs):
    return Emulator(net["weights"], net["biases"], param_names, filter_names, net["input_mean"],
                    net["input_std"], net["output_mean"], net["output_std"], **kwargs)


def reference_outputs(theta, net):
    """Independent forward pass, one parameter vector at a time, written from the
    paper (Fig. 2, eq. 6): normalise, GELU hidden layers, linear, denormalise."""
    theta = np.atleast_2d(theta)
    out = []
    for row in theta:
        h = (row - net["input_mean"]) / net["input_std"]
        for w, b in zip(net["weights"][:-1], net["biases"][:-1]):
            z = np.dot(h, w) + b
            h = z / 2.0 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))
        out.append((np.dot(h, net["weights"][-1]) + net["biases"][-1]) * net["output_std"]
                   + net["output_mean"])
    return np.array(out)


def eq2_mags(maggies, mu0=MU0, a=A):
    """Eq. 2 written out: mu = -a arsinh(f/2 exp(mu0/a)) + mu0."""
    return -a * np.arcsinh(np.asarray(maggies) / 2.0 * np.exp(mu0 / a)) + mu0


def eq2_maggies(mags, mu0=MU0, a=A):
    """Eq. 2 solved for f."""
    return 2.0 * np.sinh((mu0 - np.asarray(mags)) / a) / np.exp(mu0 / a)


PARAMS = ["logmass", "logzsol", "dust2", "zred"]
FILTERS = ["sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0"]
RANGES = [(6.0, 12.5), (-2.0, 0.2), (0.0, 4.0), (0.5, 3.0)]


def inputs_in_range(n, seed=1, ranges=RANGES):
    lo, hi = np.array(ranges).T
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, len(lo)))


# -------------------------------------------------------------- forward pass
class TestForwardPass:
    @pytest.mark.parametrize("widths", [[8], [16, 16], [32, 24, 40, 32, 32]])
    def test_matches_independent_numpy_forward_pass(self, widths):
        net = raw_network(4, widths, 5, seed=len(widths))
        emu = emulator_from(net, PARAMS, FILTERS, param_ranges=RANGES)
        x = inputs_in_range(50)
        got = emu.predict_mags(x)
        assert got.dtype == np.float64 and got.shape == (50, 5)
        np.testing.assert_allclose(got, reference_outputs(x, net), rtol=1e-12, atol=0)

    def test_single_vector_and_batch_give_the_same_numbers(self):
        net = raw_network(4, [16, 16], 5)
        emu = emulator_from(net, PARAMS, FILTERS, param_ranges=RANGES)
        x = inputs_in_range(7)
        batch = emu.predict_mags(x)
        for row, expected in zip(x, batch):
            single = emu.predict_mags(row)
            assert single.shape == (5,)
            np.testing.assert_allclose(single, expected, rtol=1e-14)
        assert emu.predict_maggies(x[0]).shape == (5,)
        assert emu.predict_maggies(x).shape == (7, 5)
        assert emu.predict_mags(np.empty((0, 4))).shape == (0, 5)

    def test_lists_are_accepted_as_inputs(self):
        net = raw_network(4, [8], 5)
        emu = emulator_from(net, PARAMS, FILTERS, param_ranges=RANGES)
        x = [10.0, -0.5, 1.0, 1.5]
        np.testing.assert_array_equal(emu.predict_mags(x), emu.predict_mags(np.array(x)))

    def test_predict_maggies_is_eq2_of_predict_mags(self):
        net = raw_network(4, [16, 16], 5)
        emu = emulator_from(net, PARAMS, FILTERS, param_ranges=RANGES)
        x = inputs_in_range(20)
        maggies = emu.predict_maggies(x)
        np.testing.assert_allclose(eq2_mags(maggies), emu.predict_mags(x), rtol=1e-12)
        np.testing.assert_allclose(maggies, eq2_maggies(reference_outputs(x, net)), rtol=1e-11)

    def test_output_std_defaults_to_one(self):
        net = raw_network(4, [8], 5)
        emu = Emulator(net["weights"], net["biases"], PARAMS, FILTERS, net["input_mean"],
                       net["input_std"], net["output_mean"])
        np.testing.assert_array_equal(emu.output_std, np.ones(5))
        x = inputs_in_range(3)
        np.testing.assert_allclose(emu.predict_mags(x),
                                   reference_outputs(x, dict(net, output_std=np.ones(5))), rtol=1e-12)

    def test_eighteen_inputs_137_outputs_like_the_paper(self):
        net = raw_network(18, [32] * 5, 137, seed=3)
        emu = emulator_from(net, [f"p{i}" for i in range(18)], [f"f{k}" for k in range(137)])
        x = np.random.default_rng(0).normal(size=(4, 18))
        np.testing.assert_allclose(emu.predict_mags(x), reference_outputs(x, net), rtol=1e-12)
        assert emu.width == 32 and emu.n_params == 18 and emu.n_filters == 137

    def test_default_ranges_are_unbounded(self):
        emu = emulator_from(raw_network(4, [8], 5), PARAMS, FILTERS)
        assert emu.param_ranges.shape == (4, 2)
        assert np.all(emu.param_ranges[:, 0] == -np.inf) and np.all(emu.param_ranges[:, 1] == np.inf)
        emu.predict_mags([1e3, -1e3, 0.0, 50.0])  # any finite value is accepted


# ------------------------------------------------------- arsinh magnitudes
class TestArsinhMagnitudes:
    def test_constants_are_those_of_the_paper(self):
        assert ARSINH_MU0 == 35.0
        assert ARSINH_A == pytest.approx(2.5 * np.log10(np.e), rel=1e-15)

    def test_helpers_match_eq2_and_invert_each_other(self):
        maggies = np.array([-1e-12, 0.0, 1e-16, 3e-14, 1e-9, 1e-6, 1.0])
        mags = maggies_to_arsinh_mags(maggies)
        np.testing.assert_allclose(mags, eq2_mags(maggies), rtol=1e-14)
        np.testing.assert_allclose(arsinh_mags_to_maggies(mags), maggies, rtol=1e-12, atol=1e-28)
        mags = np.linspace(5.0, 40.0, 50)
        np.testing.assert_allclose(maggies_to_arsinh_mags(arsinh_mags_to_maggies(mags)), mags, rtol=1e-13)

    def test_bright_fluxes_follow_ab_magnitudes_and_zero_flux_is_mu0(self):
        maggies = np.array([1e-4, 1e-8, 1e-10])
        np.testing.assert_allclose(maggies_to_arsinh_mags(maggies), -2.5 * np.log10(maggies), atol=1e-6)
        assert maggies_to_arsinh_mags(0.0) == 35.0
        assert maggies_to_arsinh_mags(-1e-15) > 35.0  # negative fluxes stay defined

    def test_other_softening_constants(self):
        mags = np.array([20.0, 31.0, 40.0])
        np.testing.assert_allclose(arsinh_mags_to_maggies(mags, mu0=30.0, a=1.2),
                                   eq2_maggies(mags, mu0=30.0, a=1.2), rtol=1e-13)
        np.testing.assert_allclose(maggies_to_arsinh_mags(1e-12, mu0=30.0, a=1.2),
                                   eq2_mags(1e-12, mu0=30.0, a=1.2), rtol=1e-14)

    @pytest.mark.parametrize("mag", [12.0, 22.5, 30.0, 35.0, 38.0])
    def test_derivative_matches_finite_differences(self, mag):
        h = 1e-5
        numeric = (arsinh_mags_to_maggies(mag + h) - arsinh_mags_to_maggies(mag - h)) / (2 * h)
        assert dmaggies_dmag(mag) == pytest.approx(numeric, rel=1e-8)
        assert dmaggies_dmag(mag) < 0  # brighter = smaller magnitude

    def test_derivative_is_vectorised(self):
        mags = np.array([[20.0, 25.0], [30.0, 36.0]])
        d = dmaggies_dmag(mags)
        assert d.shape == (2, 2)
        np.testing.assert_allclose(d[0, 1], dmaggies_dmag(25.0), rtol=1e-15)


# ------------------------------------------------------------------- select
class TestSelect:
    def stats(self, n):
        rng = np.random.default_rng(5)
        return np.sort(rng.normal(size=(n, 11)), axis=1)

    def test_outputs_are_exactly_the_chosen_filters_in_order(self):
        net = raw_network(4, [16, 16], 5)
        stats = self.stats(5)
        cov = np.cov(np.random.default_rng(2).normal(size=(5, 40)))
        emu = emulator_from(net, PARAMS, FILTERS, param_ranges=RANGES, residual_stats=stats,
                            residual_covariance=cov)
        chosen = ["sdss_z0", "sdss_u0", "sdss_r0"]
        sub = emu.select(chosen)
        assert sub.filter_names == chosen
        x = inputs_in_range(10)
        full = emu.predict_mags(x)
        np.testing.assert_array_equal(sub.predict_mags(x), full[:, [4, 0, 2]])
        np.testing.assert_array_equal(sub.residual_stats, stats[[4, 0, 2]])
        np.testing.assert_array_equal(sub.residual_sigma, stats[[4, 0, 2], -1])
        np.testing.assert_array_equal(sub.residual_covariance, cov[np.ix_([4, 0, 2], [4, 0, 2])])
        assert sub.param_names == emu.param_names
        np.testing.assert_array_equal(sub.param_ranges, emu.param_ranges)
        # the original is untouched
        assert emu.filter_names == FILTERS
        np.testing.assert_array_equal(emu.predict_mags(x), full)

    def test_select_keeps_extras_and_mass_normalisation(self):
        net = raw_network(3, [8], 3 + 1)
        emu = emulator_from(net, PARAMS, FILTERS[:3], extra_names=["mfrac"],
                            extra_transforms=["log10"], mass_param="logmass", mass_mu0=50.0,
                            param_ranges=RANGES)
        sub = emu.select(["sdss_r0", "sdss_u0"])
        x = inputs_in_range(5)
        mags, extras = emu.predict_mags_and_extras(x)
        sub_mags, sub_extras = sub.predict_mags_and_extras(x)
        np.testing.assert_array_equal(sub_mags, mags[:, [2, 0]])
        np.testing.assert_array_equal(sub_extras, extras)
        assert sub.mass_param == "logmass" and sub.extra_names == ["mfrac"]

    def test_unknown_filter_names_the_closest_ones(self):
        emu = emulator_from(raw_network(4, [8], 5), PARAMS, FILTERS)
        with pytest.raises(EmulatorConfigurationError, match="sdss_q0.*closest.*sdss_"):
            emu.select(["sdss_g0", "sdss_q0"])
        with pytest.raises(EmulatorConfigurationError, match="'sdss_g'"):
            emu.filter_indices(["sdss_g"])

    def test_filter_indices(self):
        emu = emulator_from(raw_network(4, [8], 5), PARAMS, FILTERS)
        np.testing.assert_array_equal(emu.filter_indices(["sdss_i0", "sdss_u0"]), [3, 0])

    def test_selecting_a_filter_twice_is_refused(self):
        emu = emulator_from(raw_network(4, [8], 5), PARAMS, FILTERS)
        with pytest.raises(EmulatorConfigurationError, match="duplicate"):
            emu.select(["sdss_g0", "sdss_g0"])


# ------------------------------------------------------------ statistics
class TestResidualStatistics:
    def test_sigma_is_the_last_column_and_covariance_defaults_to_its_square(self):
        stats = np.sort(np.random.default_rng(0).uniform(0.01, 0.2, size=(3, 11)), axis=1)
        emu = make_random_emulator(residual_stats=stats)
        assert emu.residual_stats.shape == (3, 11)
        np.testing.assert_array_equal(emu.residual_sigma, stats[:, 10])
        np.testing.assert_array_equal(emu.residual_covariance, np.diag(stats[:, 10] ** 2))
        x = np.zeros((4, 5))
        np.testing.assert_array_equal(emu.residual_sigma_at(x[0]), stats[:, 10])
        np.testing.assert_array_equal(emu.residual_covariance_at(x[0]), np.diag(stats[:, 10] ** 2))

    def test_unknown_statistics_are_nan(self):
        emu = make_random_emulator()
        assert emu.residual_stats.shape == (3, 11) and np.isnan(emu.residual_stats).all()

    def test_wrong_shapes_are_refused_with_the_expected_shape(self):
        with pytest.raises(EmulatorConfigurationError, match=r"residual_stats must have shape \(3, 11\)"):
            make_random_emulator(residual_stats=np.zeros((3, 10)))
        with pytest.raises(EmulatorConfigurationError, match=r"residual_covariance must have shape \(3, 3\)"):
            make_random_emulator(residual_covariance=np.eye(4))
        with pytest.raises(EmulatorConfigurationError, match=r"param_ranges must have shape \(5, 2\)"):
            make_random_emulator(param_ranges=np.zeros((4, 2)))


# ---------------------------------------------------------------- bad input
class TestBadInputs:
    @pytest.fixture
    def emu(self):
        return emulator_from(raw_network(4, [8], 5), PARAMS, FILTERS, param_ranges=RANGES)

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_non_finite_input_names_the_parameter(self, emu, bad):
        x = np.array([10.0, -0.5, bad, 1.0])
        with pytest.raises(NonFiniteInputError, match="dust2") as err:
            emu.predict_maggies(x)
        assert not isinstance(err.value, ValueError)  # must not become -inf in lnprobfn

    def test_non_finite_input_refused_even_without_training_ranges(self):
        emu = emulator_from(raw_network(4, [8], 5), PARAMS, FILTERS)
        for bad in (np.nan, np.inf, -np.inf):
            with pytest.raises(NonFiniteInputError, match="zred"):
                emu.predict_mags([10.0, -0.5, 1.0, bad])

    def test_nan_in_one_row_of_a_batch(self, emu):
        x = inputs_in_range(6)
        x[4, 1] = np.nan
        with pytest.raises(NonFiniteInputError, match="logzsol"):
            emu.predict_mags(x)

    def test_out_of_range_names_parameter_value_and_range(self, emu):
        with pytest.raises(OutOfTrainingRangeError, match=r"zred=3\.5 outside training range \[0\.5, 3\]") \
                as err:
            emu.predict_mags([10.0, -0.5, 1.0, 3.5])
        assert isinstance(err.value, ValueError)  # -> -inf inside prospect.fitting.lnprobfn

    def test_every_offending_parameter_is_named(self, emu):
        x = inputs_in_range(3)
        x[0, 0], x[2, 2] = 5.0, -0.1
        with pytest.raises(OutOfTrainingRangeError, match="logmass=5.*dust2=-0.1"):
            emu.predict_mags(x)

    def test_range_ends_are_inside(self, emu):
        lo, hi = np.array(RANGES).T
        emu.predict_mags(lo)
        emu.predict_mags(hi)
        with pytest.raises(OutOfTrainingRangeError, match="logmass"):
            emu.predict_mags(np.nextafter(lo, -np.inf))

    def test_half_open_range_message(self):
        emu = emulator_from(raw_network(4, [8], 5), PARAMS, FILTERS,
                            param_ranges=[(6, 12.5), (-np.inf, 0.2), (0, 4), (0.5, 3)])
        emu.predict_mags([10.0, -1e3, 1.0, 1.0])
        with pytest.raises(OutOfTrainingRangeError, match=r"logzsol=0\.5 outside training range \[-inf, 0\.2\]"):
            emu.predict_mags([10.0, 0.5, 1.0, 1.0])

    def test_check_false_skips_the_checks(self, emu):
        x = [10.0, -0.5, 1.0, 3.5]
        assert np.all(np.isfinite(emu.predict_mags(x, check=False)))

    @pytest.mark.parametrize("shape", [(3,), (5,), (2, 3), (2, 5), (2, 2, 4), ()])
    def test_wrong_input_shape(self, emu, shape):
        with pytest.raises(EmulatorConfigurationError,
                           match=r"shape \(4,\) or \(n, 4\) for parameters \['logmass', 'logzsol', "
                                 r"'dust2', 'zred'\]; got shape") as err:
            emu.predict_maggies(np.ones(shape))
        assert str(shape) in str(err.value)

    def test_check_inputs_returns_float_array(self, emu):
        x = emu.check_inputs([10, -1, 1, 1])
        assert x.dtype == np.float64 and x.shape == (4,)


class TestConstruction:
    def test_layer_shapes_must_chain(self):
        net = raw_network(4, [8, 8], 5)
        net["weights"][1] = np.ones((7, 8))
        with pytest.raises(EmulatorConfigurationError, match="layer 1"):
            emulator_from(net, PARAMS, FILTERS)

    def test_bias_length_must_match(self):
        net = raw_network(4, [8], 5)
        net["biases"][0] = np.ones(9)
        with pytest.raises(EmulatorConfigurationError, match="bias"):
            emulator_from(net, PARAMS, FILTERS)

    def test_input_and_output_counts_must_match_the_names(self):
        net = raw_network(4, [8], 5)
        with pytest.raises(EmulatorConfigurationError, match="first layer takes 4 inputs, expected 3"):
            emulator_from(net, PARAMS[:3], FILTERS)
        with pytest.raises(EmulatorConfigurationError, match="last layer gives 5 outputs, expected 4"):
            emulator_from(net, PARAMS, FILTERS[:4])

    def test_duplicate_names_are_refused(self):
        net = raw_network(4, [8], 5)
        with pytest.raises(EmulatorConfigurationError, match="duplicate parameter names"):
            emulator_from(net, ["a", "b", "a", "c"], FILTERS)

    def test_zero_input_std_is_refused(self):
        net = raw_network(4, [8], 5)
        net["input_std"][3] = 0.0
        with pytest.raises(EmulatorConfigurationError, match="input_std"):
            emulator_from(net, PARAMS, FILTERS)

    def test_mass_param_must_be_an_input_and_needs_mass_mu0(self):
        net = raw_network(3, [8], 5)
        with pytest.raises(EmulatorConfigurationError, match="mass_param"):
            emulator_from(net, PARAMS, FILTERS, mass_param="mass", mass_mu0=40.0)
        with pytest.raises(EmulatorConfigurationError, match="mass_mu0"):
            emulator_from(net, PARAMS, FILTERS, mass_param="logmass")

    def test_bad_extra_transform(self):
        net = raw_network(4, [8], 6)
        with pytest.raises(EmulatorConfigurationError, match="'identity' or 'log10'"):
            emulator_from(net, PARAMS, FILTERS, extra_names=["mfrac"], extra_transforms=["ln"])

    def test_repr_says_what_it_is(self):
        emu = emulator_from(raw_network(4, [8, 8], 6), PARAMS, FILTERS, extra_names=["mfrac"])
        assert repr(emu) == "<Emulator: 4 parameters -> 5 filters + mfrac, 3 layers, width 8>"


# ------------------------------------------------------ mass normalisation
class TestMassNormalised:
    MASS_MU0 = 45.0

    def make(self):
        net = raw_network(3, [16, 16], 5, seed=7)  # sees logzsol, dust2, zred
        emu = emulator_from(net, PARAMS, FILTERS, param_ranges=RANGES, mass_param="logmass",
                            mass_mu0=self.MASS_MU0)
        return net, emu

    def test_matches_independent_computation(self):
        net, emu = self.make()
        x = inputs_in_range(20)
        per_msun = reference_outputs(x[:, 1:], net)          # arsinh mag of 1 Msun, mu0 = 45
        flux = eq2_maggies(per_msun, mu0=self.MASS_MU0) * 10.0 ** x[:, :1]
        np.testing.assert_allclose(emu.predict_maggies(x), flux, rtol=1e-11)
        np.testing.assert_allclose(emu.predict_mags(x), eq2_mags(flux), rtol=1e-12)

    def test_ten_times_the_mass_is_ten_times_the_flux(self):
        _, emu = self.make()
        x = inputs_in_range(4)
        x[:, 0] = 9.0
        x10 = x.copy()
        x10[:, 0] = 10.0
        np.testing.assert_allclose(emu.predict_maggies(x10), 10.0 * emu.predict_maggies(x), rtol=1e-12)

    def test_mass_param_may_be_anywhere_in_the_inputs(self):
        net = raw_network(3, [8], 5, seed=2)
        names = ["logzsol", "dust2", "logmass", "zred"]
        emu = emulator_from(net, names, FILTERS, mass_param="logmass", mass_mu0=self.MASS_MU0)
        x = np.array([-0.3, 0.7, 10.5, 1.2])
        expected = eq2_maggies(reference_outputs(x[[0, 1, 3]], net)[0], mu0=self.MASS_MU0) * 10 ** 10.5
        np.testing.assert_allclose(emu.predict_maggies(x), expected, rtol=1e-11)


# ------------------------------------------------------------ extra outputs
class TestExtras:
    def test_extras_identity_and_log10(self):
        net = raw_network(4, [16], 5 + 2, seed=4)
        emu = emulator_from(net, PARAMS, FILTERS, param_ranges=RANGES, extra_names=["mfrac", "logage"],
                            extra_transforms=["log10", "identity"])
        x = inputs_in_range(6)
        raw = reference_outputs(x, net)
        mags, extras = emu.predict_mags_and_extras(x)
        np.testing.assert_allclose(mags, raw[:, :5], rtol=1e-12)
        np.testing.assert_allclose(extras[:, 0], 10.0 ** raw[:, 5], rtol=1e-11)
        np.testing.assert_allclose(extras[:, 1], raw[:, 6], rtol=1e-12)
        np.testing.assert_array_equal(emu.predict_extra(x, "mfrac"), extras[:, 0])
        np.testing.assert_array_equal(emu.predict_extra(x[2], "logage"), extras[2, 1])
        np.testing.assert_array_equal(emu.predict_mags(x), mags)  # extras are not magnitudes
        assert emu.n_filters == 5

    def test_extras_of_a_single_vector(self):
        emu = make_random_emulator(extra_names=("mfrac",))
        mags, extras = emu.predict_mags_and_extras(np.zeros(5))
        assert mags.shape == (3,) and extras.shape == (1,)
        assert emu.predict_extra(np.zeros(5)).shape == ()

    def test_unknown_extra_output(self):
        emu = make_random_emulator(extra_names=("mfrac",))
        with pytest.raises(EmulatorConfigurationError, match="no extra output 'age'.*mfrac"):
            emu.predict_extra(np.zeros(5), "age")
        with pytest.raises(EmulatorConfigurationError, match="none"):
            make_random_emulator().predict_extra(np.zeros(5))

    def test_extras_are_checked_like_magnitudes(self):
        emu = make_random_emulator(extra_names=("mfrac",))
        with pytest.raises(OutOfTrainingRangeError, match="p1"):
            emu.predict_extra([0, 5.0, 0, 0, 0])


# ---------------------------------------------------------- no TensorFlow
def test_importing_the_package_does_not_import_tensorflow():
    code = ("import prospect_emulator, sys; assert 'tensorflow' not in sys.modules; "
            "from prospect_emulator import Emulator, StitchedEmulator, load_emulator; "
            "import prospect_emulator.runtime.parrot, prospect_emulator.runtime.fileformat; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
