"""``prospect-emulator fit CATALOG``: exact posterior fits of a catalogue (smc by default, or
any sampler of :mod:`~prospect_emulator.fitting.samplers`), one Prospector results file each."""
import argparse

from ..fitting.catalog import FLUX_UNITS


def nonnegative_floor(text):
    """argparse type of ``--floor``: a fraction >= 0 of the observed flux."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text} is not allowed: the floor is a fraction >= 0 of the observed flux density "
            "(0.05 = 5%, the paper's; 0 = no floor)")
    return value


def positive_int(text):
    """argparse type of a count: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def json_object(text):
    """argparse type: a JSON object (the sampler's settings)."""
    import json
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object ({{\"key\": value}})")
    return value


def cli_sampler_settings(args):
    """The sampler settings of ``fit``/``demo``'s options: ``--nlive``/``--n-effective``
    where the sampler has them, updated by ``--sampler-settings``."""
    from ..errors import EmulatorConfigurationError
    from ..fitting.samplers import settings_from_cli
    from_options = settings_from_cli(args.sampler, args.nlive, args.n_effective)
    both = sorted(set(from_options) & set(args.sampler_settings or {}))
    if both:
        raise EmulatorConfigurationError(
            f"{', '.join(both)} given twice: by --nlive/--n-effective and by "
            "--sampler-settings; give each once")
    return dict(from_options, **(args.sampler_settings or {}))


def add_fit_options(parser):
    """Options shared by ``fit`` and ``demo``: sampler, its size, seed and noise floor."""
    from ..fitting.samplers import DEFAULT_SAMPLER, SAMPLERS
    parser.add_argument("--sampler", choices=SAMPLERS, default=DEFAULT_SAMPLER,
                        help=f"posterior sampler (default {DEFAULT_SAMPLER}: tempered sequential "
                             "Monte Carlo, NumPy, calibrated for the 14-parameter model; dynesty: "
                             "Prospector's fit_model, over-confident for that model at its "
                             "default settings, docs/samplers.md); --nlive/--n-effective apply "
                             "to the nested "
                             "samplers (ultranest: minimum live points and effective sample "
                             "size), emcee runs until its chain is 50 autocorrelation times long; "
                             "dynesty-pool is for one galaxy, not catalogues")
    parser.add_argument("--nlive", type=int, default=None,
                        help="live points of the nested samplers (dynesty default 200; at least "
                             "2 per free parameter); refused for smc, emcee and blackjax-nuts")
    parser.add_argument("--n-effective", type=int, default=None,
                        help="target effective sample size of dynesty (default 2000) and "
                             "ultranest; refused for the others")
    parser.add_argument("--sampler-settings", type=json_object, default=None, metavar="JSON",
                        help="further settings of the sampler as a JSON object, e.g. "
                             "'{\"final_chain_length\": 2000}' for smc (the keys of "
                             "prospect_emulator.fitting.samplers.DEFAULT_SETTINGS; an unknown "
                             "key is refused)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the sampler's random state: the same seed gives identical "
                             "samples (default: unseeded)")
    parser.add_argument("--floor", type=nonnegative_floor, default=0.05,
                        help="noise floor as a fraction of the observed flux density, added in "
                             "quadrature (paper eq. 9; default 0.05, 0 allowed)")


def add_catalog_column_options(parser):
    """The catalogue column options of ``fit`` (also used by ``check``)."""
    parser.add_argument("--flux-column", default="f_{filter}",
                        help="flux column template, {filter} = sedpy name (default f_{filter})")
    parser.add_argument("--unc-column", default="e_{filter}",
                        help="uncertainty column template (default e_{filter})")
    parser.add_argument("--zred-column", default="z", help="redshift column (default z)")
    parser.add_argument("--id-column", default="id",
                        help="object id column (default id); 'none' numbers the objects by row "
                             "(row0, row1, ...)")
    parser.add_argument("--flux-unit", default="maggies", choices=list(FLUX_UNITS),
                        help="unit of the flux and uncertainty columns (default maggies; "
                             "1 maggie = 3631 Jy); an implausible one is refused")


def catalog_columns(args):
    """The :class:`~prospect_emulator.fitting.catalog.CatalogColumns` of the options."""
    from ..fitting.catalog import CatalogColumns
    id_column = None if args.id_column.lower() == "none" else args.id_column
    return CatalogColumns(args.flux_column, args.unc_column, args.zred_column, id_column,
                          args.flux_unit)


def add_arguments(parser):
    parser.add_argument("catalog", help="FITS, CSV or ECSV table (anything astropy.table reads)")
    parser.add_argument("--out", required=True,
                        help="output folder (resumed if it exists; one run at a time)")
    parser.add_argument("--emulator", default=None,
                        help="emulator file, or a shipped one by name: default, parametric "
                             "(default: default)")
    add_catalog_column_options(parser)
    parser.add_argument("--limit", type=int, default=None, help="fit at most this many new objects")
    add_fit_options(parser)
    parser.add_argument("--covariance", action="store_true",
                        help="use the emulator's residual covariance in the noise model")
    parser.add_argument("--no-progress", action="store_true")
    amortized = parser.add_argument_group(
        "amortized posteriors (needs the 'amortized' extra; one task per chunk of objects)")
    amortized.add_argument("--amortized", default=None, metavar="POST.h5",
                           help="sample each object's amortized posterior from this file "
                                "(prospect-emulator amortize train) instead of an exact fit; "
                                "--emulator defaults to the one it records")
    amortized.add_argument("--fallback", choices=["none", "exact"], default="none",
                           help="exact: fit the objects flagged out of support with the exact "
                                "path (the sampler options above; results in OUT/exact/); the "
                                "summary's method column says which path made each row")
    amortized.add_argument("--n-samples", type=int, default=1000,
                           help="posterior draws per object (default 1000)")
    amortized.add_argument("--chunk-size", type=int, default=2000,
                           help="objects per task (default 2000)")
    amortized.add_argument("--importance-draws", type=positive_int, default=None, metavar="N",
                           help="reweight N flow draws per object by the exact likelihood and "
                                "resample --n-samples of them (exact-posterior draws where the "
                                "flow covers the posterior; N emulator calls per object); "
                                "objects with too few effective draws are flagged out of "
                                "support")
    resume = parser.add_argument_group("resuming")
    resume.add_argument("--retry-failed", action="store_true",
                        help="fit again the objects whose earlier fit failed")
    resume.add_argument("--restart", action="store_true",
                        help="in a folder fitted with another emulator or model definition, move "
                             "the earlier results to superseded-<time>/ and fit everything again")
    engine = parser.add_argument_group(
        "where the fits run (Dask; default: a local cluster of one worker process per core)")
    engine.add_argument("--workers", type=int, default=None,
                        help="worker processes of the local cluster (default: one per core)")
    engine.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="use an existing Dask cluster: its scheduler address "
                             "(tcp://host:8786) or scheduler file (JSON)")
    engine.add_argument("--slurm", action="store_true",
                        help="start the workers as SLURM jobs (dask-jobqueue; needs the 'cluster' "
                             "extra); settings not given come from the dask-jobqueue configuration")
    engine.add_argument("--cores", type=int, default=None,
                        help="--slurm: cores per job, one worker process each")
    engine.add_argument("--memory", default=None, help="--slurm: memory per job, e.g. 64GB")
    engine.add_argument("--walltime", default=None, help="--slurm: time limit per job, HH:MM:SS")
    engine.add_argument("--jobs", type=int, default=1, help="--slurm: number of jobs (default 1)")
    engine.add_argument("--queue", default=None, help="--slurm: partition")
    engine.add_argument("--account", default=None, help="--slurm: account to charge")
    engine.add_argument("--attempts", type=int, default=3,
                        help="tries of an object whose worker dies before it is recorded as "
                             "failed (default 3)")


def make_executor(args):
    """A function starting the executor the options ask for (called only if there is work)."""
    from ..errors import EmulatorConfigurationError
    from ..fitting.executor import DaskExecutor
    chosen = [name for name, on in (("--scheduler", args.scheduler), ("--slurm", args.slurm),
                                    ("--workers", args.workers is not None)) if on]
    if len(chosen) > 1:
        raise EmulatorConfigurationError(
            f"{' and '.join(chosen)} exclude each other: --workers sizes the local cluster, "
            "--scheduler uses an existing one, --slurm starts SLURM jobs")
    slurm_only = [f"--{n}" for n in ("cores", "memory", "walltime", "queue", "account")
                  if getattr(args, n) is not None]
    if slurm_only and not args.slurm:
        raise EmulatorConfigurationError(f"{', '.join(slurm_only)} only apply with --slurm")
    if args.scheduler:
        return lambda: DaskExecutor.connect(args.scheduler, attempts=args.attempts)
    if args.slurm:
        extra = {k: getattr(args, k) for k in ("queue", "account") if getattr(args, k)}
        return lambda: DaskExecutor.slurm(args.cores, args.memory, args.walltime, args.jobs,
                                          attempts=args.attempts, **extra)
    return lambda: DaskExecutor.local(n_workers=args.workers, attempts=args.attempts)


def run(args):
    from ..data import DEFAULT_EMULATOR_PATH, SHIPPED_EMULATORS
    from ..errors import EmulatorConfigurationError
    from ..fitting.catalog import fit_catalog
    columns = catalog_columns(args)
    executor = make_executor(args)
    exact = dict(sampler=args.sampler,
                 sampler_settings=cli_sampler_settings(args),
                 covariance=args.covariance, floor=args.floor, seed=args.seed,
                 attempts=args.attempts, retry_failed=args.retry_failed, restart=args.restart)
    try:
        if args.amortized:
            return _run_amortized(args, columns, executor, exact)
        if args.fallback != "none":
            raise EmulatorConfigurationError("--fallback applies to --amortized fits only")
        if args.importance_draws is not None:
            raise EmulatorConfigurationError(
                "--importance-draws applies to --amortized fits only")
        emulator = SHIPPED_EMULATORS.get(args.emulator, args.emulator) or DEFAULT_EMULATOR_PATH
        table = fit_catalog(args.catalog, args.out, emulator, columns, limit=args.limit,
                            progress=not args.no_progress, executor=executor, **exact)
    except (PermissionError, IsADirectoryError, NotADirectoryError) as err:
        raise EmulatorConfigurationError(
            f"{err.filename or args.out}: {err.strerror or err} (check the paths of the catalogue, "
            "the emulator and --out)") from None
    return report(table, args.out)


def _run_amortized(args, columns, executor, exact):
    """``fit --amortized POST.h5``: one Dask task per chunk of objects, then the fallback."""
    from ..errors import EmulatorConfigurationError
    try:
        import flowjax  # noqa: F401
    except ImportError:
        raise EmulatorConfigurationError(
            "fit --amortized needs JAX, flowjax and optax: "
            "pip install 'prospect-emulator[amortized]'") from None
    if args.limit is not None:
        raise EmulatorConfigurationError(
            "--limit applies to exact fits; an amortized fit samples the whole catalogue "
            "(give a smaller catalogue)")
    from ..fitting.samplers import DEFAULT_SAMPLER
    exact_options = [option for option, given in (
        ("--sampler", args.sampler != DEFAULT_SAMPLER), ("--nlive", args.nlive is not None),
        ("--n-effective", args.n_effective is not None),
        ("--sampler-settings", args.sampler_settings is not None)) if given]
    if exact_options and args.fallback == "none":
        raise EmulatorConfigurationError(
            f"{', '.join(exact_options)} set(s) the exact fits; with --amortized there are "
            "none unless --fallback exact fits the objects out of support")
    from ..amortized import fit_catalog_amortized
    table = fit_catalog_amortized(
        args.catalog, args.amortized, args.out, n_samples=args.n_samples,
        seed=0 if args.seed is None else args.seed, columns=columns,
        chunk_size=args.chunk_size, progress=not args.no_progress, executor=executor,
        emulator=args.emulator, fallback=None if args.fallback == "none" else args.fallback,
        exact_settings=exact, importance_draws=args.importance_draws)
    return report(table, args.out)


def report(table, outdir):
    """Print what a catalogue folder holds; exit status 0 (all fitted) or 1 (some failed)."""
    n_ok = int(sum(s == "ok" for s in table["status"])) if len(table) else 0
    n_failed = len(table) - n_ok
    print(f"{n_ok} objects fitted, {n_failed} failed; summary: {outdir}/summary.ecsv")
    if n_failed:
        reasons = {}
        for status, error in zip(table["status"], table["error"]):
            if status != "ok":
                key = str(error).split(":")[0] or "unknown"
                reasons[key] = reasons.get(key, 0) + 1
        print("failed: " + ", ".join(f"{k} {n}" for k, n in sorted(reasons.items(),
                                                                   key=lambda kv: -kv[1]))
              + " (reasons in the summary's error column; --retry-failed fits them again)")
    if n_ok:
        flagged = {c: int(table[c].sum()) for c in table.colnames if c.startswith("flag_")}
        print("flags: " + ", ".join(f"{c[5:]} {n}" for c, n in flagged.items())
              + " (see the summary's column descriptions)")
    return 0
