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
from ..fitting.executor import Executor
from ..fitting.run import SUMMARY_PERCENTILES

__all__ = ["read_catalog_arrays", "fit_catalog_amortized", "derived_samples", "summary_row"]


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
    """Derived quantities of parameter draws (all rows at once).

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
        SFH that :func:`~prospect_emulator.fitting.derived.sfh_summaries` does
        not handle.
    """
    from ..fitting.derived import SFH_PARAMETERS, sfh_summaries
    from ..prospector.batched_parameters import BatchedParameters
    theta = np.atleast_2d(theta)
    wanted = [k for k in SFH_PARAMETERS if k in model.params]
    batched = BatchedParameters(model, extra=wanted)
    rows = batched.rows(theta)
    if "mfrac" in emulator.extra_names:
        x = batched.inputs_of_rows(rows, len(theta))[0]
        mfrac = emulator.predict_extra(x, "mfrac", check=False)
    else:
        mfrac = np.full(len(theta), np.nan)
    out = sfh_summaries({k: rows[k] for k in wanted}, mfrac)
    if out is None:
        return None
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def _percentiles(values):
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(values)
    if not finite.any():
        return np.full(len(SUMMARY_PERCENTILES), np.nan)
    return np.nanpercentile(np.where(finite, values, np.nan), SUMMARY_PERCENTILES)


def summary_row(result, i, derived, derived_names):
    """The summary row (JSON-able dict) of object ``i`` of an :class:`AmortizedSamples`."""
    row = {"id": str(result.ids[i]), "zred": float(result.zred[i]),
           "status": str(result.status[i]),
           "method": "amortized" if result.importance_draws is None else "amortized+importance",
           "importance_ess": float(result.importance_ess[i]), "error": str(result.error[i]),
           "out_of_support": bool(result.out_of_support[i]),
           "support_reasons": "; ".join(result.reasons[i]),
           "chi2": float(result.chi2_best[i]),
           "chi2_per_band": float(result.chi2_best[i]) / max(int(result.n_bands[i]), 1),
           "chi2_pvalue": float(result.chi2_pvalue[i]), "n_bands": int(result.n_bands[i]),
           "n_masked": len(result.masked_bands[i]),
           "masked_bands": ", ".join(result.masked_bands[i]), "percentiles": {}}
    for j, name in enumerate(result.theta_names):
        if name != "zred":
            row["percentiles"][name] = _percentiles(result.samples[i, :, j]).tolist()
    for name in derived_names:
        values = derived[name] if derived is not None else np.nan
        row["percentiles"][name] = _percentiles(values).tolist()
    return row


def fit_catalog_amortized(table_or_path, posterior, out_dir, n_samples=1000, seed=0,
                          columns=None, n_derived=None, chunk_size=2000, progress=True,
                          executor=None, emulator=None, fallback=None, exact_settings=None,
                          stream=None, importance_draws=None):
    """Amortized posteriors of a whole catalogue: summary table and samples.

    The catalogue is cut into chunks of ``chunk_size`` objects, one task each
    (:func:`~prospect_emulator.amortized.chunks.sample_chunk`), run here or on
    ``executor``; each finished chunk is kept in ``out_dir/chunks/`` until the
    catalogue is complete, so an interrupted run resumes where it stopped.

    Parameters
    ----------
    table_or_path : str, astropy.table.Table or Observations
        The catalogue (columns as for ``prospect-emulator fit``).
    posterior : AmortizedPosterior or str
        A posterior, or the path of its file (needed with ``executor``:
        the workers read the file).
    out_dir : str
        Gets ``summary.ecsv`` (one row per object) and ``samples.h5``
        (``samples`` (n_objects, n_samples, n_theta), ``theta_names``, ``ids``,
        ``zred``, ``status``, ``out_of_support``, ``method``, and
        ``derived/<name>`` (n_objects, n_derived); attributes ``seed`` and
        ``importance_draws``, -1 for the flow's own draws).  One run at a time
        owns it.
    n_samples : int
        Posterior draws per object.
    seed : int
        Chunk ``k`` is sampled with seed ``seed + k``: the same seed and
        ``chunk_size`` give the same draws wherever the chunks run.
    columns : CatalogColumns, optional
    n_derived : int, optional
        Draws per object that get derived quantities (each needs a model
        evaluation); default all ``n_samples``.
    chunk_size : int
        Objects per task.
    executor : Executor or callable, optional
        Where the chunks run (see :func:`~prospect_emulator.fitting.catalog.fit_catalog`);
        default: in this process.
    emulator : str, optional
        The emulator the posterior was trained with (default: the one it records).
    fallback : {None, "exact"}
        ``"exact"``: fit the objects flagged out of support with the exact
        path (:func:`~prospect_emulator.fitting.catalog.fit_catalog`, into
        ``out_dir/exact/``, on the same executor); their summary rows are
        the exact fits', with ``method="exact"``.
    exact_settings : dict, optional
        Keywords of ``fit_catalog`` for the fallback (``sampler``,
        ``sampler_settings``, ``floor``, ``seed``, ...).
    stream : file, optional
        Where notes and progress go (default ``sys.stderr``).
    importance_draws : int, optional
        Reweight this many flow draws per object by the exact likelihood and
        resample (:meth:`AmortizedPosterior.sample`); objects with too few
        effective draws are flagged out of support (and fitted exactly with
        ``fallback="exact"``).  Default: the flow's own draws.

    Returns
    -------
    astropy.table.Table
        The summary: ``id``, ``zred``, ``status`` (ok/failed), ``method``
        ("amortized", "amortized+importance" or "exact"), ``importance_ess``,
        ``error``, ``out_of_support`` and
        ``support_reasons``, ``chi2`` (amortized: at the best fit near the
        posterior draws, :meth:`AmortizedPosterior.posterior_predictive_chi2`;
        exact: the fit's best-fit chi^2), ``chi2_per_band``, ``chi2_pvalue``,
        ``n_bands``, ``n_masked``, ``masked_bands``, ``seconds`` (per object),
        ``exact_file`` (results of exact fits), then
        ``<quantity>_p16/_p50/_p84`` of every free parameter (but ``zred``,
        which is given) and derived quantity.

    Raises
    ------
    EmulatorConfigurationError
        Unreadable catalogue, an executor with an in-memory posterior, an
        unknown ``fallback``.
    """
    from ..fitting.records import OutputFolder
    from ..fitting.results import file_sha256
    from .posterior import AmortizedPosterior
    stream = stream or sys.stderr
    if fallback not in (None, "exact"):
        raise EmulatorConfigurationError(f"fallback={fallback!r}; allowed: None, 'exact'")
    if isinstance(posterior, AmortizedPosterior):
        if executor is not None:
            raise EmulatorConfigurationError(
                "an executor's workers read the posterior from its file: pass its path "
                "(AmortizedPosterior objects are not sent to workers)")
        ref, sha = posterior, "in-memory"
    else:
        path = os.path.abspath(os.fspath(posterior))
        posterior = AmortizedPosterior.load(path, emulator=emulator)
        sha = file_sha256(path)
        ref = {"path": path, "sha256": sha, "emulator": emulator}
    if importance_draws is not None:
        _check_importance_settings(posterior, importance_draws, n_samples, exact_settings)
    obs = read_catalog_arrays(table_or_path, columns=columns)
    n_derived = int(n_samples if n_derived is None else min(n_derived, n_samples))
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise EmulatorConfigurationError(f"chunk_size must be >= 1; got {chunk_size}")
    with OutputFolder(out_dir, stream=stream) as folder:
        owned = executor is not None and not isinstance(executor, Executor)
        if owned:
            executor = executor()
        try:
            results, seconds = _sample_chunks(obs, posterior, ref, sha, folder.path, n_samples,
                                              n_derived, seed, chunk_size, executor, progress,
                                              stream, importance_draws)
            rows = [row for result in results for row in result["rows"]]
            derived_names = next((r["derived_names"] for r in results if r["derived_names"]), [])
            for row in rows:
                row["seconds"] = seconds
            if fallback == "exact":
                _exact_fallback(obs, rows, posterior, emulator, folder.path, executor,
                                dict(exact_settings or {}), progress, stream)
            _write_samples(folder.path, obs, posterior, results, rows, seed, n_samples,
                           n_derived, derived_names, importance_draws)
            table = _summary_table(rows, posterior, derived_names, n_samples)
            table.meta["importance_draws"] = importance_draws
            with atomic_path(os.path.join(folder.path, "summary.ecsv"),
                             suffix=f".partial-{os.getpid()}") as tmp:
                table.write(tmp, format="ascii.ecsv", overwrite=True)
        finally:
            if owned:
                executor.shutdown()
        if not any(r.get("failed") for r in results):  # complete: the chunks are merged
            import shutil
            shutil.rmtree(os.path.join(folder.path, "chunks"), ignore_errors=True)
    return table


def _check_importance_settings(posterior, importance_draws, n_samples, exact_settings):
    """Refuse importance weights the posterior cannot give, or that would target another
    likelihood than the exact fallback's."""
    posterior.check_importance_draws(importance_draws, n_samples)
    settings = exact_settings or {}
    floor = settings.get("floor")
    if settings.get("covariance") or (floor is not None and floor != posterior.floor):
        raise EmulatorConfigurationError(
            f"the importance weights use eq. 9 with this posterior's floor ({posterior.floor:g}) "
            f"and diagonal emulator errors; the exact fits were asked for floor {floor} and "
            f"covariance={bool(settings.get('covariance'))}, another likelihood. Drop "
            "--floor/--covariance (or importance_draws)")


def _sample_chunks(obs, posterior, ref, sha, out_dir, n_samples, n_derived, seed, chunk_size,
                   executor, progress, stream, importance_draws=None):
    """Every chunk's result (reused from its file or sampled); seconds per object."""
    from ..fitting.executor import terminate_as_interrupt
    from ..progress import Progress
    from .chunks import chunk_key, read_chunk, sample_chunk
    chunk_dir = os.path.join(out_dir, "chunks")
    os.makedirs(chunk_dir, exist_ok=True)
    tasks, results = {}, {}
    for k, start in enumerate(range(0, len(obs), chunk_size)):
        part = obs.rows(slice(start, start + chunk_size))
        key = chunk_key(part, seed + k, n_samples, n_derived, sha, importance_draws)
        path = os.path.join(chunk_dir, f"chunk-{k:06d}.h5")
        done = read_chunk(path, key) if sha != "in-memory" else None
        if done is not None:
            results[k] = done
        else:
            tasks[f"amortized-chunk-{k:06d}"] = (k, (part, ref, path, seed + k, n_samples,
                                                     n_derived, key, importance_draws))
    n_reused = sum(len(r["rows"]) for r in results.values())
    if n_reused:
        print(f"fit: {n_reused} objects in {len(results)} chunk(s) sampled by an earlier run",
              file=stream, flush=True)
    bar = Progress(len(obs), n_reused, label="amortized", unit="objects", enabled=progress,
                   stream=stream, remaining=True)
    t0, n_new = time.time(), 0
    with terminate_as_interrupt():
        if executor is None:
            outcomes = ((key, _sample_here(args)) for key, (_, args) in tasks.items())
        else:
            print(f"fit: running on {executor.description}", file=stream, flush=True)
            outcomes = ((o.key, o.value if o.ok else str(o.error)) for o in
                        executor.run_unordered(sample_chunk,
                                               ((key, args) for key, (_, args) in tasks.items())))
        try:
            for key, value in outcomes:
                k, args = tasks[key]
                if not isinstance(value, dict):  # the chunk's task failed: its objects too
                    value = _failed_chunk(args[0], f"{key} failed: {value}", importance_draws)
                    stream.write(f"fit: {value['rows'][0]['error']} (the next run samples it "
                                 "again)\n")
                results[k] = value
                n_new += len(value["rows"])
                bar.failed += sum(r["status"] != "ok" for r in value["rows"])
                bar.update(n_reused + n_new)
        finally:
            bar.close(n_reused + n_new)
    seconds = (time.time() - t0) / max(n_new, 1)
    return [results[k] for k in sorted(results)], seconds


def _sample_here(args):
    """:func:`~prospect_emulator.amortized.chunks.sample_chunk` in this process; a failure
    is returned as its reason (the other chunks go on)."""
    from . import chunks
    try:
        return chunks.sample_chunk(*args)
    except Exception as err:  # one chunk's failure never stops the catalogue
        return f"{type(err).__name__}: {err}"


def _failed_chunk(obs, reason, importance_draws=None):
    """The result of a chunk whose task failed: every object failed with the reason."""
    method = "amortized" if importance_draws is None else "amortized+importance"
    rows = [{"id": str(oid), "zred": float(z), "status": "failed", "method": method,
             "importance_ess": np.nan, "error": reason, "out_of_support": False,
             "support_reasons": "",
             "chi2": np.nan, "chi2_per_band": np.nan, "chi2_pvalue": np.nan, "n_bands": 0,
             "n_masked": 0, "masked_bands": "", "percentiles": {}}
            for oid, z in zip(obs.ids, obs.zred)]
    return {"rows": rows, "derived_names": [], "failed": True}


def _exact_fallback(obs, rows, posterior, emulator, out_dir, executor, settings, progress,
                    stream):
    """Fit the out-of-support objects exactly; their rows become the exact fits' rows."""
    from ..data import SHIPPED_EMULATORS
    from ..fitting.catalog import CatalogColumns, fit_catalog
    flagged = [i for i, r in enumerate(rows) if r["status"] == "ok" and r["out_of_support"]]
    if not flagged:
        return
    source = emulator or posterior.emulator_source
    if not source:
        raise EmulatorConfigurationError(
            "the exact fallback needs the emulator's file: the posterior records none; pass "
            "emulator= (--emulator)")
    exact_dir = os.path.join(out_dir, "exact")
    os.makedirs(exact_dir, exist_ok=True)
    catalog = os.path.join(exact_dir, "fallback_catalog.ecsv")
    with atomic_path(catalog, suffix=f".partial-{os.getpid()}") as tmp:
        obs.rows(flagged).as_table().write(tmp, format="ascii.ecsv", overwrite=True)
    print(f"fit: {len(flagged)} objects out of support: fitted with the exact path into "
          f"{exact_dir}", file=stream, flush=True)
    exact = fit_catalog(catalog, exact_dir, SHIPPED_EMULATORS.get(source, source),
                        CatalogColumns(), executor=executor, progress=progress, stream=stream,
                        **settings)
    by_id = {str(r["id"]): r for r in exact}
    for i in flagged:
        found = by_id.get(rows[i]["id"])
        if found is None:
            continue
        row = rows[i]
        row.update(method="exact", status=str(found["status"]), error=str(found["error"]),
                   chi2=float(found["chi2"]), chi2_per_band=float(found["chi2_per_band"]),
                   chi2_pvalue=np.nan, seconds=float(found["seconds"]),
                   exact_file=os.path.join("exact", str(found["file"]) + ".h5"))
        for name in list(row["percentiles"]):
            row["percentiles"][name] = [
                float(found[f"{name}_p{int(p)}"]) if f"{name}_p{int(p)}" in exact.colnames
                else np.nan for p in SUMMARY_PERCENTILES]


def _write_samples(out_dir, obs, posterior, results, rows, seed, n_samples, n_derived,
                   derived_names, importance_draws=None):
    """``samples.h5``: every chunk's draws in one file (atomically)."""
    import h5py
    names = posterior.param_space.theta_names
    n = len(obs)
    with atomic_path(os.path.join(out_dir, "samples.h5"),
                     suffix=f".partial-{os.getpid()}") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = "prospect-emulator-amortized-samples"
        f.attrs["posterior_emulator_checksum"] = posterior.emulator.checksum
        f.attrs["seed"] = int(seed)
        f.attrs["importance_draws"] = -1 if importance_draws is None else int(importance_draws)
        f.attrs["theta_names"] = json.dumps(names)
        f["ids"] = np.array(obs.ids, dtype="S")
        f["theta_names"] = np.array(names, dtype="S")
        f["zred"] = obs.zred
        f["filter_names"] = np.array(obs.filter_names, dtype="S")
        f["status"] = np.array([r["status"] for r in rows], dtype="S")
        f["out_of_support"] = np.array([r["out_of_support"] for r in rows], dtype=bool)
        f["method"] = np.array([r["method"] for r in rows], dtype="S")
        dset = f.create_dataset("samples", (n, n_samples, len(names)), dtype="f8",
                                chunks=(1, n_samples, len(names)))
        derived = {name: f.create_dataset(f"derived/{name}", (n, n_derived), dtype="f8",
                                          fillvalue=np.nan) for name in derived_names}
        start = 0
        for k, result in enumerate(results):
            m = len(result["rows"])
            path = os.path.join(out_dir, "chunks", f"chunk-{k:06d}.h5")
            if result.get("failed"):  # no draws: NaN (the fill value of samples is 0)
                dset[start:start + m] = np.nan
                start += m
                continue
            with h5py.File(path, "r") as chunk:
                dset[start:start + m] = chunk["samples"][()]
                for name in derived_names:
                    if name in chunk["derived"]:
                        derived[name][start:start + m] = chunk["derived"][name][()]
            start += m


def _summary_table(rows, posterior, derived_names, n_samples):
    from astropy.table import Column, Table
    from ..fitting.catalog import _DERIVED_UNITS, _unit_and_description
    from ..fitting.derived import DERIVED_NAMES
    table = Table()
    fixed = {"id": (None, "object identifier"),
             "zred": ("", "redshift (given, conditions the flow)"),
             "status": (None, "ok, or failed (reason in 'error')"),
             "method": (None, "which path produced the row: amortized (the flow's draws), "
                              "amortized+importance (flow draws reweighted by the exact "
                              "likelihood), or exact (the fallback for objects out of support)"),
             "importance_ess": ("", "effective sample size of the importance weights "
                                    "(when they were used; NaN otherwise)"),
             "error": (None, "why the object could not be sampled or fitted (object and field)"),
             "out_of_support": (None, "outside what the flow was trained on (see support_reasons)"),
             "support_reasons": (None, "why the object is out of support ('; '-separated)"),
             "chi2": ("", "amortized: chi^2 at the best fit near the posterior draws (files "
                          "calibrated before support_fit: at the best draw); exact: chi^2 of "
                          "the best fit (eq. 9 sigma)"),
             "chi2_per_band": ("", "chi2 / n_bands"),
             "chi2_pvalue": ("", "p-value of chi2 for n_bands degrees of freedom (amortized)"),
             "n_bands": ("", "bands used"), "n_masked": ("", "bands treated as missing"),
             "masked_bands": (None, "bands treated as missing, with the reason"),
             "seconds": ("s", "wall time per object (amortized: the run's total / objects)"),
             "exact_file": (None, "Prospector results of the exact fit (method exact)")}
    for name, (unit, description) in fixed.items():
        # chunks written before importance weights existed have no importance_ess
        values = [r.get(name, "") if name == "exact_file" else
                  r.get(name, np.nan) if name == "importance_ess" else r[name] for r in rows]
        table[name] = Column(values, unit=unit, description=description,
                             dtype=str if unit is None and name != "out_of_support" else None)
    summary_names = [k for k in posterior.param_space.theta_names if k != "zred"]
    for name in summary_names + list(derived_names):
        if name in _DERIVED_UNITS:
            unit, meaning = _DERIVED_UNITS[name], DERIVED_NAMES[name]
        else:
            unit, meaning = _unit_and_description(posterior.model, name)
        missing = [np.nan] * len(SUMMARY_PERCENTILES)
        for j, p in enumerate(SUMMARY_PERCENTILES):
            table[f"{name}_p{int(p)}"] = Column(
                [r["percentiles"].get(name, missing)[j] for r in rows], unit=unit,
                description=f"{p:g}th percentile of the posterior of {meaning}")
    table.meta["amortized_posterior"] = repr(posterior)
    table.meta["n_samples"] = int(n_samples)
    return table
