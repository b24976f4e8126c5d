"""Crash safety of `prospect-emulator generate`: kill -9 at any moment, then resume.

Real runs of the ``parametric`` preset (Prospector's parametric_sfh on
BagpipesBasis, ~2000 models/s with 2 workers in three filters), chunks of 50
models.  A killed run is resumed with the same command and must give, row for
row, the set of an uninterrupted run.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

pytest.importorskip("bagpipes")

from prospect_emulator.training import generate_training_set, read_training_set  # noqa: E402
from prospect_emulator.training.trainingset import describe_dropped  # noqa: E402

FILTERS = ["sdss_g0", "sdss_r0", "twomass_Ks"]
PRESET, SEED, CHUNK = "parametric", 11, 50
ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def generate_command(out, n):
    return [sys.executable, "-m", "prospect_emulator.cli.main", "generate", "--preset", PRESET,
            "--filters", ",".join(FILTERS), "--n-samples", str(n), "--seed", str(SEED),
            "--out", str(out), "--chunk-size", str(CHUNK), "--workers", "2"]


def assert_same_rows(a, b):
    """Every row of the two files holds the same parameters and results, bit for bit."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert fa["chunk_done"][...].all() and fb["chunk_done"][...].all()
        for key in ("params", "mags", "mfrac", "failed"):
            x, y = fa[key][...], fb[key][...]
            # floats: equal to 1e-12 relative (the batched path's matrix products may
            # sum in another order for a row computed in another batch); NaN where NaN
            same = (np.isclose(x, y, rtol=1e-12, atol=0) | (np.isnan(x) & np.isnan(y))
                    if x.dtype.kind == "f" else x == y)
            differ = np.flatnonzero(~same.reshape(len(same), -1).all(axis=1))
            assert differ.size == 0, f"{key} differs in rows {differ[:20]}"


def children(pid):
    """Process ids of the children of ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def wait_until_gone(pids, timeout=10.0):
    end = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < end:
        alive = [p for p in alive if os.path.exists(f"/proc/{p}")
                 and open(f"/proc/{p}/stat").read().split()[2] != "Z"]
        time.sleep(0.05)
    return alive


def start_and_wait_for_first_chunk(cmd):
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=ENV)
    line = proc.stderr.readline()       # printed once the first chunk is on disk
    assert line.startswith("generate:"), line + proc.stderr.read()
    return proc


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: one uninterrupted in-process run (other chunk size, same set)."""
    def make(n):
        path = tmp_path_factory.mktemp("reference") / f"reference_{n}.h5"
        summary = generate_training_set(PRESET, FILTERS, n, SEED, path, chunk_size=500,
                                        workers=2, progress=False)
        assert summary.complete and summary.n_failed == 0
        return path
    cache = {}
    return lambda n: cache.setdefault(n, make(n))


# --- kill -9 of the whole command --------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_at_three_moments_then_resume_gives_the_uninterrupted_set(uninterrupted,
                                                                        tmp_path):
    n = 40000  # long enough to be killed mid-run by the batched path (~3000 models/s)
    out = tmp_path / "killed.h5"
    cmd = generate_command(out, n)
    done_after_each_kill = []
    for delay in (0.0, 0.15, 0.4):
        proc = start_and_wait_for_first_chunk(cmd)
        workers = children(proc.pid)
        time.sleep(delay)
        proc.kill()                                     # SIGKILL: no handler runs
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        # the workers die with the parent instead of computing on as orphans
        assert wait_until_gone(workers) == []
        with h5py.File(out, "r") as f:                  # still a readable training set
            done_after_each_kill.append(int(f["chunk_done"][...].sum()))
        data = read_training_set(out)
        assert len(data["params"]) == done_after_each_kill[-1] * CHUNK
        assert np.isfinite(data["mags"]).all()
    assert 0 < done_after_each_kill[0] <= done_after_each_kill[-1] < n // CHUNK

    # the same command once more finishes the set: no chunk needed repairing
    summary = generate_training_set(PRESET, FILTERS, n, SEED, out, workers=2, progress=False)
    assert summary.complete and summary.repaired_chunks == []
    assert summary.n_computed == n - done_after_each_kill[-1] * CHUNK
    assert_same_rows(uninterrupted(n), out)


_KILL_AT_SYNC = """
import os, signal, sys
import prospect_emulator.training.trainingset as ts
from prospect_emulator.cli.main import main
kill_at, before = int(sys.argv[1]), sys.argv[2] == "before"
real_sync, calls = ts._sync, [0]
def sync(f):
    # _store_chunk syncs twice per chunk: after its rows (odd calls), after its marker (even)
    calls[0] += 1
    if calls[0] == kill_at and before:
        os.kill(os.getpid(), signal.SIGKILL)
    real_sync(f)
    if calls[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
ts._sync = sync
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("kill_at, when", [(5, "before"), (5, "after"), (6, "before")],
                         ids=["rows-written-not-flushed", "rows-flushed-not-marked",
                              "marker-written-not-flushed"])
def test_kill_9_while_a_chunk_is_written(uninterrupted, tmp_path, kill_at, when):
    """SIGKILL at each step of writing the third chunk: it is done only if all its rows are."""
    n = 400
    out = tmp_path / "killed.h5"
    cmd = generate_command(out, n)
    cmd[cmd.index("--workers") + 1] = "1"
    proc = subprocess.run([sys.executable, "-c", _KILL_AT_SYNC, str(kill_at), when, *cmd[3:],
                           "--no-progress"], env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with h5py.File(out, "r") as f:
        done = f["chunk_done"][...]
    assert done[:2].all() and not done[3:].any()
    data = read_training_set(out, valid_only=False)
    assert np.isfinite(data["mags"][data["valid"]]).all()
    assert data["valid"].sum() == done.sum() * CHUNK

    summary = generate_training_set(PRESET, FILTERS, n, SEED, out, workers=1, progress=False)
    assert summary.complete and summary.repaired_chunks == []
    assert_same_rows(uninterrupted(n), out)


# --- a file whose done chunk has no rows (what older versions could leave) ----------------
def test_done_chunk_without_rows_is_reported_and_recomputed(uninterrupted, tmp_path, capfd):
    n = 400
    out = tmp_path / "broken.h5"
    shutil.copy(uninterrupted(n), out)
    # the state a kill could leave before writes were ordered: chunk 2 of 50 rows
    # marked done, its rows never written (fill values)
    with h5py.File(out, "r+") as f:
        f.attrs["chunk_size"] = CHUNK
        del f["chunk_done"]
        f["chunk_done"] = np.ones(n // CHUNK, dtype=bool)
        f["mags"][100:150] = np.nan
        f["mfrac"][100:150] = np.nan
    data = read_training_set(out)
    assert len(data["params"]) == n - CHUNK
    assert data["dropped"] == {"with neither a finite result nor a failure reason (a run stopped "
                               "while writing; run generate again to recompute them)": CHUNK}
    assert describe_dropped(data["dropped"], n, str(out)).startswith(
        f"{out}: 50 of 400 rows left out: 50 with neither a finite result")

    summary = generate_training_set(PRESET, FILTERS, n, SEED, out, workers=1, progress=False)
    assert summary.repaired_chunks == [2] and summary.n_computed == CHUNK
    err = capfd.readouterr().err
    assert "1 chunk(s) marked done hold 50 row(s) with neither a finite result" in err
    assert "computing them again: chunk(s) 2" in err
    assert_same_rows(uninterrupted(n), out)
    assert read_training_set(out)["dropped"] == {}


# --- a dead worker ------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_stops_the_run_with_a_clear_error(uninterrupted, tmp_path):
    n = 20000
    out = tmp_path / "worker_killed.h5"
    proc = start_and_wait_for_first_chunk(generate_command(out, n))
    workers = children(proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    err = proc.communicate(timeout=60)[1]                # instead of waiting forever
    assert proc.returncode == 2, err
    assert (f"error: a worker process computing the training set died (pid {workers[0]} killed "
            "by SIGKILL); the run is stopped") in err
    assert "run the same command again to resume" in err
    assert wait_until_gone(workers) == []                # the other worker is stopped too
    data = read_training_set(out)
    assert 0 < len(data["params"]) < n and np.isfinite(data["mags"]).all()
    assert list(data["dropped"]) == ["in unfinished chunks (generation not finished)"]


def _hold_forever(lock):
    lock.acquire()
    time.sleep(600)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork start method")
def test_the_progress_count_never_waits_for_a_lock_a_killed_worker_may_hold():
    # a worker killed by SIGKILL between acquiring and releasing the shared
    # counter's lock leaves it locked for ever: the parent must still read the count
    import threading
    from prospect_emulator.training.trainingset import _WorkerPool, _mp_context
    pool = _WorkerPool(2, None, None, None, None)       # workers start only at submit
    try:
        holder = _mp_context().Process(target=_hold_forever, args=(pool.shared.get_lock(),))
        holder.start()
        deadline = time.monotonic() + 10
        while pool.shared.get_lock().acquire(timeout=0.01):  # until the child holds it
            pool.shared.get_lock().release()
            assert time.monotonic() < deadline
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
        seen = []
        reader = threading.Thread(target=lambda: seen.append(pool.rows_computed()), daemon=True)
        reader.start()
        reader.join(timeout=5)
        assert seen == [0]
    finally:
        pool.executor.shutdown(wait=False)


def _sleep():
    time.sleep(600)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork start method")
def test_workers_all_stopped_by_sigterm_read_as_a_stop_not_a_death():
    # scancel or a closed terminal signals the whole process group: when the pool
    # notices its workers gone before the parent's own handler runs, the run must
    # still end as an interrupt (exit 130, resume message), not as a dead worker
    from prospect_emulator.training.trainingset import (_mp_context, _stop_signal_of_all,
                                                        _worker_exit_codes)

    def ended_by(*signals):
        # the children must die of these signals even where this process ignores one
        # (SIGHUP under nohup): they are forked with the default handlers
        previous = {sig: signal.signal(sig, signal.SIG_DFL)
                    for sig in set(signals) if sig != signal.SIGKILL}
        try:
            procs = [_mp_context().Process(target=_sleep) for _ in signals]
            for proc, sig in zip(procs, signals):
                proc.start()
                os.kill(proc.pid, sig)
            return _stop_signal_of_all(_worker_exit_codes(procs))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    assert ended_by(signal.SIGTERM, signal.SIGTERM) == "SIGTERM"
    assert ended_by(signal.SIGTERM, signal.SIGHUP) == "SIGHUP/SIGTERM"
    assert ended_by(signal.SIGKILL, signal.SIGTERM) is None   # one was killed: a death
