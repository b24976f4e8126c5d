"""A timing worker for ``compare_emulators.py``: times one emulator file's
``predict_maggies`` under whatever ``prospect_emulator`` is on ``sys.path``.

It is run as a child process (``PYTHONPATH`` pointing at the code to time, for
instance an older revision of the package), so that two versions of the code
can be timed side by side, in alternating requests, in one benchmark run.  It
imports nothing from this directory and only ``load_emulator``,
``predict_maggies`` and (where it exists) ``as_float32`` from the package, so
it runs under old revisions too.

Protocol: arguments ``EMULATOR_FILE BATCH SEED``.  It answers with one JSON
line (the package location, width and forward passes it has), then reads lines
``PASS SHAPE NUMBER`` (``PASS`` float64 or float32, ``SHAPE`` single or batch)
and answers each with the seconds that ``NUMBER`` calls took.
"""
import json
import sys
import timeit

import numpy as np

import prospect_emulator
from prospect_emulator import load_emulator


def main(path, batch, seed):
    emulator = load_emulator(path)
    passes = {"float64": emulator}
    if hasattr(emulator, "as_float32"):
        passes["float32"] = emulator.as_float32()
    low, high = emulator.param_ranges[:, 0], emulator.param_ranges[:, 1]
    rng = np.random.default_rng(seed)
    inputs = {"single": rng.uniform(low, high), "batch": rng.uniform(low, high, (batch, len(low)))}
    print(json.dumps({"package": prospect_emulator.__file__, "passes": sorted(passes),
                      "width": int(emulator.weights[0].shape[1])}), flush=True)
    for line in sys.stdin:
        name, shape, number = line.split()
        emu, x = passes[name], inputs[shape]
        seconds = timeit.Timer(lambda: emu.predict_maggies(x)).timeit(int(number))
        print(repr(seconds), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
