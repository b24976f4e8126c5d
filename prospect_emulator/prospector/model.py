"""A Prospector ``SpecModel`` whose stellar population synthesis is an emulator.

:class:`EmulatedSpecModel` is a drop-in replacement for
``prospect.models.SpecModel`` in a photometric fit: ``prospect.fitting.lnprobfn``,
``fit_model`` and ``prospect.io.write_results`` work unchanged with
``sps=None``::

    model = EmulatedSpecModel(model_params, emulator="emulator.h5")
    noise = (None, EmulatorNoiseModel(model))
    output = fit_model(obs, model, None, noise=noise, dynesty=True)

Emulator inputs are read *by name* from ``model.params`` after
``set_parameters``, so they may be free, fixed (e.g. a per-object redshift) or
computed through ``depends_on`` (e.g. Prospector-alpha transforms).  A vector
parameter ``p`` of length k feeds the inputs ``p_1 ... p_k``.

Errors and ``lnprobfn``
-----------------------
``prospect.fitting.lnprobfn`` turns a ``ValueError`` raised in ``predict`` into
``ln p = -inf``.  Only a proposal outside the emulator's training range takes
that route (:class:`~prospect_emulator.errors.OutOfTrainingRangeError`).  An
unknown filter, a missing input parameter, NaN inputs, a requested spectrum or
a *fixed* parameter outside the training range raise errors that are not
``ValueError`` and so reach the user through ``lnprobfn`` and ``fit_model``.
"""
import os
import threading
import warnings

import numpy as np
from prospect.models import SpecModel

from ..definition.fitting_model import LOG_INPUT_PREFIX
from ..errors import EmulatorConfigurationError, OutOfTrainingRangeError
from ..runtime.emulator import EmulatorBase
from ..runtime.fileformat import load_emulator
from ..runtime.magnitudes import maggies_to_arsinh_mags
from ..sources.spec_model import set_eline_info
from ..priors import FastPriorsMixin
from ..transforms import FastParametersMixin

__all__ = ["EmulatedSpecModel", "TrainingRangeWarning", "PhysicsNotCheckedWarning",
           "filter_names_of", "last_predicting_model"]

#: The EmulatedSpecModel that predicted last in this thread: an
#: EmulatorNoiseModel made without a model (a parameter file's build_noise)
#: binds to it, since Prospector's lnprobfn always predicts right before the
#: likelihood.
_LAST_PREDICTION = threading.local()


def last_predicting_model():
    """The :class:`EmulatedSpecModel` that predicted last in this thread, or None."""
    return getattr(_LAST_PREDICTION, "model", None)

#: Returned as the "spectrum" of a photometric emulator (read-only, empty).
_NO_SPECTRUM = np.zeros(0)
_NO_SPECTRUM.flags.writeable = False


class TrainingRangeWarning(UserWarning):
    """A prior (or a fixed value) reaches outside the emulator's training range."""


class PhysicsNotCheckedWarning(UserWarning):
    """The emulator records no model definition, so the model's fixed physics
    cannot be compared with what it was trained with."""


def filter_names_of(filters):
    """sedpy filter names of ``obs["filters"]``, in order.

    Parameters
    ----------
    filters : sequence of sedpy.observate.Filter or str, or sedpy FilterSet

    Returns
    -------
    tuple of str
    """
    if filters is None:
        return ()
    names = getattr(filters, "filternames", None)
    if names is not None:
        return tuple(str(n) for n in names)
    out = []
    for f in filters:
        if isinstance(f, str):
            out.append(f)
        elif hasattr(f, "name"):
            out.append(str(f.name))
        else:
            raise EmulatorConfigurationError(
                f"obs['filters'] must hold sedpy Filter objects or filter names; got {f!r}")
    return tuple(out)


def _filters_fingerprint(filters):
    """Cheap per-call key of ``obs["filters"]``: the filter objects (or names)
    themselves, so a list changed in place is noticed."""
    names = getattr(filters, "filternames", None)
    return tuple(names) if names is not None else tuple(filters)


def _as_emulator(emulator, model_params=None):
    if isinstance(emulator, EmulatorBase):
        return emulator
    if emulator is None or (isinstance(emulator, str) and emulator in _shipped_names()):
        from ..data import default_emulator
        return default_emulator(emulator, model=model_params)
    if isinstance(emulator, (str, os.PathLike)):
        return load_emulator(emulator)
    raise EmulatorConfigurationError(
        "emulator= must be the path of a native emulator file, an Emulator or a "
        f"StitchedEmulator; got {type(emulator).__name__}")


def _shipped_names():
    from ..data import SHIPPED_EMULATORS
    return SHIPPED_EMULATORS


def _luminosity_distance_mpc(zred):
    """d_L(zred) in Mpc in Prospector's cosmology (WMAP9), as ``SpecModel.flux_norm``."""
    from prospect.sources.constants import cosmo
    return float(cosmo.luminosity_distance(zred).to("Mpc").value)


class _ObsPlan:
    """What one set of obs filters needs: the emulator restricted to them."""

    def __init__(self, emulator, filter_names, fingerprint):
        self.fingerprint = fingerprint
        self.filter_names = filter_names
        self.no_filters = False
        if list(filter_names) == list(emulator.filter_names):
            self.emulator = emulator
        else:
            self.emulator = emulator.select(list(filter_names))
        self.mfrac_index = (emulator.extra_names.index("mfrac")
                            if "mfrac" in emulator.extra_names else None)


class EmulatedSpecModel(FastParametersMixin, FastPriorsMixin, SpecModel):
    """Prospector ``SpecModel`` that predicts photometry with an SPS emulator.

    Parameters
    ----------
    model_params : dict or list
        Prospector parameter specification (as for ``SpecModel``), e.g. from
        ``prospect.models.templates.TemplateLibrary``.  Every emulator input
        must be a parameter (free, fixed or ``depends_on``); a vector
        parameter ``p`` of length k provides the inputs ``p_1 ... p_k``.
    emulator : str, os.PathLike, Emulator or StitchedEmulator
        The emulator, or the path of a native emulator file
        (:func:`prospect_emulator.load_emulator`).
    param_order : sequence of str, optional
        Order of the free parameters in theta (as for ``SpecModel``).
    **kwargs
        Passed to ``SpecModel`` (initial parameter values).

    Raises
    ------
    EmulatorConfigurationError
        An emulator input is not a model parameter (or a vector parameter has
        a different length than the emulator's ``p_1 ... p_k``).
    EmulatorFileError
        The emulator file is missing, unreadable or of a foreign format.

    Warns
    -----
    TrainingRangeWarning
        For every free parameter whose prior reaches beyond the emulator's
        training range (such proposals get ``ln p = -inf``), and every fixed
        parameter whose value lies outside it.

    Notes
    -----
    ``predict`` returns ``(spec, phot, mfrac)``: ``spec`` is an empty array
    (photometric emulator), ``phot`` the flux densities in maggies in the
    order of ``obs["filters"]`` and ``mfrac`` the surviving stellar mass
    fraction from the emulator's extra output ``"mfrac"``, or NaN when the
    emulator has none.

    After each prediction the model keeps :attr:`last_emulator_inputs`,
    :attr:`last_arsinh_mags`, :attr:`last_maggies` and :attr:`last_emulator`
    (restricted to the obs filters), which
    :class:`~prospect_emulator.EmulatorNoiseModel` reads.

    The ln-prior and the nested-sampling prior transform are evaluated by
    :class:`~prospect_emulator.priors.FastPriorProduct` and
    :class:`~prospect_emulator.priors.FastPriorTransform` (equal to
    Prospector's values).  Their constants are read at first use: after
    changing prior objects in place, call :meth:`reset_caches`.

    No emission-line table is read: nebular emission is part of the emulated
    photometry, so ``$SPS_HOME`` may be unset.
    """

    def __init__(self, model_params, emulator=None, param_order=None, **kwargs):
        self.emulator = _as_emulator(emulator, model_params)
        self.reset_caches()
        super().__init__(model_params, param_order=param_order, **kwargs)
        self._input_sources()  # fail now, not at the first likelihood call
        self._check_physics()
        self._warn_about_training_ranges()

    @classmethod
    def from_emulator(cls, emulator=None, zred=None, **overrides):
        """The Prospector model the emulator was trained for, with fitting priors.

        Parameters
        ----------
        emulator : str, os.PathLike, Emulator or StitchedEmulator, optional
            A native emulator file, an emulator, or the name of a shipped one
            (``"default"``, ``"parametric"``); default ``"default"``.
        zred : float, optional
            Fix the redshift; default free over the training range.
        **overrides
            Per parameter: a value (fixed) or a dict updating its
            specification, e.g. ``lumdist=1e-5`` or
            ``logzsol={"prior": priors.TopHat(mini=-1, maxi=0)}``.

        Returns
        -------
        EmulatedSpecModel

        Raises
        ------
        EmulatorConfigurationError
            The emulator records no model definition (a published Parrot
            emulator, a hand-made network): build ``model_params`` yourself.
        """
        from ..definition.fitting_model import emulator_model_params
        emulator = _as_emulator(emulator)
        return cls(emulator_model_params(emulator, zred=zred, **overrides), emulator=emulator)

    # ---------------------------------------------------------------- set-up
    def init_eline_info(self, eline_file="emlines_info.dat"):
        """Set an empty emission-line table instead of reading
        ``$SPS_HOME/data/emlines_info.dat``: the emulated photometry already
        contains any nebular emission, and ``SPS_HOME`` may be unset."""
        set_eline_info(self, None)

    def reset_caches(self):
        """Forget the input gather plan, the per-obs emulators, the fast prior
        and the last prediction (call after editing priors or parameters in place)."""
        self._plans = {}
        self._plan = None
        self._gather_key = None
        self._fast_prior = None
        self._fast_prior_key = None
        self._fast_transform = None
        self._fast_transform_key = None
        self._dependencies_key = None
        self._theta_set = None
        self._theta_set_bytes = None
        self._theta_own = None
        self.last_emulator_inputs = None
        self.last_maggies = None
        self.last_emulator = None
        self.last_flux_scale = 1.0
        self._distance_key = None

    def _input_sources(self):
        """For every emulator input, the (model parameter, element) it reads.

        Sets :attr:`_log_inputs`: the positions of inputs ``logX`` read as
        log10 of the model's scalar ``X`` (the model has no ``logX``)."""
        params = self.params
        names = sorted(params)
        sources, logs = [], []
        for j, name in enumerate(self.emulator.param_names):
            alias = name[len(LOG_INPUT_PREFIX):] if name.startswith(LOG_INPUT_PREFIX) else None
            if name not in params and alias in params and np.size(params[alias]) == 1:
                sources.append((alias, 0))
                logs.append(j)
                continue
            if name in params:
                size = np.size(params[name])
                if size != 1:
                    raise EmulatorConfigurationError(
                        f"emulator input {name!r} is a scalar but model parameter {name!r} has "
                        f"{size} elements")
                sources.append((name, 0))
                continue
            base, sep, k = name.rpartition("_")
            if sep and k.isdigit() and base in params:
                size = np.size(params[base])
                if 1 <= int(k) <= size:
                    sources.append((base, int(k) - 1))
                    continue
                raise EmulatorConfigurationError(
                    f"emulator input {name!r} needs element {k} of model parameter {base!r}, "
                    f"which has {size} element(s)")
            raise EmulatorConfigurationError(
                f"emulator input {name!r} is not a parameter of the model. Add it as a free, "
                f"fixed or depends_on parameter (a vector parameter p provides p_1..p_k). "
                f"Emulator inputs: {self.emulator.param_names}. Model parameters: {names}")
        used = {}
        for base, i in sources:
            used.setdefault(base, set()).add(i)
        for base, elements in used.items():
            size = np.size(params[base])
            if len(elements) != size:
                raise EmulatorConfigurationError(
                    f"model parameter {base!r} has {size} elements but the emulator reads only "
                    f"{sorted(f'{base}_{i + 1}' for i in elements)}")
        self._log_inputs = np.array(logs, dtype=int)
        return sources

    def _build_gather(self):
        """Precompute how to assemble the emulator input vector from params:
        one concatenation of the needed parameters, then (if needed) a take."""
        sources = self._input_sources()
        bases = list(dict.fromkeys(b for b, _ in sources))
        offsets, n = {}, 0
        for b in bases:
            offsets[b] = n
            n += np.size(self.params[b])
        take = np.array([offsets[b] + i for b, i in sources], dtype=int)
        identity = len(take) == n and np.array_equal(take, np.arange(n))
        fixed = [j for j, (b, _) in enumerate(sources)
                 if b not in self.free_params and self.config_dict.get(b, {}).get("depends_on") is None]
        self._gather_bases = bases
        self._gather_size = n
        self._gather_take = None if identity else take
        self._fixed_inputs = np.array(fixed, dtype=int)
        # right after set_parameters(theta) the free inputs are one take from
        # (a copy of) theta; only fixed and depends_on inputs are read from params
        index = self.theta_index
        self._theta_take = np.array([index[b].start + i if b in index else 0 for b, i in sources],
                                    dtype=int)
        self._not_in_theta = [(j, b, i) for j, (b, i) in enumerate(sources) if b not in index]
        self._gather_key = self.theta_index

    def _emulator_inputs_after_set(self):
        """The emulator input vector right after ``set_parameters(theta)``."""
        if self._gather_key is not self.theta_index:
            self._build_gather()
        x = self._theta_own[self._theta_take]
        params = self.params
        for j, base, i in self._not_in_theta:
            x[j] = params[base][i]
        if self._log_inputs.size:
            x[self._log_inputs] = np.log10(x[self._log_inputs])
        return x

    def _emulator_inputs(self):
        """The emulator input vector from the current ``self.params``."""
        if self._gather_key is not self.theta_index:
            self._build_gather()
        params = self.params
        try:
            x = np.concatenate([params[b] for b in self._gather_bases])
        except (ValueError, KeyError):  # a parameter became a 0-d value, or vanished
            x = None
        if x is None or x.size != self._gather_size:
            self._build_gather()  # sizes changed since the plan: re-validate
            x = np.concatenate([np.ravel(params[b]) for b in self._gather_bases])
        x = x.astype(float) if self._gather_take is None else x[self._gather_take].astype(float)
        if self._log_inputs.size:
            x[self._log_inputs] = np.log10(x[self._log_inputs])
        return x

    def _plan_for(self, filters):
        """The emulator restricted to ``filters`` (cached by filter names)."""
        plan = self._plan
        if filters is None:
            fingerprint = None
        else:
            fingerprint = _filters_fingerprint(filters)
        if plan is not None and plan.fingerprint == fingerprint:
            return plan
        names = filter_names_of(filters)
        plan = self._plans.get(names)
        if plan is None:
            plan = _ObsPlan(self.emulator, names, fingerprint)
            self._plans[names] = plan
        plan.fingerprint = fingerprint
        plan.no_filters = filters is None
        self._plan = plan
        return plan

    def _check_physics(self):
        """Every model parameter against the emulator's stored physics (see
        :mod:`prospect_emulator.prospector.physics`); records
        :attr:`parameter_treatments`, raises on a parameter it cannot honour."""
        from ..definition.fitting_model import definition_of
        from .physics import (check_model_physics, parameter_treatment,
                              raise_physics_problems)
        sources = self._input_sources()
        inputs_read = {b for b, _ in sources}
        self.parameter_treatments = {p: parameter_treatment(p, inputs_read)
                                     for p in self.config_dict}
        lumdist = self.params.get("lumdist")
        if lumdist is not None and not (np.size(lumdist) == 1 and float(np.ravel(lumdist)[0]) > 0):
            raise EmulatorConfigurationError(
                f"lumdist = {lumdist!r}: the luminosity distance must be one positive number (Mpc)")
        definition = definition_of(self.emulator)
        if definition is None:
            warnings.warn(
                f"{self.emulator!r} records no model definition, so the model's fixed physics "
                "(sfh, imf_type, dust_type, nebular and dust emission, ...) cannot be checked "
                "against what it was trained with: make sure they match",
                PhysicsNotCheckedWarning, stacklevel=3)
            return
        problems = []
        for theta in self._physics_probe_points():
            self.set_parameters(theta)
            x = self._emulator_inputs()
            for line in check_model_physics(self.params, definition, x,
                                            self.emulator.param_names, inputs_read):
                if line not in problems:
                    problems.append(line)
        self.set_parameters(self.theta.copy())
        self._theta_set = None
        raise_physics_problems(problems, definition, repr(self.emulator))

    def _physics_probe_points(self):
        """The initial theta and one prior draw: parameters computed by
        ``depends_on`` are compared at both."""
        points = [self.theta.copy()]
        try:
            draw = self.prior_transform(np.full(self.ndim, 0.37))
            if np.all(np.isfinite(draw)):
                points.append(np.asarray(draw, dtype=float))
        except Exception:  # a prior without a transform: the initial theta alone
            pass
        return points

    def _warn_about_training_ranges(self):
        """Warn about priors wider than, and fixed values outside, the training ranges."""
        lo_t, hi_t = self.emulator.param_ranges[:, 0], self.emulator.param_ranges[:, 1]
        by_param = {}
        sources = self._input_sources()  # also sets _log_inputs
        logs = set(self._log_inputs.tolist())
        for j, (base, i) in enumerate(sources):
            by_param.setdefault(base, []).append((j, i))
        for base, inputs in by_param.items():
            info = self.config_dict.get(base, {})
            if base in self.free_params:
                n = self.theta_index[base].stop - self.theta_index[base].start
                try:
                    lo, hi = info["prior"].bounds()
                except Exception:  # prior classes without bounds(): nothing to compare
                    continue
                lo = np.broadcast_to(np.ravel(np.asarray(lo, dtype=float)), (n,))
                hi = np.broadcast_to(np.ravel(np.asarray(hi, dtype=float)), (n,))
                if any(j in logs for j, _ in inputs):
                    with np.errstate(divide="ignore", invalid="ignore"):
                        lo, hi = np.log10(lo), np.log10(hi)
                wide = [f"{self.emulator.param_names[j]}: prior [{lo[i]:g}, {hi[i]:g}], "
                        f"training range [{lo_t[j]:g}, {hi_t[j]:g}]"
                        for j, i in inputs if lo[i] < lo_t[j] or hi[i] > hi_t[j]]
                if wide:
                    warnings.warn(
                        f"the prior of {base!r} is wider than the emulator's training range; "
                        f"proposals outside the training range get ln p = -inf ("
                        + "; ".join(wide) + ")", TrainingRangeWarning, stacklevel=3)
            elif info.get("depends_on") is None:
                value = np.ravel(np.asarray(self.params[base], dtype=float))
                if any(j in logs for j, _ in inputs):
                    with np.errstate(divide="ignore", invalid="ignore"):
                        value = np.log10(value)
                outside = [f"{self.emulator.param_names[j]}={value[i]:g} outside "
                           f"[{lo_t[j]:g}, {hi_t[j]:g}]"
                           for j, i in inputs if not lo_t[j] <= value[i] <= hi_t[j]]
                if outside:
                    warnings.warn(
                        f"fixed parameter {base!r} lies outside the emulator's training range "
                        f"(" + "; ".join(outside) + "): every prediction would be rejected",
                        TrainingRangeWarning, stacklevel=3)

    # ------------------------------------------------------------ prediction
    def predict(self, theta, obs=None, sps=None, sigma_spec=None, **extras):
        """Photometry of the emulator at ``theta`` for the filters of ``obs``.

        Parameters
        ----------
        theta : ndarray, shape (ndim,)
            Free parameters.
        obs : dict
            Prospector observation dictionary; ``obs["filters"]`` (sedpy
            Filter objects, a FilterSet or filter names) sets the output
            bands.  It must not ask for a spectrum.
        sps : ignored
            Accepted for compatibility with Prospector (pass ``None``).

        Returns
        -------
        spec : ndarray, shape (0,)
            Empty: a photometric emulator predicts no spectrum.
        phot : ndarray, shape (n_filters,), or 0.0
            Flux densities in maggies in the order of ``obs["filters"]``
            (0.0 when ``obs["filters"]`` is None, as in Prospector).
        mfrac : float
            Surviving stellar mass fraction (emulator output ``"mfrac"``),
            NaN when the emulator has no such output.

        Raises
        ------
        OutOfTrainingRangeError
            A (free or derived) input lies outside the training range; a
            ``ValueError``, so ``lnprobfn`` returns -inf.
        EmulatorConfigurationError
            Unknown filter, a spectrum requested, a missing input, or a fixed
            parameter outside the training range.
        NonFiniteInputError
            An input is NaN or infinite.
        """
        if obs is None:
            raise EmulatorConfigurationError(
                "EmulatedSpecModel.predict needs obs= (a dict with 'filters')")
        if obs.get("spectrum") is not None or obs.get("wavelength") is not None:
            raise EmulatorConfigurationError(
                "this obs asks for a spectrum (obs['spectrum'] or obs['wavelength'] is set), "
                "but the emulator is a photometric emulator: it predicts flux densities in "
                "its filters only. Set obs['spectrum'] = None and obs['wavelength'] = None.")
        if not (theta is self._theta_set and self._theta_set_bytes is not None
                and theta.tobytes() == self._theta_set_bytes):
            self.set_parameters(theta)
        plan = self._plan_for(obs.get("filters"))
        maggies, mfrac = self._predict_current(plan, self._emulator_inputs_after_set())
        return _NO_SPECTRUM, (0.0 if plan.no_filters else maggies), mfrac

    def _predict_current(self, plan, x):
        """(maggies, mfrac) at emulator inputs ``x`` through ``plan``'s emulator."""
        emu = plan.emulator
        try:
            maggies, extra = emu.predict_maggies_and_extras(x)
        except OutOfTrainingRangeError as err:
            self._raise_if_fixed_input_outside(x, err)
            raise
        mfrac = float(extra[plan.mfrac_index]) if plan.mfrac_index is not None else np.nan
        lumdist = self.params.get("lumdist")
        if lumdist is not None:
            maggies = maggies * self._distance_scale(lumdist)
        else:
            self.last_flux_scale = 1.0
        self.last_emulator_inputs, self.last_maggies, self.last_emulator = x, maggies, emu
        self._mfrac = mfrac
        _LAST_PREDICTION.model = self
        return maggies, mfrac

    def _distance_scale(self, lumdist):
        """(d_L(zred) / lumdist)^2: the emulator predicts fluxes at the redshift's
        own distance, Prospector's ``flux_norm`` puts the source at ``lumdist``."""
        zred = float(np.ravel(self.params.get("zred", 0.0))[0])
        key = (zred, float(np.ravel(lumdist)[0]))
        if key != self._distance_key:
            if zred <= 0:
                raise EmulatorConfigurationError(
                    f"zred = {zred:g} with lumdist: the emulator needs zred > 0 (it predicts "
                    "observed-frame photometry at that redshift)")
            self._distance_factor = (_luminosity_distance_mpc(zred) / key[1]) ** 2
            self._distance_key = key
        self.last_flux_scale = self._distance_factor
        return self._distance_factor

    @property
    def last_arsinh_mags(self):
        """Arsinh magnitudes (eq. 2) of the last prediction, or None."""
        if self.last_maggies is None:
            return None
        return maggies_to_arsinh_mags(self.last_maggies, self.last_emulator.mu0, self.last_emulator.a)

    def _raise_if_fixed_input_outside(self, x, err):
        """A fixed parameter outside the training range is a set-up mistake
        (every proposal would be rejected), not a proposal to reject."""
        if not self._fixed_inputs.size:
            return
        lo, hi = self.emulator.param_ranges[:, 0], self.emulator.param_ranges[:, 1]
        j = self._fixed_inputs
        bad = j[~((x[j] >= lo[j]) & (x[j] <= hi[j]))]
        if bad.size:
            raise EmulatorConfigurationError(
                "fixed parameter(s) outside the emulator's training range, so every model "
                "would be rejected: " + "; ".join(
                    f"{self.emulator.param_names[k]}={x[k]:g} not in [{lo[k]:g}, {hi[k]:g}]"
                    for k in bad) + ". Use an emulator trained there (e.g. a StitchedEmulator "
                "covering this redshift).") from err

    def predict_phot(self, filters):
        """Photometry (maggies) of the current :attr:`params` through ``filters``."""
        plan = self._plan_for(filters)
        maggies, _ = self._predict_current(plan, self._emulator_inputs())
        return 0.0 if plan.no_filters else maggies

    def predict_spec(self, obs, sigma_spec=None, **extras):
        raise EmulatorConfigurationError(
            "EmulatedSpecModel wraps a photometric emulator: it cannot predict a spectrum")

    def absolute_rest_maggies(self, filters):
        raise EmulatorConfigurationError(
            "EmulatedSpecModel cannot compute rest-frame absolute photometry: the emulator "
            "predicts observed-frame photometry in its own filters only")

    def __repr__(self):
        return f":::::::\n{self.__class__}\nemulator: {self.emulator!r}\n\n{self.description}"
