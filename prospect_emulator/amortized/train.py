"""Training an amortized posterior on emulator simulations (neural posterior estimation).

:func:`train_amortized_posterior` fits the observational noise model to a
catalogue, simulates ``n_sims`` galaxies from the model's prior through the
emulator (:func:`~prospect_emulator.amortized.simulate.simulate`), and trains
a flowjax flow q(theta | x) by maximum likelihood on (theta, x) pairs -- the
loss of flowjax's ``fit_to_data`` (``MaximumLikelihoodLoss``) and its
optimisation step (``flowjax.train.train_utils.step``), driven epoch by epoch
here so that every epoch can be checkpointed and an interrupted run resumed
with the optimiser state intact.  It then calibrates the out-of-support
chi^2 limit on held-out simulations and writes the posterior file.
"""
import functools
import hashlib
import json
import os
import sys
import time

import numpy as np

from ..errors import EmulatorConfigurationError, EmulatorFileError
from ..fileio import atomic_path
from .flow import build_flow, flow_arrays, flow_with_arrays, resolved_hyperparameters
from .simulate import ObservationalNoiseModel, ParameterSpace, flow_conditions, simulate

__all__ = ["train_amortized_posterior", "TrainingSettings"]


class TrainingSettings:
    """Optimisation settings.

    Parameters
    ----------
    max_epochs : int
    batch_size : int
    learning_rate : float
        Peak Adam learning rate (cosine decay to 5% over ``max_epochs``).
    patience : int
        Stop after this many epochs without a better validation loss.
    val_fraction : float
        Share of the simulations held out for the validation loss.
    clip_norm : float
        Gradient clipping (global norm).
    """

    def __init__(self, max_epochs=50, batch_size=512, learning_rate=1e-3, patience=5,
                 val_fraction=0.1, clip_norm=5.0):
        self.max_epochs, self.batch_size = int(max_epochs), int(batch_size)
        self.learning_rate, self.patience = float(learning_rate), int(patience)
        self.val_fraction, self.clip_norm = float(val_fraction), float(clip_norm)
        if self.max_epochs < 1 or self.batch_size < 1 or not 0 < self.val_fraction < 1:
            raise EmulatorConfigurationError(
                f"training settings: max_epochs >= 1, batch_size >= 1 and 0 < val_fraction < 1 "
                f"are required; got {vars(self)}")

    def to_dict(self):
        return dict(vars(self))


def _standardiser(a, floor=1e-6):
    mean = a.mean(axis=0)
    std = a.std(axis=0)
    # a constant column (a band every object has) stays as it is
    return mean, np.where(std > floor, std, 1.0)


@functools.lru_cache(maxsize=8)
def _optimizer_and_runner(learning_rate, total_steps, clip_norm):
    """Adam with cosine decay and gradient clipping, and its jitted epoch runner;
    cached, so a resumed or repeated run in the same process compiles once."""
    import optax
    schedule = optax.cosine_decay_schedule(learning_rate, total_steps, alpha=0.05)
    optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(schedule))
    return optimizer, _epoch_runner(optimizer)


def _epoch_runner(optimizer):
    """A jitted function running a whole chunk of batches with lax.scan (few dispatches)."""
    import equinox as eqx
    import jax
    from flowjax.train.losses import MaximumLikelihoodLoss
    from flowjax.train.train_utils import step
    loss_fn = MaximumLikelihoodLoss()

    @eqx.filter_jit
    def run(params, static, opt_state, xb, cb, key):
        def body(carry, batch):
            params, opt_state, key = carry
            key, sub = jax.random.split(key)
            params, opt_state, loss = step(params, static, batch[0], batch[1],
                                           optimizer=optimizer, opt_state=opt_state,
                                           loss_fn=loss_fn, key=sub)
            return (params, opt_state, key), loss
        (params, opt_state, _), losses = jax.lax.scan(body, (params, opt_state, key), (xb, cb))
        return params, opt_state, losses

    @eqx.filter_jit
    def evaluate(params, static, x, c):
        return loss_fn(params, static, x, c, key=None)
    return run, evaluate


def _checkpoint_path(out):
    return os.fspath(out) + ".checkpoint.h5"


def _save_checkpoint(path, run_key, epoch, params, opt_state, best_params, history, bad_epochs):
    import h5py
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["run_key"] = run_key
        f.attrs["epoch"] = epoch
        f.attrs["bad_epochs"] = bad_epochs
        f.attrs["history"] = json.dumps(history)
        for name, tree in (("params", params), ("opt_state", opt_state), ("best", best_params)):
            g = f.create_group(name)
            arrays = flow_arrays(tree)
            g.attrs["n_arrays"] = len(arrays)
            for i, arr in enumerate(arrays):
                g[f"leaf_{i:05d}"] = arr


def _load_checkpoint(path, run_key, params, opt_state):
    import h5py
    with h5py.File(path, "r") as f:
        if f.attrs["run_key"] != run_key:
            raise EmulatorFileError(
                f"{path} is the checkpoint of a different training run (other emulator, "
                "catalogue, seed, simulations, settings or parameter coordinates: the default "
                "is now --coordinates prior-normal, a checkpoint of an earlier version resumes "
                "with --coordinates logit); delete it or choose another --out")
        out = {}
        for name, skeleton in (("params", params), ("opt_state", opt_state), ("best", params)):
            g = f[name]
            arrays = [g[f"leaf_{i:05d}"][()] for i in range(int(g.attrs["n_arrays"]))]
            out[name] = flow_with_arrays(skeleton, arrays, what=f"checkpoint {name}")
        return (int(f.attrs["epoch"]), out["params"], out["opt_state"], out["best"],
                json.loads(f.attrs["history"]), int(f.attrs["bad_epochs"]))


def _log(message, progress):
    if progress:
        print(f"amortize: {message}", file=sys.stderr, flush=True)


def train_amortized_posterior(emulator, catalog, n_sims, out=None, seed=0, hyperparameters=None,
                              settings=None, redshifts="catalog", floor=0.05, columns=None,
                              n_calibration=1000, resume=True, progress=True,
                              coordinates="prior-normal"):
    """Train an amortized posterior for a catalogue's bands, noise and missing bands.

    Parameters
    ----------
    emulator : str, path or Emulator
        A native emulator file, a shipped name (``"default"``, ``"parametric"``)
        or an emulator with a recorded model definition; its model
        (:meth:`EmulatedSpecModel.from_emulator` with a free redshift) gives
        the priors.
    catalog : str, astropy.table.Table or Observations
        The catalogue the posterior is for: its filters (those the emulator
        has), its uncertainties (the noise model), its missing-band patterns,
        and (``redshifts="catalog"``) its redshifts.
    n_sims : int
        Training simulations (10% of them validate).
    out : str, optional
        Output file; a checkpoint ``<out>.checkpoint.h5`` is written every
        epoch and removed at the end.  Without it nothing is written.
    seed : int
        Seeds the simulations, the split, the shuffling and the initial weights.
    hyperparameters : dict, optional
        Flow architecture; defaults :data:`~prospect_emulator.amortized.flow.DEFAULT_HYPERPARAMETERS`.
    settings : TrainingSettings, optional
    redshifts : {"catalog", "prior"}
        Simulated redshifts from a KDE of the catalogue's, or from the prior.
    floor : float
        Eq. 9's fractional SPS floor in the simulations (0.05 as the exact fits).
    columns : CatalogColumns, optional
        Column names of a catalogue table.
    n_calibration : int
        Held-out simulations for the out-of-support chi^2 limit (0: no limit).
    resume : bool
        Continue from ``<out>.checkpoint.h5`` when it belongs to the same run.
    progress : bool
        One line per epoch on stderr.
    coordinates : {"prior-normal", "logit"}
        The parameter coordinates the flow learns
        (:class:`~prospect_emulator.amortized.simulate.ParameterSpace`); the
        default, the prior's CDF mapped to a standard normal, keeps posteriors
        of weakly constrained parameters from coming out wider than the prior.

    Returns
    -------
    AmortizedPosterior
    """
    import jax
    import equinox as eqx
    from .catalog import read_catalog_arrays
    from .posterior import AmortizedPosterior, _emulator_source, build_model
    from .flow import trainable_filter
    if redshifts not in ("catalog", "prior"):
        raise EmulatorConfigurationError(f"redshifts={redshifts!r}; allowed: 'catalog', 'prior'")
    settings = settings or TrainingSettings()
    hyper = resolved_hyperparameters(hyperparameters or {})
    model = build_model(emulator)
    emu = model.emulator
    obs = read_catalog_arrays(catalog, columns=columns, filter_names=emu.filter_names)
    noise = ObservationalNoiseModel.fit(obs.maggies, obs.maggies_unc, obs.filter_names)
    _log(f"{len(obs)} catalogue objects, {len(noise.filter_names)} bands, "
         f"{len(noise.patterns)} missing-band patterns; simulating {n_sims} + {n_calibration} "
         "galaxies", progress)
    n_sims = int(n_sims)
    t0 = time.time()
    sims = simulate(model, noise, n_sims + int(n_calibration), seed=seed,
                    catalog_redshifts=obs.zred if redshifts == "catalog" else None, floor=floor)
    t_sim = time.time() - t0
    held_out = sims.subset(slice(n_sims, None))
    sims = sims.subset(slice(0, n_sims))
    _log(f"simulated in {t_sim:.1f} s ({len(sims) / max(t_sim, 1e-9) * 60:.3g} per minute)",
         progress)
    space = ParameterSpace(model, coordinates)
    y = space.to_unbounded(sims.theta)
    c = flow_conditions(sims.maggies, sims.maggies_unc, sims.mask, sims.zred, noise.flux_scale)
    y_mean, y_std = _standardiser(y)
    c_mean, c_std = _standardiser(c)
    y = ((y - y_mean) / y_std).astype(np.float32)
    c = ((c - c_mean) / c_std).astype(np.float32)
    rng = np.random.default_rng([seed, 1])
    order = rng.permutation(n_sims)
    n_val = max(1, int(round(settings.val_fraction * n_sims)))
    val, train = order[:n_val], order[n_val:]
    batch = min(settings.batch_size, len(train))
    steps = len(train) // batch
    flow = build_flow(hyper, y.shape[1], c.shape[1], key=seed)
    params, static = trainable_filter(flow)
    optimizer, (run, evaluate) = _optimizer_and_runner(
        settings.learning_rate, settings.max_epochs * steps, settings.clip_norm)
    opt_state = optimizer.init(params)
    run_key = hashlib.sha256(json.dumps({
        "emulator": emu.checksum, "noise": {k: np.asarray(v).tolist() for k, v in
                                            noise.to_arrays().items() if k != "filter_names"},
        "filters": noise.filter_names, "n_sims": n_sims, "seed": int(seed), "hyper": hyper,
        "settings": settings.to_dict(), "redshifts": redshifts, "floor": float(floor),
        "zred": obs.zred.tolist(),
        # (absent for logit coordinates: checkpoints written before they could be chosen)
        **({} if coordinates == "logit" else {"coordinates": coordinates})}, sort_keys=True).encode()).hexdigest()
    history = {"train_loss": [], "val_loss": [], "seconds": []}
    best_params, bad_epochs, start = params, 0, 0
    ckpt = _checkpoint_path(out) if out is not None else None
    if ckpt and resume and os.path.exists(ckpt):
        start, params, opt_state, best_params, history, bad_epochs = _load_checkpoint(
            ckpt, run_key, params, opt_state)
        _log(f"resuming from {ckpt} after epoch {start}", progress)
    # batches per jitted scan: equal chunks of at most 100 (drops < n_chunks batches an epoch)
    chunk = steps // -(-steps // 100)
    base_key = jax.random.key(int(seed) + 1)
    for epoch in range(start, settings.max_epochs):
        if bad_epochs > settings.patience:
            break
        t_epoch = time.time()
        perm = train[np.random.default_rng([seed, 2, epoch]).permutation(len(train))]
        losses = []
        key = jax.random.fold_in(base_key, epoch)
        for k, first in enumerate(range(0, steps - chunk + 1, chunk)):
            idx = perm[first * batch:(first + chunk) * batch].reshape(chunk, batch)
            params, opt_state, chunk_losses = run(params, static, opt_state, y[idx], c[idx],
                                                  jax.random.fold_in(key, k))
            losses.append(np.asarray(chunk_losses))
        train_loss = float(np.mean(np.concatenate(losses)))
        val_loss = float(np.mean([evaluate(params, static, y[val[i:i + 4096]], c[val[i:i + 4096]])
                                  for i in range(0, len(val), 4096)]))
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        history["seconds"].append(time.time() - t_epoch)
        if not np.isfinite(train_loss):
            raise EmulatorConfigurationError(
                f"training diverged at epoch {epoch + 1} (loss {train_loss}); lower the "
                "learning rate")
        if val_loss <= min(history["val_loss"]):
            best_params, bad_epochs = params, 0
        else:
            bad_epochs += 1
        _log(f"epoch {epoch + 1}/{settings.max_epochs}: train {train_loss:.4f}, validation "
             f"{val_loss:.4f}{' (best)' if bad_epochs == 0 else ''}, "
             f"{history['seconds'][-1]:.1f} s", progress)
        if ckpt:
            _save_checkpoint(ckpt, run_key, epoch + 1, params, opt_state, best_params, history,
                             bad_epochs)
    flow = eqx.combine(best_params, static)
    training = {"seed": int(seed), "n_sims": n_sims, "n_validation": int(n_val),
                "epochs": len(history["train_loss"]), "settings": settings.to_dict(),
                "redshifts": redshifts, "catalog_objects": len(obs),
                "simulation_seconds": t_sim, "epoch_seconds": history["seconds"],
                "train_loss": history["train_loss"], "val_loss": history["val_loss"]}
    posterior = AmortizedPosterior(
        flow, hyper, model, noise, {"theta_mean": y_mean, "theta_std": y_std,
                                    "cond_mean": c_mean, "cond_std": c_std},
        floor=floor, training=training, emulator_source=_emulator_source(emulator),
        coordinates=coordinates)
    if n_calibration:
        posterior.calibrate(held_out, seed=seed + 3)
        c = posterior.calibration
        _log(f"out-of-support limits (each flags 1/3 of 5% of {len(held_out)} held-out "
             f"simulations): chi2 p-value {c['chi2_pvalue_threshold']:.3g}, one-band residual "
             f"{c.get('band_z_threshold', float('inf')):.3g} sigma, uncertainty z-score "
             f"{c['uncertainty_z_threshold']:.3g}", progress)
    if out is not None:
        posterior.save(out)
        if ckpt and os.path.exists(ckpt):
            os.remove(ckpt)
        _log(f"wrote {out}", progress)
    return posterior
