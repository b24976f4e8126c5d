"""Amortized posteriors: neural posterior estimation on emulator simulations.

A normalizing flow (flowjax, JAX) trained on galaxies simulated from a
Prospector model's prior through the emulator gives a whole catalogue's
posteriors with no further model evaluations (SEDflow, Hahn & Melchior 2022).
Needs the ``amortized`` extra (jax, flowjax, optax).  The exact-fitting path
(:mod:`prospect_emulator.prospector`, :mod:`prospect_emulator.fitting`) never
imports this package; importing it does not import JAX either -- that
happens when a flow is built, trained, loaded or sampled.

Public names::

    train_amortized_posterior, TrainingSettings        # train.py
    AmortizedPosterior, AmortizedSamples, Observations, AmortizedInputError
    fit_catalog_amortized, read_catalog_arrays          # catalog.py
    simulate, ObservationalNoiseModel, ParameterSpace   # simulate.py
"""
from .catalog import derived_samples, fit_catalog_amortized, read_catalog_arrays
from .posterior import AmortizedInputError, AmortizedPosterior, AmortizedSamples, Observations
from .simulate import ObservationalNoiseModel, ParameterSpace, Simulations, simulate


def __getattr__(name):
    if name in ("train_amortized_posterior", "TrainingSettings"):
        from . import train
        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["train_amortized_posterior", "TrainingSettings", "AmortizedPosterior",
           "AmortizedSamples", "Observations", "AmortizedInputError", "fit_catalog_amortized",
           "read_catalog_arrays", "derived_samples", "simulate", "ObservationalNoiseModel",
           "ParameterSpace", "Simulations"]
