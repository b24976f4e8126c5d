"""``prospect-emulator generate``: an HDF5 training set from a Prospector SPS source.

Example::

    prospect-emulator generate --preset default --filters sdss_g0,sdss_r0,twomass_Ks \\
        --n-samples 100000 --seed 1 --out train.h5

Run the same command again after an interruption (Ctrl-C, kill, crash) to
continue where it stopped; the result equals that of an uninterrupted run.
"""
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """Options of ``prospect-emulator generate``."""
    parser.add_argument("--preset", default=None,
                        help="physical model and training distributions: 'default' (15 inputs, "
                             "BagpipesBasis) or 'paper18' (18 inputs, FSPS); default: 'default' "
                             "or the preset named in --config")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="TOML file changing distributions/fixed values of a preset "
                             "(see --print-config for the format)")
    parser.add_argument("--filters", metavar="NAME,NAME,...",
                        help="comma-separated sedpy filter names (or stems of --filter-file curves)")
    parser.add_argument("--filter-file", action="append", default=[], metavar="PATH",
                        help="user filter curve in sedpy .par format, or a directory of them; "
                             "repeatable")
    parser.add_argument("--n-samples", type=int, metavar="N", help="number of models")
    parser.add_argument("--seed", type=int, default=0, help="seed of the parameter draws (default 0)")
    parser.add_argument("--out", metavar="FILE.h5", help="output HDF5 file (resumed if it exists)")
    parser.add_argument("--sps", choices=("bagpipes", "fsps"), default=None,
                        help="SPS source (default: the preset's)")
    parser.add_argument("--zred-min", type=float, default=None,
                        help="lower redshift bound (uniform redshift distribution)")
    parser.add_argument("--zred-max", type=float, default=None,
                        help="upper redshift bound (uniform redshift distribution)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="models per chunk, the unit saved to disk (default 500)")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes computing SEDs, one SPS each (default 2)")
    parser.add_argument("--max-chunks", type=int, default=None,
                        help="stop after this many chunks (run again to continue)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again even if --out exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved configuration as TOML and exit")


def _zred_range(args, config):
    if args.zred_min is None and args.zred_max is None:
        return None
    current = config.distributions.get("zred")
    low = args.zred_min if args.zred_min is not None else (current.low if current else 0.5)
    high = args.zred_max if args.zred_max is not None else (current.high if current else 3.0)
    return (low, high)


def run(args):
    """Run the command; returns the exit status."""
    from ..errors import EmulatorConfigurationError
    from ..definition.presets import get_preset, load_config
    from ..training.trainingset import generate_training_set

    if args.config:
        config = load_config(args.config, preset=args.preset, sps=args.sps)
        if args.preset and args.preset != config.name:
            raise EmulatorConfigurationError(
                f"--preset {args.preset} conflicts with preset {config.name!r} in {args.config}")
    else:
        config = get_preset(args.preset or "default", sps=args.sps)
    zred_range = _zred_range(args, config)
    if zred_range is not None:
        config = config.with_changes(zred_range=zred_range)

    if args.print_config:
        sys.stdout.write(config.to_toml())
        return 0
    missing = [opt for opt, value in (("--n-samples", args.n_samples), ("--out", args.out))
               if value is None]
    if args.filters is None and not args.filter_file:
        missing.append("--filters or --filter-file")
    if missing:
        raise EmulatorConfigurationError("missing " + ", ".join(missing))

    summary = generate_training_set(
        config, args.filters, args.n_samples, args.seed, args.out, chunk_size=args.chunk_size,
        workers=args.workers, progress=not args.no_progress, filter_files=args.filter_file,
        overwrite=args.overwrite, max_chunks=args.max_chunks)
    state = "complete" if summary.complete else "incomplete (run the same command to continue)"
    print(f"{summary.path}: {summary.n_done}/{summary.n_samples} models done, "
          f"{summary.n_failed} failed; {state}. This run: {summary.n_computed} models in "
          f"{summary.elapsed_s:.1f} s ({summary.rate:.1f} models/s)", file=sys.stderr)
    return 0
