"""The pieces of :func:`~prospect_emulator.training.train.train_emulator`.

* :func:`prepare_training_data` (NumPy): test/validation rows, network
  inputs and targets (mass-normalised magnitudes and log10 mfrac),
  normalisation constants and training ranges;
* :class:`EarlyStopping`: the best validation loss of a stage, its weights
  and the patience counter (paper Sec. 2.2);
* :class:`StagedTrainer` (TensorFlow): the paper's schedule -- Nadam, RMSE
  loss, one stage per learning rate with batches of 1000 (eq. 7-8) -- with a
  fresh optimizer at the start of every stage, checkpoints
  (:class:`~prospect_emulator.training.checkpoint.TrainingCheckpoint`) and
  resuming.

Importing this module does not import TensorFlow; constructing a
:class:`StagedTrainer` does.
"""
import time
from dataclasses import dataclass

import numpy as np

from ..errors import EmulatorConfigurationError

__all__ = ["PreparedData", "prepare_training_data", "EarlyStopping", "StagedTrainer",
           "VALIDATION_BATCH"]

#: Rows per forward pass when computing the validation loss.
VALIDATION_BATCH = 8192
#: Batches per compiled graph call of the training loop (Ctrl-C is seen between calls).
BATCHES_PER_CALL = 200


# ----------------------------------------------------------------------------- data
@dataclass
class PreparedData:
    """What the network trains on, from the valid rows of a training-set file.

    Attributes
    ----------
    data : TrainingSetRows
        The rows read from the file.
    pool, test : ndarray of int
        Positions in ``data`` of the training+validation rows and of the
        held-out test rows.
    n_validation : int
        Validation rows drawn from ``pool`` in each stage.
    network_columns : list of int
        Columns of ``data.params`` the network sees (all but ``logmass``
        when mass-normalised).
    mass_index : int or None
        Column of ``logmass`` when mass-normalised.
    mass_mu0 : float or None
        Softening (arsinh mag) of the per-unit-mass targets.
    ranges : ndarray, shape (n_params, 2)
        Training ranges of the exported emulator; ``range_source`` says where
        each comes from ("distribution", "samples" or "domain").
    x_pool, y_pool : ndarray
        Network inputs (file units) and targets (arsinh mag per filter, then
        log10 mfrac in dex) of the ``pool`` rows.
    input_mean, input_std, output_mean : ndarray
        Normalisation constants (Sec. 2.2; output std fixed to 1).
    output_scales : ndarray
        Weight of each output in the RMSE loss (1 per filter, ``mfrac_loss_scale``).
    """
    data: object
    pool: np.ndarray
    test: np.ndarray
    n_validation: int
    network_columns: list
    mass_index: object
    mass_mu0: object
    ranges: np.ndarray
    range_source: list
    x_pool: np.ndarray
    y_pool: np.ndarray
    input_mean: np.ndarray
    input_std: np.ndarray
    output_mean: np.ndarray
    output_scales: np.ndarray

    @property
    def network_inputs(self):
        return [self.data.param_names[j] for j in self.network_columns]

    @property
    def mass_normalised(self):
        return self.mass_index is not None

    @property
    def n_train(self):
        return len(self.pool) - self.n_validation


def prepare_training_data(data, *, seed, test_fraction, validation_fraction, mass_normalised,
                          zred_domain=None, zred_param="zred", mfrac_loss_scale=2.5,
                          mass_param="logmass"):
    """Split the rows, build the targets and the normalisation constants.

    Parameters
    ----------
    data : TrainingSetRows
    seed : int
        Seed of the test-row hash (:func:`~.train.held_out_mask`).
    test_fraction, validation_fraction : float
    mass_normalised : bool
        Train on the magnitudes of one solar mass formed, without ``mass_param``.
    zred_domain : (float, float), optional
        Keep only rows with ``zred_param`` in the domain (a stitching member).
    mfrac_loss_scale : float
        Loss weight of log10(mfrac) (dex -> mag).

    Returns
    -------
    PreparedData

    Raises
    ------
    EmulatorConfigurationError
        Too few rows to train (in the domain).
    """
    from .train import held_out_mask, mass_unit_targets, training_ranges

    keep = np.ones(len(data), bool)
    if zred_domain is not None:
        z = data.params[:, data.param_names.index(zred_param)]
        keep = (z >= zred_domain[0]) & (z <= zred_domain[1])
    is_test = held_out_mask(data.rows, seed, test_fraction)
    pool = np.nonzero(keep & ~is_test)[0]          # training + validation rows
    test = np.nonzero(keep & is_test)[0]
    n_validation = int(np.ceil(validation_fraction * len(pool)))
    if len(pool) - n_validation < 10 or n_validation < 1 or len(test) < 2:
        where = f" with {zred_param} in {list(zred_domain)}" if zred_domain else ""
        raise EmulatorConfigurationError(
            f"{data.path} has {len(pool) + len(test)} valid rows{where}: too few to train "
            f"({len(pool)} for training/validation, {len(test)} for testing)")

    ranges, range_source = training_ranges(data, data.params[pool])
    if zred_domain is not None:
        iz = data.param_names.index(zred_param)
        ranges[iz] = zred_domain
        range_source[iz] = "domain"
    mass_index = data.param_names.index(mass_param) if mass_normalised else None
    # the per-unit-mass softening is that of the most massive galaxy at mu0
    mass_mu0 = data.mu0 + 2.5 * ranges[mass_index, 1] if mass_normalised else None
    columns = [j for j in range(len(data.param_names)) if j != mass_index]

    mags = data.mags[pool]
    if mass_normalised:
        mags = mass_unit_targets(data.params[pool, mass_index], mags, data.mu0, data.a, mass_mu0)
    y_pool = np.column_stack([mags, np.log10(data.mfrac[pool])])
    x_pool = data.params[pool][:, columns]
    input_std = x_pool.std(axis=0)
    input_std[input_std == 0] = 1.0      # a fixed parameter: centre it only
    output_scales = np.ones(y_pool.shape[1])
    output_scales[-1] = float(mfrac_loss_scale)
    return PreparedData(data, pool, test, n_validation, columns, mass_index, mass_mu0, ranges,
                        range_source, x_pool, y_pool, x_pool.mean(axis=0), input_std,
                        y_pool.mean(axis=0), output_scales)


# ------------------------------------------------------------------- early stopping
class EarlyStopping:
    """Best validation loss of one stage, the weights that gave it, and patience.

    A stage ends after ``patience`` epochs without a lower validation loss;
    its best weights are then restored (paper Sec. 2.2).

    Parameters
    ----------
    patience : int
    best_val : float, optional
    best_epoch : int
        0-based epoch of ``best_val`` (-1: none yet).
    wait : int
        Epochs since the best one.
    best_weights : list of ndarray, optional
    """

    def __init__(self, patience, best_val=None, best_epoch=-1, wait=0, best_weights=None):
        self.patience = int(patience)
        self.best_val = best_val
        self.best_epoch = int(best_epoch)
        self.wait = int(wait)
        self.best_weights = best_weights or None

    def update(self, epoch, val_loss, weights):
        """Record epoch ``epoch`` (0-based); ``weights()`` gives the arrays to keep if best.

        Returns
        -------
        bool
            True when the stage should stop (patience exhausted).
        """
        if self.best_val is None or val_loss < self.best_val:
            self.best_val, self.best_epoch, self.wait = float(val_loss), int(epoch), 0
            self.best_weights = weights()
        else:
            self.wait += 1
        return self.wait >= self.patience

    def state(self):
        """The JSON part of the state (for checkpoints)."""
        return {"best_val": self.best_val, "best_epoch": self.best_epoch, "wait": self.wait}


# ------------------------------------------------------------------------ training
class StagedTrainer:
    """The paper's staged training of one network (Sec. 2.2, eq. 7-8).

    Parameters
    ----------
    prepared : PreparedData
    width, n_hidden : int
        Network shape (:func:`~prospect_emulator.training.network.build_network`).
    seed : int
        Seed of the weights, the validation splits and the shuffling.
    batch_size : int
    learning_rates : list of float
        One stage per learning rate.
    max_epochs, patience : int
        Most epochs of a stage; epochs without improvement that end it.
    checkpoint : TrainingCheckpoint, optional
        Written every ``checkpoint_every`` epochs and at every stage end.
    fingerprint : dict
        What identifies this training in a checkpoint.
    callbacks : sequence of callable
        Called after every epoch except the last of a stage with a dict:
        stage, epoch (1-based count of epochs done in the stage), best_epoch,
        wait, train_loss, val_loss, best_val_loss, learning_rate (the stage's),
        optimizer_learning_rate and optimizer_iterations (the optimizer's own
        values: steps taken in the stage).
    log : callable
        Receives progress lines.
    """

    def __init__(self, prepared, width, *, n_hidden, seed, batch_size, learning_rates,
                 max_epochs, patience, checkpoint=None, fingerprint=None, checkpoint_every=1,
                 callbacks=(), log=None):
        import keras
        import tensorflow as tf

        from .network import build_network, weighted_rmse_loss

        self.prepared = prepared
        self.seed, self.batch_size = int(seed), int(batch_size)
        self.learning_rates = list(learning_rates)
        self.max_epochs, self.patience = int(max_epochs), int(patience)
        self.checkpoint, self.checkpoint_every = checkpoint, int(checkpoint_every)
        self.callbacks, self.log = list(callbacks), log or (lambda msg: None)
        self.fingerprint = fingerprint or {}

        self.model = build_network(width, prepared.input_mean, prepared.input_std,
                                   prepared.output_mean, n_hidden=n_hidden, seed=seed)
        self.trainable = self.model.trainable_variables
        self.output_scales = prepared.output_scales
        self._x = tf.constant(prepared.x_pool, dtype=tf.float32)
        self._y = tf.constant(prepared.y_pool, dtype=tf.float32)
        self._y_host = prepared.y_pool.astype(np.float32)     # for the validation loss
        # One optimizer and one traced step for all stages; each stage resets it
        # (zero moments, step 0) and sets its own learning rate.
        self.optimizer = keras.optimizers.Nadam(learning_rate=self.learning_rates[0],
                                                beta_1=0.9, beta_2=0.999)
        self.optimizer.build(self.trainable)
        self._optimizer_initial = [v.numpy().copy() for v in self.optimizer.variables]
        self._train_block = self._compile_train_block(tf, weighted_rmse_loss(self.output_scales))
        model = self.model

        @tf.function(reduce_retracing=True)
        def predict_batch(xb):
            return model(xb, training=False)
        self._predict_batch = predict_batch

        self.state = {"fingerprint": self.fingerprint, "stage": 0, "epoch": 0, "best_val": None,
                      "best_epoch": -1, "wait": 0, "history": [], "stages": [], "rng": None,
                      "started": time.time(), "elapsed": 0.0}
        self.shuffle_rng = np.random.default_rng([self.seed, 101])
        self.resumed_from = None
        self._resumed_arrays = None

    def _compile_train_block(self, tf, loss_fn):
        model, optimizer, trainable = self.model, self.optimizer, self.trainable
        x_all, y_all, batch_size = self._x, self._y, self.batch_size

        def train_step(idx):
            xb, yb = tf.gather(x_all, idx), tf.gather(y_all, idx)
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, trainable), trainable))
            return loss
        # one fused XLA computation per step (GELU, loss, Nadam update): on the 2-core
        # machine 1.8x the samples/s of the plain graph at width 128, 80-93% of the float32
        # matmul rate of the layer shapes (benchmarks/bench_train.py); compiled once per
        # batch shape (the last, shorter batch of an epoch is a second shape)
        train_step = tf.function(train_step, jit_compile=True)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
        def train_block(order):
            """Gradient steps over consecutive batches of ``order`` in one graph call."""
            n_steps = (tf.shape(order, out_type=tf.int64)[0] + batch_size - 1) // batch_size
            total = tf.constant(0.0, tf.float32)
            for i in tf.range(n_steps):
                total += train_step(order[i * batch_size:(i + 1) * batch_size])
            return total
        return train_block

    # --- weights -------------------------------------------------------------------
    def weights(self):
        return [v.numpy().copy() for v in self.trainable]

    def set_weights(self, values):
        for var, value in zip(self.trainable, values):
            var.assign(value)

    # --- checkpoints ---------------------------------------------------------------
    def resume(self):
        """Load the checkpoint if there is one; returns (stage, epoch) or None."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return None
        state, arrays = self.checkpoint.load(self.fingerprint)
        if arrays["optimizer"] and len(arrays["optimizer"]) != len(self.optimizer.variables):
            raise EmulatorConfigurationError(
                f"checkpoint {self.checkpoint.path} holds {len(arrays['optimizer'])} optimizer "
                f"arrays, this training's Nadam has {len(self.optimizer.variables)}; delete "
                f"{self.checkpoint.directory} to start the training afresh")
        self.state = state
        self.shuffle_rng.bit_generator.state = state["rng"]
        self.set_weights(arrays["weights"])
        self._resumed_arrays = arrays
        self.resumed_from = (int(state["stage"]), int(state["epoch"]))
        where = ("start" if state["epoch"] == 0 else f"after epoch {state['epoch']}")
        self.log(f"resuming from {self.checkpoint.path}: stage {state['stage'] + 1}/"
                 f"{len(self.learning_rates)}, {where}")
        return self.resumed_from

    def save_checkpoint(self, stopping=None):
        """Checkpoint now: mid-stage with the optimizer and best weights, or at a
        stage boundary (``stopping`` None) without them."""
        if self.checkpoint is None:
            return
        self.state["rng"] = self.shuffle_rng.bit_generator.state
        if stopping is None:
            self.checkpoint.save(self.state, self.weights())
        else:
            self.checkpoint.save(self.state, self.weights(), stopping.best_weights,
                                 [v.numpy() for v in self.optimizer.variables])

    # --- one stage -----------------------------------------------------------------
    def validation_split(self, stage):
        """(validation, training) positions in the pool: a fresh random split per
        stage, the same on resume."""
        n_pool = len(self.prepared.pool)
        perm = np.random.default_rng([self.seed, 1000 + stage]).permutation(n_pool)
        n_val = self.prepared.n_validation
        return np.sort(perm[:n_val]), np.sort(perm[n_val:])

    def start_stage(self, stage):
        """A fresh optimizer at the stage's learning rate (or, resuming inside this
        stage, the checkpoint's optimizer state) and the stage's early stopping."""
        for var, value in zip(self.optimizer.variables, self._optimizer_initial):
            var.assign(value)
        arrays, self._resumed_arrays = self._resumed_arrays, None
        if arrays is not None and arrays["optimizer"]:      # mid-stage checkpoint
            for var, value in zip(self.optimizer.variables, arrays["optimizer"]):
                var.assign(value)
        self.optimizer.learning_rate.assign(self.learning_rates[stage])
        if arrays is not None and self.state["epoch"] > 0:
            return EarlyStopping(self.patience, self.state["best_val"], self.state["best_epoch"],
                                 self.state["wait"], arrays["best_weights"])
        return EarlyStopping(self.patience)

    def train_epoch(self, train_idx):
        """One pass over ``train_idx`` in shuffled batches.

        Returns
        -------
        mean_batch_rmse : float
        seconds : float
            Time spent in the gradient steps only.
        """
        import tensorflow as tf
        order = train_idx[self.shuffle_rng.permutation(len(train_idx))]
        block = self.batch_size * BATCHES_PER_CALL
        loss_sum, t0 = 0.0, time.perf_counter()
        for start in range(0, len(order), block):
            loss_sum += float(self._train_block(tf.constant(order[start:start + block], tf.int64)))
        seconds = time.perf_counter() - t0
        return loss_sum / int(np.ceil(len(order) / self.batch_size)), seconds

    def validation_rmse(self, val_idx):
        """RMSE over the whole validation set (not a mean of batch RMSEs), arsinh mag."""
        import tensorflow as tf
        sq = 0.0
        for start in range(0, len(val_idx), VALIDATION_BATCH):
            b = val_idx[start:start + VALIDATION_BATCH]
            pred = self._predict_batch(tf.gather(self._x, tf.constant(b))).numpy()
            sq += float(np.sum(((pred - self._y_host[b]).astype(float) * self.output_scales) ** 2))
        return float(np.sqrt(sq / (len(val_idx) * self._y_host.shape[1])))

    def run_stage(self, stage, t_start, elapsed_before):
        lr = self.learning_rates[stage]
        n_stages = len(self.learning_rates)
        val_idx, train_idx = self.validation_split(stage)
        stopping = self.start_stage(stage)
        state = self.state
        for epoch in range(state["epoch"], self.max_epochs):
            t0 = time.time()
            train_loss, train_seconds = self.train_epoch(train_idx)
            val_loss = self.validation_rmse(val_idx)
            stop = stopping.update(epoch, val_loss, self.weights)
            seconds = time.time() - t0
            state["history"].append({"stage": stage, "epoch": epoch, "learning_rate": lr,
                                     "train_loss": train_loss, "val_loss": val_loss,
                                     "seconds": seconds, "train_seconds": train_seconds,
                                     "n_train": int(len(train_idx))})
            state.update(epoch=epoch + 1, **stopping.state())
            self.log(f"stage {stage + 1}/{n_stages} lr={lr:g} epoch {epoch + 1}: "
                     f"train {train_loss:.5f} val {val_loss:.5f} (best {stopping.best_val:.5f} "
                     f"at {stopping.best_epoch + 1}) {seconds:.1f} s")
            stop = stop or state["epoch"] >= self.max_epochs
            state["elapsed"] = elapsed_before + time.time() - t_start
            if stop:
                break
            if state["epoch"] % self.checkpoint_every == 0:
                self.save_checkpoint(stopping)
            event = {k: state[k] for k in ("stage", "epoch", "best_epoch", "wait")}
            event.update(train_loss=train_loss, val_loss=val_loss,
                         best_val_loss=stopping.best_val, learning_rate=lr,
                         optimizer_learning_rate=float(self.optimizer.learning_rate.numpy()),
                         optimizer_iterations=int(self.optimizer.iterations.numpy()))
            for callback in self.callbacks:
                callback(event)
        # end of stage: restore the best weights (paper Sec. 2.2)
        self.set_weights(stopping.best_weights)
        state["stages"].append({"stage": stage, "learning_rate": lr, "epochs": state["epoch"],
                                "best_epoch": stopping.best_epoch + 1,
                                "best_val_loss": stopping.best_val})
        self.log(f"stage {stage + 1} done: {state['epoch']} epochs, best validation RMSE "
                 f"{stopping.best_val:.5f} mag at epoch {stopping.best_epoch + 1}")
        state.update(stage=stage + 1, epoch=0, best_val=None, best_epoch=-1, wait=0)
        self.save_checkpoint()

    def run(self):
        """All stages from where the state stands; returns the state."""
        t_start = time.time()
        elapsed_before = float(self.state.get("elapsed", 0.0))
        for stage in range(self.state["stage"], len(self.learning_rates)):
            self.run_stage(stage, t_start, elapsed_before)
        return self.state
