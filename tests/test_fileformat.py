"""The native emulator file (HDF5, no pickle): exact round trips of single and
stitched emulators, and clear errors for every file that is not one."""
import json
import os
import pickle
import re

import h5py
import numpy as np
import pytest

from conftest import make_random_emulator
from prospect_emulator import (Emulator, EmulatorConfigurationError, EmulatorFileError,
                               StitchedEmulator, __version__, load_emulator)
from prospect_emulator.runtime.fileformat import (CHECKSUM_ATTR, FORMAT_NAME, SCHEMA_VERSION,
                                                  emulator_checksum)

PARAMS = ["logmass", "logzsol", "dust2", "zred"]


def full_emulator():
    """An emulator using every feature the format stores."""
    rng = np.random.default_rng(11)
    stats = np.sort(rng.uniform(-0.3, 0.3, size=(4, 11)), axis=1)
    stats[:, 10] = rng.uniform(0.01, 0.1, 4)
    a = rng.normal(size=(4, 30))
    provenance = {"sps": "bagpipes", "sps_version": "1.3.6", "n_train": 200000, "seed": 42,
                  "package_version": __version__, "distributions": {"logmass": ["uniform", 6, 12.5],
                                                                   "dust2": ["normal", 0.3, 3.0]},
                  "nested": {"list": [1, 2.5, "x", None, True]}}
    sizes = [3, 12, 12, 12, 4 + 2]  # the network does not see logmass (mass-normalised)
    weights = [rng.normal(size=(m, n)) / np.sqrt(m) for m, n in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(scale=0.1, size=n) for n in sizes[1:]]
    return Emulator(
        weights, biases, PARAMS, ["sdss_u0", "sdss_g0", "jwst_f150w", "hsc_zpp"],
        input_mean=rng.normal(size=3), input_std=rng.uniform(0.5, 2, 3),
        output_mean=np.r_[np.full(4, 40.0), -0.2, 9.0], output_std=rng.uniform(0.5, 2, 6),
        param_ranges=[(6.0, 12.5), (-1.98, 0.19), (0.0, 4.0), (0.5, 3.0)], residual_stats=stats,
        residual_covariance=np.cov(a), extra_names=["mfrac", "logage"],
        extra_transforms=["log10", "identity"], mass_param="logmass", mass_mu0=47.5,
        provenance=provenance)


@pytest.fixture
def emulator():
    return full_emulator()


def stitched(n=3):
    members = []
    for i in range(n):
        ranges = [(-2.0, 2.0)] * 3 + [(2.0 * i, 2.0 * i + 2.5)]
        members.append(make_random_emulator(n_params=4, param_names=PARAMS, param_ranges=ranges,
                                             seed=i, residual_stats=np.full((3, 11), 0.01 * (i + 1)),
                                             provenance={"member": i}))
    return StitchedEmulator(members)


ATTRIBUTES = ["param_names", "filter_names", "extra_names", "extra_transforms", "mass_param",
              "mass_mu0", "mu0", "a", "provenance"]
ARRAYS = ["param_ranges", "residual_stats", "residual_covariance", "input_mean", "input_std",
          "output_mean", "output_std"]


def assert_same_emulator(got, expected):
    assert type(got) is Emulator
    for name in ATTRIBUTES:
        assert getattr(got, name) == getattr(expected, name), name
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    assert len(got.weights) == len(expected.weights)
    for w1, w2, b1, b2 in zip(got.weights, expected.weights, got.biases, expected.biases):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)


# ---------------------------------------------------------------- round trip
class TestRoundTrip:
    def test_every_attribute_survives_exactly(self, emulator, tmp_path):
        path = tmp_path / "emu.h5"
        emulator.save(path)
        loaded = Emulator.load(path)
        assert_same_emulator(loaded, emulator)
        assert loaded.provenance["distributions"]["dust2"] == ["normal", 0.3, 3.0]
        x = np.random.default_rng(0).uniform([6, -1.9, 0, 0.5], [12.5, 0.19, 4, 3], size=(20, 4))
        for method in ("predict_mags", "predict_maggies"):
            np.testing.assert_array_equal(getattr(loaded, method)(x), getattr(emulator, method)(x))
        np.testing.assert_array_equal(loaded.predict_extra(x, "mfrac"), emulator.predict_extra(x, "mfrac"))

    def test_load_emulator_and_path_strings(self, emulator, tmp_path):
        path = str(tmp_path / "emu.h5")
        emulator.save(path)
        assert_same_emulator(load_emulator(path), emulator)

    def test_plain_emulator_without_statistics(self, tmp_path):
        emu = make_random_emulator()
        emu.save(tmp_path / "plain.h5")
        loaded = load_emulator(tmp_path / "plain.h5")
        assert loaded.mass_param is None and loaded.extra_names == [] and loaded.provenance == {}
        assert np.isnan(loaded.residual_stats).all()
        np.testing.assert_array_equal(loaded.predict_mags(np.zeros(5)), emu.predict_mags(np.zeros(5)))

    def test_numpy_values_in_provenance_read_back_as_numbers(self, tmp_path):
        emu = make_random_emulator(provenance={"n_train": np.int64(5000), "lr": np.float32(0.5),
                                               "widths": np.array([32, 32])})
        emu.save(tmp_path / "e.h5")
        assert load_emulator(tmp_path / "e.h5").provenance == {"n_train": 5000, "lr": 0.5,
                                                                "widths": [32, 32]}

    def test_selected_emulator_round_trip(self, emulator, tmp_path):
        sub = emulator.select(["hsc_zpp", "sdss_u0"])
        sub.save(tmp_path / "sub.h5")
        assert_same_emulator(load_emulator(tmp_path / "sub.h5"), sub)

    def test_save_overwrites_and_leaves_no_partial_file(self, emulator, tmp_path):
        path = tmp_path / "emu.h5"
        make_random_emulator().save(path)
        emulator.save(path)
        assert_same_emulator(load_emulator(path), emulator)
        assert os.listdir(tmp_path) == ["emu.h5"]

    def test_saving_something_else_is_refused(self, tmp_path):
        from prospect_emulator.runtime.fileformat import save_emulator
        with pytest.raises(TypeError, match="dict"):
            save_emulator({"weights": []}, tmp_path / "x.h5")

    def test_stitched_round_trip_as_one_file(self, tmp_path):
        stitch = stitched()
        path = tmp_path / "stitched.h5"
        stitch.save(path)
        loaded = StitchedEmulator.load(path)
        assert isinstance(loaded, StitchedEmulator) and loaded.zred_param == "zred"
        np.testing.assert_array_equal(loaded.z_low, stitch.z_low)
        np.testing.assert_array_equal(loaded.z_high, stitch.z_high)
        for got, expected in zip(loaded.members, stitch.members):
            assert_same_emulator(got, expected)
        z = np.linspace(0.0, 6.5, 40)
        x = np.column_stack([np.full(40, 1.5), np.full(40, -0.5), np.full(40, 0.3), z])
        np.testing.assert_array_equal(loaded.predict_maggies(x), stitch.predict_maggies(x))
        np.testing.assert_array_equal(loaded.residual_sigma_at(x), stitch.residual_sigma_at(x))
        assert load_emulator(path).__class__ is StitchedEmulator


# ------------------------------------------------------------ the file itself
class TestLayout:
    def test_header_and_no_pickled_objects(self, emulator, tmp_path):
        path = tmp_path / "emu.h5"
        emulator.save(path)
        with h5py.File(path, "r") as f:
            assert f.attrs["format"] == FORMAT_NAME == "prospect-emulator"
            assert f.attrs["schema_version"] == SCHEMA_VERSION == 1
            assert f.attrs["kind"] == "single"
            assert json.loads(f.attrs["provenance"])["n_train"] == 200000
            assert list(f["param_names"].asstr()[()]) == PARAMS
            np.testing.assert_array_equal(f["network/layer_0/weight"][()], emulator.weights[0])
            datasets = []
            f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
            for ds in datasets:  # numbers or strings only: nothing that needs unpickling
                assert ds.dtype.kind in "fiu" or h5py.check_string_dtype(ds.dtype) is not None, ds.name

    def test_loading_never_unpickles(self, emulator, tmp_path, monkeypatch):
        emulator.save(tmp_path / "emu.h5")
        stitched().save(tmp_path / "st.h5")

        def refuse(*args, **kwargs):
            raise AssertionError("pickle used")
        monkeypatch.setattr(pickle, "load", refuse)
        monkeypatch.setattr(pickle, "loads", refuse)
        load_emulator(tmp_path / "emu.h5")
        load_emulator(tmp_path / "st.h5")


# -------------------------------------------------------------- bad files
def _newer_schema_version(f):
    f.attrs["schema_version"] = SCHEMA_VERSION + 1


def _missing_dataset(f):
    del f["network/layer_2/weight"]


def _inconsistent_content(f):
    del f["filter_names"]
    f["filter_names"] = np.array([b"only_one"], dtype=h5py.string_dtype())


def _unknown_activation(f):
    f["network"].attrs["activation"] = "relu"


class TestBadFiles:
    def test_missing_file(self, tmp_path):
        with pytest.raises(EmulatorFileError, match="no emulator file at .*nothing.h5") as err:
            load_emulator(tmp_path / "nothing.h5")
        assert isinstance(err.value, OSError)

    def test_text_file(self, tmp_path):
        path = tmp_path / "notes.txt"
        path.write_text("logmass logzsol\n10 -0.5\n")
        with pytest.raises(EmulatorFileError, match="notes.txt is not a readable HDF5 file"):
            load_emulator(path)

    def test_npy_file_points_to_from_parrot(self, tmp_path):
        path = tmp_path / "emulator.npy"
        np.save(path, np.arange(5.0))
        with pytest.raises(EmulatorFileError, match="from_parrot"):
            Emulator.load(path)

    def test_foreign_hdf5_file(self, tmp_path):
        path = tmp_path / "catalogue.h5"
        with h5py.File(path, "w") as f:
            f["flux"] = np.ones(10)
            f.attrs["format"] = "something-else"
        with pytest.raises(EmulatorFileError, match="HDF5 file but not a prospect-emulator emulator.*something-else"):
            load_emulator(path)

    @pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
    def test_truncated_file(self, emulator, tmp_path, fraction):
        path = tmp_path / "emu.h5"
        emulator.save(path)
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * fraction)])
        with pytest.raises(EmulatorFileError, match="emu.h5"):
            load_emulator(path)

    @pytest.mark.parametrize("damage, message", [
        (_newer_schema_version, f"schema version {SCHEMA_VERSION + 1}.*upgrade"),
        (_missing_dataset, "damaged prospect-emulator file"),
        (_inconsistent_content, "damaged.*network/layer_3/weight has shape"),
        (_unknown_activation, "network attribute 'activation' is 'relu': unsupported"),
    ], ids=["newer_schema_version", "missing_dataset_is_a_damaged_file",
            "inconsistent_content_is_a_damaged_file", "unknown_activation"])
    def test_edited_file(self, emulator, tmp_path, damage, message):
        path = tmp_path / "emu.h5"
        emulator.save(path)
        with h5py.File(path, "a") as f:
            damage(f)
        with pytest.raises(EmulatorFileError, match=message):
            load_emulator(path)

    def test_emulator_load_refuses_a_stitched_file(self, tmp_path):
        path = tmp_path / "stitched.h5"
        stitched().save(path)
        with pytest.raises(EmulatorConfigurationError, match="holds a StitchedEmulator, not a Emulator.*load_emulator"):
            Emulator.load(path)

    def test_stitched_load_refuses_a_single_file(self, emulator, tmp_path):
        path = tmp_path / "emu.h5"
        emulator.save(path)
        with pytest.raises(EmulatorConfigurationError, match="holds a Emulator, not a StitchedEmulator"):
            StitchedEmulator.load(path)


# ------------------------------------------------------ validation on load
def load_error(path):
    """The message of the EmulatorFileError that loading ``path`` raises."""
    with pytest.raises(EmulatorFileError) as err:
        load_emulator(path)
    message = str(err.value)
    assert str(path) in message, message  # every message names the file
    return message


def saved(tmp_path, emu=None, name="emu.h5"):
    path = tmp_path / name
    (emu if emu is not None else full_emulator()).save(path)
    return path


def replace(f, field, value):
    """Overwrite dataset ``field`` with ``value`` (any shape) in an open file."""
    del f[field]
    f[field] = value


def _truncated_weight(f):
    replace(f, "network/layer_1/weight", f["network/layer_1/weight"][:10])


def _transposed_first_weight(f):
    replace(f, "network/layer_0/weight", f["network/layer_0/weight"][()].T)


def _transposed_last_weight(f):
    replace(f, "network/layer_3/weight", f["network/layer_3/weight"][()].T)


def _transposed_ranges(f):
    replace(f, "param_ranges", f["param_ranges"][()].T)


def _bias_as_a_row(f):
    replace(f, "network/layer_2/bias", f["network/layer_2/bias"][()][None, :])


def _short_input_mean(f):
    replace(f, "network/input_mean", f["network/input_mean"][:2])


def _output_std_of_the_filters_only(f):
    replace(f, "network/output_std", f["network/output_std"][:4])


def _short_residual_stats(f):
    replace(f, "residuals/stats", f["residuals/stats"][:, :10])


def _nan_weight(f):
    f["network/layer_2/weight"][3, 4] = np.nan


def _infinite_bias(f):
    f["network/layer_0/bias"][5] = np.inf


def _nan_output_mean(f):
    f["network/output_mean"][0] = np.nan


def _nan_range(f):
    f["param_ranges"][2, 1] = np.nan


def _inverted_range(f):
    f["param_ranges"][1] = [0.19, -1.98]


def _empty_range(f):
    f["param_ranges"][3] = [1.0, 1.0]


def _layer_count(f):
    f["network"].attrs["n_layers"] = 3


def _string_weights(f):
    replace(f, "network/layer_1/weight", np.array([b"a"] * 12, dtype=h5py.string_dtype()))


def _mass_param_not_an_input(f):
    f["magnitudes"].attrs["mass_param"] = "logmass_formed"


def _nan_softening(f):
    f["magnitudes"].attrs["mu0"] = np.nan


def _missing_bias(f):
    del f["network/layer_1/bias"]


class TestValidationOnLoad:
    """Each damaged field gives an EmulatorFileError naming the file and the field."""

    @pytest.mark.parametrize("damage, field, problem", [
        (_truncated_weight, "network/layer_1/weight", r"has shape \(10, 12\); expected \(12, n\)"),
        (_transposed_first_weight, "network/layer_0/weight",
         r"has shape \(12, 3\); expected \(3, n\), \(3 = network inputs \(param_names without "
         r"'logmass'\).*stored transposed"),
        (_transposed_last_weight, "network/layer_3/weight",
         r"expected \(12, 6\), .*6 = 4 filter_names \+ 2 extra_names.*stored transposed"),
        (_transposed_ranges, "param_ranges", r"has shape \(2, 4\); expected \(4, 2\).*stored transposed"),
        (_bias_as_a_row, "network/layer_2/bias", r"has shape \(1, 12\); expected \(12,\)"),
        (_short_input_mean, "network/input_mean", r"has shape \(2,\); expected \(3,\)"),
        (_output_std_of_the_filters_only, "network/output_std", r"expected \(6,\)"),
        (_short_residual_stats, "residuals/stats", r"expected \(4, 11\)"),
        (_nan_weight, "network/layer_2/weight", r"non-finite values \(first at index \[3, 4\]: nan\)"),
        (_infinite_bias, "network/layer_0/bias", r"non-finite values \(first at index \[5\]: inf\)"),
        (_nan_output_mean, "network/output_mean", "non-finite"),
        (_nan_range, "param_ranges", r"of 'dust2' is \[0.0, nan\]: need finite low < high"),
        (_inverted_range, "param_ranges", r"of 'logzsol' is \[0.19, -1.98\]: need finite low < high"),
        (_empty_range, "param_ranges", r"of 'zred' is \[1.0, 1.0\]"),
        (_layer_count, "network",
         r"n_layers = 3 but holds groups \['layer_0', 'layer_1', 'layer_2', 'layer_3'\]"),
        (_string_weights, "network/layer_1/weight", "must hold numbers"),
        (_mass_param_not_an_input, "magnitudes attribute 'mass_param'", "'logmass_formed', not one of"),
        (_nan_softening, "magnitudes attribute 'mu0'", "must be finite"),
        (_missing_bias, "network/layer_1/bias", "is missing"),
    ], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
    def test_damaged_field(self, tmp_path, damage, field, problem):
        path = saved(tmp_path)
        with h5py.File(path, "a") as f:
            damage(f)
        message = load_error(path)
        assert f"damaged prospect-emulator file: {field} " in message, message
        assert re.search(problem, message), message

    def test_member_of_a_stitched_file_is_named(self, tmp_path):
        path = saved(tmp_path, stitched(), "stitched.h5")
        with h5py.File(path, "a") as f:
            f["members/1/network/layer_0/weight"][0, 0] = np.nan
        assert "members/1/network/layer_0/weight has non-finite values" in load_error(path)

    @pytest.mark.parametrize("n_members, remove, groups", [
        (4, None, r"\['0', '1', '2'\]"), (2, None, r"\['0', '1', '2'\]"),
        (3, "members/1", r"\['0', '2'\]"), (0, None, r"\['0', '1', '2'\]"),
    ])
    def test_member_count_must_match_the_member_groups(self, tmp_path, n_members, remove, groups):
        path = saved(tmp_path, stitched(), "stitched.h5")
        with h5py.File(path, "a") as f:
            f.attrs["n_members"] = n_members
            if remove:
                del f[remove]
        assert re.search(f"attribute 'n_members' is {n_members} but the file holds member groups "
                         f"{groups} under members/", load_error(path))

    def test_transposed_square_layer_is_caught_by_the_checksum(self, tmp_path):
        """Shapes cannot tell a transposed (width, width) layer: the checksum can."""
        path = saved(tmp_path)
        with h5py.File(path, "a") as f:
            replace(f, "network/layer_1/weight", f["network/layer_1/weight"][()].T)
        message = load_error(path)
        assert f"does not match its checksum ({CHECKSUM_ATTR}" in message


# ----------------------------------------------------------------- checksum
def _nudged_weight(f):
    f["network/layer_2/weight"][0, 0] *= 1 + 1e-12      # finite, right shape: only the checksum sees it


def _swapped_filter_names(f):
    names = list(f["filter_names"].asstr()[()])
    f["filter_names"][0], f["filter_names"][1] = names[1], names[0]


def _edited_residual_sigma(f):
    f["residuals/stats"][2, 10] = 0.001


def _edited_covariance(f):
    f["residuals/covariance"][0, 1] += 1e-3


def _edited_mass_softening(f):
    f["magnitudes"].attrs["mass_mu0"] = 47.0


def _edited_training_range(f):
    f["param_ranges"][0] = [5.0, 13.0]


class TestChecksum:
    def test_stored_at_save_and_exposed(self, tmp_path):
        emu = full_emulator()
        path = saved(tmp_path, emu)
        with h5py.File(path, "r") as f:
            stored = f.attrs[CHECKSUM_ATTR]
        assert re.fullmatch("[0-9a-f]{64}", stored)
        assert emu.checksum == stored == load_emulator(path).checksum == emulator_checksum(emu)

    def test_identifies_the_content_not_the_file(self, tmp_path):
        emu = full_emulator()
        emu.save(tmp_path / "a.h5")
        emu.save(tmp_path / "b.h5")
        assert load_emulator(tmp_path / "a.h5").checksum == load_emulator(tmp_path / "b.h5").checksum
        # the provenance describes the emulator, it is not part of it
        emu.provenance["note"] = "copied to the cluster"
        assert emu.checksum == load_emulator(tmp_path / "a.h5").checksum
        # any change to what predicts is another emulator
        assert emu.select(emu.filter_names[::-1]).checksum != emu.checksum
        assert make_random_emulator(seed=1).checksum != make_random_emulator(seed=2).checksum

    @pytest.mark.parametrize("edit", [_nudged_weight, _swapped_filter_names, _edited_residual_sigma,
                                      _edited_covariance, _edited_mass_softening,
                                      _edited_training_range],
                             ids=lambda v: v.__name__.strip("_"))
    def test_an_array_edited_after_saving_is_refused(self, tmp_path, edit):
        path = saved(tmp_path)
        with h5py.File(path, "a") as f:
            edit(f)
        message = load_error(path)
        assert f"the content does not match its checksum ({CHECKSUM_ATTR} " in message
        assert "changed or corrupted after the file was saved" in message

    def test_edited_member_of_a_stitched_file(self, tmp_path):
        path = saved(tmp_path, stitched(), "stitched.h5")
        with h5py.File(path, "a") as f:
            f["members/2/network/layer_1/bias"][0] += 0.5
        assert f"(members/2/{CHECKSUM_ATTR} " in load_error(path)

    def test_stitched_file_has_its_own_checksum(self, tmp_path):
        stitch = stitched()
        path = saved(tmp_path, stitch, "stitched.h5")
        assert load_emulator(path).checksum == stitch.checksum
        assert stitch.checksum not in [m.checksum for m in stitch.members]
        with h5py.File(path, "a") as f:
            f.attrs[CHECKSUM_ATTR] = "0" * 64
        assert f"({CHECKSUM_ATTR} 000000000000..." in load_error(path)

    def test_files_without_a_checksum_still_load(self, tmp_path):
        emu = full_emulator()
        path = saved(tmp_path, emu)
        st_path = saved(tmp_path, stitched(), "stitched.h5")
        with h5py.File(path, "a") as f:
            del f.attrs[CHECKSUM_ATTR]
        with h5py.File(st_path, "a") as f:
            for group in (f, f["members/0"], f["members/1"], f["members/2"]):
                del group.attrs[CHECKSUM_ATTR]
        loaded = load_emulator(path)
        assert_same_emulator(loaded, emu)
        assert loaded.checksum == emu.checksum          # computed when absent
        assert load_emulator(st_path).checksum == stitched().checksum

    @pytest.mark.parametrize("name", ["default", "parametric"])
    def test_shipped_emulators_load_and_have_a_checksum(self, name):
        from prospect_emulator.data import SHIPPED_EMULATORS
        path = SHIPPED_EMULATORS[name]
        if not os.path.exists(path):
            pytest.skip(f"no shipped {name} emulator in this checkout")
        emu = load_emulator(path)
        assert re.fullmatch("[0-9a-f]{64}", emu.checksum)
        with h5py.File(path, "r") as f:
            stored = f.attrs.get(CHECKSUM_ATTR)          # files saved before checksums have none
        assert stored is None or stored == emu.checksum


class TestSavingRefusesWhatLoadingWould:
    @pytest.mark.parametrize("change, match", [
        (lambda e: e.weights[1].__setitem__((0, 0), np.nan), "network/layer_1/weight has non-finite"),
        (lambda e: e.biases[0].__setitem__(0, np.inf), "network/layer_0/bias has non-finite"),
    ])
    def test_non_finite_network(self, tmp_path, change, match):
        emu = full_emulator()
        change(emu)
        with pytest.raises(EmulatorConfigurationError, match=f"cannot save the emulator: {match}"):
            emu.save(tmp_path / "emu.h5")
        assert os.listdir(tmp_path) == []

    def test_unbounded_training_range(self, tmp_path):
        emu = make_random_emulator(param_ranges=[(-1.0, 1.0)] * 4 + [(-np.inf, np.inf)])
        with pytest.raises(EmulatorConfigurationError, match=r"param_ranges of 'p4' is \[-inf, inf\]"):
            emu.save(tmp_path / "emu.h5")
        assert os.listdir(tmp_path) == []
