"""The documentation and the demos are run, so that none of them goes stale.

* Every fenced ```python block of README.md and docs/*.md runs (one case per
  block, id ``file:line``) in a fresh namespace, in a temporary directory, with
  ``MPLBACKEND=Agg``.  A parameter-file excerpt that defines ``build_sps`` or
  ``build_noise`` must also be callable as Prospector calls it,
  ``build_*(**run_params)``, which has no ``model``.
* A block that is deliberately not runnable (a placeholder such as
  ``model_params = ...``) carries an HTML comment on the line just before its
  fence, ``<!-- not run: REASON -->``; the reason is required and the block
  must still be valid Python.
* Every ``prospect-emulator SUBCOMMAND --flag`` in a ```bash block or an inline
  code span names a sub-command and flags that exist, and so does every
  ``python demos/X.py --flag`` / ``python benchmarks/X.py --flag`` (checked
  against the script's ``--help``).
* Every script in demos/ runs end to end with small settings (command-line
  flags or arguments the scripts accept).
"""
import contextlib
import glob
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
DEMOS = os.path.join(REPO, "demos")
MARKDOWN_FILES = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))

FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>```+|~~~+)\s*(?P<lang>[\w+-]*)")
NOT_RUN = re.compile(r"^\s*<!--\s*not run\b\s*:?(?P<reason>.*?)-->\s*$")
#: A block calling one of these fits or trains: it takes tens of seconds.
SLOW_CALLS = re.compile(r"\b(fit_galaxy|fit_model|fit_catalog|train_emulator|train_stitched)\s*\(")


# ------------------------------------------------------------------ parsing
class Block:
    """One fenced code block of a markdown file."""

    def __init__(self, path, line, lang, code, marker):
        self.path, self.line, self.lang, self.code, self.marker = path, line, lang, code, marker

    @property
    def id(self):
        return f"{os.path.relpath(self.path, REPO)}:{self.line}"


def fenced_blocks(path):
    """Every fenced block of ``path`` (``line`` = the 1-based line of the opening fence);
    ``marker`` is the ``<!-- not run ... -->`` comment on the line before it, if any."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        ticks, indent = m["ticks"], len(m["indent"])
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        # a fence indented by k spaces (in a list item) indents its lines by k too
        code = "\n".join(line[indent:] if line[:indent].strip() == "" else line.lstrip()
                         for line in lines[i + 1:end])
        marker = NOT_RUN.match(lines[i - 1]) if i > 0 else None
        blocks.append(Block(path, i + 1, m["lang"].lower(), code, marker))
        i = end + 1
    return blocks


def all_blocks(*langs):
    return [b for path in MARKDOWN_FILES for b in fenced_blocks(path) if b.lang in langs]


def python_block_params():
    params = []
    for block in all_blocks("python", "py"):
        marks = [pytest.mark.slow] if SLOW_CALLS.search(block.code) and not block.marker else []
        params.append(pytest.param(block, id=block.id, marks=marks))
    return params


def _inline_code_spans(path):
    """(line number, text) of every `inline code` span outside fenced blocks."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    fenced, spans = False, []
    for n, line in enumerate(lines, 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            spans.extend((n, s) for s in re.findall(r"`([^`\n]+)`", line))
    return spans


SHELL_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", ">", ">>", "<", "2>", "|&"}


def shell_commands(text):
    """The simple commands of a shell snippet: lists of words, split at operators,
    with comments and line continuations removed."""
    text = text.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            words = list(lexer)
        except ValueError:  # unbalanced quotes in a prose snippet: split naively
            words = line.split()
        current = []
        for word in words:
            if word in SHELL_OPERATORS or set(word) <= set(";&|()<>"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
        if current:
            commands.append(current)
    return commands


def _flags(words):
    """The ``--long-options`` among a command's words (``--a=b`` -> ``--a``)."""
    return [w.split("=", 1)[0] for w in words if re.fullmatch(r"--[A-Za-z][\w-]*(=.*)?", w)]


def _usage_lines(text):
    """The command lines of a script's usage text (comment or docstring lines starting
    with ``python``/``bash``/``prospect-emulator``, with their ``\\`` continuations)."""
    lines, keep = [], False
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        keep = keep or bool(re.match(r"(python3?|bash|prospect-emulator)\s", line))
        if keep:
            lines.append(line)
            keep = line.endswith("\\")
    return lines


def documented_commands():
    """(where, kind, target, flags) for every ``prospect-emulator`` and
    ``python demos|benchmarks/X.py`` command of the bash blocks, inline code spans
    and the demos' usage lines."""
    sources = []
    for block in all_blocks("bash", "sh", "shell", "console"):
        sources.append((block.id, block.code))
    for path in MARKDOWN_FILES:
        for line, span in _inline_code_spans(path):
            if span.startswith(("prospect-emulator", "python ")):
                sources.append((f"{os.path.relpath(path, REPO)}:{line}", span))
    for path in sorted(glob.glob(os.path.join(DEMOS, "*"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        usage = "\n".join(_usage_lines(text))
        if usage:
            sources.append((os.path.relpath(path, REPO) + " (usage)", usage))
    found = []
    for where, text in sources:
        for words in shell_commands(text):
            while words and re.fullmatch(r"\w+=.*", words[0]):   # VAR=value command ...
                words = words[1:]
            if len(words) >= 2 and words[0] == "prospect-emulator" and not words[1].startswith("-"):
                for sub in words[1].split("|"):          # `generate|train|evaluate|stitch`
                    found.append((where, "prospect-emulator", sub, _flags(words[2:])))
            elif (len(words) >= 2 and words[0] in ("python", "python3")
                  and re.fullmatch(r"(demos|benchmarks)/[\w.-]+\.py", words[1])):
                found.append((where, "script", words[1], _flags(words[2:])))
    return found


# ------------------------------------------------------------ python blocks
def test_the_docs_have_python_blocks_to_run():
    ids = [b.id for b in all_blocks("python", "py")]
    assert any(i.startswith("docs/quickstart.md") for i in ids), ids


class BlockDoesNotRun(AssertionError):
    pass


#: Optional dependencies (the package's extras): a block needing one that is not
#: installed is skipped, not failed.
OPTIONAL_MODULES = {"tensorflow", "keras", "bagpipes", "fsps", "matplotlib", "corner"}


class MissingExtra(Exception):
    pass


def run_block(block):
    """Run one python block in a fresh namespace (in the current directory); return None,
    or the reason when it is marked not run.  Raises :class:`BlockDoesNotRun`."""
    if block.marker:
        reason = block.marker["reason"].strip()
        if not reason:
            raise BlockDoesNotRun(f"{block.id}: a block marked <!-- not run --> must say why: "
                                  "<!-- not run: REASON -->")
        try:
            compile(block.code, block.id, "exec")   # still valid Python
        except SyntaxError as err:
            raise BlockDoesNotRun(f"{block.id} (marked not run) is not valid Python: {err}") from err
        return reason
    namespace = {"__name__": "__doc_block__"}
    try:
        exec(compile(block.code, block.id, "exec"), namespace)
        # Prospector calls a parameter file's builders as build_*(**run_params): no model
        for name in ("build_model", "build_sps", "build_noise"):
            if callable(namespace.get(name)):
                made = namespace[name]()
                if name == "build_noise" and not (isinstance(made, tuple) and len(made) == 2):
                    raise TypeError(f"build_noise() must return (spec_noise, phot_noise), "
                                    f"got {made!r}")
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in OPTIONAL_MODULES:
            raise MissingExtra(f"{block.id} needs {err.name}, not installed") from err
        raise BlockDoesNotRun(f"{block.id} does not run: {type(err).__name__}: {err}") from err
    except Exception as err:
        raise BlockDoesNotRun(
            f"{block.id} does not run: {type(err).__name__}: {err}\n(fix it, or mark it "
            "<!-- not run: REASON --> on the line before its fence)") from err
    finally:
        with contextlib.suppress(Exception):
            import matplotlib.pyplot as plt
            plt.close("all")
    return None


@pytest.mark.parametrize("block", python_block_params())
def test_python_block_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if "matplotlib" in sys.modules:
        import matplotlib
        matplotlib.use("Agg")
    try:
        not_run = run_block(block)
    except MissingExtra as err:
        pytest.skip(str(err))
    if not_run:
        pytest.skip(f"marked not run: {not_run}")


class TestBlockCollection:
    """The collector itself: what counts as a block and as a marker."""

    def test_marker_and_reason_are_read_from_the_line_before_the_fence(self, tmp_path):
        md = tmp_path / "x.md"
        md.write_text("text\n<!-- not run: needs your own data -->\n```python\nx = ...\n```\n"
                      "<!-- not run -->\n```python\ny = 1\n```\n\n```python\nz = 2\n```\n"
                      "* item\n\n  ```python\n  def f():\n      return 1\n  ```\n")
        first, second, third, indented = fenced_blocks(str(md))
        assert (first.line, first.code) == (3, "x = ...")
        assert first.marker["reason"].strip() == "needs your own data"
        assert second.marker is not None and second.marker["reason"].strip() == ""
        assert third.marker is None and third.code == "z = 2"
        assert indented.code == "def f():\n    return 1"

    def test_an_unmarked_block_that_fails_or_a_marker_without_reason_fails(self, tmp_path):
        md = tmp_path / "x.md"
        md.write_text("```python\nmodel = SpecModel(model_params)\n```\n"
                      "<!-- not run -->\n```python\nx = 1\n```\n"
                      "<!-- not run: an excerpt -->\n```python\nf(a=1, ...)\n```\n"
                      "<!-- not run: an excerpt -->\n```python\nmodel = SpecModel(model_params)\n```\n"
                      "```python\nfrom prospect_emulator import EmulatorNoiseModel\n"
                      "def build_noise(**extras):\n    return None, EmulatorNoiseModel(model)\n```\n")
        unmarked, no_reason, bad_syntax, excerpt, needs_model = fenced_blocks(str(md))
        with pytest.raises(BlockDoesNotRun, match="NameError: name 'SpecModel'"):
            run_block(unmarked)
        with pytest.raises(BlockDoesNotRun, match="must say why"):
            run_block(no_reason)
        with pytest.raises(BlockDoesNotRun, match="not valid Python"):
            run_block(bad_syntax)
        assert run_block(excerpt) == "an excerpt"
        # Prospector calls build_noise(**run_params): there is no `model` to use
        with pytest.raises(BlockDoesNotRun, match="NameError: name 'model'"):
            run_block(needs_model)

    def test_shell_commands_split_at_operators_continuations_and_comments(self):
        text = ("python3 -m venv .venv && . .venv/bin/activate && prospect-emulator demo\n"
                "prospect-emulator fit cat.fits --out fits/ \\\n    --flux-unit uJy   # a comment\n")
        commands = shell_commands(text)
        assert ["prospect-emulator", "demo"] in commands
        assert ["prospect-emulator", "fit", "cat.fits", "--out", "fits/", "--flux-unit", "uJy"] in commands
        assert _flags(["--a=1", "-q", "--b-c", "x"]) == ["--a", "--b-c"]


# ---------------------------------------------------- commands in the docs
def _prospect_emulator_options():
    """sub-command -> its option strings, from the real argparse parser."""
    from prospect_emulator.cli.main import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {name: set(p._option_string_actions) for name, p in sub.choices.items()}


def _scripts_options(scripts):
    """script -> the ``--options`` its ``--help`` names (scripts run in parallel)."""
    runs = {script: subprocess.Popen([sys.executable, os.path.join(REPO, script), "--help"],
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ, MPLBACKEND="Agg"))
            for script in sorted(set(scripts)) if os.path.exists(os.path.join(REPO, script))}
    options = {}
    for script, run in runs.items():
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, f"{script} --help failed:\n{err[-2000:]}"
        options[script] = set(re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", out))
    return options


def test_the_docs_name_commands_to_check():
    kinds = {kind for _, kind, _, _ in documented_commands()}
    assert kinds == {"prospect-emulator", "script"}


def test_every_documented_prospect_emulator_command_and_flag_exists():
    options = _prospect_emulator_options()
    problems = []
    for where, kind, target, flags in documented_commands():
        if kind != "prospect-emulator" or target in ("...", "COMMAND", "SUBCOMMAND"):
            continue
        if target not in options:
            problems.append(f"{where}: no sub-command 'prospect-emulator {target}' "
                            f"(there are: {', '.join(sorted(options))})")
            continue
        problems += [f"{where}: 'prospect-emulator {target}' has no option {flag}"
                     for flag in flags if flag not in options[target]]
    assert not problems, "\n".join(problems)


def test_every_documented_script_flag_exists():
    commands = [c for c in documented_commands() if c[1] == "script"]
    options = _scripts_options(target for _, _, target, _ in commands)
    problems = []
    for where, _, target, flags in commands:
        if target not in options:
            problems.append(f"{where}: {target} does not exist")
            continue
        problems += [f"{where}: {target} has no option {flag}"
                     for flag in flags if flag not in options[target]]
    assert not problems, "\n".join(problems)
    # the checker knows Prospector's real flags (the demos once used a made-up one)
    prospector_flags = options["demos/param_file_emulator.py"]
    assert "--nlive_init" in prospector_flags and "--nested_nlive_init" not in prospector_flags


# ------------------------------------------------------------------ demos
def needs(*modules):
    """Skip unless the optional modules are installed (looked up, not imported: a
    subprocess imports them)."""
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (an extra of the package)")


def run_demo(args, cwd, timeout=300, **env):
    run = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ, MPLBACKEND="Agg", **env))
    assert run.returncode == 0, (f"{' '.join(map(str, args))} failed ({run.returncode}):\n"
                                 f"{run.stdout[-3000:]}\n{run.stderr[-5000:]}")
    return run


def test_every_demo_script_is_run_here():
    run_here = {"make_example_galaxy.py", "param_file_emulator.py", "param_file_sps.py",
                "train_custom_emulator.sh"}
    assert set(os.listdir(DEMOS)) - {"__pycache__"} == run_here


def test_make_example_galaxy_reproduces_the_bundled_galaxy(tmp_path):
    needs("bagpipes")
    from astropy.table import Table
    from prospect_emulator.data import EXAMPLE_GALAXY_PATH
    out = tmp_path / "example.ecsv"
    run_demo([sys.executable, os.path.join(DEMOS, "make_example_galaxy.py"), "--out", str(out)],
             cwd=tmp_path)
    made, shipped = Table.read(out), Table.read(EXAMPLE_GALAXY_PATH)
    assert made.colnames == shipped.colnames
    fluxes = [c for c in made.colnames if c.startswith(("f_", "e_"))]
    np.testing.assert_allclose([made[c][0] for c in fluxes], [shipped[c][0] for c in fluxes],
                               rtol=1e-6)
    assert made.meta["truth"] == shipped.meta["truth"]


#: Prospector's own ``prospect_args`` flags, small: a fit in seconds.
QUICK_DYNESTY = ["--dynesty", "--nested_sample", "rwalk", "--nlive_init", "40", "--nlive_batch", "20",
                 "--nested_target_n_effective", "100", "--nested_maxbatch", "1",
                 "--nested_dlogz_init", "1.0"]


def _read_result(tmp_path, prefix):
    from prospect.io.read_results import results_from
    written = glob.glob(str(tmp_path / f"{prefix}_*_result.h5"))
    assert len(written) == 1, os.listdir(tmp_path)
    return results_from(written[0])


def test_param_file_emulator_fits_the_example_galaxy_with_prospector_flags(tmp_path):
    run_demo([sys.executable, os.path.join(DEMOS, "param_file_emulator.py"), *QUICK_DYNESTY,
              "--outfile", str(tmp_path / "emulator_fit")], cwd=tmp_path)
    res, obs, _ = _read_result(tmp_path, "emulator_fit")
    # EmulatorSPS as the sps: write_hdf5 wrote Prospector's bestfit group
    assert "bestfit" in res and res["bestfit"]["photometry"].shape == obs["maggies"].shape
    from astropy.table import Table
    from prospect_emulator.data import EXAMPLE_GALAXY_PATH
    true_logmass = Table.read(EXAMPLE_GALAXY_PATH).meta["truth"]["logmass"][0]
    logmass = res["chain"][:, list(res["theta_labels"]).index("logmass")]
    assert abs(np.average(logmass, weights=res["weights"]) - true_logmass) < 0.3


def test_param_file_sps_runs_with_prospector_flags(tmp_path):
    needs("bagpipes")
    # the real SPS (BagpipesBasis) costs ms per call: a handful of iterations only
    run_demo([sys.executable, os.path.join(DEMOS, "param_file_sps.py"), "--dynesty",
              "--nested_sample", "rwalk", "--nlive_init", "20", "--nested_walks", "5",
              "--nested_dlogz_init", "1000", "--nested_maxbatch", "0",
              "--nested_target_n_effective", "10", "--outfile", str(tmp_path / "sps_fit")],
             cwd=tmp_path)
    res, obs, _ = _read_result(tmp_path, "sps_fit")
    assert res["chain"].shape[1] == len(res["theta_labels"]) == 14


@pytest.mark.slow
def test_train_custom_emulator_script_runs_with_small_settings(tmp_path):
    needs("bagpipes", "tensorflow")
    from prospect_emulator import load_emulator
    out = tmp_path / "custom"
    # OUTDIR N_SAMPLES WIDTH MAX_EPOCHS: 60 models, width 8, 2 epochs per stage
    run = run_demo(["bash", os.path.join(DEMOS, "train_custom_emulator.sh"), str(out), "60", "8", "2"],
                   cwd=tmp_path, timeout=600, WORKERS="1")
    emu = load_emulator(str(out / "emulator.h5"))
    assert emu.filter_names == ["hsc_g", "hsc_r", "hsc_i", "hsc_z", "hsc_y", "my_box_6500"]
    assert (out / "report" / "residuals.json").exists()
    assert "my_box_6500" in run.stdout and "maggies" in run.stdout
