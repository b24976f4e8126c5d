"""``prospect-emulator train``: train the paper's network on a training set.

Example::

    prospect-emulator train train.h5 --width 128 --out emu_w128.h5

Run the same command again after an interruption (Ctrl-C, kill, crash) to
resume from the last checkpoint (``EMU.h5.checkpoint/`` by default).  An
existing ``--out`` file is refused unless ``--overwrite`` is given, and an
output directory that cannot be written is refused, both before any work.
TensorFlow is imported only when the command runs.
"""
import argparse

__all__ = ["add_arguments", "add_training_options", "training_kwargs", "run"]


def _learning_rates(text):
    try:
        rates = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"learning rates must be comma-separated numbers, got {text!r}")
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"learning rates must be positive, got {text!r}")
    return rates


def add_training_options(parser):
    """Options shared by ``train`` and ``stitch --train``."""
    parser.add_argument("--width", type=int, required=False, metavar="N",
                        help="nodes per hidden layer (the paper uses 32..1024; 128 is the narrowest "
                             "below 0.05 mag in all its filters)")
    parser.add_argument("--max-epochs", type=int, default=1000, metavar="N",
                        help="most epochs per stage (default 1000, as in the paper)")
    parser.add_argument("--patience", type=int, default=20, metavar="N",
                        help="end a stage after N epochs without a better validation loss (default 20)")
    parser.add_argument("--batch-size", type=int, default=1000, metavar="N",
                        help="samples per gradient step (default 1000, eq. 8)")
    parser.add_argument("--learning-rates", type=_learning_rates, default=None, metavar="LR,LR,...",
                        help="one stage per learning rate (default 1e-3,1e-4,1e-5, eq. 7)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of weights, test set, validation splits, shuffling (default 0)")
    parser.add_argument("--test-fraction", type=float, default=0.1, metavar="F",
                        help="fraction of rows held out as the test set (default 0.1)")
    parser.add_argument("--validation-fraction", type=float, default=0.05, metavar="F",
                        help="fraction of training rows validating each stage (default 0.05)")
    parser.add_argument("--mass-normalised", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="apply log10 stellar mass formed exactly instead of feeding it to the "
                             "network (default: yes when the training set has logmass)")
    parser.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                        help="checkpoint directory (default OUT.checkpoint); a run finding a "
                             "checkpoint of the same training resumes it")
    parser.add_argument("--checkpoint-every", type=int, default=1, metavar="N",
                        help="write the checkpoint every N epochs (default 1)")
    parser.add_argument("--keep-checkpoint", action="store_true",
                        help="keep the checkpoint after the emulator is written")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file (without it an existing file is "
                             "refused before any work)")


def training_kwargs(args):
    """Keyword arguments of :func:`~prospect_emulator.training.train.train_emulator`."""
    from ..training.train import DEFAULT_LEARNING_RATES
    return dict(max_epochs=args.max_epochs, patience=args.patience, batch_size=args.batch_size,
                learning_rates=args.learning_rates or DEFAULT_LEARNING_RATES, seed=args.seed,
                test_fraction=args.test_fraction, validation_fraction=args.validation_fraction,
                mass_normalised=args.mass_normalised, checkpoint_every=args.checkpoint_every,
                keep_checkpoint=args.keep_checkpoint, verbose=not args.quiet,
                overwrite=args.overwrite)


def add_arguments(parser):
    """Options of ``prospect-emulator train``."""
    parser.add_argument("training_set", metavar="FILE.h5",
                        help="training set written by `prospect-emulator generate`")
    parser.add_argument("--out", required=True, metavar="EMU.h5", help="emulator file to write")
    add_training_options(parser)
    parser.add_argument("--zred-domain", default=None, metavar="LOW:HIGH",
                        help="train only on rows with LOW <= zred <= HIGH (a stitching member)")
    parser.add_argument("--first-rows", type=int, default=None, metavar="N",
                        help="use only the file's first N rows (training-set-size studies: "
                             "each prefix is a random draw from the same distributions)")


def parse_domain(text):
    """``"0.5:1.75"`` -> (0.5, 1.75)."""
    from ..errors import EmulatorConfigurationError
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        raise EmulatorConfigurationError(
            f"a redshift domain is LOW:HIGH, e.g. 0.5:1.75; got {text!r}") from None
    if not low < high:
        raise EmulatorConfigurationError(f"redshift domain {text!r} must have LOW < HIGH")
    return low, high


def run(args):
    """Run the command; returns the exit status."""
    from ..errors import EmulatorConfigurationError
    from ..training.train import train_emulator

    if args.width is None:
        raise EmulatorConfigurationError("--width N is required (nodes per hidden layer, e.g. 128)")
    domain = parse_domain(args.zred_domain) if args.zred_domain else None
    result = train_emulator(args.training_set, args.width, args.out, zred_domain=domain,
                            first_rows=args.first_rows, checkpoint_dir=args.checkpoint_dir,
                            **training_kwargs(args))
    sigma = result.emulator.residual_sigma
    print(f"{args.out}: {result.emulator}; test residual std {sigma.min():.4f}..{sigma.max():.4f} "
          f"mag over {len(sigma)} filters, test RMSE {result.test_rmse:.4f} mag")
    return 0
