"""Train an emulator on a training-set file (paper Sec. 2.2) and export it.

The schedule is the paper's: RMSE loss, Nadam (beta_1 = 0.9, beta_2 = 0.999),
three stages with learning rates 1e-3, 1e-4, 1e-5 and batches of 1000
(eq. 7-8); in each stage a fresh random 5 % of the training rows validates,
training stops after 20 epochs without a better validation loss (or after
1000 epochs) and the best weights of the stage are restored.

What this module adds to the paper:

* a test set held out of training *and* validation, chosen row by row from a
  hash of (row index, seed), so the choice survives a training set that grows
  and can be recomputed by ``evaluate``;
* the surviving mass fraction ``mfrac`` as one more output, emulated as
  ``log10(mfrac)`` (dex; positive by construction, and the quantity that
  enters log10 of the surviving stellar mass);
* optional *mass normalisation* (the default): the network does not see
  ``logmass`` and predicts the arsinh magnitudes of one solar mass formed;
  the exact factor 10**logmass is applied to the flux before the arsinh
  softening (see :class:`prospect_emulator.Emulator`);
* checkpoints written atomically after every epoch, so that running the same
  command again after a crash or Ctrl-C resumes at the same stage and epoch
  with the same optimizer state, best weights and random state.

TensorFlow is imported only inside the functions that need it, so the data
readers here can serve :mod:`prospect_emulator.training.evaluate` without it.
"""
import importlib.util
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._version import __version__
from ..errors import EmulatorConfigurationError, EmulatorFileError
from ..runtime.emulator import Emulator, float32_check
from ..runtime.magnitudes import ARSINH_A, ARSINH_MU0, arsinh_mags_to_maggies, maggies_to_arsinh_mags
from .checkpoint import TrainingCheckpoint
from .trainer import StagedTrainer, prepare_training_data
from .trainingset import ROW_UNFINISHED, _positive_int, describe_dropped, read_training_set

__all__ = ["train_emulator", "TrainingResult", "TrainingSetRows", "read_training_rows",
           "DroppedRowsWarning",
           "held_out_mask", "training_set_identity", "mass_unit_targets", "DEFAULT_LEARNING_RATES",
           "MFRAC_TRANSFORM"]

#: Learning rates of the three stages (paper eq. 7); batches of 1000 (eq. 8).
DEFAULT_LEARNING_RATES = (1e-3, 1e-4, 1e-5)
#: How the network emulates the surviving mass fraction: its base-10 log (dex).
MFRAC_TRANSFORM = "log10"
#: Weight of the log10(mfrac) output in the loss: it counts as the magnitude
#: -2.5 log10(mfrac), like a filter (dex -> mag).
MFRAC_LOSS_SCALE = 2.5
#: Name of the parameter a mass-normalised emulator applies exactly.
MASS_PARAM = "logmass"


class DroppedRowsWarning(UserWarning):
    """A training set has rows that are left out (unfinished chunks, failed models,
    rows without a result); the message says how many and why."""


# --------------------------------------------------------------------------- data
@dataclass
class TrainingSetRows:
    """Valid rows of a training-set file (HDF5 layout of ``generate``).

    Attributes
    ----------
    path : str
    rows : ndarray of int, shape (n,)
        Row index in the file of every valid sample (done chunk, not failed,
        finite, ``mfrac > 0``).
    params : ndarray, shape (n, n_params)
        Emulator inputs in the order of ``param_names``.
    mags : ndarray, shape (n, n_filters)
        Arsinh AB magnitudes (eq. 2, softening ``mu0``).
    mfrac : ndarray, shape (n,)
        Surviving stellar mass fraction.
    param_names, filter_names : list of str
    attrs : dict
        File attributes (``sps``, ``seed``, ``preset``, ``distributions`` ...;
        the JSON ones decoded), as :func:`~.trainingset.read_training_set` gives them.
    n_invalid : int
        Rows of finished chunks left out (failed, non-finite or mfrac <= 0).
    dropped : dict
        Why -> number of rows of the file left out (unfinished chunks,
        failed models, rows without a result, mfrac <= 0); see
        :func:`~.trainingset.describe_dropped`.
    n_file_rows : int
        Rows in the file (``n_samples``).
    filter_wave_effective : ndarray or None
        Effective wavelength of each filter (Angstrom), if the file has it.
    distribution_ranges : ndarray, shape (n_params, 2), or None
        [low, high] of each parameter's training distribution, if recorded.
    """
    path: str
    rows: np.ndarray
    params: np.ndarray
    mags: np.ndarray
    mfrac: np.ndarray
    param_names: list
    filter_names: list
    attrs: dict
    n_invalid: int = 0
    filter_wave_effective: np.ndarray = None
    distribution_ranges: np.ndarray = None
    dropped: dict = field(default_factory=dict)
    n_file_rows: int = 0

    @property
    def mu0(self):
        return float(self.attrs.get("mu0", ARSINH_MU0))

    @property
    def a(self):
        return float(self.attrs.get("a", ARSINH_A))

    def __len__(self):
        return len(self.rows)


def read_training_rows(path, first_rows=None):
    """Read every valid row of a training-set file, with its row index.

    Built on :func:`prospect_emulator.training.trainingset.read_training_set`:
    rows of unfinished chunks and failed models are left out, and so are rows
    with a non-finite value or ``mfrac <= 0``; ``dropped`` says how many and why.

    Parameters
    ----------
    path : str
        Training-set file.
    first_rows : int, optional
        Read only the file's first ``first_rows`` rows (see
        :func:`~prospect_emulator.training.trainingset.read_training_set`).

    Returns
    -------
    TrainingSetRows

    Raises
    ------
    EmulatorFileError
        Missing file, not HDF5, not a training set, or no finished chunk.
    """
    path = os.fspath(path)
    raw = read_training_set(path, valid_only=False, first_rows=first_rows)
    params = np.asarray(raw["params"], dtype=float)
    mags = np.asarray(raw["mags"], dtype=float)
    mfrac = np.asarray(raw["mfrac"], dtype=float)
    valid = np.asarray(raw["valid"], dtype=bool)
    with np.errstate(invalid="ignore"):
        good = valid & np.isfinite(params).all(1) & np.isfinite(mags).all(1) \
            & np.isfinite(mfrac) & (mfrac > 0)
    if not valid.any():
        raise EmulatorFileError(
            f"{path} has no finished chunk yet"
            + (f" in its first {first_rows} rows" if first_rows is not None else "")
            + ": let `prospect-emulator generate` finish at least one chunk")
    rows = np.nonzero(good)[0]
    dropped = dict(raw["dropped"])
    unphysical = int(valid.sum() - len(rows))
    if unphysical:
        dropped["with a non-finite parameter or mfrac <= 0"] = unphysical
    wave = raw.get("filter_wave_effective")
    return TrainingSetRows(path, rows, params[rows], mags[rows], mfrac[rows],
                           list(raw["param_names"]), list(raw["filter_names"]), raw["attrs"],
                           int(np.count_nonzero(raw["status"] != ROW_UNFINISHED) - len(rows)),
                           None if wave is None else np.asarray(wave, dtype=float),
                           raw.get("param_ranges"), dropped, len(valid))


def _splitmix64(x):
    """The splitmix64 mixing function on uint64 arrays (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def held_out_mask(rows, seed, fraction):
    """Which file rows belong to the test set, never seen in training or validation.

    Each row is in the test set when a hash of (row index, seed) maps below
    ``fraction``: the choice does not depend on which other rows exist, so it
    is the same after the training set grows, for every member of a
    redshift-stitched emulator, and when ``evaluate`` recomputes it.

    Parameters
    ----------
    rows : array_like of int
        Row indices in the training-set file.
    seed : int
    fraction : float
        Expected fraction of rows held out.

    Returns
    -------
    ndarray of bool
    """
    key = _splitmix64(np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF))
    u = (_splitmix64(np.asarray(rows, dtype=np.uint64) ^ key) >> np.uint64(11)).astype(float) / 2.0 ** 53
    return u < float(fraction)


def training_set_identity(data):
    """What identifies a training-set file, for provenance and for ``evaluate``
    to recognise the file an emulator was trained on."""
    a = data.attrs
    return {"file": os.path.basename(data.path), "sps": a.get("sps"), "preset": a.get("preset"),
            "seed": a.get("seed"), "n_samples": a.get("n_samples"),
            "package_version": a.get("package_version")}


def mass_unit_targets(params_logmass, mags, mu0, a, mass_mu0):
    """Arsinh magnitudes of one solar mass formed (softening ``mass_mu0``).

    The inverse of what :class:`~prospect_emulator.Emulator` does at run time
    with ``mass_param``: flux (maggies) / 10**logmass, then eq. 2 at
    ``mass_mu0``.
    """
    unit = arsinh_mags_to_maggies(mags, mu0, a) / 10.0 ** np.asarray(params_logmass)[:, None]
    return maggies_to_arsinh_mags(unit, mass_mu0, a)


def training_ranges(data, seen_params):
    """Training range [low, high] of every parameter.

    The bounds of the training distributions recorded in the file (the
    emulator then accepts the whole domain its training set was drawn from,
    as the published emulators accept their Table 1 ranges); the min/max of
    the samples the network saw if the file records no distributions.

    Returns
    -------
    ranges : ndarray, shape (n_params, 2)
    source : list of str
        ``"distribution"`` or ``"samples"`` per parameter.
    """
    if data.distribution_ranges is not None:
        return np.array(data.distribution_ranges, dtype=float), ["distribution"] * len(data.param_names)
    ranges = np.column_stack([seen_params.min(axis=0), seen_params.max(axis=0)])
    return ranges, ["samples"] * len(data.param_names)


# --------------------------------------------------------------------- results
@dataclass
class TrainingResult:
    """What :func:`train_emulator` returns.

    Attributes
    ----------
    emulator : Emulator
        The exported NumPy emulator (also written to ``out`` if given).
    model : keras.Model
        The trained Keras network (best weights of the last stage).
    history : list of dict
        One entry per epoch: stage, epoch, learning_rate, train_loss,
        val_loss (RMSE, arsinh mag), seconds.
    stages : list of dict
        Per stage: learning rate, epochs run, best epoch, best val loss.
    test_params, test_mags, test_mfrac : ndarray
        The held-out test set (float64, file units).
    test_residuals : ndarray, shape (n_test, n_filters)
        Emulator minus truth (arsinh mag) on the test set.
    resumed_from : tuple or None
        (stage, epoch) a checkpoint resumed from, 0-based.
    network_inputs : list of str
        The parameters the network sees (``logmass`` is absent when the
        emulator is mass-normalised).
    """
    emulator: Emulator
    model: object
    history: list
    stages: list
    test_params: np.ndarray
    test_mags: np.ndarray
    test_mfrac: np.ndarray
    test_residuals: np.ndarray
    resumed_from: tuple = None
    network_inputs: list = field(default_factory=list)

    @property
    def test_rmse(self):
        """Root mean square test residual over all filters (arsinh mag)."""
        return float(np.sqrt(np.mean(self.test_residuals ** 2)))


# ------------------------------------------------------------------ checks
def _as_dict(value):
    """A JSON attribute as read back (a dict), or its text, or None."""
    return json.loads(value) if isinstance(value, (str, bytes)) and value else (value or None)


def _check_fraction(value, what, high=0.9):
    value = float(value)
    if not 0.0 < value < high:
        raise EmulatorConfigurationError(f"{what} must lie in (0, {high}), got {value}")
    return value


def _check_writable_dir(directory, what):
    """Refuse ``directory`` unless a file can be created in it (tried, not
    guessed from permission bits: read-only mounts and root both fool those)."""
    if not os.path.exists(directory):
        raise EmulatorConfigurationError(f"cannot write {what}: directory {directory} does not exist")
    if not os.path.isdir(directory):
        raise EmulatorConfigurationError(f"cannot write {what}: {directory} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".prospect-emulator-write-test-", dir=directory)
    except OSError as err:
        raise EmulatorConfigurationError(
            f"cannot write {what}: directory {directory} is not writable ({err.strerror})") from None
    os.close(fd)
    os.remove(probe)


def _check_out_path(out, overwrite=True, checkpoint_dir=None):
    """Check, before any work, that the emulator can be written to ``out``.

    Parameters
    ----------
    out : str or path or None
    overwrite : bool
        If False, refuse an ``out`` that already exists.
    checkpoint_dir : str, optional
        An explicit checkpoint directory, checked to be creatable too.

    Returns
    -------
    str or None
        ``out`` as a string.
    """
    if checkpoint_dir is not None:
        # the checkpoint directory is created with its parents: check the
        # nearest directory that exists
        existing = os.path.abspath(os.fspath(checkpoint_dir))
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        _check_writable_dir(existing, f"the checkpoint in {checkpoint_dir}")
    if out is None:
        return None
    out = os.fspath(out)
    if os.path.isdir(out):
        raise EmulatorConfigurationError(f"output {out} is a directory; give a file name such as emu.h5")
    if os.path.exists(out) and not overwrite:
        raise EmulatorConfigurationError(
            f"{out} already exists: pass --overwrite (overwrite=True) to replace it, or choose "
            "another --out")
    _check_writable_dir(os.path.dirname(os.path.abspath(out)), out)
    return out


# ------------------------------------------------------------------ training
def _log(verbose, msg):
    if verbose:
        print(msg, flush=True)


def train_emulator(training_set, width, out=None, *, max_epochs=1000, patience=20,
                   batch_size=1000, learning_rates=DEFAULT_LEARNING_RATES,
                   validation_fraction=0.05, test_fraction=0.1, seed=0, mass_normalised=None,
                   zred_domain=None, zred_param="zred", n_hidden=5, checkpoint_dir=None,
                   checkpoint_every=1, keep_checkpoint=False, callbacks=(), verbose=True,
                   mfrac_loss_scale=MFRAC_LOSS_SCALE, overwrite=False, first_rows=None):
    """Train the paper's emulator network on a training-set file and export it.

    Parameters
    ----------
    training_set : str
        HDF5 file written by ``prospect-emulator generate``.
    width : int
        Nodes per hidden layer, N.
    out : str, optional
        Native emulator file to write (see :meth:`Emulator.save`).  Its
        directory must be writable (checked before any work).
    max_epochs : int
        Most epochs per stage (1000 in the paper).
    patience : int
        Stop a stage after this many epochs without a better validation loss.
    batch_size : int
        Samples per gradient step (1000 in every stage, eq. 8).
    learning_rates : sequence of float
        One stage per learning rate (eq. 7).  A fresh Nadam optimizer
        (beta_1 = 0.9, beta_2 = 0.999) starts each stage.
    validation_fraction : float
        Fraction of the training rows drawn afresh for validation in each stage.
    test_fraction : float
        Expected fraction of the file's rows held out as the test set (see
        :func:`held_out_mask`); the residual statistics are measured there.
    seed : int
        Seeds the weights, the test set, the validation splits and the shuffling.
    mass_normalised : bool or None
        Treat ``logmass`` (log10 stellar mass formed, Msun) as an exact
        normalisation instead of a network input.  None: yes if the training
        set has ``logmass``.
    zred_domain : (float, float), optional
        Train only on rows with ``zred_low <= zred <= zred_high`` and set the
        emulator's redshift training range to this domain (for stitching).
    zred_param : str
        Name of the redshift parameter.
    n_hidden : int
        Hidden layers (5 in the paper).
    checkpoint_dir : str, optional
        Where the checkpoint lives; default ``<out>.checkpoint``.  Without
        ``out`` and ``checkpoint_dir`` nothing is checkpointed.
    checkpoint_every : int
        Write the checkpoint every this many epochs (and at each stage end).
    keep_checkpoint : bool
        Keep the checkpoint after a successful export (default: delete it).
    callbacks : sequence of callable
        Each called as ``f(event)`` after every epoch but the last of a stage
        (after the checkpoint is written) with a dict: stage (0-based), epoch
        (epochs done in the stage), train_loss, val_loss, best_val_loss,
        best_epoch, wait, learning_rate (the stage's) and the optimizer's own
        optimizer_learning_rate and optimizer_iterations (steps in the stage).
        Raising ``KeyboardInterrupt`` there stops the training the way
        Ctrl-C does.
    verbose : bool
        Print one line per epoch.
    overwrite : bool
        Replace an existing ``out``; without it an existing file is refused
        before any work.
    first_rows : int, optional
        Use only the file's first ``first_rows`` rows (see
        :func:`read_training_rows`); recorded in the provenance.

    Returns
    -------
    TrainingResult

    Warns
    -----
    DroppedRowsWarning
        When rows of the file are left out (how many and why).

    Raises
    ------
    EmulatorConfigurationError
        Bad arguments, too few rows, a checkpoint of a different training,
        an existing ``out`` without ``overwrite``, an unwritable output.
    EmulatorFileError
        Missing or foreign training-set file.
    """
    # ---- everything that can be wrong is checked before any work
    if importlib.util.find_spec("tensorflow") is None:
        raise EmulatorConfigurationError(
            "training needs TensorFlow: pip install 'prospect-emulator[train]'")
    width = _positive_int(width, "width (nodes per hidden layer)", 1)
    max_epochs = _positive_int(max_epochs, "max_epochs", 1)
    patience = _positive_int(patience, "patience", 1)
    batch_size = _positive_int(batch_size, "batch_size", 1)
    n_hidden = _positive_int(n_hidden, "n_hidden", 1)
    checkpoint_every = _positive_int(checkpoint_every, "checkpoint_every", 1)
    validation_fraction = _check_fraction(validation_fraction, "validation_fraction", 0.5)
    test_fraction = _check_fraction(test_fraction, "test_fraction", 0.9)
    learning_rates = [float(lr) for lr in learning_rates]
    if not learning_rates or min(learning_rates) <= 0:
        raise EmulatorConfigurationError(f"learning_rates must be positive, got {learning_rates}")
    seed = int(seed)
    out = _check_out_path(out, overwrite=overwrite, checkpoint_dir=checkpoint_dir)
    if zred_domain is not None:
        zred_domain = (float(zred_domain[0]), float(zred_domain[1]))
        if not zred_domain[0] < zred_domain[1]:
            raise EmulatorConfigurationError(f"redshift domain {zred_domain} must have low < high")
    data = read_training_rows(training_set, first_rows=first_rows)
    if mass_normalised is None:
        mass_normalised = MASS_PARAM in data.param_names
    elif mass_normalised and MASS_PARAM not in data.param_names:
        raise EmulatorConfigurationError(
            f"mass normalisation needs a {MASS_PARAM!r} input; the training set has {data.param_names}")
    if zred_domain is not None and zred_param not in data.param_names:
        raise EmulatorConfigurationError(
            f"a redshift domain needs a {zred_param!r} input; the training set has {data.param_names}")
    dropped = describe_dropped(data.dropped, data.n_file_rows, data.path)
    if dropped:   # said, never silent: an unfinished or damaged set trains on fewer rows
        warnings.warn(f"training on {len(data)} rows; {dropped}", DroppedRowsWarning,
                      stacklevel=2)

    # ---- data (NumPy): splits, targets, normalisation
    prepared = prepare_training_data(
        data, seed=seed, test_fraction=test_fraction, validation_fraction=validation_fraction,
        mass_normalised=bool(mass_normalised), zred_domain=zred_domain, zred_param=zred_param,
        mfrac_loss_scale=mfrac_loss_scale, mass_param=MASS_PARAM)
    fingerprint = {
        "training_set": {k: v for k, v in training_set_identity(data).items() if k != "file"},
        "n_rows": int(len(data)), "checksum": float(np.sum(data.params[prepared.pool[:1000]])),
        "width": width, "n_hidden": n_hidden, "seed": seed, "batch_size": batch_size,
        "learning_rates": learning_rates, "validation_fraction": validation_fraction,
        "test_fraction": test_fraction, "mass_normalised": bool(mass_normalised),
        "zred_domain": list(zred_domain) if zred_domain else None,
        "mfrac_loss_scale": float(mfrac_loss_scale), "first_rows": first_rows,
    }
    if checkpoint_dir is None and out is not None:
        checkpoint_dir = out + ".checkpoint"
    checkpoint = TrainingCheckpoint(checkpoint_dir) if checkpoint_dir else None

    # ---- stages (TensorFlow from here on)
    trainer = StagedTrainer(prepared, width, n_hidden=n_hidden, seed=seed, batch_size=batch_size,
                            learning_rates=learning_rates, max_epochs=max_epochs,
                            patience=patience, checkpoint=checkpoint, fingerprint=fingerprint,
                            checkpoint_every=checkpoint_every, callbacks=callbacks,
                            log=(lambda msg: _log(verbose, msg)))
    prepared.x_pool = prepared.y_pool = None   # the trainer holds float32 copies
    resumed_from = trainer.resume()
    state = trainer.run()

    # ---- export, with the test-set statistics
    settings = dict(seed=seed, width=width, n_hidden=n_hidden, batch_size=batch_size,
                    learning_rates=learning_rates, patience=patience, max_epochs=max_epochs,
                    validation_fraction=validation_fraction, test_fraction=test_fraction,
                    mfrac_loss_scale=float(mfrac_loss_scale), zred_domain=zred_domain,
                    first_rows=first_rows)
    emu, residuals = _export_with_test_statistics(trainer.model, prepared, state, settings,
                                                  data.dropped, verbose)
    test = prepared.test
    if out is not None:
        emu.save(out)
        _log(verbose, f"wrote {out}")
        if checkpoint is not None and not keep_checkpoint:
            checkpoint.remove()
    return TrainingResult(emu, trainer.model, state["history"], state["stages"], data.params[test],
                          data.mags[test], data.mfrac[test], residuals, resumed_from,
                          prepared.network_inputs)


def _provenance(prepared, state, settings, dropped):
    """What the emulator file records about its training."""
    import keras
    import tensorflow as tf
    data = prepared.data
    return {
        "sps": data.attrs.get("sps"), "training_set": training_set_identity(data),
        "distributions": data.attrs.get("distributions"),
        "fixed_params": data.attrs.get("fixed_params"),
        # the model definition (inputs, distributions, fixed physics, SFH family):
        # fitting and amortized inference rebuild their Prospector model from it
        "model_definition": _as_dict(data.attrs.get("config")),
        "n_valid_rows": int(len(data)), "dropped_rows": dict(dropped),
        "n_train": int(prepared.n_train),
        "n_validation": int(prepared.n_validation), "n_test": int(len(prepared.test)),
        "test_selection": {"method": "splitmix64(row ^ splitmix64(seed)) < fraction",
                           "seed": settings["seed"], "fraction": settings["test_fraction"]},
        "seed": settings["seed"], "package_version": __version__, "width": settings["width"],
        "n_hidden": settings["n_hidden"], "activation": "gelu_tanh", "loss": "rmse",
        "mfrac_loss_scale": settings["mfrac_loss_scale"], "optimizer": "nadam(0.9, 0.999)",
        "batch_size": settings["batch_size"], "learning_rates": settings["learning_rates"],
        "patience": settings["patience"], "max_epochs": settings["max_epochs"],
        "validation_fraction": settings["validation_fraction"],
        "stages": state["stages"], "epochs": [s["epochs"] for s in state["stages"]],
        "training_seconds": state["elapsed"], "mass_normalised": prepared.mass_normalised,
        "param_range_source": dict(zip(data.param_names, prepared.range_source)),
        "zred_domain": list(settings["zred_domain"]) if settings["zred_domain"] else None,
        "first_rows": settings["first_rows"],
        "tensorflow_version": tf.__version__, "keras_version": keras.__version__,
    }


def _export_with_test_statistics(model, prepared, state, settings, dropped, verbose):
    """The NumPy emulator of ``model``, with its residual statistics on the test rows."""
    from .evaluate import noise_model_residuals, residual_statistics
    from .export import export_emulator

    data = prepared.data
    emu = export_emulator(model, data.param_names, data.filter_names, prepared.ranges,
                          mass_param=MASS_PARAM if prepared.mass_normalised else None,
                          mass_mu0=prepared.mass_mu0, mu0=data.mu0, a=data.a,
                          provenance=_provenance(prepared, state, settings, dropped))
    test = prepared.test
    pred_mags, pred_extras = emu.predict_mags_and_extras(data.params[test], check=False)
    residuals = pred_mags - data.mags[test]
    # the stored statistics are those the noise model uses (unit-mass magnitudes
    # for a mass-normalised emulator: a fractional error at every flux)
    stats, cov = residual_statistics(noise_model_residuals(emu, data.params[test], data.mags[test]))
    emu.residual_stats, emu.residual_covariance = stats, cov
    emu.provenance["residual_stats_magnitudes"] = (
        "unit-mass arsinh magnitudes (mass_mu0)" if emu.mass_param is not None
        else "output arsinh magnitudes (mu0)")
    dlog = np.log10(pred_extras[:, 0]) - np.log10(data.mfrac[test])
    emu.provenance["extra_residuals"] = {"mfrac": {
        "transform": MFRAC_TRANSFORM, "bias_dex": float(dlog.mean()), "std_dex": float(dlog.std(ddof=1))}}
    emu.provenance["test_rmse_mag"] = float(np.sqrt(np.mean(residuals ** 2)))
    check = emu.provenance["float32_forward_pass"] = float32_check(emu, seed=settings["seed"])
    if not check["within"]:
        warnings.warn(f"the float32 forward pass of this emulator differs from float64 by up to "
                      f"{check['max_mag_difference']:.2g} mag over {check['n_draws']} draws "
                      f"(allowed {check['allowed']:g}): use it in float64", RuntimeWarning,
                      stacklevel=3)
    std = residuals.std(axis=0)
    _log(verbose, f"test set ({len(test)} rows): residual std per filter {np.min(std):.4f}"
                  f"..{np.max(std):.4f} mag (median {np.median(std):.4f}); "
                  f"log10 mfrac std {dlog.std(ddof=1):.4f} dex")
    return emu, residuals
