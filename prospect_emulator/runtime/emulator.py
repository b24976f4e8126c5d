"""The NumPy runtime of a single photometric emulator (paper Sec. 2.2, Fig. 2).

A multilayer perceptron maps named physical parameters to arsinh AB
magnitudes (eq. 2) in named sedpy filters:

    x0 = (theta - mean_in) / std_in                    (normalisation layer)
    x_i = GELU_tanh(x_{i-1} W_i + b_i),  i < L         (eq. 3, eq. 6)
    mu  = (x_{L-1} W_L + b_L) * std_out + mean_out     (linear + denormalisation)

Nothing here imports TensorFlow: this is the code that runs at fit time.
"""
import difflib
import math

import numpy as np

from ..errors import (EmulatorConfigurationError, NonFiniteInputError,
                      OutOfTrainingRangeError)
from .magnitudes import ARSINH_A, ARSINH_MU0, maggies_to_arsinh_mags

__all__ = ["Emulator", "EmulatorBase", "Float32Emulator", "gelu_tanh", "RESIDUAL_STAT_COLUMNS",
           "FLOAT32_MAX_MAG_DIFFERENCE", "float32_mag_difference", "float32_check",
           "FLOAT32_PROVENANCE_DRAWS", "training_range_draws"]

#: Largest |arsinh mag difference| between an emulator's float32 and float64
#: forward passes that counts as "the same" (see :meth:`Emulator.as_float32`).
FLOAT32_MAX_MAG_DIFFERENCE = 1e-4

#: Column names of ``residual_stats`` (arsinh mag): the residual quantiles at
#: -4..+4 sigma of a Gaussian (the 0th column is the 0.003167th percentile),
#: the median, the mean and the standard deviation (the last one is the
#: precision used when fitting, eq. 9).
RESIDUAL_STAT_COLUMNS = ("q_m4sigma", "q_m3sigma", "q_m2sigma", "q_m1sigma", "median",
                         "q_p1sigma", "q_p2sigma", "q_p3sigma", "q_p4sigma", "mean", "std")

#: sqrt(2 / pi), the constant of the tanh approximation of GELU (eq. 6)
GELU_C = np.sqrt(2.0 / np.pi)


def gelu_tanh(z):
    """GELU activation in the tanh approximation (paper eq. 6)."""
    return 0.5 * z * (1.0 + np.tanh(GELU_C * (z + 0.044715 * (z * z * z))))


#: eq. 6's constants as 0-d arrays of each forward-pass dtype: a ufunc with a
#: 0-d array operand of the array's own dtype skips the conversion of a Python
#: float (measured: 0.28 against 0.5 us per operation on 256 values)
_GELU_CONSTANTS = {np.dtype(t): tuple(np.array(v, dtype=t) for v in
                                      (0.044715 * GELU_C, GELU_C, 1.0))
                   for t in (np.float64, np.float32)}


def _twice_gelu_tanh_(z):
    """2 GELU_tanh(z) (eq. 6), computed in place in ``z`` (returned) with one
    temporary: the factor 1/2 lives in the next layer's weights."""
    try:
        cubic, linear, one = _GELU_CONSTANTS[z.dtype]
    except KeyError:
        raise TypeError(f"the forward pass runs in float64 or float32, not {z.dtype}") from None
    # ``out`` positional: ~0.05 us cheaper per call than the keyword, which is
    # a sixth of a ufunc call on 256 values
    t = np.multiply(z, z)
    np.multiply(t, cubic, t)
    np.add(t, linear, t)
    np.multiply(t, z, t)
    np.tanh(t, t)
    np.add(t, one, t)
    np.multiply(z, t, z)
    return z


def _twice_gelu_tanh_and_slope(z):
    """(2 GELU_tanh(z), d[2 GELU_tanh]/dz) of eq. 6, for the chain rule.

    With u = c (z + 0.044715 z^3): 2 GELU = z (1 + tanh u) and its slope is
    (1 + tanh u) + z (1 - tanh^2 u) c (1 + 3 * 0.044715 z^2).
    """
    z2 = z * z
    t = np.tanh(GELU_C * z * (1.0 + 0.044715 * z2))
    one_plus_t = 1.0 + t
    slope = one_plus_t + z * (1.0 - t * t) * (GELU_C * (1.0 + 3.0 * 0.044715 * z2))
    return z * one_plus_t, slope


def closest_names(name, candidates, n=3):
    """Up to ``n`` names of ``candidates`` that look like ``name`` (for error messages)."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.4)
    if not close:  # substring matches catch "f150w" -> "jwst_f150w"
        low = name.lower()
        close = [c for c in candidates if low in c.lower() or c.lower() in low][:n]
    return close


def _as_str_list(names, what):
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        raise EmulatorConfigurationError(f"duplicate {what}: {names}")
    return names


def _shaped(value, shape, what):
    """``value`` as a float64 array of ``shape``, or a clear error naming ``what``."""
    arr = np.array(value, dtype=float)
    try:
        return arr.reshape(shape)
    except ValueError:
        raise EmulatorConfigurationError(f"{what} must have shape {shape}; got shape {arr.shape}") from None


class EmulatorBase:
    """What every emulator offers: named inputs, checks, extra outputs, saving.

    Subclasses set ``param_names``, ``filter_names``, ``extra_names``,
    ``param_ranges``, call :meth:`_set_check_bounds` and implement
    ``predict_mags_and_extras``.
    """

    #: Whether ``residual_sigma_at(x)`` / ``residual_covariance_at(x)`` vary
    #: with the inputs (a stitched emulator's do, across its overlaps).
    residuals_vary_with_inputs = False

    @property
    def n_params(self):
        """Number of input parameters."""
        return len(self.param_names)

    @property
    def n_filters(self):
        """Number of magnitude outputs."""
        return len(self.filter_names)

    def _set_check_bounds(self):
        """Bounds used by :meth:`check_inputs`: the training ranges with
        infinite ends replaced by the largest finite floats, so that the same
        two comparisons also refuse +-inf (and NaN) inputs."""
        big = np.finfo(float).max
        self._lo = np.maximum(self.param_ranges[:, 0], -big)
        self._hi = np.minimum(self.param_ranges[:, 1], big)

    def check_inputs(self, x):
        """Raise a clear error unless every row of ``x`` is finite and inside
        the training ranges.  Returns ``x`` as a float array."""
        x = np.asarray(x, dtype=float)
        if x.shape[-1:] != (self.n_params,) or x.ndim > 2:
            raise EmulatorConfigurationError(
                f"emulator inputs must have shape ({self.n_params},) or (n, {self.n_params}) "
                f"for parameters {self.param_names}; got shape {x.shape}")
        # count_nonzero is several times cheaper than ndarray.all() on the
        # small arrays of a single likelihood call; NaN fails both comparisons.
        if np.count_nonzero(x >= self._lo) + np.count_nonzero(x <= self._hi) != 2 * x.size:
            self._raise_bad_inputs(x)
        return x

    def _raise_bad_inputs(self, x):
        x2 = np.atleast_2d(x)
        bad = ~np.isfinite(x2)
        if bad.any():
            names = sorted({self.param_names[j] for j in np.nonzero(bad)[1]})
            raise NonFiniteInputError(f"non-finite emulator input for {names}")
        out = (x2 < self._lo) | (x2 > self._hi)
        msgs = []
        for j in np.unique(np.nonzero(out)[1]):
            vals = x2[out[:, j], j]
            low, high = self.param_ranges[j]
            msgs.append(f"{self.param_names[j]}={vals[0]:.6g} outside training range "
                        f"[{low:.6g}, {high:.6g}]")
        raise OutOfTrainingRangeError("; ".join(msgs))

    def require_residual_statistics(self, finite, filter_names=None):
        """Refuse to go on if the residual statistics are missing in some bands.

        ``finite`` is a bool array, True where the test-set residual statistics
        (``residual_sigma`` / ``residual_covariance``) are finite, one entry per
        name in ``filter_names`` (default: all of the emulator's filters).
        Without them the emulator's own error (eq. 9) can enter neither a
        likelihood nor a simulation.
        """
        bad = ~np.asarray(finite, dtype=bool)
        if bad.any():
            names = filter_names if filter_names is not None else self.filter_names
            names = [n for n, b in zip(names, bad) if b]
            raise EmulatorConfigurationError(
                f"the emulator has no residual statistics for filters {names} (residual_sigma "
                "is not finite), so its error (eq. 9) cannot enter a likelihood or a "
                "simulation. Evaluate the emulator on a test set (prospect-emulator evaluate) "
                "to store them.")

    def flux_error(self, x, maggies):
        """Eq. 9's emulator term in flux units: sigma_emul / a * sqrt(f^2 + s^2).

        The residual scatter sigma_emul (arsinh mag, :meth:`residual_sigma_at`)
        converted to maggies at fluxes ``maggies`` with the exact derivative of
        eq. 2, s the :meth:`error_softening_flux` at each row.

        Parameters
        ----------
        x : ndarray, shape (n, n_params)
            Emulator inputs.
        maggies : ndarray, shape (n, n_filters)
            Flux densities (maggies) at which the error applies (the model's).

        Returns
        -------
        ndarray, shape (n, n_filters)
            1-sigma emulator error (maggies).
        """
        x = np.atleast_2d(np.asarray(x, dtype=float))
        sigma = np.broadcast_to(self.residual_sigma_at(x), (len(x), self.n_filters))
        self.require_residual_statistics(np.isfinite(sigma).all(axis=0))
        softening = softening_flux_per_row(self, x)
        return sigma / self.a * np.sqrt(maggies ** 2 + softening[:, None] ** 2)

    def predict_extra(self, x, name="mfrac", check=True):
        """One extra output, e.g. ``mfrac``, the surviving stellar mass fraction."""
        if name not in self.extra_names:
            raise EmulatorConfigurationError(
                f"this emulator has no extra output {name!r}; it has {self.extra_names or 'none'}")
        return self.predict_mags_and_extras(x, check=check)[1][..., self.extra_names.index(name)]

    @property
    def checksum(self):
        """SHA-256 hex digest of the emulator's content (names, ranges, network,
        residual statistics, magnitude constants; not the provenance).

        The value stored in and verified against its file (see
        :func:`~prospect_emulator.runtime.fileformat.emulator_checksum`);
        computed for emulators that were never saved and for older files that
        carry none.  Record it with a fit to identify the emulator used.
        """
        from .fileformat import emulator_checksum
        return emulator_checksum(self)

    def save(self, path):
        """Write the native HDF5 format (see :mod:`prospect_emulator.runtime.fileformat`)."""
        from .fileformat import save_emulator
        save_emulator(self, path)

    @classmethod
    def load(cls, path):
        """Read a native file written by :meth:`save`, refusing the other kind."""
        from .fileformat import load_emulator
        emu = load_emulator(path)
        if not isinstance(emu, cls):
            raise EmulatorConfigurationError(
                f"{path} holds a {type(emu).__name__}, not a {cls.__name__}; "
                f"prospect_emulator.load_emulator() reads either")
        return emu


class Emulator(EmulatorBase):
    """A photometric SPS emulator: named parameters in, arsinh magnitudes out.

    Parameters
    ----------
    weights : sequence of ndarray
        Layer weight matrices, shape (n_in, n_out) each, applied as ``x @ W``
        (row-vector convention).  All but the last layer use GELU (eq. 6).
    biases : sequence of ndarray
        Layer bias vectors, shape (n_out,).
    param_names : sequence of str
        Input names in order.  A vector Prospector parameter ``p`` of length
        k appears as ``p_1 ... p_k``.
    filter_names : sequence of str
        sedpy filter names of the magnitude outputs, in output order.
    input_mean, input_std : ndarray, shape (n_network_inputs,)
        Normalisation layer.
    output_mean, output_std : ndarray, shape (n_outputs,)
        Denormalisation layer; ``output_std`` defaults to ones (paper Sec. 2.2).
    param_ranges : ndarray, shape (n_params, 2), optional
        Training range [low, high] of every parameter; defaults to unbounded.
    residual_stats : ndarray, shape (n_filters, 11), optional
        Test-set residual statistics, columns :data:`RESIDUAL_STAT_COLUMNS`
        (arsinh mag).  Defaults to NaN (unknown).
    residual_covariance : ndarray, shape (n_filters, n_filters), optional
        Test-set residual covariance (mag^2); defaults to diag(std^2).
    extra_names : sequence of str, optional
        Names of outputs after the magnitudes, e.g. ``["mfrac"]``.
    extra_transforms : sequence of str, optional
        ``"identity"`` or ``"log10"`` for each extra output: the network
        predicts the value itself or its base-10 logarithm.
    mass_param : str, optional
        If given, the network is *mass-normalised*: it does not see this
        parameter (log10 of the stellar mass formed, Msun) and predicts the
        arsinh magnitudes, with softening ``mass_mu0``, of one solar mass
        formed; the runtime scales the flux by 10**logmass exactly before the
        arsinh softening at ``mu0``.
    mass_mu0 : float
        Softening magnitude of the per-unit-mass outputs.
    mu0, a : float
        Arsinh magnitude system constants (eq. 2).
    provenance : dict, optional
        Free-form JSON-serialisable description of how the emulator was made.
    """

    def __init__(self, weights, biases, param_names, filter_names, input_mean, input_std,
                 output_mean, output_std=None, param_ranges=None, residual_stats=None,
                 residual_covariance=None, extra_names=(), extra_transforms=None,
                 mass_param=None, mass_mu0=None, mu0=ARSINH_MU0, a=ARSINH_A,
                 provenance=None):
        self.weights = [np.array(w, dtype=np.float64) for w in weights]
        self.biases = [np.array(b, dtype=np.float64).reshape(-1) for b in biases]
        if len(self.weights) != len(self.biases) or not self.weights:
            raise EmulatorConfigurationError("need one bias vector per weight matrix, at least one layer")
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if w.ndim != 2 or w.shape[1] != b.size:
                raise EmulatorConfigurationError(
                    f"layer {i}: weight shape {w.shape} does not match bias length {b.size}")
            if i and w.shape[0] != self.weights[i - 1].shape[1]:
                raise EmulatorConfigurationError(
                    f"layer {i}: takes {w.shape[0]} inputs but layer {i-1} gives {self.weights[i-1].shape[1]}")
        self.param_names = _as_str_list(param_names, "parameter names")
        self.filter_names = _as_str_list(filter_names, "filter names")
        self.extra_names = _as_str_list(extra_names, "extra output names")
        self.extra_transforms = list(extra_transforms or ["identity"] * len(self.extra_names))
        if len(self.extra_transforms) != len(self.extra_names) or \
                any(t not in ("identity", "log10") for t in self.extra_transforms):
            raise EmulatorConfigurationError(
                f"extra_transforms must be 'identity' or 'log10', one per extra output; got {self.extra_transforms}")
        self.mass_param = mass_param
        self.mass_mu0 = float(mass_mu0) if mass_mu0 is not None else None
        if mass_param is not None and (mass_param not in self.param_names or mass_mu0 is None):
            raise EmulatorConfigurationError(
                f"mass_param {mass_param!r} must be one of the parameters {self.param_names} and needs mass_mu0")
        self.mu0, self.a = float(mu0), float(a)

        n_net_in = self.n_params - (mass_param is not None)
        n_out = self.n_filters + len(self.extra_names)
        if self.weights[0].shape[0] != n_net_in:
            raise EmulatorConfigurationError(
                f"first layer takes {self.weights[0].shape[0]} inputs, expected {n_net_in} for parameters {self.param_names}")
        if self.weights[-1].shape[1] != n_out:
            raise EmulatorConfigurationError(
                f"last layer gives {self.weights[-1].shape[1]} outputs, expected {n_out} "
                f"({self.n_filters} filters + {len(self.extra_names)} extra outputs)")
        self.input_mean = _shaped(input_mean, (n_net_in,), "input_mean")
        self.input_std = _shaped(input_std, (n_net_in,), "input_std")
        if not (np.isfinite(self.input_std).all() and (self.input_std != 0).all()):
            raise EmulatorConfigurationError(
                f"input_std must be finite and non-zero (it divides the inputs); got {self.input_std}")
        self.output_mean = _shaped(output_mean, (n_out,), "output_mean")
        self.output_std = (np.ones(n_out) if output_std is None
                           else _shaped(output_std, (n_out,), "output_std"))

        if param_ranges is None:
            param_ranges = np.tile([-np.inf, np.inf], (self.n_params, 1))
        self.param_ranges = _shaped(param_ranges, (self.n_params, 2), "param_ranges")
        if residual_stats is None:
            residual_stats = np.full((self.n_filters, 11), np.nan)
        self.residual_stats = _shaped(residual_stats, (self.n_filters, 11), "residual_stats")
        if residual_covariance is None:
            residual_covariance = np.diag(self.residual_stats[:, -1] ** 2)
        self.residual_covariance = _shaped(residual_covariance, (self.n_filters, self.n_filters),
                                           "residual_covariance")
        self.provenance = dict(provenance or {})
        self._compile()

    # ------------------------------------------------------------------ set-up
    def _compile(self):
        """Fold everything linear into the weights, so that a prediction is the
        bare chain of matrix products and the fewest element-wise operations.

        * The (de)normalisation layers go into the first and last layers.
        * A mass-normalised emulator's first layer gets a zero row for the
          mass column, so the pass starts from the parameter vector as given.
        * The factor 1/2 of every GELU (eq. 6) goes into the next layer's
          weights (exact: a power of two), see :func:`_twice_gelu_tanh_`.
        * The magnitude outputs become ``z = (mu0 - mag) / a``, the argument
          of sinh in the inverse of eq. 2, so that maggies are
          ``2 exp(-mu0 / a) sinh(z)`` (``mass_mu0`` and times the mass for a
          mass-normalised emulator) without a detour through magnitudes.
        """
        w0 = self.weights[0] / self.input_std[:, None]
        b0 = self.biases[0] - (self.input_mean / self.input_std) @ self.weights[0]
        if self.mass_param is not None:
            # the network does not see the mass: a zero row for its column, so
            # that the pass takes the full parameter vector without indexing
            self._mass_index = self.param_names.index(self.mass_param)
            w0 = np.insert(w0, self._mass_index, 0.0, axis=0)
        ws, bs = [w0] + [0.5 * w for w in self.weights[1:]], [b0] + self.biases[1:]
        ws[-1] = ws[-1] * self.output_std[None, :]
        bs[-1] = bs[-1] * self.output_std + self.output_mean
        nf = self.n_filters
        net_mu0 = self.mu0 if self.mass_param is None else self.mass_mu0
        ws[-1][:, :nf] *= -1.0 / self.a
        bs[-1][:nf] = (net_mu0 - bs[-1][:nf]) / self.a
        #: maggies per unit sinh(z) (per solar mass for a mass-normalised emulator)
        self._flux_scale = 2.0 * math.exp(-net_mu0 / self.a)
        self._hidden = list(zip(ws[:-1], bs[:-1]))
        self._w_out, self._b_out = ws[-1], bs[-1]
        self._set_check_bounds()
        self._nf = nf
        self._extras_all_log10 = bool(self.extra_names) and all(
            t == "log10" for t in self.extra_transforms)

    def compiled_network(self):
        """The compiled forward pass as arrays, for a re-implementation in
        another array library (the JAX likelihood); see :meth:`_compile`.

        Returns
        -------
        dict
            ``hidden``: list of (weights (n_in, width), biases) whose
            activation is 2 GELU_tanh (eq. 6; the first layer takes the full
            input vector, a zero row for the mass); ``w_out``, ``b_out``: the
            output layer, giving ``z`` of the magnitudes then the extra outputs;
            ``flux_scale``: maggies per unit ``sinh(z)`` (per solar mass for a
            mass-normalised emulator); ``mass_index``: the input column of
            ``10**logmass`` or None; ``lower``, ``upper``: the training range
            checked by :meth:`check_inputs`.  Read-only views, in the
            pass's dtype (float32 for :meth:`as_float32` emulators).
        """
        def read_only(a):
            view = a.view()
            view.flags.writeable = False
            return view

        return {"hidden": [(read_only(w), read_only(b)) for w, b in self._hidden],
                "w_out": read_only(self._w_out), "b_out": read_only(self._b_out),
                "flux_scale": self._flux_scale,
                "mass_index": None if self.mass_param is None else self._mass_index,
                "lower": read_only(self._lo), "upper": read_only(self._hi)}

    # -------------------------------------------------------------- properties
    @property
    def width(self):
        """Nodes per hidden layer (of the first hidden layer)."""
        return self.weights[0].shape[1]

    @property
    def residual_sigma(self):
        """Per-filter standard deviation of the test residuals (arsinh mag)."""
        return self.residual_stats[:, -1]

    # -------------------------------------------------------------- prediction
    def _network(self, x):
        """Network outputs, shape (..., n_filters + n_extra): ``z`` of the
        magnitudes (see :meth:`_compile`), then the extra outputs; float64.

        The pass runs in the weights' dtype (:attr:`precision`).  ``ndarray.dot``
        rather than ``matmul``: the same product for the 1-d and 2-d inputs
        allowed here, ~0.4 us cheaper per layer in a single call.
        """
        h = np.asarray(x, dtype=self._dtype)
        for w, b in self._hidden:
            z = h.dot(w)
            np.add(z, b, z)
            h = _twice_gelu_tanh_(z)
        out = h.dot(self._w_out)
        np.add(out, self._b_out, out)
        return out.astype(np.float64, copy=False)

    def _mags_from_raw(self, x, raw):
        if self.mass_param is None:
            return self.mu0 - self.a * raw[..., :self._nf]
        return maggies_to_arsinh_mags(self._maggies_from_raw(x, raw), self.mu0, self.a)

    def _maggies_from_raw(self, x, raw):
        maggies = np.sinh(raw[..., :self._nf])
        if self.mass_param is None:
            maggies *= self._flux_scale
            return maggies
        # unit-mass flux times the mass, with no detour through the output magnitudes
        logm = x[..., self._mass_index]
        if x.ndim == 1:
            maggies *= self._flux_scale * 10.0 ** float(logm)
        else:
            maggies *= self._flux_scale * 10.0 ** logm[:, None]
        return maggies

    def _extras_from_raw(self, raw):
        if self._extras_all_log10:  # the usual case (mfrac): one operation
            return 10.0 ** raw[..., self._nf:]
        extras = raw[..., self._nf:].copy()
        for k, t in enumerate(self.extra_transforms):
            if t == "log10":
                extras[..., k] = 10.0 ** extras[..., k]
        return extras

    def predict_mags(self, x, check=True):
        """Arsinh AB magnitudes of every filter.

        Parameters
        ----------
        x : array_like, shape (n_params,) or (n, n_params)
            Parameters in the order of :attr:`param_names`.
        check : bool
            Refuse NaN and out-of-training-range inputs
            (:class:`~prospect_emulator.errors.NonFiniteInputError`,
            :class:`~prospect_emulator.errors.OutOfTrainingRangeError`).

        Returns
        -------
        ndarray, shape (n_filters,) or (n, n_filters)
            Arsinh magnitudes (eq. 2) in the order of :attr:`filter_names`.
        """
        x = self.check_inputs(x) if check else np.asarray(x, dtype=float)
        return self._mags_from_raw(x, self._network(x))

    def predict_maggies(self, x, check=True):
        """Flux densities in maggies of every filter; see :meth:`predict_mags`."""
        x = self.check_inputs(x) if check else np.asarray(x, dtype=float)
        return self._maggies_from_raw(x, self._network(x))

    def predict_maggies_and_extras(self, x, check=True):
        """Flux densities (maggies) and the extra outputs from one forward pass;
        see :meth:`predict_mags_and_extras`."""
        x = self.check_inputs(x) if check else np.asarray(x, dtype=float)
        raw = self._network(x)
        return self._maggies_from_raw(x, raw), self._extras_from_raw(raw)

    def predict_mags_and_extras(self, x, check=True):
        """Magnitudes and the extra outputs (e.g. ``mfrac``) from one forward pass.

        Returns
        -------
        mags : ndarray, shape (..., n_filters)
        extras : ndarray, shape (..., n_extra)
            In the order of :attr:`extra_names`, transformed back to their
            physical values.
        """
        x = self.check_inputs(x) if check else np.asarray(x, dtype=float)
        raw = self._network(x)
        return self._mags_from_raw(x, raw), self._extras_from_raw(raw)

    def predict_maggies_and_jacobian(self, x, check=True):
        """Flux densities and their derivatives with respect to the inputs.

        The analytic Jacobian of the network (forward-mode chain rule through
        the GELU_tanh layers, eq. 6), including the folded input
        normalisation, the ``sinh`` of the inverse of eq. 2 and, for a
        mass-normalised emulator, the factor 10**logmass
        (d maggies / d logmass = ln(10) maggies).

        Parameters
        ----------
        x : array_like, shape (n_params,) or (n, n_params)
            Inputs in the order of :attr:`param_names`.
        check : bool
            Refuse NaN and out-of-training-range inputs, as :meth:`predict_mags`.

        Returns
        -------
        maggies : ndarray, shape (n_filters,) or (n, n_filters)
            Flux densities (maggies), as :meth:`predict_maggies`.
        jacobian : ndarray, shape (n_filters, n_params) or (n, n_filters, n_params)
            d maggies_i / d x_j (maggies per unit of input j).
        """
        x = self.check_inputs(x) if check else np.asarray(x, dtype=float)
        x2 = np.atleast_2d(x)
        h = x2.astype(self._dtype, copy=False)
        dh = None  # d h / d x: (n, n_params, width)
        for w, b in self._hidden:
            h, slope = _twice_gelu_tanh_and_slope(h @ w + b)
            dh = (w[None, :, :] if dh is None else dh @ w) * slope[:, None, :]
        raw = (h @ self._w_out + self._b_out).astype(float)
        draw = (np.broadcast_to(self._w_out, (len(x2),) + self._w_out.shape) if dh is None
                else dh @ self._w_out)[:, :, :self._nf].astype(float)
        z = raw[:, :self._nf]
        scale = self._flux_scale
        if self.mass_param is not None:
            scale = scale * 10.0 ** x2[:, self._mass_index][:, None]
        maggies = scale * np.sinh(z)
        jac = np.ascontiguousarray(np.swapaxes(draw * (scale * np.cosh(z))[:, None, :], 1, 2))
        if self.mass_param is not None:  # the network's own mass derivative is 0 (_compile)
            jac[:, :, self._mass_index] = math.log(10.0) * maggies
        if x.ndim == 1:
            return maggies[0], jac[0]
        return maggies, jac

    # ------------------------------------------------------------ conversion
    #: NumPy dtype of the compiled weights and of the forward pass.
    _dtype = np.float64

    @property
    def precision(self):
        """``"float64"``, or ``"float32"`` for :meth:`as_float32` emulators."""
        return np.dtype(self._dtype).name

    def as_float32(self):
        """This emulator with a float32 forward pass (same file, same names).

        The compiled weights (normalisation folded in) and the hidden-layer
        arithmetic are float32; the inputs are cast to float32 before the
        first layer and the output layer is cast back to float64 before the
        ``sinh`` of eq. 2, so magnitudes, maggies and the mass scaling are
        float64 as before.  About 2x faster in batches.  Its outputs differ
        from float64 by a few 1e-6 to 1e-5 arsinh mag for the shipped
        emulators (tested below :data:`FLOAT32_MAX_MAG_DIFFERENCE` = 1e-4 mag
        over 10^5 draws); check :func:`float32_mag_difference` for another
        emulator before trusting it.  Saving it writes the original float64
        weights.

        Returns
        -------
        Float32Emulator
        """
        return Float32Emulator(self)

    def as_float64(self):
        """This emulator itself (already float64)."""
        return self

    def select(self, filter_names):
        """An emulator whose outputs are exactly ``filter_names``, in that order.

        Raises
        ------
        EmulatorConfigurationError
            Naming each unknown filter and the closest available names.
        """
        idx = self.filter_indices(filter_names)
        out_idx = np.concatenate([idx, self.n_filters + np.arange(len(self.extra_names))]).astype(int)
        return Emulator(
            self.weights[:-1] + [self.weights[-1][:, out_idx]],
            self.biases[:-1] + [self.biases[-1][out_idx]],
            self.param_names, [self.filter_names[i] for i in idx],
            self.input_mean, self.input_std, self.output_mean[out_idx], self.output_std[out_idx],
            param_ranges=self.param_ranges, residual_stats=self.residual_stats[idx],
            residual_covariance=self.residual_covariance[np.ix_(idx, idx)],
            extra_names=self.extra_names, extra_transforms=self.extra_transforms,
            mass_param=self.mass_param, mass_mu0=self.mass_mu0, mu0=self.mu0, a=self.a,
            provenance=self.provenance)

    def filter_indices(self, filter_names):
        """Output indices of ``filter_names``; a clear error for unknown names."""
        lookup = {n: i for i, n in enumerate(self.filter_names)}
        missing = [n for n in filter_names if n not in lookup]
        if missing:
            hints = "; ".join(f"{n!r} (closest: {closest_names(n, self.filter_names) or 'none'})"
                              for n in missing)
            raise EmulatorConfigurationError(
                f"emulator has no filter {hints}. It has {self.n_filters} filters: "
                f"{', '.join(self.filter_names)}")
        return np.array([lookup[n] for n in filter_names], dtype=int)

    def residual_sigma_at(self, x):
        """Residual standard deviation (arsinh mag) that applies at inputs ``x``:
        the same everywhere for a single emulator."""
        return self.residual_sigma

    def residual_covariance_at(self, x):
        """Residual covariance (mag^2) that applies at inputs ``x``."""
        return self.residual_covariance

    def error_softening_flux(self, x):
        """Flux density (maggies) below which the emulator's error stops being
        a fixed fraction of the flux, at inputs ``x`` of shape (n_params,).

        The network's residual scatter sigma (mag) is an error in arsinh
        magnitudes, so the flux error is ``sigma / a * sqrt(f**2 + s**2)``
        with ``s = 2 exp(-mu0 / a)`` (the exact derivative of eq. 2).  A
        mass-normalised emulator's network works in the arsinh magnitudes of
        one solar mass (softening ``mass_mu0``), so for it ``s = 2
        exp(-mass_mu0 / a) 10**logmass``: its error stays fractional down to
        fluxes far below 10**(-0.4 mu0).
        """
        if self.mass_param is None:
            return self._flux_scale
        return self._flux_scale * 10.0 ** float(x[self._mass_index])

    # ------------------------------------------------------------------- I/O
    @classmethod
    def from_parrot(cls, path, param_names=None):
        """Read a published Mathews et al. (2023) "Parrot" v4 ``.npy`` emulator.

        Such files are pickled.  They are read with a restricted unpickler
        that builds only NumPy arrays, dicts, lists, tuples, strings and
        numbers: a file whose pickle would call anything else is refused with
        an :class:`~prospect_emulator.errors.EmulatorFileError` naming that
        callable, before it runs (see :mod:`~prospect_emulator.runtime.parrot`).
        """
        from .parrot import read_parrot
        return read_parrot(path, param_names=param_names)

    def __repr__(self):
        depth = len(self.weights)
        if self._dtype is not np.float64:
            return (f"<Emulator ({self.precision}): {self.n_params} parameters -> "
                    f"{self.n_filters} filters, {depth} layers, width {self.width}>")
        return (f"<Emulator: {self.n_params} parameters -> {self.n_filters} filters"
                f"{' + ' + ','.join(self.extra_names) if self.extra_names else ''}, "
                f"{depth} layers, width {self.width}>")


class Float32Emulator(Emulator):
    """An :class:`Emulator` whose forward pass runs in float32; see
    :meth:`Emulator.as_float32`.

    Shares the float64 weights, names, ranges and residual statistics of the
    emulator it was made from (so it saves as that emulator).
    :meth:`select` returns a Float32Emulator too, so an
    ``EmulatedSpecModel`` restricted to its obs filters stays float32.

    Parameters
    ----------
    emulator : Emulator
        A float64 emulator.
    """

    _dtype = np.float32

    def __init__(self, emulator):
        if not isinstance(emulator, Emulator):
            raise EmulatorConfigurationError(
                f"Float32Emulator needs an Emulator; got {type(emulator).__name__}")
        self.__dict__.update(emulator.__dict__)
        self._float64 = emulator.as_float64()
        self._hidden = [(w.astype(np.float32), b.astype(np.float32)) for w, b in self._hidden]
        self._w_out = self._w_out.astype(np.float32)
        self._b_out = self._b_out.astype(np.float32)

    def as_float32(self):
        """This emulator itself (already float32)."""
        return self

    def as_float64(self):
        """The float64 emulator it was made from."""
        return self._float64

    def select(self, filter_names):
        """:meth:`Emulator.select`, staying float32."""
        return self._float64.select(filter_names).as_float32()


def float32_mag_difference(emulator, x):
    """Largest |arsinh mag difference| between the float32 and float64
    forward passes of ``emulator`` at the inputs ``x``.

    Parameters
    ----------
    emulator : Emulator
    x : ndarray, shape (n, n_params)
        Inputs inside the training ranges.

    Returns
    -------
    float
        max over rows and filters of |mag_float32 - mag_float64| (arsinh mag).
    """
    emu64 = emulator.as_float64()
    mags64 = emu64.predict_mags(x)
    mags32 = emu64.as_float32().predict_mags(x)
    return float(np.max(np.abs(mags32 - mags64)))


def softening_flux_per_row(emulator, x):
    """Per-row :meth:`Emulator.error_softening_flux` (maggies) for inputs x of shape
    (n, n_params), in one pass (a stitched emulator: the largest of its members')."""
    members = getattr(emulator, "members", None)
    if members is not None:
        return np.max([softening_flux_per_row(m, x) for m in members], axis=0)
    if emulator.mass_param is None:
        return np.full(len(x), emulator.error_softening_flux(x[0]))
    return emulator._flux_scale * 10.0 ** x[:, emulator._mass_index]


def training_range_draws(emulator, n, rng):
    """``n`` input vectors (n, n_params) drawn uniformly in an emulator's
    (finite) training ranges with the generator ``rng``."""
    lo, hi = np.asarray(emulator.param_ranges, dtype=float).T
    return rng.uniform(lo, hi, (int(n), len(lo)))


#: Draws of the float32 check recorded in every trained emulator's provenance.
FLOAT32_PROVENANCE_DRAWS = 100_000


def float32_check(emulator, n_draws=FLOAT32_PROVENANCE_DRAWS, seed=0, chunk=10_000):
    """How far an emulator's float32 forward pass is from its float64 pass,
    over inputs drawn uniformly in its training ranges.

    Parameters
    ----------
    emulator : Emulator
        A single emulator with finite training ranges.
    n_draws : int
        Number of input vectors (>= 1).
    seed : int
    chunk : int
        Rows per forward pass (bounds the memory).

    Returns
    -------
    dict
        ``max_mag_difference`` (largest |arsinh mag| difference over draws and
        filters), ``n_draws``, ``draws``, ``allowed``
        (:data:`FLOAT32_MAX_MAG_DIFFERENCE`) and ``within`` (whether
        :meth:`Emulator.as_float32` may stand in for the float64 pass).

    Raises
    ------
    EmulatorConfigurationError
        Not a single emulator, non-finite training ranges, or ``n_draws < 1``.
    """
    if not isinstance(emulator, Emulator):
        raise EmulatorConfigurationError(
            f"the float32 check runs on a single Emulator (check each member of a stitched "
            f"emulator); got {type(emulator).__name__}")
    n_draws = int(n_draws)
    if n_draws < 1:
        raise EmulatorConfigurationError(f"n_draws must be >= 1, got {n_draws}")
    ranges = np.asarray(emulator.param_ranges, dtype=float)
    if not np.isfinite(ranges).all():
        bad = [p for p, r in zip(emulator.param_names, ranges) if not np.isfinite(r).all()]
        raise EmulatorConfigurationError(
            f"the float32 check draws inputs in the training ranges; {bad} have none")
    rng = np.random.default_rng(seed)
    worst = 0.0
    for start in range(0, n_draws, int(chunk)):
        x = training_range_draws(emulator, min(int(chunk), n_draws - start), rng)
        worst = max(worst, float32_mag_difference(emulator, x))
    return {"max_mag_difference": worst, "n_draws": n_draws,
            "draws": "uniform in the training ranges", "allowed": FLOAT32_MAX_MAG_DIFFERENCE,
            "within": bool(worst <= FLOAT32_MAX_MAG_DIFFERENCE)}
