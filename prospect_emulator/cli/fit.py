"""``prospect-emulator fit CATALOG``: Prospector + dynesty fits of a catalogue."""
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


def add_fit_options(parser):
    """Options shared by ``fit`` and ``demo``: sampler size, seed and noise floor."""
    parser.add_argument("--nlive", type=int, default=200,
                        help="dynesty live points (default 200; at least 2 per free parameter)")
    parser.add_argument("--n-effective", type=int, default=2000,
                        help="dynesty target effective sample size (default 2000)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of dynesty's random state: the same seed gives identical "
                             "samples (default: unseeded)")
    parser.add_argument("--floor", type=nonnegative_floor, default=0.05,
                        help="noise floor as a fraction of the observed flux density, added in "
                             "quadrature (paper eq. 9; default 0.05, 0 allowed)")


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
    parser.add_argument("--flux-unit", default="maggies", choices=list(FLUX_UNITS),
                        help="unit of the flux and uncertainty columns (default maggies; "
                             "1 maggie = 3631 Jy); an implausible one is refused")
    parser.add_argument("--workers", type=int, default=2, help="parallel fits (default 2)")
    parser.add_argument("--limit", type=int, default=None, help="fit at most this many new objects")
    add_fit_options(parser)
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
                        progress=not args.no_progress, floor=args.floor, seed=args.seed)
    n_ok = int(sum(s == "ok" for s in table["status"])) if len(table) else 0
    print(f"{n_ok} objects fitted, {len(table) - n_ok} failed; summary: {args.out}/summary.ecsv")
    if n_ok:
        flagged = {c: int(table[c].sum()) for c in table.colnames if c.startswith("flag_")}
        print("flags: " + ", ".join(f"{c[5:]} {n}" for c, n in flagged.items())
              + " (see the summary's column descriptions)")
    return 0
