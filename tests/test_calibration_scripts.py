"""The sampler-calibration diagnostics of issue 13, run as a user runs them: the
recipe check (exact conditional posteriors, no sampler), the long-MCMC reference
and the side-by-side comparison of calibration folders."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(REPO, "benchmarks")
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


def run(script, *args, timeout=300):
    return subprocess.run([sys.executable, os.path.join(BENCHMARKS, script), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, env=ENV)


def test_recipe_check_reports_the_coverage_of_exact_conditional_posteriors(tmp_path):
    done = run("calibrate_sampler.py", "--check-recipe", "--emulator", "parametric",
               "--n-mocks", 4, "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "recipe_check.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ")][1:]
    cells = [r.strip("| ").split(" | ") for r in rows]
    assert [c[0] for c in cells] == ["mass", "logzsol", "dust2", "tage", "tau", "pooled"]
    for name, c68, c95, effective in cells:  # 4 mocks: 25% steps; pooled over 5 parameters
        step = 5 if name == "pooled" else 25
        assert float(c68.rstrip("%")) % step == 0 and float(c95.rstrip("%")) % step == 0
        assert int(effective) >= 100  # the second pass resolves even a narrow posterior
    assert "no sampler involved" in report


def _calibration_record(folder):
    """One mock in calibrate_sampler.py's format, with a made-up posterior summary
    (the prior-scale widths around the truth), as a fitted folder would hold it."""
    sys.path.insert(0, BENCHMARKS)
    try:
        from calibrate_sampler import fitting_model, make_mock
    finally:
        sys.path.remove(BENCHMARKS)
    from prospect_emulator.data import COSMOS_FILTERS
    filters = list(COSMOS_FILTERS)
    mock = make_mock("parametric", 0, 1, 0.1, filters)
    theta = np.asarray(mock["theta"])
    settings = {"sampler": "dynesty", "nlive": 200, "n_effective": 2000, "sample": "rwalk",
                "walks": 25, "filters": filters, "obs_mag": 0.1, "emulator": "parametric",
                "emulator_checksum": fitting_model("parametric", None).emulator.checksum}
    record = dict(mock, settings=settings, ncall=1, seconds=1.0, hpd_rank=0.5,
                  median=theta.tolist(), halfwidth=(0.05 * np.abs(theta) + 0.01).tolist())
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "mock_0000.json"), "w") as f:
        json.dump(record, f)
    return record


def test_mcmc_reference_records_compare_with_the_fitted_folder(tmp_path):
    fitted, reference = tmp_path / "fitted", tmp_path / "mcmc"
    record = _calibration_record(fitted)
    done = run("mcmc_reference.py", fitted, "--mocks", 0, "--steps", 300, "--walkers", 16,
               "--out", reference)
    assert done.returncode == 0, done.stderr
    assert "the two starts differ by at most" in done.stdout
    out = json.loads((reference / "mock_0000.json").read_text())
    assert out["theta"] == record["theta"] and out["labels"] == record["labels"]
    assert len(out["median"]) == len(out["halfwidth"]) == len(record["theta"])
    assert all(h > 0 for h in out["halfwidth"]) and out["ncall"] == 2 * 300 * 16
    assert out["settings"]["emulator_checksum"] == record["settings"]["emulator_checksum"]

    compared = run("compare_sbc_runs.py", reference, fitted, "--out", tmp_path / "cmp.md",
                   "--title", "Widths", "--note", "defaults of the time")
    assert compared.returncode == 0, compared.stderr
    text = (tmp_path / "cmp.md").read_text()
    assert text.startswith("# Widths\n") and "defaults of the time" in text
    ratios = np.divide(record["halfwidth"], out["halfwidth"])
    assert f"| 1 | {ratios.mean():.3f} +- nan |" in text  # widths against the reference
    assert "Reference: emcee DE reference (300 steps x 16 walkers x 2 starts)" in text
    assert "mock 0: its two starts differ by up to" in text
    assert "| 0 | dynesty nlive 200 rwalk, 25 walks |" in text
    assert "68th pct \\|dmedian\\| (ref half-widths)" in text  # per parameter
    assert f"{reference}: 1 mocks, pooled coverage" in text
    summary_only = run("compare_sbc_runs.py", reference, fitted, "--no-per-mock")
    assert summary_only.returncode == 0, summary_only.stderr
    assert "| 0 | dynesty" not in summary_only.stdout and "+- nan |" in summary_only.stdout
    # a compared folder that shares no mock with the reference is named, not a crash
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mock_0007.json").write_text(json.dumps(dict(record, index=7)))
    partial = run("compare_sbc_runs.py", reference, fitted, elsewhere, "--no-per-mock")
    assert partial.returncode == 0, partial.stderr
    assert f"{elsewhere}: no mock in common with the reference" in partial.stdout


def test_mocks_of_a_survey_depth_have_uncertainties_that_do_not_depend_on_the_truth():
    sys.path.insert(0, BENCHMARKS)
    try:
        from calibrate_sampler import make_mock
    finally:
        sys.path.remove(BENCHMARKS)
    from prospect_emulator.data import COSMOS_FILTERS
    filters = list(COSMOS_FILTERS)
    deep = [make_mock("parametric", i, 1, 0.1, filters, depth_mag=27.0) for i in range(2)]
    sigma = 10 ** (-0.4 * 27.0) / 5  # maggies: 5 sigma at 27 AB
    for mock in deep:
        np.testing.assert_allclose(mock["maggies_unc"], sigma)
    assert deep[0]["theta"] != deep[1]["theta"]
    relative = make_mock("parametric", 0, 1, 0.1, filters)  # 0.1 mag of the true flux
    assert relative["theta"] == deep[0]["theta"]
    assert np.ptp(relative["maggies_unc"]) > 0


def test_a_calibration_record_holds_every_setting_the_sampler_ran_with(tmp_path):
    """``settings`` holds what the command line gave (and must match to resume a folder);
    ``resolved_settings`` what the sampler ran with, its defaults included."""
    done = run("calibrate_sampler.py", "--emulator", "parametric", "--sampler", "smc",
               "--mocks", 0, "--workers", 1, "--sampler-settings",
               '{"n_particles": 2000, "chain_length": 50, "final_chain_length": 50}',
               "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "mock_0000.json").read_text())
    assert record["settings"]["sampler_settings"] == {
        "n_particles": 2000, "chain_length": 50, "final_chain_length": 50}
    from prospect_emulator.fitting.samplers import DEFAULT_SETTINGS
    resolved = record["resolved_settings"]
    assert set(DEFAULT_SETTINGS["smc"]) <= set(resolved)
    assert resolved["n_particles"] == 2000
    assert resolved["ess_fraction"] == DEFAULT_SETTINGS["smc"]["ess_fraction"]


def test_importance_reference_agrees_with_an_smc_fit_of_the_same_mock(tmp_path):
    """The sampler-free reference (importance sampling from a defensive mixture) and a
    sampler's fit of the same mock (the parametric model, 5 parameters) give the same
    posterior within the reference's own precision."""
    fitted, reference = tmp_path / "smc", tmp_path / "importance"
    done = run("calibrate_sampler.py", "--emulator", "parametric", "--sampler", "smc",
               "--mocks", 0, "--workers", 1, "--out", fitted)
    assert done.returncode == 0, done.stderr
    done = run("importance_reference.py", fitted, "--mocks", 0, "--draws", 100000,
               "--workers", 1, "--out", reference)
    assert done.returncode == 0, done.stderr
    assert "1/1: mock 0" in done.stdout
    smc = json.loads((fitted / "mock_0000.json").read_text())
    ref = json.loads((reference / "mock_0000.json").read_text())
    assert ref["theta"] == smc["theta"] and ref["maggies"] == smc["maggies"]
    assert ref["importance_ess"] > 2000 and ref["largest_weight"] < 0.01
    half = np.asarray(ref["halfwidth"])
    assert np.all(np.abs(np.subtract(smc["median"], ref["median"])) < 0.3 * half)
    np.testing.assert_allclose(smc["halfwidth"], half, rtol=0.2)
    assert ref["settings"]["emulator_checksum"] == smc["settings"]["emulator_checksum"]


def _table_rows(report, first_header):
    """The rows of the Markdown table whose header starts with ``first_header``."""
    lines = report.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(f"| {first_header}"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        rows.append(line.strip("| ").split(" | "))
    return rows


def test_a_reference_run_refits_the_first_validation_mocks_and_records_its_settings(tmp_path):
    """A slice-sampled dynesty reference of issue 13's agreement check, made as the
    docs make it (fewer live points), then compared with the smc fits of the same mock."""
    done = run("validate_posteriors.py", "--out", tmp_path / "reference", "--mocks-from",
               "docs/validation_run/mocks.json", "--n-galaxies", 1, "--kinds", "emu1",
               "--sample", "rslice", "--nlive", 30, "--n-effective", 100, "--workers", 1,
               timeout=600)
    assert done.returncode == 0, done.stderr
    with open(os.path.join(REPO, "docs", "validation_run", "mocks.json")) as f:
        assert json.loads((tmp_path / "reference" / "mocks.json").read_text()) == json.load(f)[:1]
    reference = json.loads((tmp_path / "reference" / "fits" / "mock0000_emu1.json").read_text())
    assert reference["nested"] == {"nested_nlive_init": 30, "nested_target_n_effective": 100,
                                   "nested_sample": "rslice"}
    assert reference["settings"]["nested_sample"] == "rslice"  # with dynesty's other settings
    assert reference["settings"]["nested_bound"] == "multi"
    assert "--sample rslice" in (tmp_path / "reference" / "validation.md").read_text()

    sys.path.insert(0, BENCHMARKS)
    try:
        from validate_posteriors import UNRECORDED_NESTED, _current
    finally:
        sys.path.remove(BENCHMARKS)
    sha = reference["emulator_sha256"]
    assert _current(reference, sha, "dynesty", reference["nested"])
    assert not _current(reference, sha, "dynesty", dict(reference["nested"], nested_nlive_init=31))
    # fits made before the settings were recorded count as made with the old defaults
    unrecorded = {k: v for k, v in reference.items() if k != "nested"}
    assert _current(unrecorded, sha, "dynesty", UNRECORDED_NESTED)

    done = run("compare_to_reference.py", "--reference", tmp_path / "reference",
               "--candidate", "docs/validation_run_smc", "--floor", "docs/validation_run",
               "--out", tmp_path / "agreement.md")
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "agreement.md").read_text()
    assert "dynesty rslice, nlive 30, target n_eff 100" in report
    rows = {(r[0], r[1]): r[2:] for r in _table_rows(report, "quantity | pair")}
    smc = json.loads((pathlib.Path(REPO) / "docs" / "validation_run_smc" / "fits" /
                      "mock0000_emu1.json").read_text())
    ref, cand = reference["percentiles"]["logmass"], smc["percentiles"]["logmass"]
    n, diff68, width = rows[("log M formed", "candidate vs reference")]
    assert int(n) == 1  # one mock: the 68th percentile is its own difference
    assert float(diff68) == round(abs(cand[1] - ref[1]), 3)
    assert float(width) == round((cand[2] - cand[0]) / (ref[2] - ref[0]), 2)


def test_a_run_compared_with_itself_agrees_exactly_and_other_emulators_are_refused(tmp_path):
    done = run("compare_to_reference.py", "--reference", "docs/validation_run",
               "--candidate", "docs/validation_run", "--floor", "docs/validation_run")
    assert done.returncode == 0, done.stderr
    rows = _table_rows(done.stdout, "quantity | pair")
    same = [r for r in rows if r[1] == "candidate vs reference"]
    assert len(same) == 6 and all(r[2] == "100" for r in same)
    assert all(float(r[3]) == 0.0 and r[4] == "1.00" for r in same)
    floor = [r for r in rows if r[1] == "floor: first vs second fit"]
    assert all(float(r[3]) > 0 for r in floor)  # two dynesty runs differ
    verdicts = _table_rows(done.stdout, "quantity | medians")
    assert [(v[2], v[4]) for v in verdicts] == [("yes", "yes")] * 6

    other = tmp_path / "other"
    (other / "fits").mkdir(parents=True)
    fit = json.loads((pathlib.Path(REPO) / "docs" / "validation_run" / "fits" /
                      "mock0000_emu1.json").read_text())
    fit["emulator_sha256"] = "0" * 64
    (other / "fits" / "mock0000_emu1.json").write_text(json.dumps(fit))
    done = run("compare_to_reference.py", "--reference", other,
               "--candidate", "docs/validation_run", "--floor", "docs/validation_run")
    assert done.returncode != 0 and "2 emulator files" in done.stderr


def test_validation_runs_refuse_bad_input_by_name(tmp_path):
    done = run("compare_to_reference.py", "--reference", tmp_path / "nowhere",
               "--candidate", "docs/validation_run", "--floor", "docs/validation_run")
    assert done.returncode != 0 and "no fits/ folder" in done.stderr

    broken = tmp_path / "broken"
    (broken / "fits").mkdir(parents=True)
    (broken / "fits" / "mock0000_emu1.json").write_text("{not json")
    done = run("compare_to_reference.py", "--reference", broken,
               "--candidate", "docs/validation_run", "--floor", "docs/validation_run")
    assert done.returncode != 0 and "mock0000_emu1.json: not a fit" in done.stderr

    (tmp_path / "mocks.json").write_text(json.dumps([{"id": "mock0000"}]))
    done = run("validate_posteriors.py", "--out", tmp_path / "out", "--mocks-from",
               tmp_path / "mocks.json", "--n-galaxies", 1, "--kinds", "emu1")
    assert done.returncode != 0 and "not a mocks.json of this script" in done.stderr


def test_a_validation_run_whose_worker_dies_stops_with_an_error_not_a_hang(tmp_path):
    import time
    import psutil
    proc = subprocess.Popen(
        [sys.executable, os.path.join(BENCHMARKS, "validate_posteriors.py"), "--out",
         str(tmp_path), "--mocks-from", "docs/validation_run/mocks.json", "--n-galaxies", "2",
         "--kinds", "emu1", "--sampler", "smc", "--workers", "1"],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        worker = None
        while worker is None and time.time() < deadline:
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "spawn_main" in " ".join(p.cmdline())]
            worker = workers[0] if workers else None
            time.sleep(0.5)
        assert worker is not None, "no worker process started"
        worker.kill()
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "a worker process died" in stderr and "run the same command again" in stderr


def test_fits_of_other_set_ups_are_set_aside_each_in_its_own_folder_and_never_overwritten(
        tmp_path):
    sys.path.insert(0, BENCHMARKS)
    try:
        from validate_posteriors import _set_aside
    finally:
        sys.path.remove(BENCHMARKS)
    fit = json.loads((pathlib.Path(REPO) / "docs" / "validation_run" / "fits" /
                      "mock0000_emu1.json").read_text())
    rslice = dict(fit, nested={"nested_nlive_init": 500, "nested_target_n_effective": 4000,
                               "nested_sample": "rslice"})
    moved = []
    for old in (fit, rslice, fit):  # two set-ups, the first one twice
        path = tmp_path / "fits" / "mock0000_emu1.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(old))
        moved.append(_set_aside(str(tmp_path), str(path), old))
        assert not path.exists()
    assert len(set(moved)) == 3  # nothing overwritten
    assert os.path.dirname(moved[0]) == os.path.dirname(moved[2])  # same set-up, same folder
    assert os.path.dirname(moved[0]) != os.path.dirname(moved[1])
    assert os.path.basename(moved[2]) == "mock0000_emu1.1.json"
    assert [json.loads(pathlib.Path(p).read_text()) for p in moved] == [fit, rslice, fit]
    assert all(fit["emulator_sha256"][:12] in p and "superseded" in p for p in moved)
