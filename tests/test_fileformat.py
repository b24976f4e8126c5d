"""The native emulator file (HDF5, no pickle): exact round trips of single and
stitched emulators, and clear errors for every file that is not one."""
import json
import os
import pickle

import h5py
import numpy as np
import pytest

from conftest import make_random_emulator
from prospect_emulator import (Emulator, EmulatorConfigurationError, EmulatorFileError,
                               StitchedEmulator, __version__, load_emulator)
from prospect_emulator.runtime.fileformat import FORMAT_NAME, SCHEMA_VERSION

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
        (_inconsistent_content, "damaged.*last layer"),
        (_unknown_activation, "activation 'relu'"),
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
