"""``prospect-emulator check PARAMFILE|CATALOG``: find what would make a fit wrong, before fitting."""


def add_arguments(parser):
    from .fit import add_catalog_column_options
    parser.add_argument("target", help="a Prospector parameter file (.py) or a catalogue "
                                       "(FITS/CSV/ECSV, the columns of `fit`)")
    parser.add_argument("--emulator", default=None,
                        help="emulator file or shipped name for a catalogue (default: the "
                             "shipped default emulator)")
    add_catalog_column_options(parser)


def run(args):
    from ..fitting.check import check_catalog, check_param_file, is_param_file
    if is_param_file(args.target):
        problems = check_param_file(args.target)
    else:
        from ..prospector.model import _as_emulator
        from .fit import catalog_columns
        problems = check_catalog(args.target, _as_emulator(args.emulator), catalog_columns(args))
    for problem in problems:
        print(problem)
    errors = sum(p.severity == "error" for p in problems)
    print(f"check: {errors} error(s), {len(problems) - errors} warning(s) in {args.target}")
    return 1 if errors else 0
