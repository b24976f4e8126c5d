"""``prospect-emulator amortize``: train and use amortized posteriors (needs the 'amortized' extra).

    prospect-emulator amortize train --emulator EMU --catalog CAT --n-sims N --out POST.h5
    prospect-emulator amortize sample POST.h5 CATALOG --out DIR

JAX is imported only when a sub-command runs, never to build the parser.
"""
import sys

from ..errors import EmulatorConfigurationError
from .fit import add_catalog_column_options as _catalog_arguments
from .fit import catalog_columns as _columns
from .fit import positive_int as _positive_int


def add_arguments(parser):
    sub = parser.add_subparsers(dest="amortize_command", required=True, metavar="ACTION")
    train = sub.add_parser("train", help="train an amortized posterior on emulator simulations",
                           description="Simulate galaxies from the emulator's model prior, "
                           "observed with the catalogue's noise and missing bands, and train a "
                           "normalizing flow q(parameters | photometry, redshift).")
    train.add_argument("--emulator", required=True,
                       help="native emulator file, or a shipped name (default, parametric)")
    train.add_argument("--catalog", required=True,
                       help="catalogue whose bands, uncertainties and missing bands the "
                       "posterior is for (FITS, CSV, ECSV)")
    train.add_argument("--n-sims", type=_positive_int, required=True, help="training simulations")
    train.add_argument("--out", required=True, help="posterior file to write (HDF5)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=_positive_int, default=50, help="maximum epochs")
    train.add_argument("--batch-size", type=_positive_int, default=512)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--patience", type=int, default=5,
                       help="stop after this many epochs without a better validation loss")
    train.add_argument("--kind", choices=["coupling", "maf"], default="coupling",
                       help="flow: RQS coupling (fast sampling; default) or masked autoregressive")
    train.add_argument("--flow-layers", type=_positive_int, default=8)
    train.add_argument("--nn-width", type=_positive_int, default=None,
                       help="nodes per hidden layer of the flow's networks (default: the "
                            "package's, amortized.flow.DEFAULT_HYPERPARAMETERS)")
    train.add_argument("--nn-depth", type=_positive_int, default=2)
    train.add_argument("--knots", type=_positive_int, default=None,
                       help="knots of each rational-quadratic spline (default: the package's, "
                            "amortized.flow.DEFAULT_HYPERPARAMETERS; sampling time grows with "
                            "them, docs/amortized.md)")
    train.add_argument("--redshifts", choices=["catalog", "prior"], default="catalog",
                       help="simulated redshifts from the catalogue's (KDE) or from the prior")
    train.add_argument("--coordinates", choices=["prior-normal", "logit"], default="prior-normal",
                       help="parameter coordinates of the flow: each prior's CDF mapped to a "
                            "standard normal (default) or the logit of the prior's bounds "
                            "(how posterior files without parameter_coordinates were trained)")
    train.add_argument("--floor", type=float, default=0.05,
                       help="fractional SPS floor of eq. 9 added to the simulations (default 0.05)")
    train.add_argument("--n-calibration", type=int, default=1000,
                       help="held-out simulations calibrating the out-of-support chi^2 limit")
    train.add_argument("--restart", action="store_true",
                       help="ignore an existing checkpoint and start again")
    train.add_argument("--quiet", action="store_true", help="no progress lines")
    _catalog_arguments(train)
    sample = sub.add_parser("sample", help="posteriors of a whole catalogue from a trained file",
                            description="Sample every object's amortized posterior; write "
                            "DIR/summary.ecsv (percentiles as exact fits) and DIR/samples.h5.")
    sample.add_argument("posterior", help="amortized posterior file (amortize train --out)")
    sample.add_argument("catalog", help="FITS, CSV or ECSV table")
    sample.add_argument("--out", required=True, help="output folder")
    sample.add_argument("--emulator", default=None,
                        help="the emulator it was trained with (default: the one it records)")
    sample.add_argument("--n-samples", type=_positive_int, default=1000)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--importance-draws", type=_positive_int, default=None, metavar="N",
                        help="reweight N flow draws per object by the exact likelihood and "
                             "resample --n-samples of them (see fit --importance-draws)")
    sample.add_argument("--quiet", action="store_true")
    _catalog_arguments(sample)


def run(args):
    try:
        import flowjax  # noqa: F401
    except ImportError:
        raise EmulatorConfigurationError(
            "prospect-emulator amortize needs JAX, flowjax and optax: "
            "pip install 'prospect-emulator[amortized]'") from None
    if args.amortize_command == "train":
        from ..amortized.train import TrainingSettings, train_amortized_posterior
        import os
        if args.restart and os.path.exists(args.out + ".checkpoint.h5"):
            os.remove(args.out + ".checkpoint.h5")
        settings = TrainingSettings(max_epochs=args.epochs, batch_size=args.batch_size,
                                    learning_rate=args.learning_rate, patience=args.patience)
        hyper = {"kind": args.kind, "flow_layers": args.flow_layers, "nn_depth": args.nn_depth}
        hyper.update({k: v for k, v in (("nn_width", args.nn_width), ("knots", args.knots))
                      if v is not None})
        train_amortized_posterior(args.emulator, args.catalog, args.n_sims, out=args.out,
                                  seed=args.seed, hyperparameters=hyper, settings=settings,
                                  redshifts=args.redshifts, floor=args.floor,
                                  columns=_columns(args), n_calibration=args.n_calibration,
                                  progress=not args.quiet, coordinates=args.coordinates)
        return 0
    from ..amortized import fit_catalog_amortized
    table = fit_catalog_amortized(args.catalog, args.posterior, args.out,
                                  n_samples=args.n_samples, seed=args.seed,
                                  columns=_columns(args), progress=not args.quiet,
                                  emulator=args.emulator, importance_draws=args.importance_draws)
    n_oos = int(sum(table["out_of_support"])) if len(table) else 0
    n_failed = int(sum(s != "ok" for s in table["status"])) if len(table) else 0
    print(f"amortize sample: {len(table)} objects, {n_failed} failed, {n_oos} out of support; "
          f"wrote {args.out}/summary.ecsv and samples.h5", file=sys.stderr)
    return 0
