"""Training checkpoints: the state of a staged training, written atomically.

A checkpoint is one HDF5 file, ``<directory>/checkpoint.h5``:

* attribute ``state``: JSON with the training's ``fingerprint`` (what must
  match to resume), ``stage`` and ``epoch`` (0-based; the next epoch to run),
  the early-stopping state of the stage (``best_val``, ``best_epoch``,
  ``wait``), ``history``, ``stages``, the shuffling random state ``rng``,
  ``elapsed`` seconds and ``checkpoint_version``;
* groups ``weights``, ``best_weights`` and ``optimizer``: the network's
  trainable arrays, the best ones of the stage so far, and the Nadam
  variables (step count, learning rate, moments), each stored as datasets
  ``"0"``, ``"1"``, ...

A checkpoint written at a stage boundary (``epoch == 0``) carries no optimizer
state: the next stage starts its optimizer afresh (zero moments, step 0, its
own learning rate).  Version-1 checkpoints (no ``checkpoint_version``) have
the same layout; the optimizer arrays they store at stage boundaries (those
of the stage that ended) are ignored.
"""
import json
import os

import numpy as np

from ..errors import EmulatorConfigurationError, EmulatorFileError
from ..fileio import atomic_path

__all__ = ["TrainingCheckpoint", "CHECKPOINT_NAME", "CHECKPOINT_VERSION"]

CHECKPOINT_NAME = "checkpoint.h5"
#: 2: stage-boundary checkpoints store no optimizer state (1: they stored the ended stage's).
CHECKPOINT_VERSION = 2
_READABLE_VERSIONS = (1, 2)


class TrainingCheckpoint:
    """The checkpoint file of one training.

    Parameters
    ----------
    directory : str or path
        Where ``checkpoint.h5`` lives (created with its parents on the first save).
    """

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, CHECKPOINT_NAME)

    def exists(self):
        return os.path.exists(self.path)

    def save(self, state, weights, best_weights=None, optimizer=None):
        """Write the checkpoint atomically (a kill leaves the previous one).

        Parameters
        ----------
        state : dict
            JSON-serialisable training state (see the module docstring).
        weights, best_weights, optimizer : list of ndarray
            Trainable arrays, best arrays of the stage (or None), optimizer
            variables (None at a stage boundary: the next stage starts afresh).
        """
        import h5py
        os.makedirs(self.directory, exist_ok=True)
        state = dict(state, checkpoint_version=CHECKPOINT_VERSION)
        arrays = {"weights": weights, "best_weights": best_weights or [],
                  "optimizer": optimizer or []}
        with atomic_path(self.path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["state"] = json.dumps(state)
            for group, values in arrays.items():
                g = f.create_group(group)
                for i, value in enumerate(values):
                    g[str(i)] = np.asarray(value)

    def load(self, fingerprint):
        """Read the checkpoint of the training identified by ``fingerprint``.

        Returns
        -------
        state : dict
        arrays : dict
            ``weights``, ``best_weights`` and ``optimizer``: lists of arrays
            (``optimizer`` empty at a stage boundary, whatever was stored).

        Raises
        ------
        EmulatorFileError
            Unreadable file or unknown checkpoint version.
        EmulatorConfigurationError
            The checkpoint belongs to a different training (the differences are listed).
        """
        import h5py
        try:
            with h5py.File(self.path, "r") as f:
                state = json.loads(f.attrs["state"])
                arrays = {g: [f[g][str(i)][()] for i in range(len(f[g]))] for g in f.keys()}
        except (OSError, KeyError, ValueError) as err:
            raise EmulatorFileError(f"checkpoint {self.path} is unreadable ({err}); delete it to "
                                    "start the training afresh") from None
        version = int(state.get("checkpoint_version", 1))
        if version not in _READABLE_VERSIONS:
            raise EmulatorFileError(
                f"checkpoint {self.path} has version {version}; this package reads versions "
                f"{', '.join(map(str, _READABLE_VERSIONS))}. Delete {self.directory} to start "
                "the training afresh")
        diff = fingerprint_mismatch(state.get("fingerprint", {}), fingerprint)
        if diff:
            raise EmulatorConfigurationError(
                f"checkpoint {self.path} belongs to a different training (differs in {diff}); "
                f"delete {self.directory} or choose another --checkpoint-dir")
        for group in ("weights", "best_weights", "optimizer"):
            arrays.setdefault(group, [])
        if int(state["epoch"]) == 0:
            # a stage boundary: the next stage starts with a fresh optimizer
            # (version 1 stored the ended stage's state here; it must not be used)
            arrays["optimizer"] = []
        return state, arrays

    def remove(self):
        """Delete the checkpoint, and its directory if nothing else lives there."""
        for p in (self.path, self.path + ".partial"):
            if os.path.exists(p):
                os.remove(p)
        try:
            os.rmdir(self.directory)
        except OSError:
            pass   # not empty: something else lives there


def fingerprint_mismatch(saved, current):
    """Keys whose values differ between two training fingerprints (sorted)."""
    return sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
