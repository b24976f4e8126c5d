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

__all__ = ["CatalogColumns", "read_catalog", "check_flux_units", "fit_catalog", "summary_table",
           "FLUX_UNITS", "PLAUSIBLE_MAGGIES"]

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

    Raises
    ------
    EmulatorConfigurationError
        Unreadable table, missing columns, non-unique ids, or a flux unit
        that cannot be right for the values (:func:`check_flux_units`).
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
    check_flux_units(table, columns, filters)
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


def _init_worker(emulator_path, filters, nested_kwargs, covariance, floor=0.05, seed=None):
    from ..runtime import load_emulator
    _WORKER.update(emulator=load_emulator(emulator_path).select(filters), filters=filters,
                   emulator_path=emulator_path, nested_kwargs=nested_kwargs,
                   covariance=covariance, floor=floor, seed=seed)


def _fit_record(args):
    rec, outdir = args
    from ..prospector import EmulatorNoiseModel
    from .models import build_fitting_model
    from .results import model_recipe
    from .run import fit_galaxy, make_obs, posterior_summary
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-object prior-range warnings: said once by fit_catalog
            model = build_fitting_model(_WORKER["emulator"], zred=rec["zred"])
        noise = EmulatorNoiseModel(model, floor=_WORKER["floor"], covariance=_WORKER["covariance"])
        obs = make_obs(_WORKER["filters"], rec["maggies"], rec["maggies_unc"])
        run_params = dict(model_recipe(_WORKER["emulator_path"], zred=rec["zred"]),
                          object_id=rec["id"])
        fit = fit_galaxy(obs, model, noise, nested_kwargs=_WORKER["nested_kwargs"],
                         results_path=os.path.join(outdir, f"{rec['id']}.h5"),
                         run_params=run_params, seed=_WORKER["seed"])
        summary = posterior_summary(model, fit["samples"], fit["weights"])
        result = {"id": rec["id"], "row": rec["row"], "zred": rec["zred"], "status": "ok",
                  "ncall": fit["ncall"], "seconds": fit["seconds"], "logz": fit["logz"],
                  "n_bands": int(obs["phot_mask"].sum()),
                  "percentiles": {k: [float(x) for x in v] for k, v in summary.items()},
                  "units": {k: _unit_and_description(model, k)[0] for k in summary},
                  "descriptions": {k: _unit_and_description(model, k)[1] for k in summary},
                  "quality": fit["quality"]}
    except Exception as err:  # one object's failure never stops the catalogue
        result = {"id": rec["id"], "row": rec["row"], "zred": rec.get("zred"), "status": "failed",
                  "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    _write_json(os.path.join(outdir, f"{rec['id']}.json"), result)
    return result


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


def _write_json(path, obj):
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=1)


#: Fixed columns of the summary table: (unit, description).
_SUMMARY_COLUMNS = {
    "id": (None, "object identifier"),
    "zred": ("", "redshift (fixed in the fit)"),
    "status": (None, "ok, or failed (reason in <id>.json)"),
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


def summary_table(outdir):
    """The catalogue summary: one row per finished object.

    Columns: ``id``, ``zred``, ``status``, ``ncall``, ``seconds``, the fit
    quality (``chi2``, ``chi2_per_band``, ``n_bands``, ``n_masked``, one
    boolean ``flag_<name>`` per flag of
    :func:`~prospect_emulator.fitting.quality.fit_quality` and the parameters
    behind the list flags in ``prior_dominated_params``/``at_prior_edge_params``),
    then the 16/50/84th percentiles ``<quantity>_p<percentile>`` of every free
    parameter and derived quantity.  Every column carries ``unit`` and
    ``description`` metadata (written to ``summary.ecsv``).
    """
    from astropy.table import Column, Table
    from .quality import FLAG_NAMES, FLAG_RULES
    from .run import SUMMARY_PERCENTILES
    results = []
    for name in sorted(os.listdir(outdir)):
        if name.endswith(".json"):
            with open(os.path.join(outdir, name)) as f:
                results.append(json.load(f))
    if not results:
        return Table()
    results.sort(key=lambda r: r["row"])
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
        values["id"].append(r["id"])
        values["zred"].append(r.get("zred") if r.get("zred") is not None else np.nan)
        values["status"].append(r["status"])
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
        table[name] = Column(values[name], unit=unit, description=description)
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
    return table


def fit_catalog(catalog_path, outdir, emulator_path, columns=None, workers=2, limit=None,
                nested_kwargs=None, covariance=False, progress=True, floor=0.05, seed=None):
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
    floor : float
        Fractional noise floor on the observed flux (paper eq. 9; 0.05 = 5%,
        0 allowed).
    seed : int, optional
        Seed of every object's dynesty run (reproducible fits); default unseeded.

    Returns
    -------
    astropy.table.Table
        The summary table (also written to ``outdir/summary.ecsv``).

    Raises
    ------
    EmulatorConfigurationError
        Unreadable catalogue or implausible flux unit (:func:`read_catalog`),
        a negative floor, or ``nested_nlive_init`` below twice the number of
        free parameters.
    """
    from ..prospector.noise import _check_floor
    from ..runtime import load_emulator
    from .models import build_fitting_model
    from .run import DEFAULT_NESTED_KWARGS, check_nlive
    columns = columns or CatalogColumns()
    floor = _check_floor(floor)
    emulator = load_emulator(emulator_path)
    records, filters = read_catalog(catalog_path, columns, emulator.filter_names)
    zlo, zhi = _redshift_range(emulator)
    # one model up front: its training-range warnings are said once, and nlive is checked
    # before any object is fitted
    model = build_fitting_model(emulator, zred=0.5 * (zlo + zhi))
    check_nlive(dict(DEFAULT_NESTED_KWARGS, **(nested_kwargs or {}))["nested_nlive_init"],
                model.ndim)
    os.makedirs(outdir, exist_ok=True)
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
    init = (emulator_path, filters, nested_kwargs, covariance, floor, seed)
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
