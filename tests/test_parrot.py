"""Reading the published Mathews et al. (2023) "Parrot" v4 .npy emulators.

The test writes a file exactly in that format (REFERENCE.md: a pickled object
array of length 6 written from Julia: 1-based filter dict, (norm_mu, norm_sig),
(weights, biases) in Julia orientation y = W @ x + b, (denorm_mu, denorm_sig),
11-column residual statistics, 18 training ranges) from known weights and
checks Emulator.from_parrot against a forward pass done the Julia way."""
import io
import os
import pickle

import numpy as np
import pytest

from prospect_emulator import Emulator, EmulatorFileError, OutOfTrainingRangeError
from prospect_emulator.runtime.parrot import PARROT_PARAM_NAMES

PAPER_INPUTS = ["logmass", "logzsol", "logsfr_ratios_1", "logsfr_ratios_2", "logsfr_ratios_3",
                "logsfr_ratios_4", "logsfr_ratios_5", "logsfr_ratios_6", "dust2", "dust_index",
                "dust1_fraction", "log_fagn", "log_agn_tau", "gas_logz", "zred", "duste_qpah",
                "duste_umin", "log_duste_gamma"]
PAPER_RANGES = [[6.0, 12.5], [-1.98, 0.19]] + [[-5.0, 5.0]] * 6 + [
    [0.0, 4.0], [-1.2, 0.4], [0.0, 2.0], [-5.0, np.log10(3.0)], [np.log10(5.0), np.log10(150.0)],
    [-2.0, 0.5], [0.5, 3.0], [0.0, 7.0], [0.1, 25.0], [-4.0, 0.0]]

# Julia's dict: 1-based output indices, deliberately not in index order
FILTER_MAP = {"sdss_r0": 3, "galex_FUV": 1, "hsc_zpp": 6, "sdss_g0": 2, "jwst_f150w": 5,
              "box_1.3mm": 4, "wise_w1": 7}
BY_INDEX = ["galex_FUV", "sdss_g0", "sdss_r0", "box_1.3mm", "jwst_f150w", "hsc_zpp", "wise_w1"]


def parrot_content(n_in=18, width=10, n_out=7, n_layers=6, seed=0, denorm_sig=1.0):
    """Known weights of a Parrot emulator, Julia orientation (n_out, n_in)."""
    rng = np.random.default_rng(seed)
    sizes = [n_in] + [width] * (n_layers - 1) + [n_out]
    weights = [rng.normal(scale=1.0 / np.sqrt(a), size=(b, a)) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(scale=0.2, size=b) for b in sizes[1:]]
    stats = np.sort(rng.normal(scale=0.05, size=(n_out, 9)), axis=1)
    stats = np.column_stack([stats, rng.normal(scale=0.01, size=n_out), rng.uniform(0.01, 0.2, n_out)])
    lo = rng.uniform(-2.0, -1.0, n_in)
    return dict(norm_mu=rng.normal(size=n_in), norm_sig=rng.uniform(0.5, 3.0, n_in),
                weights=weights, biases=biases, denorm_mu=rng.uniform(20.0, 30.0, n_out),
                denorm_sig=denorm_sig, stats=stats,
                ranges=PAPER_RANGES if n_in == 18 else [[a, a + 3.0] for a in lo])


def write_parrot(path, content, filter_map=FILTER_MAP):
    """Save ``content`` the way the published files are laid out (needs pickle)."""
    arr = np.empty(6, dtype=object)
    arr[0] = dict(filter_map)
    arr[1] = (content["norm_mu"], content["norm_sig"])
    arr[2] = (list(content["weights"]), list(content["biases"]))
    arr[3] = (content["denorm_mu"], content["denorm_sig"])
    arr[4] = content["stats"]
    arr[5] = [list(r) for r in content["ranges"]]
    np.save(path, arr, allow_pickle=True)
    return path


def julia_forward(theta, c):
    """The published network evaluated as Julia does: column vectors, y = W x + b."""
    x = (np.asarray(theta, dtype=float) - c["norm_mu"]) / c["norm_sig"]
    for w, b in zip(c["weights"][:-1], c["biases"][:-1]):
        z = w @ x + b
        x = 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))
    return (c["weights"][-1] @ x + c["biases"][-1]) * c["denorm_sig"] + c["denorm_mu"]


def inside(ranges, n, seed=1):
    lo, hi = np.array(ranges, dtype=float).T
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, len(lo)))


@pytest.fixture
def parrot_file(tmp_path):
    content = parrot_content()
    return write_parrot(tmp_path / "parrot_v4_width10.npy", content), content


class TestReadingPublishedFiles:
    def test_the_format_written_here_is_a_pickled_object_array_of_six(self, parrot_file):
        path, _ = parrot_file
        with pytest.raises(ValueError):
            np.load(path, allow_pickle=False)  # so the reader must (and only it may) allow pickle
        arr = np.load(path, allow_pickle=True)
        assert arr.dtype == object and arr.shape == (6,)
        assert arr[2][0][0].shape == (10, 18)  # Julia orientation
        assert min(arr[0].values()) == 1

    def test_predictions_match_the_julia_forward_pass(self, parrot_file):
        path, content = parrot_file
        emu = Emulator.from_parrot(path)
        x = inside(PAPER_RANGES, 25)
        got = emu.predict_mags(x)
        for row, mags in zip(x, got):
            julia = julia_forward(row, content)
            for k, name in enumerate(emu.filter_names):
                assert mags[k] == pytest.approx(julia[FILTER_MAP[name] - 1], rel=1e-12)

    def test_filters_are_ordered_by_their_one_based_index(self, parrot_file):
        emu = Emulator.from_parrot(parrot_file[0])
        assert emu.filter_names == BY_INDEX
        np.testing.assert_array_equal(emu.filter_indices(["sdss_r0", "galex_FUV"]), [2, 0])

    def test_select_by_name_gives_the_right_outputs(self, parrot_file):
        path, content = parrot_file
        sub = Emulator.from_parrot(path).select(["wise_w1", "sdss_g0"])
        x = inside(PAPER_RANGES, 1, seed=4)[0]
        julia = julia_forward(x, content)
        np.testing.assert_allclose(sub.predict_mags(x), [julia[6], julia[1]], rtol=1e-12)

    def test_default_inputs_are_the_paper_order(self, parrot_file):
        emu = Emulator.from_parrot(parrot_file[0])
        assert emu.param_names == PAPER_INPUTS == list(PARROT_PARAM_NAMES)

    def test_statistics_rows_follow_the_filters(self, parrot_file):
        path, content = parrot_file
        emu = Emulator.from_parrot(path)
        for k, name in enumerate(emu.filter_names):
            np.testing.assert_array_equal(emu.residual_stats[k], content["stats"][FILTER_MAP[name] - 1])
        np.testing.assert_array_equal(emu.residual_sigma, emu.residual_stats[:, 10])
        np.testing.assert_array_equal(emu.residual_covariance, np.diag(emu.residual_sigma ** 2))

    def test_training_ranges(self, parrot_file):
        emu = Emulator.from_parrot(parrot_file[0])
        np.testing.assert_array_equal(emu.param_ranges, np.array(PAPER_RANGES))
        x = inside(PAPER_RANGES, 1)[0]
        x[14] = 3.2  # zred above the published 0.5..3
        with pytest.raises(OutOfTrainingRangeError, match=r"zred=3\.2 outside training range \[0\.5, 3\]"):
            emu.predict_maggies(x)

    def test_custom_parameter_names(self, tmp_path):
        content = parrot_content(n_in=5, width=6, n_layers=3, seed=2)
        path = write_parrot(tmp_path / "small.npy", content)
        names = ["logmass", "logzsol", "dust2", "zred", "duste_qpah"]
        emu = Emulator.from_parrot(path, param_names=names)
        assert emu.param_names == names and len(emu.weights) == 3
        x = inside(content["ranges"], 5)
        for row, mags in zip(x, emu.predict_mags(x)):
            julia = julia_forward(row, content)
            np.testing.assert_allclose(mags, [julia[FILTER_MAP[n] - 1] for n in emu.filter_names],
                                       rtol=1e-12)

    def test_vector_output_scale(self, tmp_path):
        content = parrot_content(seed=5, denorm_sig=np.linspace(0.5, 2.0, 7))
        emu = Emulator.from_parrot(write_parrot(tmp_path / "p.npy", content))
        x = inside(PAPER_RANGES, 1, seed=9)[0]
        julia = julia_forward(x, content)
        np.testing.assert_allclose(emu.predict_mags(x), [julia[FILTER_MAP[n] - 1] for n in BY_INDEX],
                                   rtol=1e-12)

    def test_provenance_and_native_round_trip(self, parrot_file, tmp_path):
        path, _ = parrot_file
        emu = Emulator.from_parrot(path)
        assert emu.provenance["source"].startswith("Mathews et al. (2023)")
        assert emu.provenance["file"] == "parrot_v4_width10.npy"
        emu.save(tmp_path / "native.h5")
        x = inside(PAPER_RANGES, 3)
        np.testing.assert_array_equal(Emulator.load(tmp_path / "native.h5").predict_maggies(x),
                                      emu.predict_maggies(x))


class TestNotAParrotFile:
    def test_missing_file(self, tmp_path):
        with pytest.raises(EmulatorFileError, match="no Parrot emulator file at"):
            Emulator.from_parrot(tmp_path / "absent.npy")

    def test_plain_numeric_npy(self, tmp_path):
        path = tmp_path / "numbers.npy"
        np.save(path, np.arange(6.0))
        with pytest.raises(EmulatorFileError, match="numbers.npy is not a Parrot v4 emulator.*plain float64"):
            Emulator.from_parrot(path)

    def test_object_array_of_the_wrong_length(self, tmp_path, parrot_file):
        arr = np.load(parrot_file[0], allow_pickle=True)
        path = tmp_path / "five.npy"
        np.save(path, arr[:5], allow_pickle=True)
        with pytest.raises(EmulatorFileError, match="not a Parrot v4 emulator"):
            Emulator.from_parrot(path)

    def test_text_and_random_bytes(self, tmp_path):
        text = tmp_path / "readme.npy"
        text.write_text("this is not an emulator\n")
        noise = tmp_path / "noise.npy"
        noise.write_bytes(np.random.default_rng(0).bytes(3000))
        for path in (text, noise):
            with pytest.raises(EmulatorFileError, match="not a Parrot v4 emulator"):
                Emulator.from_parrot(path)

    def test_native_file_is_not_a_parrot_file(self, tmp_path, parrot_file):
        Emulator.from_parrot(parrot_file[0]).save(tmp_path / "native.h5")
        with pytest.raises(EmulatorFileError, match="not a Parrot v4 emulator"):
            Emulator.from_parrot(tmp_path / "native.h5")

    def test_zero_based_filter_indices(self, tmp_path):
        zero_based = {name: i - 1 for name, i in FILTER_MAP.items()}
        path = write_parrot(tmp_path / "p.npy", parrot_content(), filter_map=zero_based)
        with pytest.raises(EmulatorFileError, match=r"filter indices .* are not 1..7"):
            Emulator.from_parrot(path)

    def test_wrong_number_of_parameter_names(self, parrot_file):
        with pytest.raises(EmulatorFileError, match="18 inputs but 3 parameter names"):
            Emulator.from_parrot(parrot_file[0], param_names=["a", "b", "c"])

    def test_inconsistent_layers(self, tmp_path):
        content = parrot_content()
        content["weights"][2] = content["weights"][2][:, :7]  # takes 7 inputs, previous gives 10
        with pytest.raises(EmulatorFileError, match="p.npy.*layer 2"):
            Emulator.from_parrot(write_parrot(tmp_path / "p.npy", content))

    def test_statistics_of_the_wrong_shape(self, tmp_path):
        content = parrot_content()
        content["stats"] = content["stats"][:, :10]
        with pytest.raises(EmulatorFileError, match="residual_stats"):
            Emulator.from_parrot(write_parrot(tmp_path / "p.npy", content))


# ------------------------------------------------------------ pickle safety
class Payload:
    """What a malicious pickle carries: unpickling it calls ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def write_payload_file(path, payload, where):
    """A Parrot-shaped file with ``payload`` hidden at ``where``."""
    content = parrot_content()
    arr = np.empty(6, dtype=object)
    arr[0] = dict(FILTER_MAP)
    arr[1] = (content["norm_mu"], content["norm_sig"])
    arr[2] = (list(content["weights"]), list(content["biases"]))
    arr[3] = (content["denorm_mu"], content["denorm_sig"])
    arr[4] = content["stats"]
    arr[5] = [list(r) for r in content["ranges"]]
    if where == "filter map":
        arr[0]["sdss_r0"] = payload
    elif where == "deep in the weights":
        arr[2][0][3] = payload
    else:
        arr[5] = payload
    np.save(path, arr, allow_pickle=True)
    return path


class TestPickleSafety:
    """from_parrot builds only arrays, dicts, lists, tuples, strings and numbers:
    a file whose pickle would run code is refused and nothing in it runs."""

    @pytest.mark.parametrize("where", ["filter map", "deep in the weights", "training ranges"])
    def test_a_pickle_that_runs_a_shell_command_is_refused(self, tmp_path, where):
        marker = tmp_path / "pwned"
        path = write_payload_file(tmp_path / "parrot.npy", Payload(os.system, f"touch {marker}"), where)
        with pytest.raises(EmulatorFileError) as err:
            Emulator.from_parrot(path)
        message = str(err.value)
        assert str(path) in message
        assert f"would call {os.system.__module__}.system" in message      # posix.system
        assert "nothing in it was run" in message
        assert not marker.exists()
        # the file is really malicious: NumPy's own loader with allow_pickle runs it
        np.load(path, allow_pickle=True)
        assert marker.exists()

    @pytest.mark.parametrize("func, args, forbidden", [
        (eval, ("__import__('pathlib').Path({marker!r}).touch()",), "builtins.eval"),
        (exec, ("open({marker!r}, 'w').close()",), "builtins.exec"),
        (np.load, ("{marker}.npy",), "numpy.load"),          # NumPy, but not an array builder
        (open, ("{marker}", "w"), "io.open"),
    ], ids=["eval", "exec", "numpy.load", "open"])
    def test_other_callables_are_refused_by_name(self, tmp_path, func, args, forbidden):
        marker = str(tmp_path / "pwned")
        payload = Payload(func, *[a.format(marker=marker) for a in args])
        path = write_payload_file(tmp_path / "p.npy", payload, "training ranges")
        with pytest.raises(EmulatorFileError, match=f"would call {forbidden}, and only NumPy arrays"):
            Emulator.from_parrot(path)
        assert not os.path.exists(marker)

    @pytest.mark.parametrize("protocol", [2, 3, 4, 5])
    def test_every_pickle_protocol_of_a_genuine_file_reads(self, tmp_path, parrot_file, protocol):
        path, _ = parrot_file
        again = write_npy_pickle(tmp_path / f"protocol{protocol}.npy",
                                 np.load(path, allow_pickle=True), protocol)
        x = inside(PAPER_RANGES, 5)
        np.testing.assert_array_equal(Emulator.from_parrot(again).predict_mags(x),
                                      Emulator.from_parrot(path).predict_mags(x))

    def test_a_file_written_by_numpy_1_reads(self, tmp_path, parrot_file):
        """NumPy 1 names its reconstruction functions numpy.core.*, NumPy 2 numpy._core.*."""
        path, _ = parrot_file
        # protocol 3 writes module names as text (GLOBAL opcodes), so they can be renamed
        numpy1 = write_npy_pickle(tmp_path / "numpy1.npy", np.load(path, allow_pickle=True), 3,
                                  rename=(b"numpy._core.", b"numpy.core."))
        assert b"numpy.core.multiarray\n_reconstruct" in numpy1.read_bytes()
        x = inside(PAPER_RANGES, 5)
        np.testing.assert_array_equal(Emulator.from_parrot(numpy1).predict_mags(x),
                                      Emulator.from_parrot(path).predict_mags(x))


def write_npy_pickle(path, arr, protocol, rename=None):
    """An object-array .npy file whose pickle uses ``protocol`` (np.save always uses 4)."""
    stream = pickle.dumps(arr, protocol=protocol)
    if rename:
        stream = stream.replace(*rename)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(arr))
    path.write_bytes(header.getvalue() + stream)
    return path
