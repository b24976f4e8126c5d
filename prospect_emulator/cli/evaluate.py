"""``prospect-emulator evaluate``: test-set precision of an emulator.

Example::

    prospect-emulator evaluate emu_w128.h5 test.h5 --report report/

writes ``precision_vs_wavelength.png`` (bias and precision against effective
wavelength, paper Fig. 5), ``residual_correlation.png`` (Fig. 6),
``residual_histograms.png`` (Fig. 10), ``residuals.json`` and
``residuals.csv``.  Given the emulator's own training set, only its held-out
test rows are used.  Needs no TensorFlow.
"""
__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """Options of ``prospect-emulator evaluate``."""
    parser.add_argument("emulator", metavar="EMU.h5", help="native emulator file (single or stitched)")
    parser.add_argument("test_set", metavar="TEST.h5",
                        help="training-set-format file (`prospect-emulator generate`)")
    parser.add_argument("--report", metavar="DIR", default=None,
                        help="directory for the figures (PNG) and numbers (JSON, CSV)")
    parser.add_argument("--histograms", type=int, default=4, metavar="N",
                        help="filters shown in the residual histograms (default 4)")
    parser.add_argument("--store-noise-statistics", metavar="OUT.h5", default=None,
                        help="write a copy of the emulator whose stored residual statistics are "
                             "the noise model's (unit-mass magnitudes for a mass-normalised "
                             "emulator), measured on TEST.h5")
    parser.add_argument("--all-rows", action="store_true",
                        help="use every row even of the emulator's own training set "
                             "(default: only its held-out test rows there)")


def run(args):
    """Run the command; returns the exit status."""
    from ..errors import EmulatorConfigurationError
    from ..runtime.fileformat import load_emulator
    from ..training.evaluate import evaluate_emulator, store_noise_statistics

    if args.histograms < 1:
        raise EmulatorConfigurationError(f"--histograms must be at least 1, got {args.histograms}")
    emulator = load_emulator(args.emulator)
    evaluate_emulator(emulator, args.test_set, report_dir=args.report, n_histograms=args.histograms,
                      held_out=not args.all_rows and "auto")
    if args.store_noise_statistics:
        store_noise_statistics(emulator, args.test_set, args.store_noise_statistics)
        print(f"wrote {args.store_noise_statistics} (residual statistics of the noise model)")
    return 0
