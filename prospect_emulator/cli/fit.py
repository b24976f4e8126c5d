"""``prospect-emulator fit CATALOG``: Prospector + dynesty fits of a catalogue."""
from ..fitting.catalog import FLUX_UNITS


def add_arguments(parser):
    parser.add_argument("catalog", help="FITS, CSV or ECSV table (anything astropy.table reads)")
    parser.add_argument("--out", required=True, help="output folder (resumed if it exists)")
    parser.add_argument("--emulator", default=None, help="emulator file (default: the shipped one)")
    parser.add_argument("--flux-column", default="f_{filter}",
                        help="flux column template, {filter} = sedpy name (default f_{filter})")
    parser.add_argument("--unc-column", default="e_{filter}",
                        help="uncertainty column template (default e_{filter})")
    parser.add_argument("--zred-column", default="z", help="redshift column (default z)")
    parser.add_argument("--id-column", default="id", help="object id column (default id)")
    parser.add_argument("--flux-unit", default="maggies", choices=list(FLUX_UNITS))
    parser.add_argument("--workers", type=int, default=2, help="parallel fits (default 2)")
    parser.add_argument("--limit", type=int, default=None, help="fit at most this many new objects")
    parser.add_argument("--nlive", type=int, default=200, help="dynesty live points (default 200)")
    parser.add_argument("--n-effective", type=int, default=2000,
                        help="dynesty target effective sample size (default 2000)")
    parser.add_argument("--covariance", action="store_true",
                        help="use the emulator's residual covariance in the noise model")
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    from ..data import DEFAULT_EMULATOR_PATH
    from ..fitting.catalog import CatalogColumns, fit_catalog
    columns = CatalogColumns(args.flux_column, args.unc_column, args.zred_column, args.id_column,
                             args.flux_unit)
    table = fit_catalog(args.catalog, args.out, args.emulator or DEFAULT_EMULATOR_PATH, columns,
                        workers=args.workers, limit=args.limit, covariance=args.covariance,
                        nested_kwargs={"nested_nlive_init": args.nlive,
                                       "nested_target_n_effective": args.n_effective},
                        progress=not args.no_progress)
    n_ok = int(sum(s == "ok" for s in table["status"])) if len(table) else 0
    print(f"{n_ok} objects fitted, {len(table) - n_ok} failed; summary: {args.out}/summary.ecsv")
    return 0
