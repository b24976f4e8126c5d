"""``prospect-emulator summary DIR``: rebuild a catalogue fit's summary table from its records."""


def add_arguments(parser):
    parser.add_argument("folder", metavar="DIR", help="output folder of `prospect-emulator fit`")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="build the table even if the records were made with different "
                             "emulators or model definitions")


def run(args):
    import os
    from ..fitting.catalog import write_summary
    from ..fitting.records import OutputFolderError
    from .fit import report
    if not os.path.isdir(args.folder):
        raise OutputFolderError(f"no output folder at {args.folder}")
    try:
        table = write_summary(args.folder, allow_mixed=args.allow_mixed)
    except OSError as err:
        raise OutputFolderError(
            f"cannot write {args.folder}/summary.ecsv ({type(err).__name__}: {err})") from None
    if not len(table):
        print(f"{args.folder} holds no object records yet")
        return 0
    unreadable = table.meta.get("unreadable") or []
    if unreadable:
        print(f"{len(unreadable)} unreadable record file(s) left out, e.g. {unreadable[0]} "
              "(the next `prospect-emulator fit` run sets them aside and fits those objects again)")
    return report(table, args.folder)
