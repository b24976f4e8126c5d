"""The paper's emulator network in Keras 3 (Mathews et al. 2023, Sec. 2.2, Fig. 2).

::

    theta -> (theta - input_mean) / input_std          normalisation layer
          -> 5 x Dense(N, GELU tanh approximation)     eq. 3, eq. 6
          -> Dense(n_outputs, linear)
          -> + output_mean                             denormalisation, std fixed to 1

The output standard deviation is fixed to one so that every filter (in arsinh
mag) weighs the same in the RMSE loss.  Importing this module imports
TensorFlow/Keras: only training code does that, never the fit-time runtime.
"""
import numpy as np

import keras
from keras import ops

__all__ = ["build_network", "gelu_tanh", "rmse_loss", "weighted_rmse_loss", "Standardise", "AddOffset",
           "dense_layers", "N_HIDDEN"]

#: Hidden layers of the paper's network (L = 6 layers in all, Sec. 2.2).
N_HIDDEN = 5


@keras.saving.register_keras_serializable(package="prospect_emulator")
def gelu_tanh(x):
    """GELU in the tanh approximation (paper eq. 6); the same function as
    :func:`prospect_emulator.runtime.emulator.gelu_tanh` at fit time."""
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="prospect_emulator")
def rmse_loss(y_true, y_pred):
    """Root mean square error over a batch and all outputs (paper Sec. 2.2,
    footnote 11: RMSE, not MSE).  In the units of the outputs (arsinh mag)."""
    return ops.sqrt(ops.mean(ops.square(y_pred - y_true)))


def weighted_rmse_loss(output_scales):
    """RMSE loss in which output k counts as ``output_scales[k]`` times its
    value: ``sqrt(mean_k (s_k (y_pred - y_true))^2)``.

    With all scales 1 this is :func:`rmse_loss`.  Training uses scale 1 for
    every filter (each filter weighs the same, Sec. 2.2) and 2.5 for
    log10(mfrac), i.e. the mass fraction counts as the magnitude
    -2.5 log10(mfrac).
    """
    scales = np.asarray(output_scales, dtype="float32").reshape(-1)
    if np.all(scales == 1.0):
        return rmse_loss

    def loss(y_true, y_pred):
        return ops.sqrt(ops.mean(ops.square((y_pred - y_true) * scales)))
    return loss


@keras.saving.register_keras_serializable(package="prospect_emulator")
class Standardise(keras.layers.Layer):
    """Normalisation layer: ``(x - mean) / std`` with fixed, precomputed constants."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self._mean_init = np.asarray(mean, dtype="float32").reshape(-1)
        self._std_init = np.asarray(std, dtype="float32").reshape(-1)

    def build(self, input_shape):
        self.mean = self.add_weight(shape=self._mean_init.shape, trainable=False, name="mean",
                                    initializer=keras.initializers.Constant(self._mean_init))
        self.std = self.add_weight(shape=self._std_init.shape, trainable=False, name="std",
                                   initializer=keras.initializers.Constant(self._std_init))

    def call(self, x):
        return (x - self.mean) / self.std

    def get_config(self):
        return {**super().get_config(), "mean": self._mean_init.tolist(),
                "std": self._std_init.tolist()}


@keras.saving.register_keras_serializable(package="prospect_emulator")
class AddOffset(keras.layers.Layer):
    """Denormalisation layer with the output standard deviation fixed to one:
    adds the precomputed training-set mean of every output (paper Fig. 2)."""

    def __init__(self, offset, **kwargs):
        super().__init__(**kwargs)
        self._offset_init = np.asarray(offset, dtype="float32").reshape(-1)

    def build(self, input_shape):
        self.offset = self.add_weight(shape=self._offset_init.shape, trainable=False,
                                      name="offset",
                                      initializer=keras.initializers.Constant(self._offset_init))

    def call(self, x):
        return x + self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self._offset_init.tolist()}


def build_network(width, input_mean, input_std, output_mean, n_hidden=N_HIDDEN, seed=None):
    """The emulator network of Sec. 2.2 as a Keras model.

    Parameters
    ----------
    width : int
        Nodes per hidden layer, N (the paper uses 32 ... 1024).
    input_mean, input_std : array_like, shape (n_inputs,)
        Normalisation constants (training-set mean and standard deviation of
        each network input, in the input's own units).
    output_mean : array_like, shape (n_outputs,)
        Training-set mean of each output (arsinh mag, or dex for log10 extras).
    n_hidden : int
        Number of hidden GELU layers (5 in the paper).
    seed : int, optional
        Seed of the weight initialisers (Glorot uniform, zero biases).

    Returns
    -------
    keras.Model
        Maps (batch, n_inputs) float32 to (batch, n_outputs) float32.
    """
    width = int(width)
    if width <= 0:
        raise ValueError(f"width must be a positive number of nodes, got {width}")
    input_mean = np.asarray(input_mean, dtype=float).reshape(-1)
    input_std = np.asarray(input_std, dtype=float).reshape(-1)
    output_mean = np.asarray(output_mean, dtype=float).reshape(-1)
    inputs = keras.Input(shape=(input_mean.size,), name="parameters")
    h = Standardise(input_mean, input_std, name="normalise")(inputs)
    for i in range(n_hidden):
        init = keras.initializers.GlorotUniform(seed=None if seed is None else int(seed) + i)
        h = keras.layers.Dense(width, activation=gelu_tanh, kernel_initializer=init,
                               name=f"hidden_{i + 1}")(h)
    init = keras.initializers.GlorotUniform(seed=None if seed is None else int(seed) + n_hidden)
    h = keras.layers.Dense(output_mean.size, activation=None, kernel_initializer=init,
                           name="linear_output")(h)
    outputs = AddOffset(output_mean, name="denormalise")(h)
    return keras.Model(inputs, outputs, name=f"emulator_w{width}")


def dense_layers(model):
    """The Dense layers of ``model`` in order (hidden layers, then the output)."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
