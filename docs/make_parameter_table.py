"""Write the parameter table of docs/replace_fsps.md: every Prospector/FSPS
parameter, how EmulatedSpecModel treats it, and its value in the shipped emulators.

    python docs/make_parameter_table.py            # rewrites the table in place
    python docs/make_parameter_table.py --check    # exit 1 if the page is out of date
"""
import os
import sys

from prospect_emulator.data import default_emulator
from prospect_emulator.definition.fitting_model import definition_of
from prospect_emulator.prospector.physics import (FSPS_DEFAULTS, LIKELIHOOD_PARAMETERS,
                                                  PARAMETER_TREATMENTS,
                                                  SPECTRUM_ONLY_PARAMETERS, _fsps_parameter_names,
                                                  _show, parameter_treatment)

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replace_fsps.md")
BEGIN, END = "<!-- parameter table: begin -->", "<!-- parameter table: end -->"


def _column(name):
    """Per shipped emulator: 'input', 'from inputs' or the value it was trained with."""
    emu = default_emulator(name)
    definition = definition_of(emu)
    params = definition.build_model_params()
    inputs = set(emu.param_names)
    out = {}
    for p in sorted(_fsps_parameter_names() | SPECTRUM_ONLY_PARAMETERS | LIKELIHOOD_PARAMETERS):
        transform = getattr(params.get(p, {}).get("depends_on"), "__name__", "")
        if p in inputs:
            out[p] = "input"
        elif "log" + p in inputs and transform in ("", f"log{p}_to_{p}"):
            out[p] = f"input (log{p} = log10 {p})"
        elif transform:
            out[p] = "from inputs"
        elif p in params:
            value = params[p].get("init")
            out[p] = str(bool(value)) if isinstance(FSPS_DEFAULTS.get(p), bool) else _show(value)
        elif p in FSPS_DEFAULTS:
            out[p] = _show(FSPS_DEFAULTS[p]) + " (FSPS default)"
        else:
            out[p] = ""
    return out


def table():
    default, parametric = _column("default"), _column("parametric")
    lines = ["| parameter | treatment | `default` emulator | `parametric` emulator |",
             "|---|---|---|---|"]
    for p in sorted(default):
        treatment = parameter_treatment(p)
        if default[p].startswith("input") and parametric[p].startswith("input"):
            treatment = "input"
        elif default[p].startswith("input") or parametric[p].startswith("input"):
            treatment = "input or physics"
        lines.append(f"| `{p}` | {treatment} | {default[p]} | {parametric[p]} |")
    lines += ["", "Treatments:", ""]
    lines += [f"* **{k}**: {v}" for k, v in PARAMETER_TREATMENTS.items()]
    return "\n".join(lines)


def main(argv):
    text = open(PAGE).read()
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    new = f"{head}{BEGIN}\n{table()}\n{END}{tail}"
    if "--check" in argv:
        return 0 if new == text else 1
    with open(PAGE, "w") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
