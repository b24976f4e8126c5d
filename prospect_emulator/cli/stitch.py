"""``prospect-emulator stitch``: one emulator over a wide redshift range from
members on overlapping redshift domains (paper Sec. 4.3, Table 2).

Examples::

    # combine emulators trained elsewhere (their zred training ranges are the domains)
    prospect-emulator stitch emu_lowz.h5 emu_highz.h5 --out stitched.h5

    # train one member per domain from one training set, then combine
    prospect-emulator stitch --train train.h5 --domains 0.5:1.75,1.25:3 --width 128 --out stitched.h5

Members trained here are written as ``stitched.member<i>.h5``; running the
same command again skips finished members and resumes the one in progress.
An existing ``--out`` file (or a member file of a different training) is
refused unless ``--overwrite`` is given.
"""
from .train import add_training_options, training_kwargs

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """Options of ``prospect-emulator stitch``."""
    parser.add_argument("emulators", nargs="*", metavar="EMU.h5",
                        help="single emulator files to combine (their zred ranges must overlap)")
    parser.add_argument("--out", required=True, metavar="STITCHED.h5", help="stitched emulator file")
    parser.add_argument("--zred-param", default="zred", help="name of the redshift input (default zred)")
    parser.add_argument("--train", metavar="FILE.h5", default=None,
                        help="train the members from this training set instead of reading EMU files")
    parser.add_argument("--domains", metavar="LO:HI,LO:HI,...", default=None,
                        help="overlapping redshift domains of the members (with --train)")
    add_training_options(parser)


def run(args):
    """Run the command; returns the exit status."""
    from ..errors import EmulatorConfigurationError
    from ..training.stitch import parse_domains, stitch_emulators, train_stitched
    from ..training.train import _check_out_path

    # the stitched file; member files are checked as they are trained
    _check_out_path(args.out, overwrite=args.overwrite)
    if args.train:
        if args.emulators:
            raise EmulatorConfigurationError("give either EMU files or --train FILE.h5, not both")
        if not args.domains:
            raise EmulatorConfigurationError("--train needs --domains LO:HI,LO:HI,... (e.g. 0.5:1.75,1.25:3)")
        if args.width is None:
            raise EmulatorConfigurationError("--train needs --width N (nodes per hidden layer)")
        kwargs = training_kwargs(args)
        verbose = kwargs.pop("verbose")
        if args.checkpoint_dir:
            raise EmulatorConfigurationError(
                "--checkpoint-dir is not used by stitch: each member checkpoints beside its file")
        stitched = train_stitched(args.train, parse_domains(args.domains), args.width, args.out,
                                  zred_param=args.zred_param, verbose=verbose, **kwargs)
    else:
        if args.domains:
            raise EmulatorConfigurationError("--domains needs --train FILE.h5")
        if len(args.emulators) < 2:
            raise EmulatorConfigurationError("give at least two EMU.h5 files (or --train FILE.h5 --domains ...)")
        stitched = stitch_emulators(args.emulators, out=args.out, zred_param=args.zred_param)
    print(f"{args.out}: {stitched}")
    return 0
