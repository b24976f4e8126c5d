"""Turn a trained Keras network into the native NumPy :class:`~prospect_emulator.Emulator`.

Keras ``Dense`` kernels have shape (n_in, n_out) and act as ``x @ W + b``,
the runtime's convention, so they are copied as they are (in float64).
"""
import numpy as np

from ..runtime.emulator import Emulator
from .train import MFRAC_TRANSFORM

__all__ = ["export_emulator", "keras_network_outputs"]


def export_emulator(model, param_names, filter_names, param_ranges, *, mass_param=None,
                    mass_mu0=None, mu0=35.0, a=None, residual_stats=None,
                    residual_covariance=None, provenance=None, extra_names=("mfrac",)):
    """Build the NumPy emulator of a network made by
    :func:`~prospect_emulator.training.network.build_network`.

    Parameters
    ----------
    model : keras.Model
    param_names : list of str
        All emulator inputs in order, including ``mass_param`` if the network
        is mass-normalised (the network then sees the others, in order).
    filter_names : list of str
        sedpy names of the magnitude outputs, in output order.
    param_ranges : ndarray, shape (n_params, 2)
        Training ranges; the emulator refuses inputs outside them.
    mass_param, mass_mu0 : str, float, optional
        Mass normalisation (see :class:`~prospect_emulator.Emulator`).
    mu0, a : float
        Arsinh magnitude constants of the outputs (eq. 2).
    residual_stats, residual_covariance : ndarray, optional
        Test-set statistics (arsinh mag, mag^2).
    provenance : dict, optional
    extra_names : sequence of str
        Outputs after the magnitudes; each emulated as its log10.

    Returns
    -------
    Emulator
    """
    from .network import AddOffset, Standardise, dense_layers

    norm = next(layer for layer in model.layers if isinstance(layer, Standardise))
    denorm = next(layer for layer in model.layers if isinstance(layer, AddOffset))
    layers = dense_layers(model)
    kwargs = {} if a is None else {"a": a}
    return Emulator(
        [np.asarray(layer.kernel.numpy(), dtype=np.float64) for layer in layers],
        [np.asarray(layer.bias.numpy(), dtype=np.float64) for layer in layers],
        list(param_names), list(filter_names),
        input_mean=norm.mean.numpy().astype(np.float64),
        input_std=norm.std.numpy().astype(np.float64),
        output_mean=denorm.offset.numpy().astype(np.float64),
        output_std=np.ones(denorm.offset.shape[0]),
        param_ranges=param_ranges, residual_stats=residual_stats,
        residual_covariance=residual_covariance, extra_names=list(extra_names),
        extra_transforms=[MFRAC_TRANSFORM] * len(extra_names),
        mass_param=mass_param, mass_mu0=mass_mu0, mu0=mu0, provenance=provenance, **kwargs)


def keras_network_outputs(model, network_inputs):
    """Raw outputs of the Keras network (float32 arithmetic) for the inputs it
    sees, shape (n, n_filters + n_extra): arsinh mags (per unit mass formed if
    mass-normalised) followed by log10 of each extra output."""
    x = np.asarray(network_inputs, dtype=np.float32)
    return np.asarray(model.predict_on_batch(x), dtype=np.float64)
