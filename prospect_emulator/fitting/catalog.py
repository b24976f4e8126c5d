"""Fitting a catalogue of galaxies: one exact posterior fit per row (``DEFAULT_SAMPLER``, or any
sampler of :mod:`~prospect_emulator.fitting.samplers`), on Dask.

Each object is one task (:func:`fit_object`) run by an
:class:`~prospect_emulator.fitting.executor.Executor` (by default an embedded
Dask ``LocalCluster``, one worker process per core).  The task writes the
object's ``<stem>.h5`` (Prospector's results file) and ``<stem>.json`` (its
record: posterior summary, fit quality, provenance) atomically into the output
folder, so whatever stops the run, every object is either finished and
complete, or not started.  The summary table is rebuilt from the records
(:func:`summary_table`, ``prospect-emulator summary DIR``); a second run
resumes where the first stopped.  See :mod:`prospect_emulator.fitting.records`
for the folder's layout, its lock and its run record.
"""
import os
import socket
import sys
import time
import traceback

import numpy as np

from ..errors import EmulatorConfigurationError
from ..fileio import atomic_path
from ..progress import Progress
from .executor import DEFAULT_ATTEMPTS, DaskExecutor, Executor, terminate_as_interrupt
from .samplers import DEFAULT_SAMPLER
from .records import (RECORD_FORMAT, OutputFolder, OutputFolderError, object_file_stems,
                      read_record, run_provenance, write_record)

__all__ = ["CatalogColumns", "read_catalog", "check_flux_units", "fit_catalog", "fit_object",
           "summary_table", "write_summary", "FLUX_UNITS", "PLAUSIBLE_MAGGIES"]

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
    id : str or None
        Object identifier column; ``None`` numbers the objects by row
        (``row0``, ``row1``, ...).  A named column that the table lacks is
        an error: row numbers are a choice, never a silent fallback.
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


#: Plausible median flux density of a catalogue, in maggies: brighter than 1e-3
#: maggies (7.5 AB mag, 3.6 Jy) is no galaxy survey; a median uncertainty below
#: 1e-16 maggies (40 AB mag) is no instrument.
PLAUSIBLE_MAGGIES = (1e-16, 1e-3)


def check_flux_units(table, columns, filters):
    """Refuse a flux unit that cannot be right for the catalogue's values.

    The median over all rows of each flux column (and of each uncertainty
    column), converted to maggies with ``columns.unit``, must lie in
    :data:`PLAUSIBLE_MAGGIES`: real galaxies are fainter than about 1e-5
    maggies (12.5 AB mag), so fluxes of order 1 with ``unit="maggies"`` are
    micro- or nano-Janskys, and fluxes of 1e-9 called ``nJy`` are maggies.

    Parameters
    ----------
    table : astropy.table.Table
    columns : CatalogColumns
    filters : list of str
        The filters whose columns are in the table.

    Raises
    ------
    EmulatorConfigurationError
        Naming the column, its median, the unit given and the units allowed.
    """
    scale = FLUX_UNITS[columns.unit]
    hint = (f"set the unit of the flux columns (--flux-unit / CatalogColumns(unit=...)); "
            f"allowed: {', '.join(FLUX_UNITS)} (1 maggie = 3631 Jy)")
    worst = None
    for f in filters:
        for template, kind in ((columns.flux, "flux"), (columns.unc, "uncertainty")):
            name = template.format(filter=f)
            values = np.array([_as_float(v) for v in table[name]], dtype=float)
            values = np.abs(values[np.isfinite(values) & (values != 0)])
            if not len(values):
                continue
            median = float(np.median(values)) * scale
            too_bright = kind == "flux" and median > PLAUSIBLE_MAGGIES[1]
            too_faint = kind == "uncertainty" and median < PLAUSIBLE_MAGGIES[0]
            if too_bright or too_faint:
                offset = np.log10(median / (PLAUSIBLE_MAGGIES[1] if too_bright
                                            else PLAUSIBLE_MAGGIES[0]))
                if worst is None or abs(offset) > abs(worst[0]):
                    worst = (offset, name, kind, median / scale, median, too_bright)
    if worst is not None:
        _, name, kind, raw, maggies, too_bright = worst
        mag = -2.5 * np.log10(maggies)
        what = ("brighter than any galaxy in a survey (real galaxies are fainter than ~1e-5 "
                "maggies, 12.5 AB mag)" if too_bright else
                "smaller than any instrument measures (below 1e-16 maggies, 40 AB mag)")
        raise EmulatorConfigurationError(
            f"column {name!r}: median {kind} {raw:.3g} {columns.unit} = {maggies:.3g} maggies "
            f"({mag:.1f} AB mag) is {what}, so the flux unit {columns.unit!r} cannot be right "
            f"for this catalogue. {hint}")


def _read_table(path):
    """``Table.read``, with a UTF-8 byte-order mark ignored (spreadsheets write one)."""
    from astropy.table import Table
    with open(path, "rb") as f:
        has_bom = f.read(3) == b"\xef\xbb\xbf"
    if not has_bom:
        table = Table.read(path)
    else:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
        fmt = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".tsv": "ascii.tab",
               ".txt": "ascii", ".dat": "ascii"}.get(os.path.splitext(path)[1].lower(), "ascii")
        table = Table.read(text, format=fmt)
    for name in table.colnames:  # a BOM astropy kept inside a header
        clean = name.lstrip("\ufeff").strip()
        if clean != name and clean not in table.colnames:
            table.rename_column(name, clean)
    return table


def read_table(path):
    """An astropy Table from a FITS, CSV or ECSV file, BOM-safe; a clear error
    for a missing or unreadable file."""
    if not os.path.exists(path):
        raise EmulatorConfigurationError(f"no catalogue at {path}")
    try:
        return _read_table(path)
    except Exception as err:  # astropy raises many kinds for unreadable input
        raise EmulatorConfigurationError(
            f"cannot read {path} as a table (FITS, CSV or ECSV; astropy.table.Table.read): "
            f"{type(err).__name__}: {err}") from None


def check_catalog_columns(table, columns, filters, where, which_filters=""):
    """The columns a fit needs, each missing one a clear error: flux/uncertainty
    pairs for ``filters`` (``which_filters`` says which were looked for), the
    redshift, the object ids (:func:`check_id_column`), and a plausible flux
    unit (:func:`check_flux_units`)."""
    if not filters:
        raise EmulatorConfigurationError(
            f"{where}: no column pairs {columns.flux!r}/{columns.unc!r}{which_filters}; "
            f"table columns: {_column_list(table)}")
    if columns.zred not in table.colnames:
        raise EmulatorConfigurationError(
            f"{where}: no redshift column {columns.zred!r}; columns: {_column_list(table)}")
    check_id_column(table, columns, where)
    check_flux_units(table, columns, filters)


def check_id_column(table, columns, where):
    """A missing id column is an explicit choice (``columns.id = None``), not row numbers."""
    if columns.id is not None and columns.id not in table.colnames:
        raise EmulatorConfigurationError(
            f"{where}: no object id column {columns.id!r}; columns: {_column_list(table)}. Name "
            "the id column (--id-column NAME), or number the objects by row with "
            "--id-column none")


def read_catalog(path, columns, filter_names):
    """Read an astropy-readable table (FITS, CSV, ECSV) into per-object records.

    A UTF-8 byte-order mark at the start of a text table is ignored.

    Returns
    -------
    records : list of dict
        ``id`` (the catalogue's, as text), ``stem`` (its safe, unique file
        name, :func:`~prospect_emulator.fitting.records.object_file_stems`),
        ``row``, ``zred``, ``maggies``, ``maggies_unc`` (NaN where missing)
        or ``error`` (why the row cannot be fitted).
    filters : list of str
        The emulator filters found in the table.

    Raises
    ------
    EmulatorConfigurationError
        Unreadable table, missing columns (the id column included, unless
        ``columns.id`` is None), non-unique ids, or a flux unit that cannot be
        right for the values (:func:`check_flux_units`).
    """
    table = read_table(path)
    filters = columns.filters_in(table.colnames, filter_names)
    check_catalog_columns(table, columns, filters, path,
                          f" for any of the emulator's {len(filter_names)} filters (e.g. "
                          f"{columns.flux.format(filter=filter_names[0])})")
    scale = FLUX_UNITS[columns.unit]
    records = []
    for i, row in enumerate(table):
        if columns.id is None:
            oid = f"row{i}"
        else:
            value = row[columns.id]
            oid = "" if np.ma.is_masked(value) else str(value).strip()
        rec = {"id": oid, "row": i}
        try:
            rec["zred"] = float(row[columns.zred])
            rec["maggies"] = np.array([_as_float(row[columns.flux.format(filter=f)]) for f in filters]) * scale
            rec["maggies_unc"] = np.array([_as_float(row[columns.unc.format(filter=f)]) for f in filters]) * scale
            good = np.isfinite(rec["maggies"]) & np.isfinite(rec["maggies_unc"]) & (rec["maggies_unc"] > 0)
            if not oid:
                rec["error"] = f"empty object id in column {columns.id!r}"
            elif not np.isfinite(rec["zred"]):
                rec["error"] = f"redshift {row[columns.zred]!r} is not a finite number"
            elif good.sum() < 3:
                rec["error"] = f"only {good.sum()} band(s) with a finite flux and positive uncertainty (need 3)"
        except (TypeError, ValueError) as err:
            rec["error"] = f"unreadable value: {err}"
        records.append(rec)
    ids = [r["id"] for r in records if r["id"]]
    if len(set(ids)) != len(ids):
        seen, repeated = set(), []
        for oid in ids:
            if oid in seen and oid not in repeated:
                repeated.append(oid)
            seen.add(oid)
        raise EmulatorConfigurationError(
            f"{path}: object ids in column {columns.id!r} are not unique ({len(repeated)} "
            f"repeated, e.g. {', '.join(repr(r[:40]) for r in repeated[:3])}); make them unique "
            "or number the objects by row with --id-column none")
    for rec, stem in zip(records, object_file_stems(
            [r["id"] or f"empty-id-row{r['row']}" for r in records])):
        rec["stem"] = stem
    return records, filters


def _column_list(table, n=20):
    names = table.colnames
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _as_float(value):
    if np.ma.is_masked(value):
        return np.nan
    return float(value)


# ------------------------------------------------------------------ the task
#: Per worker process: the emulator (checked against the run's checksum) and its recipe.
_WORKER_CACHE = {}


def _worker_emulator(settings):
    from ..errors import EmulatorFileError
    from ..runtime import load_emulator
    from .results import model_recipe
    path, filters = settings["emulator_path"], tuple(settings["filters"])
    expected = settings["provenance"]["emulator_checksum"]
    key = (path, expected, filters)
    if key not in _WORKER_CACHE:
        emulator = load_emulator(path)
        if emulator.checksum != expected:
            raise EmulatorFileError(
                f"the emulator file {path} on host {socket.gethostname()} has checksum "
                f"{emulator.checksum[:12]}..., but the run started with {expected[:12]}...: "
                "every worker must read the same emulator file")
        _WORKER_CACHE.clear()
        _WORKER_CACHE[key] = (emulator.select(list(filters)), model_recipe(path))
    return _WORKER_CACHE[key]


def fit_object(obj, outdir, settings):
    """Fit one catalogue object and write its results; the task of a catalogue fit.

    Never raises for a problem of this object: a failed fit, or a failed
    write of its files (a full disk), is returned as a record with
    ``status="failed"`` and the reason, and the run goes on.

    Parameters
    ----------
    obj : dict
        One record of :func:`read_catalog` (``id``, ``stem``, ``row``,
        ``zred``, ``maggies``, ``maggies_unc``).
    outdir : str
        The output folder (seen by the worker: a shared file system on a
        cluster).
    settings : dict
        ``emulator_path``, ``filters``, ``sampler`` (a name of
        :data:`~prospect_emulator.fitting.samplers.SAMPLERS`),
        ``sampler_settings`` (complete), ``covariance``, ``floor``, ``seed``
        and ``provenance``
        (:func:`~prospect_emulator.fitting.records.run_provenance`).

    Returns
    -------
    dict
        The record, as written to ``<stem>.json``; ``written`` says whether
        it reached the disk (else ``write_error`` says why).
    """
    import warnings
    from ..prospector import EmulatorNoiseModel
    from .models import build_fitting_model
    from .run import fit_galaxy, make_obs, posterior_summary
    t0 = time.time()
    stem = obj["stem"]
    record = {"format": RECORD_FORMAT, "id": obj["id"], "stem": stem, "row": obj["row"],
              "zred": obj.get("zred")}
    try:
        emulator, recipe = _worker_emulator(settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-object prior-range warnings: said once by fit_catalog
            model = build_fitting_model(emulator, zred=obj["zred"])
        noise = EmulatorNoiseModel(model, floor=settings["floor"], covariance=settings["covariance"])
        obs = make_obs(settings["filters"], obj["maggies"], obj["maggies_unc"])
        run_params = dict(recipe, zred=float(obj["zred"]), object_id=obj["id"])
        fit = fit_galaxy(obs, model, noise, results_path=os.path.join(outdir, f"{stem}.h5"),
                         run_params=run_params, seed=settings["seed"],
                         sampler=settings["sampler"], sampler_settings=settings["sampler_settings"])
        summary = posterior_summary(model, fit["samples"], fit["weights"])
        record.update({
            "status": "ok", "ncall": fit["ncall"], "seconds": fit["seconds"], "logz": fit["logz"],
            "n_bands": int(obs["phot_mask"].sum()),
            "percentiles": {k: [float(x) for x in v] for k, v in summary.items()},
            "units": {k: _unit_and_description(model, k)[0] for k in summary},
            "descriptions": {k: _unit_and_description(model, k)[1] for k in summary},
            "quality": fit["quality"]})
    except Exception as err:  # one object's failure never stops the catalogue
        record.update({"status": "failed", "error": f"{type(err).__name__}: {err}",
                       "traceback": traceback.format_exc()})
    record.update({"provenance": settings["provenance"], "host": socket.gethostname(),
                   "pid": os.getpid(), "wall_seconds": time.time() - t0,
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    try:
        write_record(os.path.join(outdir, f"{stem}.json"), record)
        record["written"] = True
    except Exception as err:  # a full disk, a vanished folder: the parent records it
        if record["status"] == "ok":
            record.update(status="failed", traceback=traceback.format_exc())
        record["error"] = f"could not write {stem}.json: {type(err).__name__}: {err}"
        record.update(written=False, write_error=record["error"])
        record.pop("percentiles", None)
    return record


# ------------------------------------------------------- units of the summary
#: Units (astropy strings) of the model's own ``units`` texts.
_ASTROPY_UNITS = {"log10 msun": "dex(solMass)", "log10 msun formed": "dex(solMass)",
                  "dex": "dex", "log10 gyr": "dex(Gyr)", "gyr": "Gyr", "per cent": "%",
                  "optical depth": "", "": "", r"m$_\odot$": "solMass", "msun": "solMass",
                  "log(yr)": "dex(yr)"}
#: Derived quantities: (astropy unit, description).
_DERIVED_UNITS = {"logmass_formed": "dex(solMass)", "logmstar": "dex(solMass)",
                  "logsfr_100myr": "dex(solMass / yr)", "logsfr_30myr": "dex(solMass / yr)",
                  "mwa_gyr": "Gyr"}


def _unit_and_description(model, name):
    """(astropy unit string or None, description) of a summary quantity."""
    from .derived import DERIVED_NAMES
    if name in _DERIVED_UNITS:
        return _DERIVED_UNITS[name], DERIVED_NAMES[name]
    base = name if name in model.config_dict else name.rsplit("_", 1)[0]
    spec = model.config_dict.get(base, {})
    text = str(spec.get("units", "") or "").strip()
    try:
        from ..definition.presets import INPUT_PARAMETERS
        meaning = INPUT_PARAMETERS.get(base, (None, None, ""))[2]
    except ImportError:
        meaning = ""
    description = f"{meaning or base}" + (f" ({text})" if text else "")
    return _ASTROPY_UNITS.get(text.lower(), _ASTROPY_UNITS.get(text)), description


#: Fixed columns of the summary table: (unit, description).
_SUMMARY_COLUMNS = {
    "id": (None, "object identifier"),
    "zred": ("", "redshift (fixed in the fit)"),
    "status": (None, "ok, or failed (reason in the error column and <file>.json)"),
    "error": (None, "why the fit failed (empty if ok)"),
    "file": (None, "file name stem of the object's results (<file>.h5, <file>.json)"),
    "row": ("", "row of the object in the catalogue (0-based)"),
    "ncall": ("", "likelihood calls of the dynesty run"),
    "seconds": ("s", "wall time of the sampling"),
    "chi2": ("", "chi^2 of the best-fit (highest ln-posterior) sample with the likelihood's "
                 "total sigma (observational, emulator, floor)"),
    "chi2_per_band": ("", "chi2 / n_bands"),
    "n_bands": ("", "bands used in the fit"),
    "n_masked": ("", "bands masked (non-finite flux, non-positive uncertainty or user mask; "
                     "names and reasons in <id>.json)"),
}


def _redshift_range(emulator):
    """The emulator's training range of the redshift (``zred`` or ``logzred`` input)."""
    names = emulator.param_names
    if "zred" in names:
        return tuple(float(v) for v in emulator.param_ranges[names.index("zred")])
    if "logzred" in names:
        return tuple(10 ** float(v) for v in emulator.param_ranges[names.index("logzred")])
    raise EmulatorConfigurationError(
        f"the emulator has no redshift input (zred or logzred) among {names}: a catalogue fit "
        "fixes each object's redshift")


def _read_records(outdir):
    """Every readable object record of a folder (dot files and unreadable files left out)."""
    records, unreadable = [], []
    for name in sorted(os.listdir(outdir)):
        if name.endswith(".json") and not name.startswith("."):
            record = read_record(os.path.join(outdir, name))
            if record is None:
                unreadable.append(name)
            else:
                records.append(record)
    return records, unreadable


def summary_table(outdir, allow_mixed=False):
    """The catalogue summary, rebuilt from the per-object records: one row per object.

    Columns: ``id``, ``zred``, ``status``, ``error``, ``file``, ``row``,
    ``ncall``, ``seconds``, the fit quality (``chi2``, ``chi2_per_band``,
    ``n_bands``, ``n_masked``, one boolean ``flag_<name>`` per flag of
    :func:`~prospect_emulator.fitting.quality.fit_quality` and the parameters
    behind the list flags in ``prior_dominated_params``/``at_prior_edge_params``),
    then the 16/50/84th percentiles ``<quantity>_p<percentile>`` of every free
    parameter and derived quantity.  Every column carries ``unit`` and
    ``description`` metadata (written to ``summary.ecsv``); ``meta`` holds the
    provenance shared by the records (``emulator_checksum``,
    ``model_definition_sha256``, ``package_versions``) and ``unreadable``
    (record files that could not be read).

    Parameters
    ----------
    outdir : str
        Output folder of :func:`fit_catalog`.
    allow_mixed : bool
        Build the table even if the records were made with different
        emulators or model definitions.

    Raises
    ------
    OutputFolderError
        Records of different emulators or model definitions, unless ``allow_mixed``.
    """
    from astropy.table import Column, Table
    from .quality import FLAG_NAMES, FLAG_RULES
    from .run import SUMMARY_PERCENTILES
    if not os.path.isdir(outdir):
        raise OutputFolderError(f"no output folder at {outdir}")
    results, unreadable = _read_records(outdir)
    meta = {"unreadable": unreadable}
    for key in ("emulator_checksum", "model_definition_sha256"):
        found = sorted({str(r["provenance"][key]) for r in results
                        if key in r.get("provenance", {})})
        if len(found) > 1 and not allow_mixed:
            raise OutputFolderError(
                f"{outdir} holds records made with {len(found)} different {key} values "
                f"({', '.join(v[:12] + '...' for v in found)}): one summary would mix them. "
                "Move one run's files elsewhere, or pass allow_mixed=True (--allow-mixed)")
        meta[key] = found[0] if len(found) == 1 else found
    meta["package_versions"] = sorted({r["provenance"].get("package_version", "?")
                                       for r in results if "provenance" in r})
    if not results:
        table = Table()
        table.meta.update(meta)
        return table
    results.sort(key=lambda r: (r.get("row", -1), str(r["id"])))
    keys, units, descriptions = [], {}, {}
    for r in results:
        for k in r.get("percentiles", {}):
            if k not in keys:
                keys.append(k)
        units.update(r.get("units", {}))
        descriptions.update(r.get("descriptions", {}))
    values = {name: [] for name in _SUMMARY_COLUMNS}
    flag_cols = {f"flag_{f}": [] for f in FLAG_NAMES}
    param_cols = {"prior_dominated_params": [], "at_prior_edge_params": []}
    pct_cols = {f"{k}_p{int(p)}": [] for k in keys for p in SUMMARY_PERCENTILES}
    for r in results:
        q = r.get("quality") or {}
        flags = q.get("flags", {})
        values["id"].append(str(r["id"]))
        values["zred"].append(r.get("zred") if r.get("zred") is not None else np.nan)
        values["status"].append(r["status"])
        values["error"].append(str(r.get("error", "")).splitlines()[0][:300]
                               if r.get("error") else "")
        values["file"].append(r.get("stem", str(r["id"])))
        values["row"].append(r.get("row", -1))
        values["ncall"].append(r.get("ncall", 0))
        values["seconds"].append(r.get("seconds", np.nan))
        for k in ("chi2", "chi2_per_band"):
            values[k].append(q.get(k, np.nan))
        for k in ("n_bands", "n_masked"):
            values[k].append(q.get(k, -1))
        for f in FLAG_NAMES:
            flag_cols[f"flag_{f}"].append(bool(flags.get(f, False)))
        for f in ("prior_dominated", "at_prior_edge"):
            param_cols[f"{f}_params"].append(",".join(flags.get(f, [])))
        for k in keys:
            pc = r.get("percentiles", {}).get(k, [np.nan] * len(SUMMARY_PERCENTILES))
            for p, v in zip(SUMMARY_PERCENTILES, pc):
                pct_cols[f"{k}_p{int(p)}"].append(np.nan if v is None else v)
    table = Table()
    for name, (unit, description) in _SUMMARY_COLUMNS.items():
        dtype = str if name in ("id", "status", "error", "file") else None
        table[name] = Column(values[name], unit=unit, description=description, dtype=dtype)
    for f in FLAG_NAMES:
        table[f"flag_{f}"] = Column(flag_cols[f"flag_{f}"], description=f"flag: {FLAG_RULES[f]}")
    for f in ("prior_dominated", "at_prior_edge"):
        table[f"{f}_params"] = Column(param_cols[f"{f}_params"], dtype=str,
                                      description=f"parameters flagged {f} (comma-separated)")
    from .derived import DERIVED_NAMES
    for k in keys:
        unit = units.get(k, _DERIVED_UNITS.get(k))
        meaning = descriptions.get(k, DERIVED_NAMES.get(k, k))
        for p in SUMMARY_PERCENTILES:
            table[f"{k}_p{int(p)}"] = Column(
                pct_cols[f"{k}_p{int(p)}"], unit=unit,
                description=f"{p:g}th percentile of the posterior of {meaning}")
    table.meta.update(meta)
    return table


def write_summary(outdir, allow_mixed=False):
    """Rebuild ``outdir/summary.ecsv`` from the records (atomically); returns the table."""
    table = summary_table(outdir, allow_mixed=allow_mixed)
    if len(table):
        with atomic_path(os.path.join(outdir, "summary.ecsv"),
                         suffix=f".partial-{os.getpid()}") as tmp:
            table.write(tmp, format="ascii.ecsv", overwrite=True)
    return table


def fit_catalog(catalog_path, outdir, emulator_path, columns=None, workers=None, limit=None,
                nested_kwargs=None, covariance=False, progress=True, floor=0.05, seed=None,
                executor=None, attempts=DEFAULT_ATTEMPTS, retry_failed=False, restart=False,
                stream=None, sampler=DEFAULT_SAMPLER, sampler_settings=None):
    """Fit every row of a catalogue, one task per object; resumable, safe to interrupt.

    Parameters
    ----------
    catalog_path : str
        FITS, CSV or ECSV table.
    outdir : str
        Output folder (layout: :mod:`prospect_emulator.fitting.records`):
        ``<stem>.h5`` Prospector results and ``<stem>.json`` records,
        ``summary.ecsv`` (rebuilt from the records at the end) and
        ``skipped.txt`` (rows that cannot be fitted, with the reason).  One
        run at a time owns it (lock file ``.lock``); a second refuses.
    emulator_path : str
        Native emulator file (every worker must be able to read it).
    columns : CatalogColumns, optional
    workers : int, optional
        Worker processes of the embedded Dask ``LocalCluster`` (default: one
        per core); ignored when ``executor`` is given.
    limit : int, optional
        Fit at most this many (new) objects.
    nested_kwargs : dict, optional
        dynesty settings (see :data:`~prospect_emulator.fitting.run.DEFAULT_NESTED_KWARGS`);
        ``sampler="dynesty"`` only.
    covariance : bool
        Use the emulator's residual covariance in the noise model.
    floor : float
        Fractional noise floor on the observed flux (paper eq. 9; 0.05 = 5%,
        0 allowed).
    seed : int, optional
        Seed of every object's fit (reproducible fits); default unseeded.
    executor : Executor or callable, optional
        Where the fits run: an :class:`~prospect_emulator.fitting.executor.Executor`
        (left running), or a function returning one (called only if there is
        something to fit, shut down at the end).  Default: a Dask
        ``LocalCluster`` of ``workers`` processes.
    attempts : int
        Tries of an object whose worker dies (then recorded as failed, with
        Dask's ``KilledWorker`` as the reason).
    retry_failed : bool
        Fit again the objects whose earlier fit failed (otherwise they are
        kept as failed).
    restart : bool
        Start afresh in a folder whose fits were made with another emulator
        or model definition (earlier files are moved to ``superseded-<time>/``);
        without it such a folder is refused.
    stream : file, optional
        Where notes and progress go (default ``sys.stderr``).
    sampler : str
        A name of :data:`~prospect_emulator.fitting.samplers.SAMPLERS`
        (:func:`~prospect_emulator.fitting.samplers.run_sampler`); default
        :data:`~prospect_emulator.fitting.samplers.DEFAULT_SAMPLER` (``"smc"``);
        ``"dynesty"`` is Prospector's ``fit_model``.  ``"dynesty-pool"`` is
        refused: each worker process already runs one fit.
    sampler_settings : dict, optional
        Settings of that sampler
        (:func:`~prospect_emulator.fitting.samplers.sampler_settings`).

    Returns
    -------
    astropy.table.Table
        The summary table (also written to ``outdir/summary.ecsv``).

    Raises
    ------
    EmulatorConfigurationError
        Unreadable catalogue or implausible flux unit (:func:`read_catalog`),
        a negative floor, ``nested_nlive_init`` below twice the number of
        free parameters, an unknown or refused sampler or setting.
    OutputFolderError
        The folder cannot be written, another live run owns it
        (:class:`~prospect_emulator.fitting.records.FolderBusyError`), or it
        holds fits of another emulator or model definition (without ``restart``).
    """
    from ..prospector.noise import _check_floor
    from ..runtime import load_emulator
    from .models import build_fitting_model
    stream = stream or sys.stderr
    columns = columns or CatalogColumns()
    floor = _check_floor(floor)
    emulator = load_emulator(emulator_path)
    records, filters = read_catalog(catalog_path, columns, emulator.filter_names)
    zlo, zhi = _redshift_range(emulator)
    # one model up front: its training-range warnings are said once, and nlive is checked
    # before any object is fitted
    model = build_fitting_model(emulator, zred=0.5 * (zlo + zhi))
    full_settings = catalog_sampler_settings(sampler, model.ndim, nested_kwargs, sampler_settings)
    provenance = run_provenance(emulator, emulator_path, filters,
                                dict(full_settings, name=sampler), seed, floor, covariance,
                                attempts)
    settings = {"emulator_path": provenance["emulator"], "filters": filters,
                "sampler": sampler, "sampler_settings": full_settings, "covariance": covariance,
                "floor": floor, "seed": seed, "provenance": provenance}

    def note(text):
        print(f"fit: {text}", file=stream, flush=True)

    with OutputFolder(outdir, stream=stream) as folder:
        outdir = folder.path
        existing = folder.check_provenance(provenance, folder.records(), restart=restart)
        skipped, todo, n_ok, n_failed = [], [], 0, 0
        for rec in records:
            if "error" not in rec and not zlo <= rec["zred"] <= zhi:
                rec["error"] = f"redshift {rec['zred']:g} outside the emulator's range [{zlo:g}, {zhi:g}]"
            if "error" in rec:
                skipped.append(f"{rec['id']} (row {rec['row']}): {rec['error']}")
                continue
            done = existing.get(rec["stem"])
            if done is not None and str(done.get("id")) != rec["id"]:
                note(f"{rec['stem']}.json belongs to object {done.get('id')!r}, not "
                     f"{rec['id']!r} of this catalogue: it is fitted again")
                done = None
            if done is not None and done["status"] == "ok":
                n_ok += 1
            elif done is not None and not retry_failed:
                n_failed += 1
            else:
                todo.append(rec)
        _write_text(os.path.join(outdir, "skipped.txt"), "".join(line + "\n" for line in skipped),
                    note)
        for line in skipped[:20]:
            note(f"skipping {line}")
        if len(skipped) > 20:
            note(f"... and {len(skipped) - 20} more rows skipped (all in {outdir}/skipped.txt)")
        if limit is not None:
            todo = todo[:limit]
        note(f"{len(records)} objects, {len(filters)} bands ({', '.join(filters[:8])}"
             f"{', ...' if len(filters) > 8 else ''}); {len(todo)} to fit, {n_ok} done and "
             f"{n_failed} failed earlier{' (--retry-failed to fit them again)' if n_failed else ''}"
             f", {len(skipped)} skipped")
        unsaved = []
        try:
            if todo:
                unsaved = _run_tasks(todo, outdir, settings, executor, workers, attempts,
                                     progress, stream, n_ok + n_failed, n_failed, note)
        finally:
            table = _final_summary(outdir, note)
        if unsaved:
            note(f"{len(unsaved)} object(s) could not be recorded ({unsaved[0][1]}); they are "
                 "fitted again by the next run: " + ", ".join(oid for oid, _ in unsaved[:10]))
    return table


def catalog_sampler_settings(sampler, ndim, nested_kwargs=None, settings=None):
    """The complete, checked settings of a catalogue's sampler (before any object is fitted).

    Raises
    ------
    EmulatorConfigurationError
        ``dynesty-pool`` (a pool per fit inside a worker process that is
        itself one of a pool of fits), ``nested_kwargs`` with another sampler
        than dynesty, an unknown setting, or too few live points.
    """
    from .samplers import merged_nested_kwargs, sampler_settings
    if sampler == "dynesty-pool":
        raise EmulatorConfigurationError(
            "sampler 'dynesty-pool' is not for catalogues: every Dask worker process already "
            "fits one object, so a pool inside each fit only competes for the same cores. Use "
            "--sampler dynesty (the objects run in parallel), or fit one galaxy with "
            "dynesty-pool")
    return sampler_settings(sampler, ndim=ndim,
                            **merged_nested_kwargs(sampler, nested_kwargs, settings))


def _run_tasks(todo, outdir, settings, executor, workers, attempts, progress, stream,
               n_before, n_failed_before, note):
    """Run :func:`fit_object` for every object of ``todo``; returns the unrecorded ones."""
    owned = not isinstance(executor, Executor)
    bar = Progress(len(todo) + n_before, n_before, label="fit", unit="objects",
                   enabled=progress, stream=stream, remaining=True)
    bar.failed = n_failed_before
    unsaved, n = [], 0
    by_key = {f"fit-{rec['stem']}": rec for rec in todo}
    with terminate_as_interrupt():
        if executor is None:
            executor = DaskExecutor.local(n_workers=workers, attempts=attempts)
        elif owned:
            executor = executor()
        try:
            note(f"running on {executor.description}")
            if executor.dashboard_link:
                note(f"Dask dashboard: {executor.dashboard_link}")
            tasks = ((key, (rec, outdir, settings)) for key, rec in by_key.items())
            for outcome in executor.run_unordered(fit_object, tasks):
                rec = by_key[outcome.key]
                if outcome.ok:
                    result = outcome.value
                else:
                    result = _finished_before_lost(outdir, rec, settings) or \
                        _lost_task_record(rec, outcome.error, settings)
                if not result.pop("written", False):
                    result.pop("write_error", None)
                    try:
                        write_record(os.path.join(outdir, f"{rec['stem']}.json"), result)
                    except Exception as err:
                        unsaved.append((rec["id"], f"{type(err).__name__}: {err}"))
                n += 1
                bar.failed += result["status"] != "ok"
                bar.update(n)
        finally:
            bar.close(n)
            if owned:
                executor.shutdown()
    return unsaved


def _finished_before_lost(outdir, rec, settings):
    """The record of an object whose worker died after writing it (complete: atomic)."""
    record = read_record(os.path.join(outdir, f"{rec['stem']}.json"))
    if record is not None and record["status"] == "ok" and record.get("id") == rec["id"] \
            and record.get("provenance") == settings["provenance"]:
        return dict(record, written=True)
    return None


def _lost_task_record(rec, reason, settings):
    """The record of an object whose task ended without a result (its workers died)."""
    return {"format": RECORD_FORMAT, "id": rec["id"], "stem": rec["stem"], "row": rec["row"],
            "zred": rec.get("zred"), "status": "failed",
            "error": f"the worker fitting it died or was lost {settings['provenance']['attempts']} "
                     f"time(s) ({reason})",
            "provenance": settings["provenance"],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _final_summary(outdir, note):
    try:
        return write_summary(outdir)
    except OutputFolderError as err:
        note(f"no summary written: {err}")
    except OSError as err:
        note(f"could not write {outdir}/summary.ecsv ({type(err).__name__}: {err}); every "
             f"object's record is kept: rebuild it with `prospect-emulator summary {outdir}`")
    from astropy.table import Table
    return summary_table(outdir, allow_mixed=True) if os.path.isdir(outdir) else Table()


def _write_text(path, text, note):
    try:
        with atomic_path(path, suffix=f".partial-{os.getpid()}") as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
    except OSError as err:
        note(f"could not write {path} ({type(err).__name__}: {err})")
