"""Amortized posteriors: a trained flow gives every galaxy's posterior with no model calls.

:class:`AmortizedPosterior` holds a normalizing flow q(theta | x) trained on
emulator simulations (:mod:`~prospect_emulator.amortized.train`), the
Prospector model whose prior it was trained under, and the observational
noise model of the catalogue it was trained for.  :meth:`AmortizedPosterior.sample`
draws posterior samples for a whole catalogue at once and says, per object,
whether the object lies inside what the flow was trained on.

File format (HDF5, no pickle; :meth:`~AmortizedPosterior.save`)
----------------------------------------------------------------
attributes: ``format`` = "prospect-emulator-amortized", ``schema_version``,
``package_version``, ``flowjax_version``, ``hyperparameters`` (JSON: flow
kind, layers, widths, spline knots), ``dim``, ``cond_dim``,
``emulator_checksum``, ``emulator_source`` (shipped name or path),
``model_definition`` (JSON of the emulator's model definition),
``free_params``/``theta_names``/``inferred_names`` (JSON), ``floor``,
``calibration`` (JSON), ``training`` (JSON: seed, simulations, epochs),
``parameter_coordinates`` (the flow's parameter coordinates, "prior-normal" or
"logit"; files without it are "logit").
datasets: ``filter_names``; ``prior/lower``, ``prior/upper``, ``prior/log10``;
``standardisation/{theta_mean,theta_std,cond_mean,cond_std}``;
``noise_model/*`` (:meth:`ObservationalNoiseModel.to_arrays`);
``flow/leaf_00000`` ... (the flow's arrays in JAX's flattening order);
``training/{train_loss,val_loss}``.
"""
import json
import os
import warnings

import numpy as np

from .._version import __version__
from ..errors import EmulatorConfigurationError, EmulatorFileError
from .simulate import (COORDINATES, ObservationalNoiseModel, ParameterSpace, emulator_inputs,
                       flow_conditions, redshift_range_of, valid_bands)

__all__ = ["AmortizedPosterior", "AmortizedSamples", "AmortizedInputError", "Observations",
           "FILE_FORMAT", "SCHEMA_VERSION"]

FILE_FORMAT = "prospect-emulator-amortized"
#: 2: the flow's parameter coordinates are recorded (``parameter_coordinates``);
#: files in the default prior-normal coordinates are written as version 2, so
#: that readers of version 1 (which would decode them as logits) refuse them.
SCHEMA_VERSION = 2

#: Flow draws (objects x samples) per jitted sampling call: 4 objects of 1,000
#: draws.  Larger calls are slower per draw on the 2-core reference machine
#: (their activations leave the caches; ``benchmarks/validate_amortized.py``).
ROWS_PER_CALL = 4096

#: Flow draws (objects x importance draws) reweighted at a time: bounds the memory of
#: ``importance_draws`` (~130 MB of parameter vectors for the 14-parameter model).
IMPORTANCE_ROWS_PER_BLOCK = 1 << 20


class AmortizedInputError(EmulatorConfigurationError):
    """An object cannot get an amortized posterior: the message names the object and field."""


class Observations:
    """Photometry of n objects in named filters (maggies).

    Parameters
    ----------
    filter_names : sequence of str
    maggies, maggies_unc : array_like, shape (n, n_filters)
        NaN flux or uncertainty <= 0 marks a missing band.
    zred : array_like, shape (n,)
    ids : sequence of str, optional
    """

    def __init__(self, filter_names, maggies, maggies_unc, zred, ids=None):
        self.filter_names = [str(f) for f in filter_names]
        self.maggies = np.atleast_2d(np.asarray(maggies, dtype=float))
        self.maggies_unc = np.atleast_2d(np.asarray(maggies_unc, dtype=float))
        self.zred = np.atleast_1d(np.asarray(zred, dtype=float))
        n = len(self.maggies)
        self.ids = [str(i) for i in ids] if ids is not None else [f"row{i}" for i in range(n)]
        shape = (n, len(self.filter_names))
        if self.maggies.shape != shape or self.maggies_unc.shape != shape or self.zred.shape != (n,) \
                or len(self.ids) != n:
            raise AmortizedInputError(
                f"observations: maggies and maggies_unc must be ({n}, {len(self.filter_names)}) "
                f"and zred ({n},); got {self.maggies.shape}, {self.maggies_unc.shape}, "
                f"{self.zred.shape} and {len(self.ids)} ids")

    def __len__(self):
        return len(self.maggies)

    def rows(self, index):
        """The objects at ``index`` (a slice or a sequence of row numbers)."""
        ids = np.asarray(self.ids, dtype=object)[index]
        return Observations(self.filter_names, self.maggies[index], self.maggies_unc[index],
                            self.zred[index], list(ids))

    def as_table(self):
        """An astropy Table in ``prospect-emulator fit``'s default columns (``id``, ``z``,
        ``f_<filter>``, ``e_<filter>`` in maggies; NaN = missing)."""
        from astropy.table import Table
        table = Table({"id": list(self.ids), "z": self.zred})
        for b, name in enumerate(self.filter_names):
            table[f"f_{name}"] = self.maggies[:, b]
            table[f"e_{name}"] = self.maggies_unc[:, b]
        return table

    @classmethod
    def from_obs(cls, obs, zred=None, obj_id=None):
        """One Prospector obs dictionary (``filters``, ``maggies``, ``maggies_unc``, optional
        ``phot_mask``; the redshift from ``zred=`` or ``obs["zred"]``)."""
        from ..prospector.model import filter_names_of
        for key in ("filters", "maggies", "maggies_unc"):
            if obs.get(key) is None:
                raise AmortizedInputError(f"object {obj_id or 'obs'!r}: obs[{key!r}] is missing")
        z = obs.get("zred") if zred is None else zred
        if z is None:
            raise AmortizedInputError(
                f"object {obj_id or 'obs'!r}: no redshift (pass zred= or set obs['zred']); "
                "amortized posteriors are conditioned on it")
        maggies = np.array(obs.get("maggies_input", obs["maggies"]), dtype=float)
        unc = np.array(obs.get("maggies_unc_input", obs["maggies_unc"]), dtype=float)
        mask = obs.get("phot_mask")
        if mask is not None:
            mask = np.broadcast_to(np.asarray(mask, dtype=bool), maggies.shape)
            maggies = np.where(mask, maggies, np.nan)
        return cls(filter_names_of(obs["filters"]), maggies[None], unc[None],
                   [float(np.ravel(z)[0])], [obj_id or obs.get("id", "obs")])


def as_observations(data, columns=None, zred=None):
    """:class:`Observations` of a catalogue (path or astropy Table), an obs dict, a list of
    obs dicts, or Observations."""
    if isinstance(data, Observations):
        return data
    if isinstance(data, dict):
        return Observations.from_obs(data, zred=zred)
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], dict):
        parts = [Observations.from_obs(o, zred=None if zred is None else np.ravel(zred)[i],
                                       obj_id=o.get("id", f"row{i}")) for i, o in enumerate(data)]
        names = parts[0].filter_names
        if any(p.filter_names != names for p in parts):
            raise AmortizedInputError("the obs dictionaries have different filters; sample "
                                      "them separately or give them the same filter list")
        return Observations(names, np.concatenate([p.maggies for p in parts]),
                            np.concatenate([p.maggies_unc for p in parts]),
                            np.concatenate([p.zred for p in parts]), [p.ids[0] for p in parts])
    from .catalog import read_catalog_arrays
    return read_catalog_arrays(data, columns=columns)


class AmortizedSamples:
    """Posterior samples of many objects from :meth:`AmortizedPosterior.sample`.

    Attributes
    ----------
    ids : list of str
    theta_names : list of str
        Free parameters of the model (``zred`` is each object's given redshift).
    samples : ndarray, shape (n_objects, n_samples, n_theta)
        NaN for objects with ``status == "failed"``.
    zred : ndarray, shape (n_objects,)
    status : ndarray of str
        ``"ok"`` or ``"failed"`` (then ``error`` says why: the object and field).
    error : list of str
    out_of_support : ndarray of bool
        The object lies outside what the flow was trained on; ``reasons`` says how.
    reasons : list of list of str
    masked_bands : list of list of str
        Bands treated as missing (NaN flux, uncertainty <= 0, not observed).
    chi2_best, chi2_pvalue : ndarray
        chi^2 with eq. 9's total sigma at the best fit near the best of
        ``n_ppc`` posterior draws (at that draw itself for files calibrated
        before ``support_fit``), and its p-value for a chi^2 with n_bands
        degrees of freedom.
    n_bands : ndarray of int
    importance_draws : int or None
        Flow draws per object reweighted by the exact likelihood (None: the
        samples are the flow's own draws).
    importance_ess : ndarray
        Effective sample size of each object's importance weights (NaN
        without importance weighting and for objects that failed before it;
        0 for an object none of whose draws has a finite likelihood, which
        then fails).
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __len__(self):
        return len(self.ids)


#: The uncertainty check's range of true fluxes, in sigma of the observed flux
#: (:meth:`ObservationalNoiseModel.uncertainty_zscores`), set by
#: :meth:`AmortizedPosterior.calibrate` (files calibrated before it was recorded: 0, the
#: uncertainty judged at the observed flux).
UNCERTAINTY_FLUX_RANGE_SIGMA = 3.0


def _raise_bad(messages):
    """Raise :class:`AmortizedInputError` for objects that cannot be sampled (the first
    five named), saying how to sample the others."""
    more = f" (and {len(messages) - 5} more)" if len(messages) > 5 else ""
    raise AmortizedInputError("; ".join(messages[:5]) + more +
                              ". Use on_bad='flag' to sample the other objects.")


def _emulator_source(emulator):
    """How to find the emulator again: the shipped name, or its path."""
    from ..data import SHIPPED_EMULATORS
    if isinstance(emulator, str) and emulator in SHIPPED_EMULATORS:
        return emulator
    if isinstance(emulator, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(emulator))
        for name, shipped in SHIPPED_EMULATORS.items():
            if os.path.exists(shipped) and os.path.samefile(path, shipped):
                return name
        return path
    return ""


def build_model(emulator):
    """The Prospector model (free redshift) an emulator was trained for."""
    from ..prospector import EmulatedSpecModel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EmulatedSpecModel.from_emulator(emulator, zred=None)


class AmortizedPosterior:
    """A trained amortized posterior q(theta | photometry, redshift).

    Make one with :func:`~prospect_emulator.amortized.train.train_amortized_posterior`
    (or ``prospect-emulator amortize train``); read one with :meth:`load`.

    Parameters
    ----------
    flow : flowjax distribution
        Conditional flow over the standardised unbounded parameters
        (:class:`~prospect_emulator.amortized.simulate.ParameterSpace`).
    hyperparameters : dict
        Those of :func:`~prospect_emulator.amortized.flow.build_flow` that built
        ``flow``; missing keys take the package's defaults, as there
        (:func:`~prospect_emulator.amortized.flow.resolved_hyperparameters`), so
        that the file written by :meth:`save` rebuilds the same flow.
    model : EmulatedSpecModel
        The model (priors, transforms, emulator) it was trained under.
    noise_model : ObservationalNoiseModel
    standardisation : dict
        ``theta_mean``, ``theta_std``, ``cond_mean``, ``cond_std``.
    floor : float
        Eq. 9's fractional SPS floor used in the simulations.
    calibration : dict, optional
        ``chi2_pvalue_threshold`` (flag objects whose chi^2 at the best fit has
        a smaller p-value), ``band_z_threshold`` (flag objects with a
        larger one-band residual), ``uncertainty_z_threshold`` and
        ``uncertainty_flux_range_sigma`` (the uncertainty check, see
        :meth:`ObservationalNoiseModel.uncertainty_zscores`), ``n_ppc`` and
        ``support_fit``: where the chi^2 and the residuals are taken,
        ``"refined"`` (the best fit near the best of ``n_ppc`` draws,
        :func:`~prospect_emulator.amortized.refine.refine_best_fit`; set by
        :meth:`calibrate` from this version) or ``"best-draw"`` (that draw
        itself: the limits of files calibrated before).
    training : dict, optional
        Seed, number of simulations, epochs, losses (recorded in the file).
    coordinates : {"prior-normal", "logit"}
        The parameter coordinates the flow was trained in
        (:class:`~prospect_emulator.amortized.simulate.ParameterSpace`).
    """

    def __init__(self, flow, hyperparameters, model, noise_model, standardisation, floor=0.05,
                 calibration=None, training=None, emulator_source="", coordinates="prior-normal"):
        from .flow import resolved_hyperparameters
        self.flow = flow
        self.hyperparameters = resolved_hyperparameters(hyperparameters)
        self.model = model
        self.emulator = model.emulator
        self.noise_model = noise_model
        self.standardisation = {k: np.asarray(v, dtype=np.float64) for k, v in standardisation.items()}
        self.floor = float(floor)
        self.calibration = dict({"chi2_pvalue_threshold": 0.0, "uncertainty_z_threshold": 4.0,
                                 "n_ppc": 32}, **(calibration or {}))
        self.training = dict(training or {})
        self.emulator_source = emulator_source
        self.param_space = ParameterSpace(model, coordinates)
        self.filter_names = list(noise_model.filter_names)
        self._band_emulator = self.emulator.select(self.filter_names)
        self.zred_range = redshift_range_of(model)
        self._sampler = None
        self._weights = None

    # ----------------------------------------------------------- conditions
    def conditions(self, maggies, maggies_unc, mask, zred):
        """Standardised flow conditions (n, cond_dim), float32."""
        c = flow_conditions(maggies, maggies_unc, mask, zred, self.noise_model.flux_scale)
        s = self.standardisation
        return ((c - s["cond_mean"]) / s["cond_std"]).astype(np.float32)

    def _sample_theta(self, cond, zred, n_samples, seed, log_density=False):
        """Posterior draws of the full parameter vector of every object.

        Objects go to the flow in chunks of :data:`ROWS_PER_CALL` draws (a
        power-of-two number of objects, at least one; the last chunk padded:
        few compilations, activations that stay in the CPU caches).  The first
        chunk runs on the calling thread (it compiles the sampler), the others
        on one thread per usable core (a jitted call releases the GIL); each
        chunk is mapped to parameters by :meth:`ParameterSpace.from_unbounded`
        where it was drawn.  Chunk ``k`` draws with ``fold_in(key(seed), k)``:
        the same seed, objects and ``n_samples`` give the same draws on any
        number of cores.

        Parameters
        ----------
        cond : ndarray, shape (n_objects, cond_dim)
            Standardised flow conditions (:meth:`conditions`).
        zred : ndarray, shape (n_objects,)
            Redshifts, written into theta where the model has redshift free.
        n_samples : int
            Draws per object.
        seed : int
        log_density : bool
            Also return, per draw, ln q of the flow and ln of the prior, both
            as densities of the unbounded coordinates (:class:`ParameterSpace`;
            up to constants that are the same for every draw of an object).
            Only for prior-normal coordinates, where the prior is a standard
            normal.

        Returns
        -------
        ndarray, shape (n_objects, n_samples, ndim)
            Draws of the model's free parameters, in their own units (the
            prior's: e.g. log10 solar masses for ``logmass``).
        ln_q, ln_prior : ndarray, shape (n_objects, n_samples)
            With ``log_density=True`` only.
        """
        import concurrent.futures

        import equinox as eqx
        import jax

        from ..fitting.executor import usable_cpu_count
        if self._sampler is None:
            self._sampler = {
                False: eqx.filter_jit(lambda flow, key, c, n: flow.sample(key, (n,), condition=c)),
                True: eqx.filter_jit(
                    lambda flow, key, c, n: flow.sample_and_log_prob(key, (n,), condition=c))}
        sampler = self._sampler[bool(log_density)]
        s = self.standardisation
        out = np.empty((len(cond), n_samples, len(self.param_space.theta_names)))
        ln_q = np.empty((len(cond), n_samples)) if log_density else None
        ln_prior = np.empty((len(cond), n_samples)) if log_density else None
        key = jax.random.key(int(seed))
        per_call = max(1, ROWS_PER_CALL // max(n_samples, 1))
        chunk = min(1 << (per_call.bit_length() - 1), 1 << max(len(cond) - 1, 0).bit_length())
        starts = list(range(0, len(cond), chunk))

        def draw(k):
            part = cond[starts[k]:starts[k] + chunk]
            n_real = len(part)
            if n_real < chunk:
                part = np.concatenate([part, np.repeat(part[-1:], chunk - n_real, axis=0)])
            drawn = sampler(self.flow, jax.random.fold_in(key, k), part, int(n_samples))
            if log_density:
                drawn, lq = drawn
                rows = slice(starts[k], starts[k] + n_real)
                ln_q[rows] = np.asarray(lq, dtype=np.float64)[:, :n_real].T
            # a float64 copy (never JAX's read-only buffer), scaled in place
            y = np.array(drawn, dtype=np.float64)[:, :n_real]
            y *= s["theta_std"]  # (n_samples, n_real, n_inferred)
            y += s["theta_mean"]
            if log_density:  # the prior: a standard normal of the unstandardised y
                ln_prior[rows] = -0.5 * np.einsum("sij,sij->is", y, y)
            theta = self.param_space.full_theta(self.param_space.from_unbounded(y),
                                                zred[starts[k]:starts[k] + n_real])
            out[starts[k]:starts[k] + n_real] = np.swapaxes(theta, 0, 1)

        draw(0)
        threads = min(len(starts) - 1, usable_cpu_count())
        if threads == 1:
            for k in range(1, len(starts)):
                draw(k)
        elif threads > 1:
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                list(pool.map(draw, range(1, len(starts))))  # re-raises a chunk's error
        return (out, ln_q, ln_prior) if log_density else out

    def log_prob(self, theta, maggies, maggies_unc, mask, zred):
        """ln q of full theta rows (n, ndim) in the flow's standardised unbounded
        coordinates (for diagnostics; no Jacobian of the coordinate change)."""
        s = self.standardisation
        y = (self.param_space.to_unbounded(theta) - s["theta_mean"]) / s["theta_std"]
        return np.asarray(self.flow.log_prob(y.astype(np.float32),
                                             self.conditions(maggies, maggies_unc, mask, zred)))

    # ----------------------------------------------------------- input
    def _check_filters(self, obs):
        extra = [f for f in obs.filter_names if f not in self.filter_names]
        if extra:
            raise AmortizedInputError(
                f"filters {extra} were not part of this posterior's training; it was trained on "
                f"{self.filter_names}. Drop those columns (or train a posterior with them)")
        index = [obs.filter_names.index(f) if f in obs.filter_names else -1
                 for f in self.filter_names]
        take = np.array(index)
        maggies = np.where(take >= 0, obs.maggies[:, np.maximum(take, 0)], np.nan)
        unc = np.where(take >= 0, obs.maggies_unc[:, np.maximum(take, 0)], np.nan)
        return maggies, unc

    def _bad_objects(self, obs, maggies, unc, mask):
        """{row: error message} for objects that cannot be sampled."""
        lo, hi = self.zred_range
        errors = {}
        for i, (oid, z) in enumerate(zip(obs.ids, obs.zred)):
            if not np.isfinite(z):
                errors[i] = f"object {oid!r}: field 'zred' = {z} is not a finite number"
            elif not lo <= z <= hi:
                errors[i] = (f"object {oid!r}: field 'zred' = {z:g} is outside the prior "
                             f"[{lo:g}, {hi:g}] the posterior was trained on")
            elif not mask[i].any():
                errors[i] = (f"object {oid!r}: no band has a finite flux and a positive "
                             f"uncertainty (fields 'maggies'/'maggies_unc')")
        return errors

    @staticmethod
    def _masked_reasons(names, maggies, unc, mask):
        out = []
        for i in range(len(maggies)):
            row = []
            for b in np.nonzero(~mask[i])[0]:
                f, u = maggies[i, b], unc[i, b]
                why = ("not given" if np.isnan(f) and np.isnan(u) else
                       "flux not finite" if not np.isfinite(f) else
                       "uncertainty not finite" if not np.isfinite(u) else "uncertainty <= 0")
                row.append(f"{names[b]} ({why})")
            out.append(row)
        return out

    # ----------------------------------------------------------- sampling
    def sample(self, data, n_samples=1000, seed=0, on_bad="raise", check_support=True,
               columns=None, zred=None, importance_draws=None):
        """Posterior samples for every object of a catalogue or obs.

        Parameters
        ----------
        data : str, astropy.table.Table, dict, list of dict or Observations
            A catalogue (path or table; columns as in ``prospect-emulator fit``,
            see :class:`~prospect_emulator.fitting.catalog.CatalogColumns`),
            one Prospector obs dictionary or a list of them (redshift in
            ``obs["zred"]`` or ``zred=``), or :class:`Observations`.
        n_samples : int
            Posterior draws per object.
        seed : int
            Same seed, same data: identical samples.
        on_bad : {"raise", "flag"}
            An object that cannot be sampled (redshift not finite or outside
            the prior, no usable band): raise :class:`AmortizedInputError`
            naming the object and field, or mark it ``status="failed"``.
        check_support : bool
            Run the out-of-support checks (the posterior-predictive chi^2
            needs emulator calls: ``n_ppc`` per object).
        columns : CatalogColumns, optional
        zred : float or array, optional
            Redshift(s) for obs dictionaries without ``obs["zred"]``.
        importance_draws : int, optional
            Reweight this many flow draws per object by the exact likelihood
            (the emulator and eq. 9, as the exact fits) over the flow's density
            and resample ``n_samples`` of them
            (:mod:`~prospect_emulator.amortized.importance`): draws of the
            exact posterior wherever the flow's draws cover it, at the cost of
            ``importance_draws`` emulator calls per object (at least
            ``n_samples``).  Objects whose weights have an effective sample
            size below ``calibration["min_importance_ess"]`` (default 30) are
            flagged out of support (also with ``check_support=False``); an
            object none of whose draws has a finite likelihood cannot be
            sampled (see ``on_bad``).  Default: the flow's own draws.

        Returns
        -------
        AmortizedSamples

        Raises
        ------
        AmortizedInputError
            Filters the posterior was not trained on (always), and bad objects
            with ``on_bad="raise"``.
        EmulatorConfigurationError
            ``importance_draws`` below ``n_samples``, or with a posterior
            that is not in prior-normal coordinates.

        Notes
        -----
        A NaN flux, a non-finite or non-positive uncertainty, or a trained
        filter absent from the input marks that band as missing -- the flow
        was trained with the catalogue's missing bands -- and the band is
        listed in ``masked_bands``; a missing-band pattern the catalogue did
        not have is flagged out of support.
        """
        if on_bad not in ("raise", "flag"):
            raise EmulatorConfigurationError(f"on_bad={on_bad!r}; allowed: 'raise', 'flag'")
        if importance_draws is not None:
            self.check_importance_draws(importance_draws, n_samples)
        obs = as_observations(data, columns=columns, zred=zred)
        maggies, unc = self._check_filters(obs)
        mask = valid_bands(maggies, unc)
        errors = self._bad_objects(obs, maggies, unc, mask)
        if errors and on_bad == "raise":
            _raise_bad([errors[i] for i in sorted(errors)])
        n = len(obs)
        good = np.array([i not in errors for i in range(n)], dtype=bool)
        theta = np.full((n, int(n_samples), len(self.param_space.theta_names)), np.nan)
        ess = np.full(n, np.nan)
        if good.any():
            cond = self.conditions(maggies[good], unc[good], mask[good], obs.zred[good])
            if importance_draws is None:
                theta[good] = self._sample_theta(cond, obs.zred[good], int(n_samples), seed)
            else:
                theta[good], ess[good] = self._importance_sample(
                    cond, obs.zred[good], maggies[good], unc[good], mask[good], int(n_samples),
                    importance_draws, seed)
                self._no_finite_weight(obs, good, ess, int(importance_draws), errors, on_bad)
        reasons = [[] for _ in range(n)]
        if importance_draws is not None:
            self._importance_reasons(ess, good, int(importance_draws), reasons)
        chi2 = np.full(n, np.nan)
        pvalue = np.full(n, np.nan)
        if check_support and good.any():
            self._support_checks(theta, maggies, unc, mask, good, reasons, chi2, pvalue, seed)
        status = np.where(good, "ok", "failed")
        return AmortizedSamples(
            ids=list(obs.ids), theta_names=list(self.param_space.theta_names), samples=theta,
            zred=obs.zred.copy(), status=status,
            error=[errors.get(i, "") for i in range(n)],
            out_of_support=np.array([bool(r) for r in reasons]), reasons=reasons,
            masked_bands=self._masked_reasons(self.filter_names, maggies, unc, mask),
            chi2_best=chi2, chi2_pvalue=pvalue, n_bands=mask.sum(axis=1),
            filter_names=list(self.filter_names), importance_ess=ess,
            importance_draws=None if importance_draws is None else int(importance_draws))

    # ----------------------------------------------------------- importance
    def check_importance_draws(self, importance_draws, n_samples):
        """Refuse importance weights this posterior cannot give (before any sampling).

        Raises
        ------
        EmulatorConfigurationError
            ``importance_draws`` not an integer >= ``n_samples``, or a posterior
            whose flow is not in prior-normal coordinates.
        """
        if self.param_space.coordinates != "prior-normal":
            raise EmulatorConfigurationError(
                "importance weights need a posterior in prior-normal coordinates; this one "
                f"is in {self.param_space.coordinates!r} coordinates (train a new one)")
        if int(importance_draws) != importance_draws or importance_draws < max(int(n_samples), 1):
            raise EmulatorConfigurationError(
                f"importance_draws={importance_draws!r}: give at least as many flow draws per "
                f"object as samples returned (n_samples={n_samples})")

    def _importance_sample(self, cond, zred, maggies, unc, mask, n_samples, n_draws, seed):
        """(samples, effective sample sizes) of flow draws reweighted by the exact likelihood."""
        from .importance import ExactLikelihoodWeights
        if self._weights is None:
            self._weights = ExactLikelihoodWeights(self.model, self.filter_names, floor=self.floor)
        n_draws = int(n_draws)
        samples = np.empty((len(cond), n_samples, len(self.param_space.theta_names)))
        ess = np.empty(len(cond))
        block = max(1, IMPORTANCE_ROWS_PER_BLOCK // n_draws)
        for b, start in enumerate(range(0, len(cond), block)):
            rows = slice(start, start + block)
            sequence = np.random.SeedSequence([int(seed) % 2 ** 63, b])
            block_seed = int(sequence.generate_state(1)[0])
            theta, ln_q, ln_prior = self._sample_theta(cond[rows], zred[rows], n_draws,
                                                       block_seed, log_density=True)
            samples[rows], ess[rows] = self._weights.resample(
                theta, ln_q, ln_prior, maggies[rows], unc[rows], mask[rows], n_samples,
                block_seed)
        return samples, ess

    @staticmethod
    def _no_finite_weight(obs, good, ess, n_draws, errors, on_bad):
        """Objects none of whose importance draws has a finite likelihood: failed (or raised)."""
        for i in np.nonzero(good)[0][ess[good] == 0]:
            errors[i] = (f"object {obs.ids[i]!r}: none of its {n_draws} flow draws has a finite "
                         "likelihood (all outside the emulator's training range): its "
                         "photometry is not one the emulator can fit")
            good[i] = False
        if on_bad == "raise" and any(ess[i] == 0 for i in errors):
            _raise_bad([errors[i] for i in sorted(errors) if ess[i] == 0])

    def _importance_reasons(self, ess, good, n_draws, reasons):
        limit = float(self.calibration.get("min_importance_ess", 30.0))
        for i in np.nonzero(good & ~(ess >= limit))[0]:
            reasons[i].append(
                f"importance weights: effective sample size {ess[i]:.0f} of {n_draws} flow "
                f"draws (limit {limit:g}): the flow's draws do not cover the exact posterior")

    # ----------------------------------------------------------- support
    def posterior_predictive_chi2(self, theta, maggies, unc, mask, seed=0):
        """Best chi^2 per object, its p-value, and the largest normalised residual
        of one band there.

        The best of ``n_ppc`` posterior draws per object; with
        ``calibration["support_fit"] == "refined"`` then moved to the nearby best
        fit (:func:`~prospect_emulator.amortized.refine.refine_best_fit`,
        ~15 emulator rows per step, a few steps per object), where an ordinary
        object's residuals are those of a fit and not the flow's scatter.
        chi^2 uses eq. 9's total variance: the observed uncertainty, the
        emulator's error and the floor, at the model flux.

        Returns
        -------
        best : ndarray (n,)
            The smallest chi^2.
        pvalue : ndarray (n,)
            Its p-value for as many degrees of freedom as bands.
        max_band_z : ndarray (n,)
            max over bands of |observed - model| / sigma there: one band far
            off the SED (a wrong zero point, a blended neighbour) stands out
            here before it moves the chi^2 of many bands.
        worst_band : ndarray of int (n,)
            The band of that residual (-1 where no draw is inside the
            training range).
        """
        from scipy.stats import chi2 as chi2_dist
        from .refine import PhotometryResiduals, refine
        n_obj, n_samples, ndim = theta.shape
        k = min(int(self.calibration["n_ppc"]), n_samples)
        rng = np.random.default_rng(seed)
        pick = rng.choice(n_samples, size=k, replace=False)
        iz = self.param_space.zred_index
        zred = theta[:, 0, iz] if iz is not None else np.zeros(n_obj)
        phot = PhotometryResiduals(self.model, self._band_emulator, maggies, unc, mask, zred,
                                   self.floor)
        chi2, resid, _ = phot.residuals(theta[:, pick].reshape(-1, ndim),
                                        np.repeat(np.arange(n_obj), k))
        chi2 = chi2.reshape(n_obj, k)
        at = chi2.argmin(axis=1)
        best = chi2[np.arange(n_obj), at]
        resid2 = resid.reshape(n_obj, k, -1)[np.arange(n_obj), at] ** 2
        if self.calibration.get("support_fit", "best-draw") == "refined":
            fits = np.flatnonzero(np.isfinite(best))
            if fits.size:
                _, best[fits], resid = refine(phot, theta[fits, pick[at[fits]]], fits)
                resid2[fits] = resid * resid
        worst_band = np.where(np.isfinite(best), resid2.argmax(axis=1), -1)
        max_z = np.where(np.isfinite(best), np.sqrt(resid2.max(axis=1)), np.inf)
        return best, chi2_dist.sf(best, mask.sum(axis=1)), max_z, worst_band

    def _support_checks(self, theta, maggies, unc, mask, good, reasons, chi2, pvalue, seed):
        nm = self.noise_model
        idx = np.nonzero(good)[0]
        trained = nm.is_trained_pattern(mask[idx])
        flux_range = float(self.calibration.get("uncertainty_flux_range_sigma", 0.0))
        z, offset = nm.uncertainty_zscores(maggies[idx], unc[idx], mask[idx], flux_range)
        zmax = float(self.calibration["uncertainty_z_threshold"])
        best, p, band_z, worst = self.posterior_predictive_chi2(theta[idx], maggies[idx],
                                                                unc[idx], mask[idx], seed=seed)
        where = ("at the best fit near the posterior draws"
                 if self.calibration.get("support_fit") == "refined"
                 else "at the best posterior-predictive draw")
        chi2[idx], pvalue[idx] = best, p
        threshold = float(self.calibration["chi2_pvalue_threshold"])
        band_limit = float(self.calibration.get("band_z_threshold", np.inf))
        for j, i in enumerate(idx):
            if not trained[j]:
                missing = [self.filter_names[b] for b in np.nonzero(~mask[i])[0]]
                reasons[i].append(f"missing-band pattern not in the training catalogue "
                                  f"(missing: {', '.join(missing) or 'none'})")
            with np.errstate(invalid="ignore"):
                off = np.nonzero(np.abs(z[j]) > zmax)[0]
            for b in off:
                reasons[i].append(
                    f"uncertainty of {self.filter_names[b]} is {10 ** offset[j, b]:.3g}x "
                    f"the noise model's typical value at this flux"
                    + (f" (the most typical true flux within {flux_range:g} sigma of it)"
                       if flux_range else "") + f" ({z[j, b]:+.1f} sigma)")
            if p[j] < threshold:
                reasons[i].append(
                    f"photometry off the simulations' support: {where}, "
                    f"chi2 = {best[j]:.1f} for {int(mask[i].sum())} bands (p = {p[j]:.2g} < "
                    f"{threshold:.2g}, the calibrated limit)")
            if band_z[j] > band_limit and worst[j] >= 0:  # (no draw in range: chi2 says so)
                reasons[i].append(
                    f"one band off the SED: {where}, {self.filter_names[worst[j]]} is "
                    f"{band_z[j]:.1f} sigma from the model (calibrated limit {band_limit:.1f})")

    def calibrate(self, sims, n_samples=200, false_flag_rate=0.05, seed=1):
        """Set the out-of-support limits from held-out in-distribution simulations.

        The chi^2 p-value limit, the one-band residual limit and the
        uncertainty z-score limit (at least 4) are each set so that a third of
        ``false_flag_rate`` of the simulations would be flagged by it
        (together at most ``false_flag_rate``); the chi^2 and the residuals are
        taken at the refined best fit (``calibration["support_fit"] =
        "refined"``) and the uncertainties' z profiled over true fluxes within
        :data:`UNCERTAINTY_FLUX_RANGE_SIGMA` sigma of the observed one.
        Returns the p-value limit.
        """
        quantile = float(false_flag_rate) / 3
        self.calibration["uncertainty_flux_range_sigma"] = UNCERTAINTY_FLUX_RANGE_SIGMA
        z, _ = self.noise_model.uncertainty_zscores(sims.maggies, sims.maggies_unc, sims.mask,
                                                    UNCERTAINTY_FLUX_RANGE_SIGMA)
        with np.errstate(invalid="ignore"):
            worst = np.nanmax(np.where(np.isfinite(z), np.abs(z), np.nan), axis=1)
        worst = worst[np.isfinite(worst)]
        if len(worst):
            self.calibration["uncertainty_z_threshold"] = max(
                4.0, float(np.quantile(worst, 1 - quantile)))
        self.calibration["support_fit"] = "refined"
        result = self.sample(_sims_as_observations(sims, self.filter_names), n_samples,
                             seed=seed, check_support=False)
        _, p, band_z, _ = self.posterior_predictive_chi2(result.samples, sims.maggies,
                                                         sims.maggies_unc, sims.mask, seed=seed)
        self.calibration["chi2_pvalue_threshold"] = float(np.quantile(p, quantile))
        finite = band_z[np.isfinite(band_z)]
        if len(finite):
            self.calibration["band_z_threshold"] = float(np.quantile(finite, 1 - quantile))
        self.calibration["chi2_calibration_simulations"] = int(len(sims))
        self.calibration["chi2_calibration_quantile"] = float(quantile)
        return self.calibration["chi2_pvalue_threshold"]

    # ----------------------------------------------------------- I/O
    def save(self, path):
        """Write the HDF5 file (see the module docstring); no pickle."""
        import h5py
        import flowjax
        from ..definition.fitting_model import definition_of
        from ..fileio import atomic_path
        from .flow import flow_arrays
        definition = definition_of(self.emulator)
        s = self.standardisation
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            a = f.attrs
            a["format"] = FILE_FORMAT
            a["schema_version"] = 1 if self.param_space.coordinates == "logit" else SCHEMA_VERSION
            a["package_version"] = __version__
            a["flowjax_version"] = flowjax.__version__
            a["hyperparameters"] = json.dumps(self.hyperparameters)
            a["dim"], a["cond_dim"] = len(s["theta_mean"]), len(s["cond_mean"])
            a["emulator_checksum"] = self.emulator.checksum
            a["emulator_source"] = self.emulator_source or ""
            a["model_definition"] = json.dumps(definition.to_dict() if definition else None)
            a["free_params"] = json.dumps(list(self.model.free_params))
            a["theta_names"] = json.dumps(self.param_space.theta_names)
            a["inferred_names"] = json.dumps(self.param_space.inferred_names)
            a["floor"] = self.floor
            a["parameter_coordinates"] = self.param_space.coordinates
            a["calibration"] = json.dumps(self.calibration)
            a["training"] = json.dumps({k: v for k, v in self.training.items()
                                        if k not in ("train_loss", "val_loss")})
            f["filter_names"] = np.array(self.filter_names, dtype="S")
            g = f.create_group("prior")
            g["lower"], g["upper"] = self.param_space.lower, self.param_space.upper
            g["log10"] = self.param_space.log10
            g = f.create_group("standardisation")
            for k in ("theta_mean", "theta_std", "cond_mean", "cond_std"):
                g[k] = s[k]
            g = f.create_group("noise_model")
            for k, v in self.noise_model.to_arrays().items():
                g[k] = v
            g = f.create_group("flow")
            arrays = flow_arrays(self.flow)
            g.attrs["n_arrays"] = len(arrays)
            for i, arr in enumerate(arrays):
                g[f"leaf_{i:05d}"] = arr
            g = f.create_group("training")
            for k in ("train_loss", "val_loss"):
                g[k] = np.asarray(self.training.get(k, []), dtype=float)

    @classmethod
    def load(cls, path, emulator=None):
        """Read a posterior written by :meth:`save`.

        Parameters
        ----------
        path : str
        emulator : str, path or Emulator, optional
            The emulator it was trained with; default: the one it records
            (a shipped name or a path).  Its checksum must match.

        Raises
        ------
        EmulatorFileError
            Missing/foreign file, unsupported schema, a recorded emulator that
            cannot be found, or an emulator whose checksum differs.
        """
        import h5py
        from ..fileio import open_hdf5
        from ..runtime.fileformat import load_emulator
        from .flow import INVERT_BEFORE_IT_WAS_STORED, build_flow, flow_with_arrays
        with open_hdf5(path) as f:
            a = f.attrs
            if a.get("format") != FILE_FORMAT:
                raise EmulatorFileError(
                    f"{path} is not an amortized posterior file (format attribute "
                    f"{a.get('format')!r}, expected {FILE_FORMAT!r})")
            if int(a["schema_version"]) > SCHEMA_VERSION:
                raise EmulatorFileError(
                    f"{path} has schema version {int(a['schema_version'])}; this version of "
                    f"prospect-emulator reads up to {SCHEMA_VERSION}")
            hyper = json.loads(a["hyperparameters"])
            hyper.setdefault("invert", INVERT_BEFORE_IT_WAS_STORED)  # older files
            dim, cond_dim = int(a["dim"]), int(a["cond_dim"])
            checksum, source = str(a["emulator_checksum"]), str(a["emulator_source"])
            free_params = json.loads(a["free_params"])
            floor = float(a["floor"])
            coordinates = str(a.get("parameter_coordinates", "logit"))
            if coordinates not in COORDINATES:
                raise EmulatorFileError(
                    f"{path} records parameter coordinates {coordinates!r}; this version of "
                    f"prospect-emulator knows {', '.join(COORDINATES)}")
            calibration = json.loads(a["calibration"])
            training = json.loads(a["training"])
            training.update({k: f["training"][k][()].tolist() for k in ("train_loss", "val_loss")})
            standardisation = {k: f["standardisation"][k][()] for k in f["standardisation"]}
            noise = ObservationalNoiseModel.from_arrays(
                {k: f["noise_model"][k][()] for k in f["noise_model"]})
            g = f["flow"]
            arrays = [g[f"leaf_{i:05d}"][()] for i in range(int(g.attrs["n_arrays"]))]
        if emulator is None:
            if not source:
                raise EmulatorFileError(
                    f"{path} records no emulator location (it was trained on an in-memory "
                    "emulator): pass emulator= to AmortizedPosterior.load")
            emulator = source
        from ..prospector.model import _as_emulator
        emu = _as_emulator(emulator)
        if emu.checksum != checksum:
            raise EmulatorFileError(
                f"{path} was trained with the emulator of checksum {checksum[:16]}..., but "
                f"{emulator!r} has checksum {emu.checksum[:16]}...: use the emulator it was "
                "trained with (or train a new posterior)")
        model = build_model(emu)
        if list(model.free_params) != free_params:
            raise EmulatorFileError(
                f"{path}: the model rebuilt from the emulator has free parameters "
                f"{list(model.free_params)}, the file records {free_params}")
        try:
            skeleton = build_flow(hyper, dim, cond_dim)
        except ValueError as err:  # hyperparameters of another version
            raise EmulatorFileError(f"{path}: {err}") from None
        flow = flow_with_arrays(skeleton, arrays)
        return cls(flow, hyper, model, noise, standardisation, floor=floor,
                   calibration=calibration, training=training,
                   emulator_source=source if emulator == source else _emulator_source(emulator),
                   coordinates=coordinates)

    def __repr__(self):
        return (f"AmortizedPosterior({self.hyperparameters.get('kind')} flow over "
                f"{self.param_space.inferred_names} in {self.param_space.coordinates} "
                f"coordinates, {len(self.filter_names)} filters, "
                f"z in [{self.zred_range[0]:g}, {self.zred_range[1]:g}])")


def _sims_as_observations(sims, filter_names):
    return Observations(filter_names, sims.maggies, sims.maggies_unc, sims.zred,
                        ids=[f"sim{i}" for i in range(len(sims))])
