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

Reading needs ``allow_pickle=True``: only open files from a trusted source.
The project's own format (:mod:`.fileformat`) never uses pickle.
"""
import os

import numpy as np

from ..errors import EmulatorConfigurationError, EmulatorFileError
from .emulator import Emulator

__all__ = ["read_parrot", "PARROT_PARAM_NAMES"]

#: Input order of the published emulators (Prospector names; paper Table 1).
PARROT_PARAM_NAMES = (
    "logmass", "logzsol", "logsfr_ratios_1", "logsfr_ratios_2", "logsfr_ratios_3",
    "logsfr_ratios_4", "logsfr_ratios_5", "logsfr_ratios_6", "dust2", "dust_index",
    "dust1_fraction", "log_fagn", "log_agn_tau", "gas_logz", "zred", "duste_qpah",
    "duste_umin", "log_duste_gamma")


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
    try:
        arr = np.load(path, allow_pickle=True)
        filter_map, (norm_mu, norm_sig), (weights, biases), (den_mu, den_sig), stats, ranges = arr
        filter_map = dict(filter_map)
    except FileNotFoundError:
        raise EmulatorFileError(f"no Parrot emulator file at {path}") from None
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
