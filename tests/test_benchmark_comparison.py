"""The emulator speed comparison of issue 10 times an emulator file under an
older revision of the package and the new one under the working tree, each in
its own worker process, in one run (``benchmarks/compare_emulators.py``)."""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "compare_emulators.py")
PARAMETRIC = "prospect_emulator/data/parametric_emulator.h5"


def _in_git_checkout():
    return shutil.which("git") is not None and subprocess.run(
        ["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _in_git_checkout(), reason="needs the package's git history")
def test_old_code_is_timed_from_its_own_revision(tmp_path):
    report = tmp_path / "report.md"
    subprocess.run([sys.executable, SCRIPT, PARAMETRIC, PARAMETRIC, "--old-code", "HEAD",
                    "--repeat", "1", "--batch", "10", "--n-draws", "200", "--out", str(report)],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    text = report.read_text()
    assert "| old float64 | parametric_emulator.h5 | revision HEAD |" in text
    assert "| new float32 | parametric_emulator.h5 | working tree |" in text
    assert "of the old float64 single call" in text


@pytest.mark.skipif(not _in_git_checkout(), reason="needs the package's git history")
def test_an_unknown_revision_is_a_clear_error():
    run = subprocess.run([sys.executable, SCRIPT, PARAMETRIC, PARAMETRIC, "--old-code",
                          "no-such-revision"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0
    assert "cannot extract revision 'no-such-revision'" in run.stderr
