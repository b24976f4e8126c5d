"""Emulator precision against training-set size at fixed network widths.

Trains one emulator per (training-set size, width) on the first N rows of one
training set (each prefix is itself a random draw from the same distributions)
and measures every emulator on one held-out test set drawn with another seed
that training never saw.  Every configuration runs the same schedule, counted
in gradient steps rather than epochs: the paper's three stages (learning rates
1e-3, 1e-4, 1e-5, eq. 7; batches of 1,000, eq. 8), each stage capped at
``--samples-per-stage`` sample passes (max_epochs = floor(that / fitted rows),
the fitted rows being 85.5% of the rows used: 10% are the trainer's test set
and 5% of the rest validate) and stopped early after ``patience`` epochs
without a better validation loss (patience = max(2, round(max_epochs / 6))).  At a given width every size therefore
gets the same compute, and the question answered is: for this compute, does
more data buy precision?

Resumable: finished emulators are kept in ``--workdir`` and not trained again,
and an interrupted training resumes from its checkpoint.  The Markdown page is
rewritten after every configuration.

    python benchmarks/training_data_size.py --train RUN/default_3e6_seed44.h5 \
        --test RUN/test_default_seed43.h5 --workdir RUN/size_study \
        --out-md docs/training_data_size.md
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_lines, markdown_table  # noqa: E402
from precision_by_brightness import precision_by_brightness  # noqa: E402

TARGET_MEDIAN, TARGET_MAX, TARGET_DETECTABLE = 0.02, 0.05, 0.025
BATCH, VALIDATION_FRACTION, TEST_FRACTION = 1000, 0.05, 0.1


def schedule(n_rows, samples_per_stage):
    """(max epochs per stage, patience in epochs) for ``n_rows`` training-set rows."""
    n_fit = n_rows * (1 - TEST_FRACTION) * (1 - VALIDATION_FRACTION)
    max_epochs = max(2, math.floor(samples_per_stage / n_fit))
    return max_epochs, max(2, int(round(max_epochs / 6)))


def train_one(train_path, n_rows, width, workdir, samples_per_stage, seed):
    """Train (or resume) one configuration; returns the emulator path."""
    from prospect_emulator.training.train import train_emulator
    out = os.path.join(workdir, f"w{width}_n{n_rows}.h5")
    if os.path.exists(out):
        return out
    max_epochs, patience = schedule(n_rows, samples_per_stage)
    print(f"== width {width}, first {n_rows} rows: max {max_epochs} epochs per stage, "
          f"patience {patience}", flush=True)
    train_emulator(train_path, width, out, first_rows=n_rows, max_epochs=max_epochs,
                   patience=patience, batch_size=BATCH, seed=seed,
                   validation_fraction=VALIDATION_FRACTION, test_fraction=TEST_FRACTION,
                   checkpoint_every=1)
    return out


def measure(emu_path, test_path):
    """Precision of one emulator on the test set, with its training record."""
    from prospect_emulator import load_emulator
    emu = load_emulator(emu_path)
    names, std_all, by_limit, _, unit_std = precision_by_brightness(emu, test_path, (28.0,))
    bright_std, _ = by_limit[28.0]
    prov = emu.provenance
    return {
        "width": int(prov["width"]), "first_rows": int(prov["first_rows"]),
        "n_train": int(prov["n_train"]), "epochs": prov["epochs"],
        "max_epochs": int(prov["max_epochs"]), "patience": int(prov["patience"]),
        "training_seconds": float(prov["training_seconds"]),
        "median_std": float(np.median(std_all)), "max_std": float(np.max(std_all)),
        "worst_filter": names[int(np.argmax(std_all))],
        "n_over_005": int(np.sum(std_all > TARGET_MAX)),
        "median_std_brighter_28": float(np.nanmedian(bright_std)),
        "median_unit_mass_std": None if unit_std is None else float(np.median(unit_std)),
        "std_per_filter": dict(zip(names, map(float, std_all))),
    }


def write_page(results, args, n_test, path):
    ok = lambda c: "yes" if c else "no"  # noqa: E731
    rows = []
    for r in sorted(results, key=lambda r: (r["width"], r["first_rows"])):
        capped = sum(e >= r["max_epochs"] for e in r["epochs"])
        rows.append([str(r["width"]), f"{r['first_rows']:,}", f"{r['n_train']:,}",
                     "/".join(map(str, r["epochs"])) + f" (cap {r['max_epochs']}; {capped} capped)",
                     f"{r['training_seconds'] / 60:.1f}", f"{r['median_std']:.4f}",
                     f"{r['max_std']:.4f} ({r['worst_filter']})", str(r["n_over_005"]),
                     f"{r['median_std_brighter_28']:.4f}",
                     ok(r["median_std"] <= TARGET_MEDIAN and r["max_std"] <= TARGET_MAX
                        and r["median_std_brighter_28"] <= TARGET_DETECTABLE)])
    lines = [
        "# Emulator precision against training-set size", "",
        "Made by `python benchmarks/training_data_size.py --train "
        f"{os.path.basename(args.train)} --test {os.path.basename(args.test)} "
        f"--samples-per-stage {args.samples_per_stage:g} --workdir DIR --out-md "
        f"{args.out_md}` (the default model: 15 inputs, log mass applied exactly, 81 filters; training sets from "
        "`prospect-emulator generate --preset default --n-samples 3000000 --seed 44`, "
        "test set from the same generator with `--seed 43`).", "",
        *machine_lines(), *( [f"Conditions: {args.note}"] if args.note else []), "",
        "Every row trains on the first N rows of the seed-44 set (85.5% of them fit: 10% are "
        "held out by the trainer as its own test set, 5% of the rest validate) and is measured "
        "on all "
        f"{n_test:,} rows of the seed-43 test set, which no training saw. Schedule: the paper's "
        "three stages (learning rates 1e-3, 1e-4, 1e-5; batches of 1,000); each stage capped "
        f"at {args.samples_per_stage:.3g} sample passes (floor(that / fitted rows) epochs) and "
        "stopped after max(2, round(cap/6)) epochs "
        "without a better validation loss, so at one width every size gets at most the same "
        "number of gradient steps. Precision: the standard deviation of the arsinh-magnitude "
        "residuals per filter (the paper's measure), its median and maximum over the 81 "
        "filters, and the median over filters for test rows brighter than 28 mag in that "
        "filter (detectable sources).", "",
        *markdown_table(["width", "rows used", "rows fitted", "epochs per stage",
                         "training (min)", "median std (mag)", "max std (mag)",
                         "filters > 0.05", "median std, < 28 mag", "targets met"],
                        rows, "rrrlrrlrrl"), "",
        f"Targets of the shipped emulator: median <= {TARGET_MEDIAN} mag, every filter <= "
        f"{TARGET_MAX} mag, detectable median <= {TARGET_DETECTABLE} mag.", "",
    ]
    if args.conclusion:
        lines += ["## What it says", "", args.conclusion, ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True, help="training set (`generate` file)")
    p.add_argument("--test", required=True, help="held-out test set drawn with another seed")
    p.add_argument("--sizes", default="300000,1000000,3000000",
                   help="training-set sizes (first rows), comma-separated")
    p.add_argument("--widths", default="256,128", help="network widths, comma-separated")
    p.add_argument("--samples-per-stage", type=float, default=3.6e7,
                   help="most sample passes per learning-rate stage (default 3.6e7: 140 epochs "
                        "of 3e5 rows, 14 of 3e6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", required=True, help="emulators and checkpoints (resumable)")
    p.add_argument("--out-md", required=True)
    p.add_argument("--note", default="", help="conditions of the run, printed under the machine")
    p.add_argument("--conclusion", default="", help="a paragraph of reading, for the page")
    args = p.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    sizes = [int(float(v)) for v in args.sizes.split(",")]
    widths = [int(v) for v in args.widths.split(",")]
    from prospect_emulator.training.train import read_training_rows
    n_test = len(read_training_rows(args.test))
    results_path = os.path.join(args.workdir, "results.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else []
    for r in results:   # a finished emulator is reused only for the same schedule
        max_epochs, patience = schedule(r["first_rows"], args.samples_per_stage)
        if (r["max_epochs"], r["patience"]) != (max_epochs, patience):
            raise SystemExit(f"{results_path} holds a width-{r['width']}, {r['first_rows']}-row "
                             f"emulator of another schedule (max {r['max_epochs']} epochs, "
                             f"patience {r['patience']}): use another --workdir")
    done = {(r["width"], r["first_rows"]) for r in results}
    # the widest network on the most data first: it is also the shipped candidate
    for width in widths:
        for n_rows in sorted(sizes, reverse=True):
            if (width, n_rows) in done:
                continue
            t0 = time.time()
            emu = train_one(args.train, n_rows, width, args.workdir, args.samples_per_stage,
                            args.seed)
            r = measure(emu, args.test)
            print(f"width {width}, {n_rows} rows: median {r['median_std']:.4f}, max "
                  f"{r['max_std']:.4f} mag, {(time.time() - t0) / 60:.1f} min", flush=True)
            results.append(r)
            with open(results_path + ".tmp", "w") as f:
                json.dump(results, f, indent=1)
            os.replace(results_path + ".tmp", results_path)
            write_page(results, args, n_test, args.out_md)
    write_page(results, args, n_test, args.out_md)


if __name__ == "__main__":
    main()
