"""Reader of the published Mathews et al. (2023) "Parrot" v4 emulator files.

Each file is a pickled NumPy object array of length 6 (written from Julia):

0. dict filter name -> output index, 1-based
1. (norm_mu, norm_sig) of the 18 inputs
2. (weights, biases), one per layer; ``weights[i]`` has shape (n_out, n_in),
   Julia orientation ``y = W @ x + b``
3. (denorm_mu, denorm_sig): output = net(x) * denorm_sig + denorm_mu
4. residual statistics, one row per output, 11 columns (see
   :data:`~prospect_emulator.runtime.emulator.RESIDUAL_STAT_COLUMNS`)
5. the 18 training ranges [low, high]

The pickle is read by a restricted unpickler (:func:`load_parrot_array`)
that builds only NumPy arrays and dtypes, dicts, lists, tuples, strings and
numbers: a file whose pickle names any other callable (``os.system``,
``subprocess.Popen``, ``builtins.eval``, ...) is refused before anything in
it runs.  The project's own format (:mod:`.fileformat`) never uses pickle.
"""
import os
import pickle

import numpy as np

from ..errors import EmulatorConfigurationError, EmulatorFileError
from .emulator import Emulator

__all__ = ["read_parrot", "load_parrot_array", "PARROT_PARAM_NAMES"]

#: Input order of the published emulators (Prospector names; paper Table 1).
PARROT_PARAM_NAMES = (
    "logmass", "logzsol", "logsfr_ratios_1", "logsfr_ratios_2", "logsfr_ratios_3",
    "logsfr_ratios_4", "logsfr_ratios_5", "logsfr_ratios_6", "dust2", "dust_index",
    "dust1_fraction", "log_fagn", "log_agn_tau", "gas_logz", "zred", "duste_qpah",
    "duste_umin", "log_duste_gamma")


def _allowed_globals():
    """The only callables a Parrot pickle may name: those NumPy itself pickles
    arrays, scalars and dtypes with (taken from NumPy's own ``__reduce__``, so
    that files written by NumPy 1 as ``numpy.core...`` and by NumPy 2 as
    ``numpy._core...`` both resolve), and ``_codecs.encode``, with which
    protocol-2 pickles store raw bytes."""
    import _codecs
    reconstruct = np.empty(0).__reduce__()[0]
    scalar = np.float64(0.0).__reduce__()[0]
    frombuffer = np.empty(1).__reduce_ex__(5)[0]
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): _codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays, dicts, lists, tuples, strings and numbers only.

    Everything else a pickle can call is a global it must name; naming one
    outside :func:`_allowed_globals` raises before it is imported or called.
    """

    def __init__(self, file, path):
        super().__init__(file, encoding="latin1")  # latin1: Python 2 pickles of arrays
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise EmulatorFileError(
                f"{self._path} is not a plain Parrot v4 emulator: its pickle would call "
                f"{module}.{name}, and only NumPy arrays, dicts, lists, tuples, strings and "
                "numbers are read from a Parrot file (nothing in it was run). Ask whoever "
                "gave you the file how it was made") from None

    def persistent_load(self, pid):
        raise EmulatorFileError(f"{self._path} is not a plain Parrot v4 emulator: its pickle "
                                "refers to external (persistent) objects")


def load_parrot_array(path):
    """The pickled object array of a Parrot ``.npy`` file, read without
    executing anything: only NumPy arrays, dicts, lists, tuples, strings and
    numbers are built.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray
        What the file holds (for a Parrot v4 file, an object array of 6).

    Raises
    ------
    EmulatorFileError
        If the file is missing, not a ``.npy`` file, or its pickle names any
        other callable (the message names it).
    """
    path = os.fspath(path)
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran_order, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran_order, dtype = fmt.read_array_header_2_0(f)
            else:
                raise EmulatorFileError(
                    f"{path}: .npy format version {version} is not read here (Parrot files are 1.0)")
            if not dtype.hasobject:
                raise EmulatorFileError(
                    f"{path} is not a Parrot v4 emulator (a 6-element pickled object array): it "
                    f"holds a plain {dtype} array of shape {shape}")
            array = _ArraysOnlyUnpickler(f, path).load()
    except FileNotFoundError:
        raise EmulatorFileError(f"no Parrot emulator file at {path}") from None
    except EmulatorFileError:
        raise
    except Exception as err:  # damaged header or pickle stream
        raise EmulatorFileError(
            f"{path} is not a Parrot v4 emulator (a 6-element pickled object array): {err}") from None
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise EmulatorFileError(
            f"{path} is not a Parrot v4 emulator: its header promises an array of shape {shape}, "
            f"its pickle holds a {type(array).__name__}")
    return array


def read_parrot(path, param_names=None):
    """Build an :class:`Emulator` from a Parrot v4 ``.npy`` file.

    Parameters
    ----------
    path : str or path-like
    param_names : sequence of str, optional
        Input names; defaults to :data:`PARROT_PARAM_NAMES` (18 inputs).

    Returns
    -------
    Emulator
        With ``residual_covariance`` = diag(std^2): the published files carry
        no covariance.
    """
    path = os.fspath(path)
    arr = load_parrot_array(path)
    try:
        filter_map, (norm_mu, norm_sig), (weights, biases), (den_mu, den_sig), stats, ranges = arr
        filter_map = dict(filter_map)
    except Exception as err:  # any damage to the pickled structure lands here
        raise EmulatorFileError(
            f"{path} is not a Parrot v4 emulator (a 6-element pickled object array): {err}") from None
    try:
        n_out = len(filter_map)
        order = sorted(filter_map, key=lambda n: filter_map[n])
        index = np.array([filter_map[n] - 1 for n in order])  # Julia is 1-based
        if sorted(index.tolist()) != list(range(n_out)):
            raise EmulatorFileError(f"{path}: filter indices {sorted(filter_map.values())} are not 1..{n_out}")
        weights = [np.asarray(w, dtype=float).T for w in weights]  # -> (n_in, n_out)
        n_in = weights[0].shape[0]
        names = list(param_names) if param_names is not None else list(PARROT_PARAM_NAMES)
        if len(names) != n_in:
            raise EmulatorFileError(f"{path} has {n_in} inputs but {len(names)} parameter names were given")
        last = weights[-1][:, index]

        def per_output(v):  # a scalar or one value per output, into our filter order
            return np.broadcast_to(np.ravel(np.asarray(v, dtype=float)), (n_out,))[index]

        stats = np.asarray(stats, dtype=float)
        return Emulator(
            weights[:-1] + [last], [np.asarray(b, float) for b in biases[:-1]] + [np.asarray(biases[-1], float)[index]],
            names, order, np.ravel(norm_mu), np.ravel(norm_sig), per_output(den_mu), per_output(den_sig),
            param_ranges=np.asarray(ranges, dtype=float), residual_stats=stats[index],
            provenance={"source": "Mathews et al. (2023) Parrot v4", "file": os.path.basename(path),
                        "sps": "FSPS (MIST, MILES)"})
    except (EmulatorConfigurationError, ValueError, TypeError, IndexError, AttributeError) as err:
        # the pickle loaded but its parts do not fit together
        raise EmulatorFileError(f"{path} is not a consistent Parrot v4 emulator: {err}") from None
