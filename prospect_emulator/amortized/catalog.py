"""Catalogues in and out of amortized posteriors.

:func:`read_catalog_arrays` reads a whole photometric catalogue into arrays
(the column conventions of ``prospect-emulator fit``:
:class:`~prospect_emulator.fitting.catalog.CatalogColumns`).
:func:`fit_catalog_amortized` samples every object's amortized posterior and
writes the same summary table as the exact fits (16/50/84th percentiles of the
free parameters and of the derived stellar mass formed and surviving, SFR and
mass-weighted age) plus all samples in one HDF5 file.
"""
import json
import os
import re
import sys
import time

import numpy as np

from ..errors import EmulatorConfigurationError
from ..fileio import atomic_path

__all__ = ["read_catalog_arrays", "fit_catalog_amortized", "derived_samples"]


def _flux_column_filters(colnames, columns):
    """Filter names with both a flux and an uncertainty column (any name)."""
    pattern = re.compile("^" + re.escape(columns.flux).replace(re.escape("{filter}"), "(.+)") + "$")
    names = [m.group(1) for c in colnames for m in [pattern.match(c)] if m]
    return [n for n in names if columns.unc.format(filter=n) in colnames]


def read_catalog_arrays(data, columns=None, filter_names=None):
    """A catalogue as :class:`~prospect_emulator.amortized.posterior.Observations`.

    Parameters
    ----------
    data : str, os.PathLike, astropy.table.Table or Observations
        FITS/CSV/ECSV path or table with flux/uncertainty/redshift/id columns.
    columns : CatalogColumns, optional
        Column templates and flux unit (default ``f_{filter}``, ``e_{filter}``,
        ``z``, ``id``, maggies).
    filter_names : sequence of str, optional
        Keep only these filters (e.g. an emulator's); default: every filter
        with a flux and an uncertainty column.

    Raises
    ------
    EmulatorConfigurationError
        Missing file, unreadable table, no usable filter columns, no redshift
        column, or an implausible flux unit.
    """
    from astropy.table import Table
    from ..fitting.catalog import FLUX_UNITS, CatalogColumns, check_catalog_columns, read_table
    from .posterior import Observations
    if isinstance(data, Observations):
        if filter_names is None:
            return data
        keep = [i for i, f in enumerate(data.filter_names) if f in set(filter_names)]
        if not keep:
            raise EmulatorConfigurationError(
                f"none of the catalogue's filters {data.filter_names} is among {list(filter_names)}")
        return Observations([data.filter_names[i] for i in keep], data.maggies[:, keep],
                            data.maggies_unc[:, keep], data.zred, data.ids)
    columns = columns or CatalogColumns()
    where = "the table"
    if isinstance(data, (str, os.PathLike)):
        where = os.fspath(data)
        data = read_table(where)
    table = data if isinstance(data, Table) else Table(data)
    filters = _flux_column_filters(table.colnames, columns)
    if filter_names is not None:
        filters = [f for f in filters if f in set(filter_names)]
    check_catalog_columns(table, columns, filters, where,
                          f" for any of the {len(filter_names)} filters asked for"
                          if filter_names else "")
    scale = FLUX_UNITS[columns.unit]

    def col(name):
        c = table[name]
        values = np.ma.filled(np.ma.asarray(c, dtype=float), np.nan)
        return np.asarray(values, dtype=float)
    maggies = np.stack([col(columns.flux.format(filter=f)) for f in filters], axis=1) * scale
    unc = np.stack([col(columns.unc.format(filter=f)) for f in filters], axis=1) * scale
    ids = ([str(v).strip() for v in table[columns.id]] if columns.id is not None
           else [f"row{i}" for i in range(len(table))])
    if len(set(ids)) != len(ids):
        raise EmulatorConfigurationError(f"{where}: object ids in column {columns.id!r} are not unique")
    return Observations(filters, maggies, unc, col(columns.zred), ids)


def derived_samples(model, emulator, theta):
    """Derived quantities of parameter draws: ``sfh_summary`` of each.

    Parameters
    ----------
    model : EmulatedSpecModel
    emulator : Emulator
        For the surviving mass fraction (extra output ``mfrac``).
    theta : ndarray, shape (n, ndim)

    Returns
    -------
    dict or None
        name -> (n,) array (keys of
        :data:`~prospect_emulator.fitting.derived.DERIVED_NAMES`), None for an
        SFH that :func:`~prospect_emulator.fitting.derived.sfh_summary` does
        not handle.
    """
    from ..fitting.derived import sfh_summary
    theta = np.atleast_2d(theta)
    keys = ("sfh", "agebins", "mass", "tage", "tau")
    x = np.empty((len(theta), emulator.n_params))
    kept = []
    for i, row in enumerate(theta):
        model.set_parameters(row)
        x[i] = model._emulator_inputs()
        kept.append({k: np.array(model.params[k]) for k in keys if k in model.params})
    model._theta_set = None
    if "mfrac" in emulator.extra_names:
        mfrac = emulator.predict_extra(x, "mfrac", check=False)
    else:
        mfrac = np.full(len(theta), np.nan)
    rows = [sfh_summary(p, m) for p, m in zip(kept, mfrac)]
    if not rows or rows[0] is None:
        return None
    return {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}


def _percentiles(values):
    from ..fitting.run import SUMMARY_PERCENTILES
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(values)
    if not finite.any():
        return np.full(len(SUMMARY_PERCENTILES), np.nan)
    return np.nanpercentile(np.where(finite, values, np.nan), SUMMARY_PERCENTILES)


def fit_catalog_amortized(table_or_path, posterior, out_dir, n_samples=1000, seed=0,
                          columns=None, n_derived=None, batch_size=2000, progress=True):
    """Amortized posteriors of a whole catalogue: summary table and samples.

    Parameters
    ----------
    table_or_path : str, astropy.table.Table or Observations
        The catalogue (columns as for ``prospect-emulator fit``).
    posterior : AmortizedPosterior or str
        A posterior, or the path of its file.
    out_dir : str
        Gets ``summary.ecsv`` (one row per object) and ``samples.h5``
        (``samples`` (n_objects, n_samples, n_theta), ``theta_names``, ``ids``,
        ``zred``, ``status``, ``out_of_support``, and ``derived/<name>``
        (n_objects, n_derived)).
    n_samples : int
        Posterior draws per object.
    seed : int
    columns : CatalogColumns, optional
    n_derived : int, optional
        Draws per object that get derived quantities (each needs a model
        evaluation); default all ``n_samples``.
    batch_size : int
        Objects sampled together.

    Returns
    -------
    astropy.table.Table
        The summary: ``id``, ``zred``, ``status`` (ok/failed), ``method``
        ("amortized"), ``error``, ``out_of_support`` and ``support_reasons``,
        ``chi2`` (best posterior-predictive chi^2), ``chi2_per_band``,
        ``chi2_pvalue``, ``n_bands``, ``n_masked``, ``masked_bands``,
        ``seconds`` (per object), then ``<quantity>_p16/_p50/_p84`` of every
        free parameter (but ``zred``, which is given) and derived quantity.
    """
    import h5py
    from astropy.table import Column, Table
    from ..fitting.catalog import _DERIVED_UNITS, _unit_and_description
    from ..fitting.derived import DERIVED_NAMES
    from ..fitting.run import SUMMARY_PERCENTILES
    from .posterior import AmortizedPosterior
    if not isinstance(posterior, AmortizedPosterior):
        posterior = AmortizedPosterior.load(posterior)
    obs = read_catalog_arrays(table_or_path, columns=columns)
    n_derived = int(n_samples if n_derived is None else min(n_derived, n_samples))
    os.makedirs(out_dir, exist_ok=True)
    n = len(obs)
    names = posterior.param_space.theta_names
    summary_names = [k for k in names if k != "zred"]
    t0 = time.time()
    samples_path = os.path.join(out_dir, "samples.h5")
    rows = []
    derived_names = None
    with atomic_path(samples_path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = "prospect-emulator-amortized-samples"
        f.attrs["posterior_emulator_checksum"] = posterior.emulator.checksum
        f.attrs["seed"] = int(seed)
        f.attrs["theta_names"] = json.dumps(names)
        f["ids"] = np.array(obs.ids, dtype="S")
        f["theta_names"] = np.array(names, dtype="S")
        f["zred"] = obs.zred
        dset = f.create_dataset("samples", (n, n_samples, len(names)), dtype="f8",
                                chunks=(1, n_samples, len(names)))
        derived_group = f.create_group("derived")
        status_all, oos_all = [], []
        for k, start in enumerate(range(0, n, batch_size)):
            part = type(obs)(obs.filter_names, obs.maggies[start:start + batch_size],
                             obs.maggies_unc[start:start + batch_size],
                             obs.zred[start:start + batch_size], obs.ids[start:start + batch_size])
            result = posterior.sample(part, n_samples, seed=seed + k, on_bad="flag")
            dset[start:start + len(part)] = result.samples
            for i in range(len(part)):
                ok = result.status[i] == "ok"
                derived = (derived_samples(posterior.model, posterior._band_emulator,
                                           result.samples[i, :n_derived]) if ok else None)
                if derived is not None and derived_names is None:
                    derived_names = list(derived)
                    for name in derived_names:
                        derived_group.create_dataset(name, (n, n_derived), dtype="f8",
                                                     fillvalue=np.nan)
                if derived is not None:
                    for name in derived_names:
                        derived_group[name][start + i] = derived[name]
                row = {"id": result.ids[i], "zred": result.zred[i], "status": result.status[i],
                       "method": "amortized", "error": result.error[i],
                       "out_of_support": bool(result.out_of_support[i]),
                       "support_reasons": "; ".join(result.reasons[i]),
                       "chi2": result.chi2_best[i],
                       "chi2_per_band": result.chi2_best[i] / max(int(result.n_bands[i]), 1),
                       "chi2_pvalue": result.chi2_pvalue[i], "n_bands": int(result.n_bands[i]),
                       "n_masked": len(result.masked_bands[i]),
                       "masked_bands": ", ".join(result.masked_bands[i])}
                for j, name in enumerate(names):
                    if name != "zred":
                        row[name] = _percentiles(result.samples[i, :, j])
                for name in derived_names or ():
                    row[name] = (_percentiles(derived[name]) if derived is not None
                                 else np.full(len(SUMMARY_PERCENTILES), np.nan))
                rows.append(row)
                status_all.append(result.status[i])
                oos_all.append(bool(result.out_of_support[i]))
            if progress:
                print(f"amortized fit: {min(start + batch_size, n)}/{n} objects, "
                      f"{time.time() - t0:.1f} s", file=sys.stderr, flush=True)
        f["status"] = np.array(status_all, dtype="S")
        f["out_of_support"] = np.array(oos_all, dtype=bool)
        f["filter_names"] = np.array(obs.filter_names, dtype="S")
    seconds = (time.time() - t0) / max(n, 1)
    table = Table()
    fixed = {"id": (None, "object identifier"), "zred": ("", "redshift (given, conditions the flow)"),
             "status": (None, "ok, or failed (reason in 'error')"),
             "method": (None, "which path produced the row: amortized"),
             "error": (None, "why the object could not be sampled (object and field)"),
             "out_of_support": (None, "outside what the flow was trained on (see support_reasons)"),
             "support_reasons": (None, "why the object is out of support ('; '-separated)"),
             "chi2": ("", "best posterior-predictive chi^2 of the posterior draws (eq. 9 sigma)"),
             "chi2_per_band": ("", "chi2 / n_bands"),
             "chi2_pvalue": ("", "p-value of chi2 for n_bands degrees of freedom"),
             "n_bands": ("", "bands used"), "n_masked": ("", "bands treated as missing"),
             "masked_bands": (None, "bands treated as missing, with the reason"),
             "seconds": ("s", "wall time per object (catalogue total / objects)")}
    for name, (unit, description) in fixed.items():
        values = [r.get(name, seconds) for r in rows] if name != "seconds" else [seconds] * len(rows)
        table[name] = Column(values, unit=unit, description=description,
                             dtype=str if unit is None and name != "out_of_support" else None)
    for name in summary_names + list(derived_names or ()):
        if name in _DERIVED_UNITS:
            unit, meaning = _DERIVED_UNITS[name], DERIVED_NAMES[name]
        else:
            unit, meaning = _unit_and_description(posterior.model, name)
        for j, p in enumerate(SUMMARY_PERCENTILES):
            table[f"{name}_p{int(p)}"] = Column(
                [r[name][j] if name in r else np.nan for r in rows], unit=unit,
                description=f"{p:g}th percentile of the posterior of {meaning}")
    table.meta["amortized_posterior"] = repr(posterior)
    table.meta["n_samples"] = int(n_samples)
    table.write(os.path.join(out_dir, "summary.ecsv"), overwrite=True)
    return table
