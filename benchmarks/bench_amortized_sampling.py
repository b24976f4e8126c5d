"""Flow-only sampling speed of an amortized posterior (galaxies per second), for A/B runs.

Times ``AmortizedPosterior.sample(..., check_support=False)`` on simulations of the
posterior's own prior and noise model (after one warm-up call that compiles the sampler);
prints the best of ``--repeats`` with the machine line.  To compare two versions of the
package on the same machine, run it with each on ``PYTHONPATH``:

    PYTHONPATH=/path/to/old/checkout python benchmarks/bench_amortized_sampling.py POST.h5
    PYTHONPATH=. python benchmarks/bench_amortized_sampling.py POST.h5
"""
import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_lines  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("posterior", help="amortized posterior file (HDF5)")
    p.add_argument("--n-objects", type=int, default=2000)
    p.add_argument("--n-draws", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    import prospect_emulator
    from prospect_emulator.amortized import AmortizedPosterior, Observations, simulate
    post = AmortizedPosterior.load(args.posterior)
    sims = simulate(post.model, post.noise_model, args.n_objects, seed=2024)
    obs = Observations(post.filter_names, sims.maggies, sims.maggies_unc, sims.zred)
    post.sample(obs, args.n_draws, seed=1, check_support=False)  # warm-up: compiles
    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        post.sample(obs, args.n_draws, seed=1, check_support=False)
        rates.append(args.n_objects / (time.perf_counter() - t0))
    print("\n".join(machine_lines()))
    print(f"package: {os.path.dirname(prospect_emulator.__file__)}")
    print(f"flow only, {args.n_objects} galaxies x {args.n_draws} draws: "
          f"{max(rates):.1f} galaxies/s (best of {args.repeats})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
