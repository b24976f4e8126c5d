"""The ``prospect-emulator`` command.

Each sub-command lives in its own module of this package, exposing
``add_arguments(parser)`` and ``run(args)``; modules are imported only when
their command runs, so ``prospect-emulator fit`` never imports TensorFlow.
"""
import argparse
import importlib
import importlib.util
import sys

from .._version import __version__
from ..errors import EmulatorError

#: command name -> (module in prospect_emulator.cli, one-line help)
COMMANDS = {
    "generate": ("generate", "build an HDF5 training set from a Prospector SPS source"),
    "train": ("train", "train an emulator on a training set (needs the 'train' extra)"),
    "evaluate": ("evaluate", "test-set precision, correlations and histograms of an emulator"),
    "stitch": ("stitch", "combine redshift-domain emulators into one stitched emulator"),
    "fit": ("fit", "fit a catalogue of photometry with Prospector + dynesty (on Dask)"),
    "summary": ("summary", "rebuild the summary table of a catalogue fit from its records"),
    "demo": ("demo", "fit the bundled example galaxy with the default emulator"),
    "plot": ("plot", "corner and SED plots of a finished fit (a results .h5 file)"),
    "check": ("check", "check a parameter file or catalogue for what would make a fit wrong"),
    "amortize": ("amortize", "train and sample amortized posteriors (needs the 'amortized' extra)"),
}


def _available():
    found = {}
    for name, (module, help_) in COMMANDS.items():
        if importlib.util.find_spec(f"{__package__}.{module}") is not None:
            found[name] = (module, help_)
    return found


def build_parser():
    parser = argparse.ArgumentParser(prog="prospect-emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in _available().items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(f"{__package__}.{module}").add_arguments(p)
    return parser


def main(argv=None):
    """Entry point; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(f"{__package__}.{args._module}")
    try:
        return module.run(args) or 0
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is saved; run the same command again to resume",
              file=sys.stderr)
        return 130
    except (EmulatorError, FileNotFoundError) as err:
        print(f"prospect-emulator {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
