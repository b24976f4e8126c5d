#!/usr/bin/env bash
# Train an emulator for your own filter set from scratch, evaluate it, and use it.
#
#   bash demos/train_custom_emulator.sh [OUTDIR] [N_SAMPLES] [WIDTH] [MAX_EPOCHS]
#
# WORKERS=n in the environment sets the SED processes of step 2 (default 2).
# A quick smoke run (seconds, a useless network): bash demos/train_custom_emulator.sh out 40 8 2
#
# Defaults (20000 models, width 64, <= 100 epochs per stage) run in about 10-15 minutes
# on 2 cores and give a usable toy; see docs/training.md for production settings
# (10^6+ models, width >= 128, the full paper schedule).
set -euo pipefail
OUT=${1:-custom_emulator}
N=${2:-20000}
WIDTH=${3:-64}
EPOCHS=${4:-100}
WORKERS=${WORKERS:-2}
mkdir -p "$OUT/filters"

# 1. A filter of your own, in the format sedpy 0.4 reads: two whitespace-separated
#    columns, wavelength (AA) and transmission (detector signal per photon); lines
#    starting with '#' are comments. (sedpy reads the first two columns as numbers:
#    rows such as "KFILTER 6000.0 1.0" leave no valid wavelength and the filter is empty.)
#    Here a 1000 AA wide box at 6500 AA; use your instrument's curve instead.
python - "$OUT/filters/my_box_6500.par" <<'PY'
import sys, numpy as np
wave = np.arange(5800.0, 7201.0, 10.0)
trans = ((wave >= 6000) & (wave <= 7000)).astype(float)
with open(sys.argv[1], "w") as f:
    f.write("# wavelength[AA] transmission\n")
    f.writelines(f"{w:.1f} {t:.4f}\n" for w, t in zip(wave, trans))
PY

# 2. Training set: HSC grizy + the custom box, the `default` physical model on
#    BagpipesBasis, redshifts 0.1-1.5. Interrupt at will: the same command resumes.
prospect-emulator generate --preset default --zred-min 0.1 --zred-max 1.5 \
    --filters hsc_g,hsc_r,hsc_i,hsc_z,hsc_y,my_box_6500 --filter-file "$OUT/filters" \
    --n-samples "$N" --seed 1 --workers "$WORKERS" --out "$OUT/train.h5"

# 3. Train (resumable too) and evaluate on the held-out test rows.
prospect-emulator train "$OUT/train.h5" --width "$WIDTH" --max-epochs "$EPOCHS" \
    --batch-size 256 --out "$OUT/emulator.h5"
prospect-emulator evaluate "$OUT/emulator.h5" "$OUT/train.h5" --report "$OUT/report"

# 4. Use it: the emulator file carries its model definition, so one line builds the
#    Prospector model it was trained for; any Prospector script then fits with it
#    (build_model -> EmulatedSpecModel.from_emulator(path, zred=...), build_sps -> EmulatorSPS()).
python - "$OUT/emulator.h5" "$OUT/filters" <<'PY'
import sys
from sedpy.observate import load_filters
from prospect_emulator import EmulatedSpecModel, load_emulator
path, filter_dir = sys.argv[1:3]
emu = load_emulator(path)
print(emu)
for name, sigma in zip(emu.filter_names, emu.residual_sigma):
    print(f"  {name:12s} test residual std {sigma:.4f} mag")
model = EmulatedSpecModel.from_emulator(path, zred=1.0)
filters = (load_filters([n for n in emu.filter_names if n != "my_box_6500"])
           + load_filters(["my_box_6500"], directory=filter_dir))
_, maggies, mfrac = model.predict(model.theta, obs={"filters": filters})
for f, m in zip(filters, maggies):
    print(f"  {f.name:12s} {m:.3e} maggies at the prior's initial parameters")
PY
