"""Photometry of many models at once on :class:`~.bagpipes_basis.BagpipesBasis`.

Training-set generation computes ``model.predict(theta, obs, sps)`` for
hundreds of thousands of parameter vectors; per model that is a few
milliseconds of Python and small array operations.  :class:`BatchedPhotometry`
computes a whole chunk of rows with array operations over the chunk:

* the SPS parameters of every row: the model's free parameters from
  ``theta``, its fixed ones, and its ``depends_on`` transforms in their
  batched versions (:func:`model_parameters_batch`);
* the SSP weights of every row's SFH (step or parametric), then the stellar
  spectra as matrix products of those weights with the BC03 grids of the
  two bracketing metallicities (rows grouped by metallicity bracket);
  nebular continuum and lines likewise with the Cloudy grids;
* attenuation (birth clouds and diffuse dust), dust emission in energy
  balance (Draine & Li 2007), IGM transmission, as arrays (rows x pixels);
* Prospector's flux normalisation (mass, luminosity distance, ``1 + z``) and
  the filter projection of every row on its redshifted grid
  (:meth:`~.filter_projection.FilterProjection.maggies_redshifted`).

Every row equals ``model.predict(theta_row, obs={"filters": filters}, sps=sps)``
-- photometry in maggies and ``mfrac`` -- within 1e-6 relative (in practice
~1e-12: the same formulae in another order of summation; tested across the
training distributions of the presets).  Rows the batch does not take (a
value outside the grids, a non-finite parameter, anything the per-model
path would refuse) are left to the per-model path, which raises its own
error for them.  Models whose physics the batch does not implement
(Prospector adding emission lines to the photometry itself, a varying IMF or
SFH type, ...) raise :class:`BatchUnsupportedError` at construction.

The luminosity distance and the age of the universe (``zred_to_agebins``,
``tage_from_tuniv``) are computed by Gauss-Legendre quadrature of the
cosmology's ``inv_efunc`` (equal to astropy's integrals within 1e-12; astropy
integrates one redshift at a time, ~1 ms each).
"""

import contextlib

import numpy as np

from prospect.models import sedmodel as _sedmodel
from prospect.models import transforms as _prospector_transforms

from ..errors import EmulatorConfigurationError, EmulatorError
from ..transforms import (batched_transform, tage_from_tuniv_batch, zred_to_agebins_batch)
from .bagpipes_basis import (_FSPS_QPAH, _DL07_UMIN, _IGM_Z_MAX, _IGM_Z_TABLE_MAX, _LSUN_BAGPIPES,
                             _LSUN_PROSPECTOR, _QPAH_RANGE, _T_BIRTH_CLOUD_YR, FSPS_PARAMETERS,
                             HONOURED_PARAMETERS, INERT_AT_DEFAULT, INERT_PARAMETERS,
                             BagpipesBasis, _cumulative_parametric, _ParsedParams)
from .filter_projection import FilterProjection

__all__ = ["BatchedPhotometry", "BatchUnsupportedError", "model_parameters_batch",
           "age_of_universe_gyr", "luminosity_distance_mpc", "BATCH_VARYING_PARAMETERS"]


class BatchUnsupportedError(EmulatorConfigurationError):
    """The model asks for something :class:`BatchedPhotometry` does not compute
    (use the per-model path, ``model.predict``, for it)."""


#: SPS parameters that may differ from row to row in a batch (free or
#: ``depends_on`` parameters).  Other FSPS parameters must be fixed.
BATCH_VARYING_PARAMETERS = frozenset({
    "logzsol", "zred", "dust2", "dust_index", "dust1", "dust1_index", "dust1_fraction",
    "dust_ratio", "duste_qpah", "duste_umin", "duste_gamma", "gas_logu", "gas_logz",
    "agebins", "mass", "tage", "tau", "fagn", "lumdist"})

_BLAS_CONTROLLER = []


def _blas_limit(threads):
    """A context manager limiting the BLAS to ``threads`` threads while it is open
    (threadpoolctl; without it, or with ``threads`` None, one that does nothing)."""
    if threads is None:
        return contextlib.nullcontext()
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
            _BLAS_CONTROLLER.append(ThreadpoolController())   # finds the libraries once
        except ImportError:
            _BLAS_CONTROLLER.append(None)
    controller = _BLAS_CONTROLLER[0]
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=int(threads), user_api="blas")


#: Rows per block of the filter projection.
BLOCK_ROWS = 128
#: Rows per block of the spectra: ~20 temporary arrays of rows x pixels each; small
#: enough (~1 MB) that the allocator reuses their memory instead of mapping fresh
#: pages for every temporary (page faults cost more than the arithmetic).
SPECTRA_ROWS = 64


# ---------------------------------------------------------------------------
# cosmology: many redshifts at once
# ---------------------------------------------------------------------------
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(64)
_GL24_NODES, _GL24_WEIGHTS = np.polynomial.legendre.leggauss(24)
# the age integral in the scale factor a, on [0, a_z] split at a_z * 10**-9 ... 10**-1:
# the integrand 1/(a E) has a branch point at a ~ -Omega_r/Omega_m, close to 0
_AGE_EDGES = np.concatenate([[0.0], 10.0 ** np.arange(-9.0, 1.0)])


def _flat(cosmo):
    return float(getattr(cosmo, "Ok0", 0.0)) == 0.0 and hasattr(cosmo, "inv_efunc")


def luminosity_distance_mpc(zred, cosmo=None):
    """Luminosity distance (Mpc) of many redshifts at once.

    Parameters
    ----------
    zred : array_like of shape (n,)
        Redshifts >= 0.
    cosmo : astropy cosmology, optional
        Default: Prospector's (``prospect.models.sedmodel.cosmo``, WMAP9).

    Returns
    -------
    ndarray of shape (n,)
        ``cosmo.luminosity_distance(zred)`` in Mpc, within 1e-12 relative:
        64-point Gauss-Legendre quadrature of ``1/E(z)`` in ``ln(1 + z)``
        (astropy's quad runs per redshift).  A curved cosmology goes
        through astropy.
    """
    cosmo = _sedmodel.cosmo if cosmo is None else cosmo
    z = np.asarray(zred, dtype=float).reshape(-1)
    if not _flat(cosmo):
        return np.asarray(cosmo.luminosity_distance(z).to("Mpc").value, dtype=float)
    u_max = np.log1p(z)
    u = 0.5 * u_max[:, None] * (_GL_NODES + 1.0)
    zz = np.expm1(u)
    # D_C = D_H int_0^z dz / E(z) = D_H int_0^ln(1+z) (1 + z) / E(z) du
    comoving = 0.5 * u_max * (((1.0 + zz) * cosmo.inv_efunc(zz)) @ _GL_WEIGHTS)
    return (1.0 + z) * comoving * cosmo.hubble_distance.to("Mpc").value


def age_of_universe_gyr(zred, cosmo=None):
    """Age of the universe (Gyr) at many redshifts at once.

    Parameters
    ----------
    zred : array_like of shape (n,)
    cosmo : astropy cosmology, optional
        Default: Prospector's transforms' (``prospect.models.transforms.cosmo``, WMAP9).

    Returns
    -------
    ndarray of shape (n,)
        ``cosmo.age(zred)`` in Gyr within 1e-12 relative (composite
        Gauss-Legendre quadrature in the scale factor).
    """
    cosmo = _prospector_transforms.cosmo if cosmo is None else cosmo
    z = np.asarray(zred, dtype=float).reshape(-1)
    if not _flat(cosmo):
        return np.asarray(cosmo.age(z).value, dtype=float)
    a_z = 1.0 / (1.0 + z)
    total = np.zeros(z.size)
    for lo, hi in zip(_AGE_EDGES[:-1], _AGE_EDGES[1:]):
        a = a_z[:, None] * (lo + (hi - lo) * 0.5 * (_GL24_NODES + 1.0))
        # t = t_H int_0^a_z da / (a E(1/a - 1))
        total += a_z * (hi - lo) * 0.5 * ((cosmo.inv_efunc(1.0 / a - 1.0) / a) @ _GL24_WEIGHTS)
    return total * cosmo.hubble_time.to("Gyr").value


def _zred_to_agebins_batch(zred, agebins):
    """:func:`~prospect_emulator.transforms.zred_to_agebins_batch` with the age of
    the universe from :func:`age_of_universe_gyr` (same formula, fast cosmology)."""
    z = np.asarray(zred, dtype=float).reshape(len(zred), -1)[:, 0]
    agebins = np.asarray(agebins, dtype=float)
    if agebins.ndim == 2:
        agebins = np.broadcast_to(agebins, (len(z),) + agebins.shape)
    nbin = agebins.shape[1]
    tuniv = age_of_universe_gyr(z) * 1e9
    # as Prospector: first bin kept, log-even bins up to 0.85 t_univ, last to t_univ
    middle = np.linspace(agebins[:, 1, 1], np.log10(tuniv * 0.85), nbin - 2, axis=-1)
    agelims = np.concatenate([agebins[:, 0, :], middle, np.log10(tuniv)[:, None]], axis=1)
    return np.stack([agelims[:, :-1], agelims[:, 1:]], axis=-1)


def _tage_from_tuniv_batch(zred, tage_tuniv):
    z = np.asarray(zred, dtype=float).reshape(len(zred), -1)[:, 0]
    return np.asarray(tage_tuniv, dtype=float).reshape(len(z), -1) * age_of_universe_gyr(z)[:, None]


#: batched transforms of prospect_emulator.transforms -> the same with the fast cosmology
_FAST_COSMOLOGY = {zred_to_agebins_batch: _zred_to_agebins_batch,
                   tage_from_tuniv_batch: _tage_from_tuniv_batch}


# ---------------------------------------------------------------------------
# the parameters of a Prospector model for many theta
# ---------------------------------------------------------------------------
def _dependencies(model):
    """(name, function) of the model's depends_on parameters, in configuration order."""
    return [(name, info["depends_on"]) for name, info in model.config_dict.items()
            if info.get("depends_on") is not None]


def model_parameters_batch(model, theta):
    """The parameters ``model.set_parameters(theta[i])`` gives, for every row at once.

    Parameters
    ----------
    model : prospect.models.ProspectorParams
        E.g. a ``SpecModel`` of :meth:`TrainingSetConfig.build_model`.
    theta : ndarray of shape (n, model.ndim)

    Returns
    -------
    varying : dict
        Free and ``depends_on`` parameters: name -> ndarray of shape
        ``(n,) + shape`` (``shape`` that of ``model.params[name]``).
    fixed : dict
        The other parameters (the same for every row): name -> value.

    Notes
    -----
    Transforms with a batched version
    (:func:`prospect_emulator.transforms.batched_transform`; the age of the
    universe by :func:`age_of_universe_gyr`) run once for all rows, in
    configuration order as ``set_parameters`` runs them; if one has none,
    every row goes through ``model.set_parameters`` (exact, slower).
    ``model.params`` is left as the last ``set_parameters`` call left it.
    """
    theta = np.asarray(theta, dtype=float)
    if theta.ndim != 2 or theta.shape[1] != model.ndim:
        raise EmulatorConfigurationError(
            f"theta must have shape (n, {model.ndim}) for this model; got {theta.shape}")
    n = len(theta)
    deps = _dependencies(model)
    dep_names = [name for name, _ in deps]
    fixed = {name: value for name, value in model.params.items()
             if name not in model.theta_index and name not in dep_names}
    varying = {name: theta[:, inds].copy() for name, inds in model.theta_index.items()}

    plan = []
    for name, func in deps:
        batched = batched_transform(func)
        if batched is None or any(a not in model.params and a not in varying for a in batched[1]):
            plan = None
            break
        plan.append((name, _FAST_COSMOLOGY.get(batched[0], batched[0]), batched[1]))
    if plan is None:
        return _parameters_row_by_row(model, theta, dep_names), fixed

    current = dict(varying)
    for name, func, argnames in plan:
        args = []
        for a in argnames:
            value = current.get(a)
            if value is None:   # fixed, or a depends_on parameter not computed yet
                value = np.atleast_1d(np.asarray(model.params[a], dtype=float))
                value = np.broadcast_to(value, (n,) + value.shape)
            args.append(value)
        shape = np.shape(np.atleast_1d(model.params[name]))
        current[name] = np.asarray(func(*args), dtype=float).reshape((n,) + shape)
    return current, fixed


def _parameters_row_by_row(model, theta, dep_names):
    names = list(model.theta_index) + dep_names
    rows = {name: [] for name in names}
    for row in theta:
        model.set_parameters(row)
        for name in names:
            rows[name].append(np.array(model.params[name], dtype=float, copy=True))
    return {name: np.stack(values) for name, values in rows.items()}


# ---------------------------------------------------------------------------
# SPS parameters of a batch, validated row by row with array operations
# ---------------------------------------------------------------------------
def _row(varying, fixed, i):
    """The params dict ``set_parameters`` leaves for row i."""
    params = dict(fixed)
    for name, values in varying.items():
        params[name] = values[i]
    return params


def _upper_brackets(grid, x):
    """:func:`bagpipes_basis._upper_bracket` of many values."""
    return np.clip(grid.searchsorted(x, side="left"), 1, grid.size - 1)


class _BatchSPSParameters:
    """The physical parameters of n rows (arrays), and which rows the batch may take.

    ``template`` is the :class:`_ParsedParams` of one row: the fixed physics
    (SFH type, dust type, switches) and the values of fixed parameters.
    Varying parameters are checked here as ``_ParsedParams`` checks them; a
    row that fails any check has ``ok`` False (the per-model path then says
    what is wrong with it).
    """

    def __init__(self, sps, template, varying, fixed, n):
        self.n = n
        ok = np.ones(n, dtype=bool)

        def scalar(name, default):
            """(n,) values of a scalar parameter, float."""
            values = varying.get(name)
            if values is None:
                value = fixed.get(name, default)
                value = default if value is None else value
                return np.full(n, float(np.ravel(value)[0]))
            values = values.reshape(n, -1)
            if values.shape[1] != 1:
                raise BatchUnsupportedError(f"{name} has {values.shape[1]} values per row: "
                                            "BagpipesBasis takes one")
            return values[:, 0].astype(float)

        def finite(*arrays):
            for a in arrays:
                ok[:] &= np.all(np.isfinite(a.reshape(n, -1)), axis=1)

        p = template
        self.template = p
        self.step = p.step
        # --- SFH ---
        edges = sps._age_edges
        if p.step:
            if "agebins" in varying:
                agebins = varying["agebins"].reshape(n, -1, 2)
            else:
                agebins = np.broadcast_to(p.agebins, (n,) + p.agebins.shape)
            if "mass" in varying:
                masses = varying["mass"].reshape(n, -1)
            else:
                masses = np.broadcast_to(p.masses, (n, p.masses.size))
            if masses.shape[1] != agebins.shape[1]:
                raise BatchUnsupportedError("'mass' and 'agebins' differ in length")
            finite(agebins, masses)
            with np.errstate(invalid="ignore", over="ignore"):
                ok &= np.all(agebins[..., 1] > agebins[..., 0], axis=1)
                ok &= np.all(masses >= 0, axis=1) & (masses.sum(axis=1) > 0)
                ok &= 10.0 ** agebins.max(axis=(1, 2)) <= edges[-1] * (1 + 1e-9)
            self.agebins, self.masses = agebins, masses
            self.mass_total = masses.sum(axis=1)
        else:
            self.sfh = p.sfh
            tage, tau = scalar("tage", None), scalar("tau", HONOURED_PARAMETERS["tau"])
            mass = varying.get("mass")
            mass = (np.full(n, np.sum(fixed.get("mass", 1.0))) if mass is None
                    else mass.reshape(n, -1).sum(axis=1))
            finite(tage, tau)
            with np.errstate(invalid="ignore"):
                ok &= (tage > 0) & (tau > 0) & (tage * 1e9 <= edges[-1] * (1 + 1e-9))
            self.tage_yr, self.tau_yr = tage * 1e9, tau * 1e9
            self.mass_total = mass
        # --- stars ---
        logzsol = scalar("logzsol", 0.0)
        finite(logzsol)
        lo, hi = sps._logzsol_range
        ok &= (lo <= logzsol) & (logzsol <= hi)
        self.zsol = 10.0 ** np.where(ok, logzsol, 0.0)
        self.zred = scalar("zred", 0.0)
        finite(self.zred)
        ok &= self.zred >= 0
        # --- dust attenuation ---
        self.dust2 = scalar("dust2", 0.0)
        self.dust_index = scalar("dust_index", -0.7)
        self.dust1_index = scalar("dust1_index", -1.0)
        dust1 = varying.get("dust1")
        dust1 = None if dust1 is None and fixed.get("dust1") is None else scalar("dust1", None)
        for ratio_name in ("dust1_fraction", "dust_ratio"):
            if varying.get(ratio_name) is None and fixed.get(ratio_name) is None:
                continue
            ratio = scalar(ratio_name, None)
            if dust1 is None:
                dust1 = ratio * self.dust2
            else:   # _ParsedParams._same(dust1, ratio * dust2)
                b = ratio * self.dust2
                ok &= np.abs(dust1 - b) <= 1e-8 + 1e-6 * np.abs(b)
        self.dust1 = np.zeros(n) if dust1 is None else dust1
        finite(self.dust2, self.dust_index, self.dust1_index, self.dust1)
        ok &= (self.dust1 >= 0) & (self.dust2 >= 0)
        # --- dust emission ---
        self.qpah = scalar("duste_qpah", 3.5)
        self.umin = scalar("duste_umin", 1.0)
        self.gamma = scalar("duste_gamma", 0.01)
        if p.add_dust_emission:
            finite(self.qpah, self.umin, self.gamma)
            ok &= (_QPAH_RANGE[0] <= self.qpah) & (self.qpah <= _QPAH_RANGE[1])
            ok &= (_DL07_UMIN[0] <= self.umin) & (self.umin <= _DL07_UMIN[-1])
            ok &= (0.0 <= self.gamma) & (self.gamma <= 1.0)
        # --- nebular emission ---
        if p.add_neb:
            logu = scalar("gas_logu", -2.0)
            gas_logz = scalar("gas_logz", 0.0)
            finite(logu, gas_logz)
            grid = sps._logu
            ok &= (grid[0] <= logu) & (logu <= grid[-1])
            ok &= np.abs(gas_logz - logzsol) <= 1e-6
            k = _upper_brackets(grid, logu)
            f = (logu - grid[k - 1]) / (grid[k] - grid[k - 1])
            self.logu_index, self.logu_weights = k - 1, (1.0 - f, f)
        # --- IGM and AGN ---
        if p.add_igm:
            ok &= self.zred <= _IGM_Z_MAX
        if "fagn" in varying:
            ok &= scalar("fagn", 0.0) == 0.0
        # --- Prospector's flux normalisation ---
        self.lumdist = None
        if "lumdist" in varying or "lumdist" in fixed:
            self.lumdist = scalar("lumdist", 1e-5)
            finite(self.lumdist)
        self.ok = ok

    def take(self, rows):
        """The parameters of a subset of rows (a shallow copy with sliced arrays)."""
        out = object.__new__(_BatchSPSParameters)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray) and value.shape[:1] == (self.n,):
                value = value[rows]
            elif isinstance(value, tuple) and all(isinstance(v, np.ndarray) for v in value):
                value = tuple(v[rows] for v in value)
            setattr(out, name, value)
        out.n = len(out.zred)
        return out


# ---------------------------------------------------------------------------
# the spectra of a batch
# ---------------------------------------------------------------------------
class _BatchGrids:
    """BagpipesBasis grids rearranged for products with many rows (built lazily)."""

    def __init__(self, sps):
        self.sps = sps
        self._neb = {}
        # where the lines go in the spectrum (BagpipesBasis._line_pixels), as a matrix
        pixels, inverse = np.unique(sps._line_pixels, return_inverse=True)
        nline = sps._line_wave.size
        scatter = np.zeros((nline, pixels.size))
        np.add.at(scatter, (np.tile(np.arange(nline), 2), inverse), sps._line_pixel_weights)
        self.line_pixels, self.line_scatter = pixels, scatter
        self.ages = np.append(sps._age_edges, _T_BIRTH_CLOUD_YR)
        # numpy.trapezoid(y, wave) = y @ trapezoid_weights (up to the order of the sums)
        dx = sps._wave_dx
        self.trapezoid_weights = np.append(dx, 0.0) / 2.0 + np.append(0.0, dx) / 2.0
        self.surviving = {False: sps._live_frac, True: sps._live_frac + sps._remnant_frac}

    def nebular(self, i, j):
        """Continuum (4 n_young, nwave) and lines (4 n_young, nline) of the four
        (metallicity, logU) corners (i, j), (i, j+1), (i+1, j), (i+1, j+1), stacked."""
        key = (int(i), int(j))
        grids = self._neb.get(key)
        if grids is None:
            sps = self.sps
            corners = [(i, j), (i, j + 1), (i + 1, j), (i + 1, j + 1)]
            cont = np.concatenate([sps._neb_cont[a, b].T for a, b in corners])
            lines = np.concatenate([sps._neb_line[a, b].T for a, b in corners])
            grids = self._neb[key] = (np.ascontiguousarray(cont), np.ascontiguousarray(lines))
        return grids


def _exp_of(x):
    """``np.exp(x)`` (to the last bit) for attenuation exponents x <= 0, without
    the slow path of the vectorised exp where it underflows (x < -708: the far
    UV behind thick dust), which costs ~10-50 times a normal element."""
    underflow = x < -700.0
    if not underflow.any():
        return np.exp(x)
    out = np.exp(np.maximum(x, -700.0))
    where = np.flatnonzero(underflow)
    values = x.ravel()[where]
    # exp(x) is exactly 0 below -746; in between it is subnormal
    subnormal = values > -746.0
    exact = np.zeros(values.size)
    exact[subnormal] = np.exp(values[subnormal])
    out.ravel()[where] = exact
    return out


def _young_old_rows(cum, below_tbc, n_young):
    """:func:`bagpipes_basis._young_old` for rows of cumulative fractions (n, nedge)."""
    per_bin = np.diff(cum, axis=1)
    young = np.zeros_like(per_bin)
    young[:, :n_young] = per_bin[:, :n_young]
    young[:, n_young - 1] = below_tbc - cum[:, n_young - 1]
    return young, per_bin - young


def _ssp_weights(grids, p):
    """Mass formed per SSP bin (young, old), shape (n, nage) each."""
    sps = grids.sps
    if p.step:
        lo, hi = 10.0 ** p.agebins[..., 0], 10.0 ** p.agebins[..., 1]        # (n, nbin)
        fractions = np.clip((grids.ages[None, :, None] - lo[:, None, :])
                            / (hi - lo)[:, None, :], 0.0, 1.0)          # (n, nedge + 1, nbin)
        frac = np.einsum("nab,nb->na", fractions, p.masses) / p.masses.sum(axis=1)[:, None]
    else:
        frac = _cumulative_parametric(grids.ages[None, :], p.sfh, p.tage_yr[:, None],
                                      p.tau_yr[:, None])
    return _young_old_rows(frac[:, :-1], frac[:, -1], sps._n_young)


def _dust_emission_shapes(sps, qpah, umin, gamma):
    """BagpipesBasis._dust_emission_shape for many rows, (n, n_dl07_wave) in 1/AA."""
    q, u = _FSPS_QPAH, _DL07_UMIN
    iq = _upper_brackets(q, qpah) - 1
    fq = (qpah - q[iq]) / (q[iq + 1] - q[iq])
    iu = _upper_brackets(u, umin) - 1
    fu = (umin - u[iu]) / (u[iu + 1] - u[iu])
    model = np.zeros((qpah.size, sps._dl07.shape[-1]))
    for dq, wq in ((0, 1.0 - fq), (1, fq)):
        for c, wc in ((0, 1.0 - gamma), (1, gamma)):
            for du, wu in ((0, 1.0 - fu), (1, fu)):
                model += (wq * wc * wu)[:, None] * sps._dl07[iq + dq, c, iu + du]
    np.maximum(model, 0.0, out=model)
    norm = (sps._dl07_dx * (model[:, 1:] + model[:, :-1]) / 2.0).sum(axis=1)
    return model / norm[:, None]


def _igm_rows(sps, zred):
    """IGM transmission (n, n_igm) on the grid's first pixels: BagpipesBasis._igm_transmission."""
    trans = np.ones((zred.size, sps._n_igm))
    table = (zred > 0) & (zred <= _IGM_Z_TABLE_MAX)
    if table.any():
        z = zred[table]
        zs = sps._igm_z
        k = _upper_brackets(zs, z)
        f = ((z - zs[k - 1]) / (zs[k] - zs[k - 1]))[:, None]
        trans[table] = (1.0 - f) * sps._igm_grid[k - 1] + f * sps._igm_grid[k]
    for i in np.flatnonzero(zred > _IGM_Z_TABLE_MAX):   # beyond the table: per model
        trans[i] = sps._igm_transmission(float(zred[i]))
    return trans


def bagpipes_spectra_batch(sps, p, grids=None):
    """Rest-frame spectra of a batch: ``sps.get_galaxy_spectrum`` row by row.

    Parameters
    ----------
    sps : BagpipesBasis
    p : _BatchSPSParameters
        Rows that all passed the checks.
    grids : _BatchGrids, optional

    Returns
    -------
    spec : ndarray (n, nwave)
        Lsun/Hz per solar mass formed.
    mfrac : ndarray (n,)
        Surviving stellar mass / mass formed.
    line_lum : ndarray (n, nline)
        Line luminosities (Lsun per solar mass formed) after dust and IGM.
    """
    grids = _BatchGrids(sps) if grids is None else grids
    t = p.template
    n, nwave = p.n, sps._wave.size
    young_w, old_w = _ssp_weights(grids, p)
    ny = sps._n_young
    zmet = sps._zmet
    i1 = _upper_brackets(zmet, p.zsol)
    i0 = i1 - 1
    f1 = (p.zsol - zmet[i0]) / (zmet[i1] - zmet[i0])
    f0 = 1.0 - f1

    # --- stars: rows grouped by metallicity bracket, (rows, SSP bins) @ (SSP bins, nwave)
    young = np.empty((n, nwave))
    old = np.empty((n, nwave))
    first_old = ny - 1        # old weights of younger SSP bins are zero
    stellar = sps._stellar_t
    for g in np.unique(i0):
        rows = np.flatnonzero(i0 == g)
        a, b = f0[rows, None], f1[rows, None]
        wy, wo = young_w[rows, :ny], old_w[rows, first_old:]
        young[rows] = (a * wy) @ stellar[g, :ny] + (b * wy) @ stellar[g + 1, :ny]
        old[rows] = (a * wo) @ stellar[g, first_old:] + (b * wo) @ stellar[g + 1, first_old:]
    surviving = grids.surviving[bool(t.add_remnants)]
    formed = young_w + old_w
    mfrac = (f0 * np.einsum("na,na->n", surviving[i0], formed)
             + f1 * np.einsum("na,na->n", surviving[i1], formed))

    # --- nebular emission from the stars younger than 10 Myr ---
    lines = np.zeros((n, sps._line_wave.size))
    if t.add_neb:
        young[:, :sps._n_ionising] = 0.0     # ionising photons absorbed by the gas
        j0 = p.logu_index
        g0, g1 = p.logu_weights
        for key in set(zip(i0.tolist(), j0.tolist())):
            rows = np.flatnonzero((i0 == key[0]) & (j0 == key[1]))
            wy = young_w[rows, :ny]
            weights = np.concatenate([(fz * fu)[:, None] * wy
                                      for fz in (f0[rows], f1[rows])
                                      for fu in (g0[rows], g1[rows])], axis=1)
            cont, line_grid = grids.nebular(*key)
            if t.add_neb_continuum:
                young[rows] += weights @ cont
            lines[rows] = weights @ line_grid
        if t.lines_in_spectrum:
            young[:, grids.line_pixels] += lines @ grids.line_scatter

    # --- dust attenuation: birth clouds (young) and diffuse (all) ---
    # BagpipesBasis._compute's expressions, evaluated in place (fewer passes over
    # rows x pixels; the same operations in the same order)
    intrinsic = young + old
    power = np.exp(p.dust_index[:, None] * sps._ln_wave_v)
    power_l = np.exp(p.dust_index[:, None] * sps._ln_line_v)
    if t.dust_type == 0:
        tau2, tau2_l = power, power_l
    else:   # Kriek & Conroy (2013): (cal + bump * drude / 4.05) * power
        bump = (0.85 - 1.9 * p.dust_index)[:, None]
        tau2 = bump * sps._kc_drude
        tau2 /= 4.05
        tau2 += sps._kc_cal
        tau2 *= power
        tau2_l = (sps._kc_cal_line + bump * sps._kc_drude_line / 4.05) * power_l
    tau2 *= p.dust2[:, None]
    tau2_l *= p.dust2[:, None]
    if np.all(p.dust1_index == p.dust1_index[0]):
        power1, power1_l = sps._dust1_power(float(p.dust1_index[0]))
    else:
        power1 = np.exp(p.dust1_index[:, None] * sps._ln_wave_v)
        power1_l = np.exp(p.dust1_index[:, None] * sps._ln_line_v)
    exponent = p.dust1[:, None] * power1        # tau1
    exponent += tau2
    np.negative(exponent, out=exponent)           # -(tau1 + tau2)
    young *= _exp_of(exponent)
    np.negative(tau2, out=tau2)
    old *= _exp_of(tau2)
    spec = young
    spec += old                                   # young e^-(tau1+tau2) + old e^-tau2
    lines_att = lines * _exp_of(-(p.dust1[:, None] * power1_l + tau2_l))
    if t.add_dust_emission:
        lost = intrinsic
        lost -= spec
        absorbed = lost @ grids.trapezoid_weights        # trapezoid integral over the grid
        if not t.lines_in_spectrum:
            absorbed += (lines - lines_att).sum(axis=1)
        heated = np.flatnonzero(absorbed > 0.0)
        if heated.size:
            shapes = _dust_emission_shapes(sps, p.qpah[heated], p.umin[heated], p.gamma[heated])
            shapes *= absorbed[heated, None]
            spec[heated, sps._dl07_start:] += shapes

    # --- IGM ---
    if t.add_igm:
        trans = _igm_rows(sps, p.zred)
        nigm = sps._n_igm
        spec[:, :nigm] *= trans
        padded = np.ones((n, nwave))
        padded[:, :nigm] = trans
        lo, f = sps._line_lo, sps._line_frac
        lines_att = lines_att * ((1.0 - f) * padded[:, lo] + f * padded[:, lo + 1])

    spec *= sps._to_lsun_per_hz
    return spec, mfrac, lines_att * (_LSUN_BAGPIPES / _LSUN_PROSPECTOR)


# ---------------------------------------------------------------------------
# the public class
# ---------------------------------------------------------------------------
class BatchedPhotometry:
    """``model.predict(theta, obs, sps)`` photometry and ``mfrac`` of many rows at once.

    Parameters
    ----------
    model : prospect.models.SpecModel
        The Prospector model (e.g. :meth:`TrainingSetConfig.build_model`), with
        parameters BagpipesBasis honours.
    sps : BagpipesBasis
    filters : sequence of sedpy.observate.Filter, FilterSet or FilterProjection
    blas_threads : int or None, optional
        Threads the BLAS may use during :meth:`predict_batch` (default 1; None:
        leave it alone).  The matrix products are small: more threads gain
        little, and on busy or shared cores (one worker process per core) they
        make them several times slower.  Needs threadpoolctl (else ignored).

    Raises
    ------
    BatchUnsupportedError
        The model asks for what the batch does not compute: ``sps`` is not a
        BagpipesBasis, emission lines added by Prospector to the photometry
        (``add_neb_emission`` with ``nebemlineinspec = False``), or an FSPS
        parameter outside :data:`BATCH_VARYING_PARAMETERS` that is free or
        computed by a ``depends_on`` transform.

    Examples
    --------
    >>> config = get_preset("default")                         # doctest: +SKIP
    >>> sps = BagpipesBasis()
    >>> model = config.build_model(sps)
    >>> batch = BatchedPhotometry(model, sps, load_filters(default_filter_names()))
    >>> maggies, mfrac = batch.predict(config.sample(1000, seed=1))
    """

    def __init__(self, model, sps, filters, blas_threads=1):
        if not isinstance(sps, BagpipesBasis):
            raise BatchUnsupportedError(
                f"BatchedPhotometry computes BagpipesBasis models; got {type(sps).__name__}")
        self.model, self.sps = model, sps
        self.projection = filters if isinstance(filters, FilterProjection) \
            else FilterProjection(filters)
        self._grids = _BatchGrids(sps)
        self._inverse_wave_sq = 1.0 / sps._wave**2
        varying = set(model.theta_index) | {name for name, _ in _dependencies(model)}
        for name in sorted(varying):
            if name in BATCH_VARYING_PARAMETERS or name in INERT_PARAMETERS:
                continue
            if name in FSPS_PARAMETERS or name in HONOURED_PARAMETERS or name in INERT_AT_DEFAULT:
                raise BatchUnsupportedError(
                    f"{name!r} changes from model to model; the batched path takes only "
                    f"{', '.join(sorted(BATCH_VARYING_PARAMETERS))} as varying SPS parameters")
        self._varying_names = varying
        self.blas_threads = blas_threads

    @property
    def filters(self):
        """The sedpy filters (columns of the photometry)."""
        return self.projection.filters

    def predict(self, theta):
        """Photometry and ``mfrac`` of every row, as ``model.predict`` gives them.

        Rows the batch does not take are computed by ``model.predict`` (so an
        invalid row raises the per-model path's error).

        Parameters
        ----------
        theta : ndarray of shape (n, model.ndim)

        Returns
        -------
        maggies : ndarray of shape (n, n_filters)
        mfrac : ndarray of shape (n,)
        """
        theta = np.asarray(theta, dtype=float)
        maggies, mfrac, batched = self.predict_batch(theta)
        obs = {"filters": self.projection, "wavelength": None, "spectrum": None}
        for i in np.flatnonzero(~batched):
            _, phot, frac = self.model.predict(theta[i], obs=obs, sps=self.sps)
            maggies[i], mfrac[i] = phot, float(np.squeeze(frac))
        return maggies, mfrac

    def predict_batch(self, theta, block_rows=BLOCK_ROWS):
        """Photometry and ``mfrac`` of the rows the batch takes.

        Parameters
        ----------
        theta : ndarray of shape (n, model.ndim)
        block_rows : int
            Rows per block of array work.

        Returns
        -------
        maggies : ndarray of shape (n, n_filters)
            Maggies (NaN in rows not batched, and where a filter's
            transmission is zero on the row's grid, as sedpy).
        mfrac : ndarray of shape (n,)
            Surviving stellar mass / mass formed (NaN in rows not batched).
        batched : ndarray of bool, shape (n,)
            Rows computed here; compute the others with ``model.predict``
            (which raises the error that row deserves).

        Raises
        ------
        EmulatorConfigurationError
            What the per-model path raises for the model as a whole (e.g. an
            FSPS parameter BagpipesBasis does not implement).
        """
        theta = np.asarray(theta, dtype=float)
        if theta.ndim != 2 or theta.shape[1] != self.model.ndim:
            raise EmulatorConfigurationError(
                f"theta must have shape (n, {self.model.ndim}); got {theta.shape}")
        n = len(theta)
        maggies = np.full((n, len(self.projection)), np.nan)
        mfrac = np.full(n, np.nan)
        batched = np.zeros(n, dtype=bool)
        if n == 0:
            return maggies, mfrac, batched
        varying, fixed = model_parameters_batch(self.model, theta)
        template = self._template(varying, fixed, n)
        if template is None:
            return maggies, mfrac, batched
        self._check_photometry_physics(fixed)
        params = _BatchSPSParameters(self.sps, template, varying, fixed, n)
        good = np.flatnonzero(params.ok)
        with _blas_limit(self.blas_threads), np.errstate(over="ignore", under="ignore"):
            for start in range(0, good.size, max(int(block_rows), 1)):
                rows = good[start:start + block_rows]
                maggies[rows], mfrac[rows] = self._photometry(params.take(rows))
        batched[good] = True
        return maggies, mfrac, batched

    # --- helpers ------------------------------------------------------------
    def _template(self, varying, fixed, n):
        """The _ParsedParams of the first row BagpipesBasis accepts (None if none does).

        Errors about the model as a whole (EmulatorConfigurationError) propagate,
        as they do from the per-model path.
        """
        sps = self.sps
        for i in range(n):
            try:
                return _ParsedParams(_row(varying, fixed, i), sps._logzsol_range, sps._logu)
            except EmulatorConfigurationError:
                raise
            except (EmulatorError, ValueError):
                continue
        return None

    def _check_photometry_physics(self, fixed):
        add_neb = bool(np.ravel(fixed.get("add_neb_emission", False))[0])
        in_spec = bool(np.ravel(fixed.get("nebemlineinspec", True))[0])
        if add_neb and not in_spec:
            raise BatchUnsupportedError(
                "nebemlineinspec = False: Prospector adds the emission lines to the photometry "
                "itself (SpecModel.nebline_photometry); use the per-model path")

    def _photometry(self, p):
        """Maggies (n, n_filters) and mfrac (n,) of validated rows: SpecModel.predict_phot."""
        spec = np.empty((p.n, self.sps._wave.size))
        mfrac = np.empty(p.n)
        # spectra in sub-blocks: their temporaries stay small (see SPECTRA_ROWS)
        for start in range(0, p.n, SPECTRA_ROWS):
            rows = slice(start, min(start + SPECTRA_ROWS, p.n))
            spec[rows], mfrac[rows], _ = bagpipes_spectra_batch(
                self.sps, p.take(np.arange(rows.start, rows.stop)), self._grids)
        zred = p.zred
        # SpecModel.flux_norm (BagpipesSpecModel: the same value)
        if p.lumdist is not None:
            lumdist = p.lumdist
        else:
            lumdist = np.full(p.n, 1e-5)            # 10 pc at zred = 0
            far = zred != 0
            if far.any():
                lumdist[far] = luminosity_distance_mpc(zred[far])
        dfactor = (lumdist * 1e5) ** 2
        unit_conversion = _sedmodel.to_cgs / (3631 * _sedmodel.jansky_cgs) * (1 + zred)
        norm = p.mass_total * unit_conversion / dfactor
        # SpecModel.predict_phot's f_lambda = norm_spec c / (wave (1 + z))^2 * 3631 Jy
        # on the observed grid wave * (1 + z), factored into rows x pixels
        wave = self.sps._wave
        row_factor = norm * (_sedmodel.lightspeed * 3631 * _sedmodel.jansky_cgs) / (1 + zred)**2
        spec *= row_factor[:, None]
        spec *= self._inverse_wave_sq
        return self.projection.maggies_redshifted(wave, zred, spec), mfrac
