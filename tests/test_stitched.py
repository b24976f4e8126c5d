"""StitchedEmulator: members trained on overlapping redshift domains blended
in flux density with the weights of eq. 11-13 (paper Sec. 4.3)."""
import numpy as np
import pytest

from conftest import make_random_emulator
from prospect_emulator import (EmulatorConfigurationError, NonFiniteInputError, OutOfTrainingRangeError,
                               StitchedEmulator, load_emulator, maggies_to_arsinh_mags)

PARAMS = ["logmass", "dust2", "zred"]
FILTERS = ("sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0")
TABLE_2 = [(0.00, 2.25), (1.75, 4.25), (3.75, 6.25), (5.75, 8.25), (7.75, 10.25), (9.75, 12.00)]


def member(z_low, z_high, seed=0, filters=FILTERS, params=PARAMS, sigma=None, **kwargs):
    """A random-weight member trained (nominally) on z_low <= zred <= z_high."""
    ranges = [(-2.0, 2.0)] * len(params)
    ranges[params.index("zred")] = (z_low, z_high)
    stats = None if sigma is None else np.tile(np.r_[np.linspace(-4, 4, 9) * sigma, 0.0, sigma],
                                                (len(filters), 1))
    return make_random_emulator(n_params=len(params), width=12, n_hidden=2, filter_names=filters,
                                param_names=params, param_ranges=ranges, seed=seed,
                                residual_stats=stats, **kwargs)


def table2(**kwargs):
    return StitchedEmulator([member(lo, hi, seed=i, **kwargs) for i, (lo, hi) in enumerate(TABLE_2)])


def at_redshifts(z, logmass=0.7, dust2=-0.4):
    z = np.atleast_1d(np.asarray(z, dtype=float))
    return np.column_stack([np.full(z.size, logmass), np.full(z.size, dust2), z])


def eq12(z, zl, zh):
    """Eq. 11-12 written out for one redshift: list of a_i(z)."""
    k = len(zl)
    a = []
    for i in range(k):
        zh_prev = zh[i - 1] if i > 0 else -np.inf
        zl_next = zl[i + 1] if i < k - 1 else np.inf
        if z > zh[i] or z < zl[i]:
            a.append(0.0)
        elif zh_prev <= z <= zl_next:
            a.append(1.0)
        elif zl[i] <= z < zh_prev:
            a.append(np.sin(np.pi / 2 * (z - zl[i]) / (zh_prev - zl[i])) ** 2)
        else:
            a.append(np.cos(np.pi / 2 * (z - zl_next) / (zh[i] - zl_next)) ** 2)
    return np.array(a)


# ------------------------------------------------------------------ weights
class TestWeights:
    @pytest.fixture
    def stitch(self):
        return table2()

    def test_sum_to_one_everywhere(self, stitch):
        edges = np.ravel(TABLE_2)
        z = np.concatenate([np.linspace(0.0, 12.0, 4801), edges, np.nextafter(edges, 100),
                            np.nextafter(edges, -100)])
        z = z[(z >= 0) & (z <= 12)]
        a = stitch.weights(z)
        assert a.shape == (z.size, 6)
        np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=0, atol=5e-16)
        assert np.all((a >= 0) & (a <= 1))
        assert np.all((a > 0).sum(axis=1) <= 2)  # never more than two members at once

    def test_match_eq12(self, stitch):
        zl, zh = np.array(TABLE_2).T
        for z in [0.0, 1.0, 1.75, 1.8, 2.0, 2.25, 2.3, 4.0, 6.1, 9.9, 10.25, 11.0, 12.0]:
            # atol: eq. 12's cos^2(pi/2) is 3.7e-33 in floating point, exactly 0 in the emulator
            np.testing.assert_allclose(stitch.weights(z), eq12(z, zl, zh), rtol=1e-14, atol=1e-30)

    def test_half_way_through_an_overlap_both_count_half(self, stitch):
        np.testing.assert_allclose(stitch.weights(2.0)[:2], [0.5, 0.5], rtol=1e-14)

    def test_derivative_continuous(self, stitch):
        """The weights are C1: left and right finite differences agree at every edge."""
        h = 1e-6
        for z_edge in np.ravel(TABLE_2)[1:-1]:
            left = (stitch.weights(z_edge) - stitch.weights(z_edge - h)) / h
            right = (stitch.weights(z_edge + h) - stitch.weights(z_edge)) / h
            np.testing.assert_allclose(left, right, atol=1e-4)
            np.testing.assert_allclose(left, 0.0, atol=1e-4)  # flat at the edges


# ------------------------------------------------------------- prediction
class TestBlending:
    @pytest.fixture
    def stitch(self):
        return StitchedEmulator([member(0.0, 2.5, seed=1), member(2.0, 4.5, seed=2),
                                 member(4.0, 6.0, seed=3)])

    def test_equal_to_the_single_member_outside_overlaps(self, stitch):
        for k, z in [(0, np.linspace(0.0, 2.0, 9)), (1, np.linspace(2.5, 4.0, 7)),
                     (2, np.linspace(4.5, 6.0, 7))]:
            x = at_redshifts(z)
            np.testing.assert_array_equal(stitch.predict_maggies(x), stitch.members[k].predict_maggies(x))
            np.testing.assert_allclose(stitch.predict_mags(x), stitch.members[k].predict_mags(x), rtol=1e-13)

    def test_eq13_inside_an_overlap(self, stitch):
        z = np.linspace(2.0, 2.5, 11)
        x = at_redshifts(z)
        a = stitch.weights(z)
        expected = a[:, :1] * stitch.members[0].predict_maggies(x) + a[:, 1:2] * stitch.members[1].predict_maggies(x)
        np.testing.assert_allclose(stitch.predict_maggies(x), expected, rtol=1e-14)
        np.testing.assert_allclose(stitch.predict_mags(x), maggies_to_arsinh_mags(expected), rtol=1e-14)

    def blend_fd(self, predict, z_edge, h=1e-5):
        f = lambda z: predict(at_redshifts(z)[0])
        f0 = f(z_edge)
        scale = np.abs(f0)
        value_jump = np.abs(f(z_edge + h) - f(z_edge - h)) / scale
        slope_jump = np.abs((f(z_edge + h) - f0) / h - (f0 - f(z_edge - h)) / h) / scale
        return value_jump, slope_jump

    def test_value_and_first_derivative_continuous_across_overlaps(self, stitch):
        for z_edge in [2.0, 2.5, 4.0, 4.5]:
            for predict in (stitch.predict_maggies, stitch.predict_mags):
                value_jump, slope_jump = self.blend_fd(predict, z_edge)
                assert np.all(value_jump < 1e-3), (z_edge, value_jump)
                assert np.all(slope_jump < 1e-2), (z_edge, slope_jump)

    def test_a_blend_with_a_kink_would_fail_that_check(self, stitch):
        """Control: linear weights (a kink at the overlap edges) give large jumps in slope."""
        m0, m1 = stitch.members[:2]

        def linear_blend(x):
            w = np.clip((x[2] - 2.0) / 0.5, 0.0, 1.0)
            return (1 - w) * m0.predict_maggies(x, check=False) + w * m1.predict_maggies(x, check=False)
        _, slope_jump = self.blend_fd(linear_blend, 2.0)
        assert np.max(slope_jump) > 0.1

    def test_single_vector_and_batch(self, stitch):
        x = at_redshifts([0.3, 2.2, 3.0, 4.2, 5.9])
        batch = stitch.predict_mags(x)
        assert batch.shape == (5, 4)
        for row, expected in zip(x, batch):
            assert stitch.predict_mags(row).shape == (4,)
            np.testing.assert_allclose(stitch.predict_mags(row), expected, rtol=1e-14)

    def test_extras_are_blended_linearly(self):
        members = [member(0.0, 2.5, seed=1, extra_names=("mfrac",)),
                   member(2.0, 4.5, seed=2, extra_names=("mfrac",))]
        stitch = StitchedEmulator(members)
        x = at_redshifts([1.0, 2.2, 3.0])
        a = stitch.weights(x[:, 2])
        expected = a[:, 0] * members[0].predict_extra(x, check=False) + \
            a[:, 1] * members[1].predict_extra(x, check=False)
        np.testing.assert_allclose(stitch.predict_extra(x, "mfrac"), expected, rtol=1e-14)
        mags, extras = stitch.predict_mags_and_extras(x)
        np.testing.assert_allclose(mags, stitch.predict_mags(x), rtol=1e-14)
        np.testing.assert_allclose(extras[:, 0], expected, rtol=1e-14)


class TestOnlyNeededMembersRun:
    def count_rows(self, stitch, monkeypatch):
        rows = {k: [] for k in range(len(stitch.members))}
        for k, m in enumerate(stitch.members):
            def counted(x, check=True, _k=k, _orig=m.predict_maggies_and_extras):
                rows[_k].append(len(np.atleast_2d(x)))
                return _orig(x, check=check)
            monkeypatch.setattr(m, "predict_maggies_and_extras", counted)
        return rows

    def test_members_with_zero_weight_are_not_evaluated(self, monkeypatch):
        stitch = table2()
        rows = self.count_rows(stitch, monkeypatch)
        stitch.predict_maggies(at_redshifts(3.0)[0])
        assert {k: len(v) for k, v in rows.items()} == {0: 0, 1: 1, 2: 0, 3: 0, 4: 0, 5: 0}
        stitch.predict_maggies(at_redshifts(4.0)[0])
        assert [len(rows[k]) for k in range(6)] == [0, 2, 1, 0, 0, 0]
        stitch.predict_maggies(at_redshifts(2.25)[0])  # the end of member 0's fade-out: weight 0
        assert [len(rows[k]) for k in range(6)] == [0, 3, 1, 0, 0, 0]

    def test_batch_evaluates_each_member_once_on_its_rows(self, monkeypatch):
        stitch = table2()
        rows = self.count_rows(stitch, monkeypatch)
        z = np.linspace(0.0, 12.0, 2401)
        stitch.predict_maggies(at_redshifts(z))
        assert all(len(v) == 1 for v in rows.values())
        expected = (stitch.weights(z) > 0).sum(axis=0)
        assert [v[0] for v in rows.values()] == list(expected)
        # the paper's ~21% extra cost of this scheme for uniformly spread redshifts
        assert sum(v[0] for v in rows.values()) / z.size == pytest.approx(1 + 5 * 0.5 / 12, abs=0.005)


# ------------------------------------------------------------- set-up checks
class TestRefusals:
    def test_gap(self):
        with pytest.raises(EmulatorConfigurationError, match=r"gap .*\[0.0, 2.0\] and \[2.5, 4.0\]"):
            StitchedEmulator([member(0.0, 2.0), member(2.5, 4.0, seed=1)])

    def test_zero_overlap(self):
        with pytest.raises(EmulatorConfigurationError, match="must overlap"):
            StitchedEmulator([member(0.0, 2.0), member(2.0, 4.0, seed=1)])

    @pytest.mark.parametrize("inner", [(1.0, 2.0), (0.0, 2.0), (1.0, 3.0), (0.0, 3.0)])
    def test_nested_domains(self, inner):
        with pytest.raises(EmulatorConfigurationError, match="lies inside"):
            StitchedEmulator([member(0.0, 3.0), member(*inner, seed=1)])

    def test_triple_coverage(self):
        with pytest.raises(EmulatorConfigurationError, match="more than two members"):
            StitchedEmulator([member(0.0, 2.0), member(1.5, 4.0, seed=1), member(1.9, 5.0, seed=2)])
        with pytest.raises(EmulatorConfigurationError, match="more than two members"):
            StitchedEmulator([member(0.0, 2.0), member(1.5, 4.0, seed=1), member(2.0, 5.0, seed=2)])

    def test_mismatched_filters(self):
        other = member(2.0, 4.0, seed=1, filters=("sdss_u0", "sdss_g0", "sdss_r0", "sdss_z0"))
        with pytest.raises(EmulatorConfigurationError, match=r"differ in filters \['sdss_i0', 'sdss_z0'\]"):
            StitchedEmulator([member(0.0, 2.5), other])

    def test_mismatched_parameters(self):
        other = member(2.0, 4.0, seed=1, params=["logmass", "logzsol", "zred"])
        with pytest.raises(EmulatorConfigurationError, match="inputs"):
            StitchedEmulator([member(0.0, 2.5), other])
        reordered = member(2.0, 4.0, seed=1, params=["dust2", "logmass", "zred"])
        with pytest.raises(EmulatorConfigurationError, match="orders its inputs differently"):
            StitchedEmulator([member(0.0, 2.5), reordered])

    def test_mismatched_extras(self):
        with pytest.raises(EmulatorConfigurationError, match="extra outputs"):
            StitchedEmulator([member(0.0, 2.5), member(2.0, 4.0, seed=1, extra_names=("mfrac",))])

    def test_members_without_the_redshift_input(self):
        with pytest.raises(EmulatorConfigurationError, match="no redshift input 'z'"):
            StitchedEmulator([member(0.0, 2.5), member(2.0, 4.0, seed=1)], zred_param="z")

    def test_no_members(self):
        with pytest.raises(EmulatorConfigurationError, match="at least one member"):
            StitchedEmulator([])


# ---------------------------------------------------- the paper's Table 2
class TestTable2:
    def test_six_members_cover_0_to_12(self):
        stitch = table2()
        np.testing.assert_array_equal(stitch.z_low, [lo for lo, _ in TABLE_2])
        np.testing.assert_array_equal(stitch.z_high, [hi for _, hi in TABLE_2])
        np.testing.assert_array_equal(stitch.param_ranges[2], [0.0, 12.0])
        mags = stitch.predict_mags(at_redshifts(np.linspace(0.0, 12.0, 97)))
        assert mags.shape == (97, 4) and np.isfinite(mags).all()
        assert repr(stitch).startswith("<StitchedEmulator: 6 members over zred in [0, 2.25], [1.75, 4.25]")

    def test_member_order_does_not_matter(self):
        members = [member(lo, hi, seed=i) for i, (lo, hi) in enumerate(TABLE_2)]
        shuffled = StitchedEmulator([members[k] for k in (3, 0, 5, 1, 4, 2)])
        x = at_redshifts(np.linspace(0.0, 12.0, 50))
        np.testing.assert_array_equal(shuffled.predict_maggies(x), StitchedEmulator(members).predict_maggies(x))

    def test_outside_the_union_of_domains(self):
        stitch = table2()
        with pytest.raises(OutOfTrainingRangeError, match=r"zred=12\.1 outside training range \[0, 12\]"):
            stitch.predict_maggies(at_redshifts(12.1)[0])
        with pytest.raises(NonFiniteInputError, match="zred"):
            stitch.predict_maggies(at_redshifts(np.nan)[0])
        with pytest.raises(EmulatorConfigurationError, match="shape"):
            stitch.predict_maggies([1.0, 2.0])


# -------------------------------------------------- filters, ranges, stats
class TestMembersAndStatistics:
    def test_filters_reordered_across_members(self):
        first = member(0.0, 2.5, seed=1)
        second = member(2.0, 4.5, seed=2, filters=tuple(reversed(FILTERS)))
        stitch = StitchedEmulator([first, second])
        assert stitch.filter_names == list(FILTERS)
        x = at_redshifts([3.0, 4.5])  # second member only
        np.testing.assert_allclose(stitch.predict_maggies(x), second.predict_maggies(x)[:, ::-1], rtol=1e-13)
        x = at_redshifts([2.2])  # both: each flux goes with its own filter
        a = stitch.weights(2.2)
        np.testing.assert_allclose(stitch.predict_maggies(x)[0],
                                   a[0] * first.predict_maggies(x)[0] + a[1] * second.predict_maggies(x)[0, ::-1],
                                   rtol=1e-13)

    def test_other_parameters_use_the_range_every_member_knows(self):
        first = make_random_emulator(n_params=3, param_names=PARAMS, seed=1,
                                     param_ranges=[(-2.0, 2.0), (-1.0, 2.0), (0.0, 2.5)])
        second = make_random_emulator(n_params=3, param_names=PARAMS, seed=2,
                                      param_ranges=[(-1.5, 2.5), (-1.0, 1.0), (2.0, 4.5)])
        stitch = StitchedEmulator([first, second])
        np.testing.assert_array_equal(stitch.param_ranges, [[-1.5, 2.0], [-1.0, 1.0], [0.0, 4.5]])
        with pytest.raises(OutOfTrainingRangeError, match="logmass"):
            stitch.predict_mags([-1.8, 0.0, 1.0])

    def test_residual_sigma_at_is_weighted_by_eq12(self):
        stitch = StitchedEmulator([member(0.0, 2.5, seed=1, sigma=0.02), member(2.0, 4.5, seed=2, sigma=0.05)])
        np.testing.assert_allclose(stitch.residual_sigma_at(at_redshifts(1.0)[0]), 0.02, rtol=1e-14)
        np.testing.assert_allclose(stitch.residual_sigma_at(at_redshifts(3.0)[0]), 0.05, rtol=1e-14)
        a = stitch.weights(2.1)
        np.testing.assert_allclose(stitch.residual_sigma_at(at_redshifts(2.1)[0]),
                                   np.sqrt(a[0] * 0.02 ** 2 + a[1] * 0.05 ** 2), rtol=1e-14)
        assert stitch.residual_sigma_at(at_redshifts([1.0, 2.1, 3.0])).shape == (3, 4)
        cov = stitch.residual_covariance_at(at_redshifts(2.1)[0])
        np.testing.assert_allclose(np.sqrt(np.diag(cov)), stitch.residual_sigma_at(at_redshifts(2.1)[0]),
                                   rtol=1e-14)
        # the fixed statistics are those of the worst member
        np.testing.assert_allclose(stitch.residual_sigma, 0.05)
        assert stitch.residual_stats.shape == (4, 11)
        np.testing.assert_allclose(stitch.residual_covariance, np.diag(np.full(4, 0.05 ** 2)))

    def test_members_without_statistics(self):
        stitch = StitchedEmulator([member(0.0, 2.5, seed=1), member(2.0, 4.5, seed=2)])
        assert np.isnan(stitch.residual_sigma).all()
        assert np.isnan(np.diag(stitch.residual_covariance)).all()

    def test_select_filter_indices(self):
        stitch = table2()
        sub = stitch.select(["sdss_r0", "sdss_u0"])
        assert isinstance(sub, StitchedEmulator) and sub.filter_names == ["sdss_r0", "sdss_u0"]
        x = at_redshifts(np.linspace(0.0, 12.0, 25))
        np.testing.assert_allclose(sub.predict_maggies(x), stitch.predict_maggies(x)[:, [2, 0]], rtol=1e-13)
        np.testing.assert_array_equal(stitch.filter_indices(["sdss_i0"]), [3])
        with pytest.raises(EmulatorConfigurationError, match="sdss_x0"):
            stitch.select(["sdss_x0"])

    def test_saved_and_loaded_as_one_file(self, tmp_path):
        stitch = table2(sigma=0.03)
        stitch.save(tmp_path / "composite.h5")
        assert [p.name for p in tmp_path.iterdir()] == ["composite.h5"]
        loaded = StitchedEmulator.load(tmp_path / "composite.h5")
        x = at_redshifts(np.linspace(0.0, 12.0, 60))
        np.testing.assert_array_equal(loaded.predict_maggies(x), stitch.predict_maggies(x))
        np.testing.assert_array_equal(load_emulator(tmp_path / "composite.h5").residual_sigma_at(x),
                                      stitch.residual_sigma_at(x))
