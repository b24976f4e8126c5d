"""Fitting a catalogue of galaxies: one Prospector + dynesty fit per row.

Each finished object leaves ``<id>.h5`` (Prospector's results file) and
``<id>.json`` (its posterior summary) in the output folder; the summary table
is rebuilt from the JSON files, so an interrupted run loses nothing and a
second run skips what is done.
"""
import json
import multiprocessing
import os
import re
import sys
import traceback

import numpy as np

from ..errors import EmulatorConfigurationError
from ..fileio import atomic_path
from ..progress import Progress

__all__ = ["CatalogColumns", "read_catalog", "fit_catalog", "FLUX_UNITS"]

#: Flux units accepted for catalogue columns, in maggies per unit (1 maggie = 3631 Jy).
FLUX_UNITS = {"maggies": 1.0, "Jy": 1 / 3631.0, "mJy": 1e-3 / 3631.0, "uJy": 1e-6 / 3631.0,
              "nJy": 1e-9 / 3631.0}


class CatalogColumns:
    """How catalogue columns map to filters, redshift and object ids.

    Parameters
    ----------
    flux : str
        Column name template of the flux density, ``{filter}`` is replaced by
        the sedpy filter name (default ``"f_{filter}"``).
    unc : str
        Template of the 1-sigma uncertainty column (default ``"e_{filter}"``).
    zred : str
        Redshift column.
    id : str
        Object identifier column (row numbers if absent).
    unit : str
        Flux unit, one of :data:`FLUX_UNITS`.
    """

    def __init__(self, flux="f_{filter}", unc="e_{filter}", zred="z", id="id", unit="maggies"):
        if "{filter}" not in flux or "{filter}" not in unc:
            raise EmulatorConfigurationError(
                f"column templates need '{{filter}}': got flux={flux!r}, unc={unc!r}")
        if unit not in FLUX_UNITS:
            raise EmulatorConfigurationError(f"unknown flux unit {unit!r}; allowed: {', '.join(FLUX_UNITS)}")
        self.flux, self.unc, self.zred, self.id, self.unit = flux, unc, zred, id, unit

    def filters_in(self, colnames, candidates):
        """The candidate filters that have both a flux and an uncertainty column."""
        cols = set(colnames)
        return [f for f in candidates
                if self.flux.format(filter=f) in cols and self.unc.format(filter=f) in cols]


def _safe_id(value):
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(value)) or "object"


def read_catalog(path, columns, filter_names):
    """Read an astropy-readable table (FITS, CSV, ECSV) into per-object records.

    Returns
    -------
    records : list of dict
        ``id``, ``zred``, ``maggies``, ``maggies_unc`` (NaN where missing)
        or ``error`` (why the row cannot be fitted).
    filters : list of str
        The emulator filters found in the table.
    """
    from astropy.table import Table
    if not os.path.exists(path):
        raise EmulatorConfigurationError(f"no catalogue at {path}")
    try:
        table = Table.read(path)
    except Exception as err:  # astropy raises many kinds for unreadable input
        raise EmulatorConfigurationError(
            f"cannot read {path} as a table (FITS, CSV or ECSV; astropy.table.Table.read): "
            f"{type(err).__name__}: {err}") from None
    filters = columns.filters_in(table.colnames, filter_names)
    if not filters:
        raise EmulatorConfigurationError(
            f"{path}: no column pairs {columns.flux!r}/{columns.unc!r} for any of the emulator's "
            f"{len(filter_names)} filters (e.g. {columns.flux.format(filter=filter_names[0])}); "
            f"table columns: {', '.join(table.colnames[:20])}")
    if columns.zred not in table.colnames:
        raise EmulatorConfigurationError(
            f"{path}: no redshift column {columns.zred!r}; columns: {', '.join(table.colnames[:20])}")
    scale = FLUX_UNITS[columns.unit]
    records = []
    for i, row in enumerate(table):
        oid = _safe_id(row[columns.id]) if columns.id in table.colnames else f"row{i}"
        rec = {"id": oid, "row": i}
        try:
            rec["zred"] = float(row[columns.zred])
            rec["maggies"] = np.array([_as_float(row[columns.flux.format(filter=f)]) for f in filters]) * scale
            rec["maggies_unc"] = np.array([_as_float(row[columns.unc.format(filter=f)]) for f in filters]) * scale
            good = np.isfinite(rec["maggies"]) & np.isfinite(rec["maggies_unc"]) & (rec["maggies_unc"] > 0)
            if not np.isfinite(rec["zred"]):
                rec["error"] = f"redshift {row[columns.zred]!r} is not a finite number"
            elif good.sum() < 3:
                rec["error"] = f"only {good.sum()} band(s) with a finite flux and positive uncertainty (need 3)"
        except (TypeError, ValueError) as err:
            rec["error"] = f"unreadable value: {err}"
        records.append(rec)
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise EmulatorConfigurationError(f"{path}: object ids in column {columns.id!r} are not unique")
    return records, filters


def _as_float(value):
    if np.ma.is_masked(value):
        return np.nan
    return float(value)


# --------------------------------------------------------------- workers
_WORKER = {}


def _init_worker(emulator_path, filters, nested_kwargs, covariance):
    from ..runtime import load_emulator
    _WORKER.update(emulator=load_emulator(emulator_path).select(filters), filters=filters,
                   nested_kwargs=nested_kwargs, covariance=covariance)


def _fit_record(args):
    rec, outdir = args
    from ..prospector import EmulatedSpecModel, EmulatorNoiseModel
    from .models import fitting_model_params
    from .run import fit_galaxy, make_obs, posterior_summary
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-object prior-range warnings: said once by fit_catalog
            model = EmulatedSpecModel(fitting_model_params(rec["zred"]), emulator=_WORKER["emulator"])
        noise = EmulatorNoiseModel(model, covariance=_WORKER["covariance"])
        obs = make_obs(_WORKER["filters"], rec["maggies"], rec["maggies_unc"])
        fit = fit_galaxy(obs, model, noise, nested_kwargs=_WORKER["nested_kwargs"],
                         results_path=os.path.join(outdir, f"{rec['id']}.h5"),
                         run_params={"object_id": rec["id"], "zred": rec["zred"]})
        summary = posterior_summary(model, fit["samples"], fit["weights"])
        result = {"id": rec["id"], "row": rec["row"], "zred": rec["zred"], "status": "ok",
                  "ncall": fit["ncall"], "seconds": fit["seconds"], "logz": fit["logz"],
                  "n_bands": int(obs["phot_mask"].sum()),
                  "percentiles": {k: [float(x) for x in v] for k, v in summary.items()}}
    except Exception as err:  # one object's failure never stops the catalogue
        result = {"id": rec["id"], "row": rec["row"], "zred": rec.get("zred"), "status": "failed",
                  "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    _write_json(os.path.join(outdir, f"{rec['id']}.json"), result)
    return result


def _write_json(path, obj):
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=1)


def summary_table(outdir):
    """The catalogue summary: one row per finished object, 16/50/84th percentiles."""
    from astropy.table import Table
    from .run import SUMMARY_PERCENTILES
    results = []
    for name in sorted(os.listdir(outdir)):
        if name.endswith(".json"):
            with open(os.path.join(outdir, name)) as f:
                results.append(json.load(f))
    results.sort(key=lambda r: r["row"])
    keys = []
    for r in results:
        for k in r.get("percentiles", {}):
            if k not in keys:
                keys.append(k)
    rows = []
    for r in results:
        row = {"id": r["id"], "zred": r.get("zred") if r.get("zred") is not None else np.nan,
               "status": r["status"], "ncall": r.get("ncall", 0), "seconds": r.get("seconds", np.nan)}
        for k in keys:
            pc = r.get("percentiles", {}).get(k, [np.nan] * len(SUMMARY_PERCENTILES))
            for p, v in zip(SUMMARY_PERCENTILES, pc):
                row[f"{k}_p{int(p)}"] = v
        rows.append(row)
    return Table(rows=rows) if rows else Table()


def fit_catalog(catalog_path, outdir, emulator_path, columns=None, workers=2, limit=None,
                nested_kwargs=None, covariance=False, progress=True):
    """Fit every row of a catalogue; resumable.

    Parameters
    ----------
    catalog_path : str
        FITS, CSV or ECSV table.
    outdir : str
        Output folder: ``<id>.h5`` Prospector results, ``<id>.json``
        summaries, ``summary.ecsv`` (percentiles of every object) and
        ``skipped.txt`` (rows that cannot be fitted, with the reason).
    emulator_path : str
        Native emulator file.
    columns : CatalogColumns, optional
    workers : int
        Processes fitting objects in parallel.
    limit : int, optional
        Fit at most this many (new) objects.
    nested_kwargs : dict, optional
        dynesty settings (see :data:`~prospect_emulator.fitting.run.DEFAULT_NESTED_KWARGS`).
    covariance : bool
        Use the emulator's residual covariance in the noise model.

    Returns
    -------
    astropy.table.Table
        The summary table (also written to ``outdir/summary.ecsv``).
    """
    from ..runtime import load_emulator
    columns = columns or CatalogColumns()
    emulator = load_emulator(emulator_path)
    records, filters = read_catalog(catalog_path, columns, emulator.filter_names)
    os.makedirs(outdir, exist_ok=True)
    zlo, zhi = emulator.param_ranges[emulator.param_names.index("zred")]
    skipped = []
    todo = []
    for rec in records:
        if "error" not in rec and not zlo <= rec["zred"] <= zhi:
            rec["error"] = f"redshift {rec['zred']:g} outside the emulator's range [{zlo:g}, {zhi:g}]"
        if "error" in rec:
            skipped.append(f"{rec['id']} (row {rec['row']}): {rec['error']}")
            continue
        done = os.path.join(outdir, f"{rec['id']}.json")
        if os.path.exists(done):
            continue
        todo.append(rec)
    with open(os.path.join(outdir, "skipped.txt"), "w") as f:
        f.write("".join(line + "\n" for line in skipped))
    for line in skipped:
        print(f"fit: skipping {line}", file=sys.stderr)
    if limit is not None:
        todo = todo[:limit]
    n_done_before = len(records) - len(skipped) - len(todo) if limit is None else 0
    print(f"fit: {len(records)} objects, {len(filters)} bands ({', '.join(filters)}); "
          f"{len(todo)} to fit, {len(skipped)} skipped", file=sys.stderr)
    bar = Progress(len(todo) + n_done_before, n_done_before, label="fit", unit="objects",
                   enabled=progress)
    init = (emulator_path, filters, nested_kwargs, covariance)
    tasks = [(rec, outdir) for rec in todo]
    n = 0
    try:
        if workers > 1 and len(tasks) > 1:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=init) as pool:
                for result in pool.imap_unordered(_fit_record, tasks):
                    n += 1
                    bar.failed += result["status"] != "ok"
                    bar.update(n, force=True)
        else:
            _init_worker(*init)
            for task in tasks:
                result = _fit_record(task)
                n += 1
                bar.failed += result["status"] != "ok"
                bar.update(n, force=True)
    finally:
        bar.close(n)
        table = summary_table(outdir)
        if len(table):
            table.write(os.path.join(outdir, "summary.ecsv"), overwrite=True)
    return table
