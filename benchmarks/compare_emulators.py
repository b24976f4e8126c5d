"""Two emulator files side by side: single-call and batched prediction time in one
run, and how far each one's float32 forward pass is from its float64 pass.

Issue 10's speed target for a retrained emulator is relative: its single-call
``predict_maggies`` (the call a sampler's likelihood makes) at most 60% of
today's, measured on the same machine in the same run.  "Today's" is the old
file *and the code of that day*: with ``--old-code REV`` the old emulator is
timed under the package as it was at git revision ``REV`` (extracted with
``git archive`` into a temporary directory; a relative OLD path is then read in
that tree), the new one under the working tree's.  Each side runs in its own
worker process (``_predict_timer.py``) and the passes are timed in alternating
requests, so that a busy machine slows all alike.  The float32 difference is
the largest |arsinh mag| difference from float64 over ``--n-draws`` draws
uniform in each emulator's training ranges (allowed: 1e-4 mag), computed by
the working tree's code.

    python benchmarks/compare_emulators.py OLD.h5 NEW.h5 --out report.md
    python benchmarks/compare_emulators.py prospect_emulator/data/default_emulator.h5 \
        prospect_emulator/data/default_emulator.h5 --old-code cdc63df~1
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402
from bench_emulator import time_alternating  # noqa: E402

from prospect_emulator import load_emulator  # noqa: E402
from prospect_emulator.runtime.emulator import FLOAT32_MAX_MAG_DIFFERENCE, float32_check  # noqa: E402

TARGET_RATIO = 0.6
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


@contextlib.contextmanager
def code_tree(rev):
    """The package's source tree at git revision ``rev`` (None: this working tree)."""
    if rev is None:
        yield REPO
        return
    with tempfile.TemporaryDirectory(prefix="old_code_") as tree:
        try:
            archive = subprocess.run(["git", "-C", REPO, "archive", rev], capture_output=True)
        except FileNotFoundError:
            raise SystemExit("--old-code needs git on the PATH") from None
        if archive.returncode:
            raise SystemExit(f"cannot extract revision {rev!r}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
        yield tree


class TimingWorker:
    """One ``_predict_timer.py`` child process running the package in ``tree``."""

    def __init__(self, tree, path, batch, seed):
        env = dict(os.environ, PYTHONPATH=tree)
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "_predict_timer.py"),
                                      path, str(batch), str(seed)], cwd=tree, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the timing worker for {path} (code in {tree}) failed to start")
        self.info = json.loads(line)
        package = os.path.realpath(self.info["package"])
        if not package.startswith(os.path.realpath(tree) + os.sep):
            self.close()
            raise SystemExit(f"the timing worker for {tree} imported prospect_emulator from "
                             f"{package}, not from that tree")

    def timer(self, name, shape):
        """An object whose ``timeit(number)`` times ``number`` calls of one pass
        on one input shape (``single`` or ``batch``) in the worker."""
        return _WorkerTimer(self, name, shape)

    def seconds(self, name, shape, number):
        self.proc.stdin.write(f"{name} {shape} {number}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the timing worker ({self.info['package']}) died")
        return float(line)

    def close(self):
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait()


class _WorkerTimer:
    def __init__(self, worker, name, shape):
        self.worker, self.name, self.shape = worker, name, shape

    def timeit(self, number):
        return self.worker.seconds(self.name, self.shape, number)


def time_workers(workers, repeat):
    """({label: (best, median) s per single call}, {label: ... per batch}) of
    every pass of every worker, labelled "SIDE PASS", in alternating requests."""
    candidates = [(f"{side} {name}", worker, name) for side, worker in workers.items()
                  for name in worker.info["passes"][::-1]]
    labels = [c[0] for c in candidates]
    single = dict(zip(labels, time_alternating(
        [w.timer(n, "single") for _, w, n in candidates], repeat, 0.2)))
    batched = dict(zip(labels, time_alternating(
        [w.timer(n, "batch") for _, w, n in candidates], max(3, repeat // 3), 0.0)))
    return single, batched


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", help="the emulator of today (with --old-code: a relative path is "
                               "read in that revision's tree)")
    p.add_argument("new", help="the candidate")
    p.add_argument("--old-code", metavar="REV",
                   help="time the old emulator under the package at this git revision")
    p.add_argument("--n-draws", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--out")
    args = p.parse_args(argv)
    with code_tree(args.old_code) as old_tree:
        old_path = os.path.join(old_tree, args.old) if args.old_code else args.old
        workers = {"old": TimingWorker(old_tree, os.path.abspath(old_path), args.batch, 1),
                   "new": TimingWorker(REPO, os.path.abspath(args.new), args.batch, 1)}
        try:
            single, batched = time_workers(workers, args.repeat)
        finally:
            for worker in workers.values():
                worker.close()
        f32 = {side: float32_check(load_emulator(os.path.abspath(path)), args.n_draws,
                                   seed=2)["max_mag_difference"]
               for side, path in (("old", old_path), ("new", args.new))}
    base = single["old float64"][0]
    code = {"old": f"revision {args.old_code}" if args.old_code else "working tree",
            "new": "working tree"}
    rows = [[label, os.path.basename(args.old if label.startswith("old") else args.new),
             code[label.split()[0]], f"{workers[label.split()[0]].info['width']}",
             f"{t[0] * 1e6:.1f} ({t[1] * 1e6:.1f})", f"{t[0] / base:.2f}",
             f"{batched[label][0] / args.batch * 1e6:.3f}",
             "-" if label.endswith("64") else f"{f32[label.split()[0]]:.1e}"]
            for label, t in single.items()]
    lines = ["## Emulators side by side", "", *machine_lines(), "",
             f"Single call: one parameter vector, best repeat of {args.repeat} (median in "
             f"brackets); batch: {args.batch:,} vectors, per vector; each file timed in a worker "
             f"process running the code named, in alternating requests. float32 max |dmag|: "
             f"over {args.n_draws:,} draws uniform in the training ranges (allowed "
             f"{FLOAT32_MAX_MAG_DIFFERENCE:g} mag).", "",
             *markdown_table(["forward pass", "file", "code", "width", "single call (us)",
                              "/ old float64", "batch (us per vector)", "float32 max |dmag|"],
                             rows, "lllrrrrr"), ""]
    best = min((t[0], label) for label, t in single.items() if label.startswith("new")
               and (label.endswith("64") or f32["new"] <= FLOAT32_MAX_MAG_DIFFERENCE))
    lines.append(f"Fastest allowed new pass: {best[1]}, {best[0] / base:.2f} of the old float64 "
                 f"single call (target <= {TARGET_RATIO}: "
                 f"{'met' if best[0] / base <= TARGET_RATIO else 'not met'}).")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
