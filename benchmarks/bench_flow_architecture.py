"""Sampling cost of the amortized posterior's flow per draw, by architecture (one core).

The cost of drawing from a flow does not depend on its trained weights, so
untrained flows of each architecture (``build_flow``) are timed: one jitted
call draws ``--draws`` samples for each of 4 objects (the package's chunk), on
the core the process is pinned to (``taskset -c 0 python ...``; JAX otherwise
spreads one call over every core).  The default model's sizes: 14 inferred
parameters, 82 condition numbers (27 bands: fluxes, uncertainties, mask; redshift).

    taskset -c 0 python benchmarks/bench_flow_architecture.py
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_lines  # noqa: E402

VARIANTS = [{}, {"invert": True}, {"knots": 8}, {"knots": 6}, {"nn_width": 64}, {"flow_layers": 6},
            {"nn_depth": 1}]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=1000, help="draws per object")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--dim", type=int, default=14)
    p.add_argument("--cond-dim", type=int, default=82)
    p.add_argument("--nn-width", type=int, default=96,
                   help="the base flow's width (96: the posterior of docs/amortized.md)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    import equinox as eqx
    import jax
    from prospect_emulator.amortized.flow import build_flow, resolved_hyperparameters
    sample = eqx.filter_jit(lambda flow, key, c, n: flow.sample(key, (n,), condition=c))
    cond = np.random.default_rng(0).normal(size=(4, args.cond_dim)).astype(np.float32)
    key = jax.random.key(0)
    print("\n".join(machine_lines()))
    base = resolved_hyperparameters({"nn_width": args.nn_width})
    print(f"base: {base}")
    for change in VARIANTS:
        flow = build_flow(dict(base, **change), args.dim, args.cond_dim)
        jax.block_until_ready(sample(flow, key, cond, args.draws))  # compile
        t0 = time.perf_counter()
        for k in range(args.repeats):
            jax.block_until_ready(sample(flow, jax.random.fold_in(key, k), cond, args.draws))
        per_draw = (time.perf_counter() - t0) / args.repeats / (len(cond) * args.draws)
        print(f"{str(change or 'base'):28s} {per_draw * 1e6:6.2f} us per draw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
