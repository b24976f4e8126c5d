"""Catalogue fitting on Dask: the engine, results that survive faults, safe file names.

Every failure of issue 11 is a test here: a dead worker (no hang, every object
done or failed with the reason, exactly once), a killed command (no orphaned
workers, the folder resumable), two runs on one folder, retrying failed
objects, mixed emulators, a 300-character id, a UTF-8 BOM, an unwritable
folder and a full disk.  Fits use the shipped ``parametric`` emulator (five
free parameters with the redshift fixed), five SDSS bands and tiny dynesty
settings: the posteriors are not the point.
"""
import errno
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from prospect_emulator import EmulatorConfigurationError
from prospect_emulator.data import PARAMETRIC_EMULATOR_PATH
from prospect_emulator.fitting import catalog
from prospect_emulator.fitting.catalog import (CatalogColumns, fit_catalog, read_catalog,
                                               summary_table)
from prospect_emulator.fitting.executor import DaskExecutor, slurm_cluster
from prospect_emulator.fitting.records import (FolderBusyError, OutputFolder, OutputFolderError,
                                               object_file_stems)

FILTERS = ["sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0"]
#: dynesty settings small enough for a test
TINY = {"nested_nlive_init": 30, "nested_nlive_batch": 30, "nested_target_n_effective": 50,
        "nested_maxbatch": 0, "nested_dlogz_init": 5.0}
TINY_ARGS = ["--emulator", "parametric", "--sampler", "dynesty", "--nlive", "30", "--n-effective",
             "50", "--seed", "3"]
SAFE_NAME = r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$"
NASTY_IDS = ["plain-1", "x" * 300, "galaxy/../../etc/passwd", "ünïcødé galaxy", "..", "a/b",
             "a_b", "CON"]


# ------------------------------------------------------------------ catalogues
_PHOTOMETRY = {}


def model_photometry(zred):
    """Noise-free maggies of the parametric emulator's default parameters at ``zred``."""
    if zred not in _PHOTOMETRY:
        from prospect_emulator.fitting.models import build_fitting_model
        from prospect_emulator.fitting.run import make_obs
        from prospect_emulator.runtime import load_emulator
        emulator = load_emulator(PARAMETRIC_EMULATOR_PATH).select(FILTERS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_fitting_model(emulator, zred=zred)
        obs = make_obs(FILTERS, np.ones(len(FILTERS)), np.ones(len(FILTERS)))
        _PHOTOMETRY[zred] = model.predict(model.theta.copy(), obs=obs)[1]
    return _PHOTOMETRY[zred]


def write_catalog(path, ids, bom=False):
    """A CSV catalogue of ``ids`` with 10% uncertainties (optionally with a UTF-8 BOM)."""
    lines = ["id,z," + ",".join(f"f_{f},e_{f}" for f in FILTERS)]
    for i, oid in enumerate(ids):
        zred = round(0.3 + 0.1 * (i % 5), 2)
        phot = model_photometry(zred)
        quoted = '"' + oid.replace('"', '""') + '"'
        values = ",".join(f"{float(p)!r},{0.1 * float(p)!r}" for p in phot)
        lines.append(f"{quoted},{zred},{values}")
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def records_of(outdir):
    """The per-object records of a folder, by original id (asserting one file per id)."""
    found = {}
    for path in glob.glob(os.path.join(outdir, "*.json")):
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        assert record["id"] not in found, f"object {record['id']!r} recorded twice"
        found[record["id"]] = record
    return found


@pytest.fixture(scope="module")
def threads():
    """A Dask cluster of two worker threads in this process (so tests can patch the code)."""
    with DaskExecutor.local(n_workers=2, processes=False, dashboard_address=":0") as executor:
        yield executor


# ------------------------------------------------------------------ file names
class TestObjectFileNames:
    def test_safe_ids_are_their_own_names(self):
        assert object_file_stems(["example", "NGC_1068", "J1234+5678", "obj.1"]) == \
            ["example", "NGC_1068", "J1234+5678", "obj.1"]

    def test_unsafe_ids_become_safe_unique_names_inside_the_folder(self, tmp_path):
        stems = object_file_stems(NASTY_IDS)
        assert len({s.lower() for s in stems}) == len(stems)
        for oid, stem in zip(NASTY_IDS, stems):
            assert len(stem) <= 96 and re.match(SAFE_NAME, stem), (oid, stem)
            path = tmp_path / f"{stem}.json"
            path.write_text(oid)  # a real file, and inside the folder
            assert path.parent == tmp_path
        assert stems[0] == "plain-1"
        assert stems[1].startswith("x" * 40)  # readable prefix + hash of the id
        assert stems[5] != stems[6]  # "a/b" and "a_b" sanitise alike but stay apart
        assert stems[7] != "CON"  # a Windows device name

    def test_names_do_not_depend_on_the_rest_of_the_catalogue(self):
        assert object_file_stems(["a/b"]) == object_file_stems(["zzz", "a/b"])[1:]

    def test_names_differing_only_in_case_stay_apart(self):
        first, second = object_file_stems(["Gal", "gal"])
        assert first.lower() != second.lower()


# ------------------------------------------------------------------ reading
class TestReadingCatalogues:
    def test_a_utf8_bom_does_not_hide_the_id_column(self, tmp_path):
        path = write_catalog(tmp_path / "bom.csv", ["g1", "g2"], bom=True)
        with open(path, "rb") as f:
            assert f.read(3) == b"\xef\xbb\xbf"
        records, filters = read_catalog(path, CatalogColumns(), FILTERS)
        assert [r["id"] for r in records] == ["g1", "g2"] and filters == FILTERS

    def test_a_missing_id_column_is_an_error_naming_the_columns(self, tmp_path):
        path = write_catalog(tmp_path / "cat.csv", ["g1"])
        with pytest.raises(EmulatorConfigurationError,
                           match=r"no object id column 'ID'; columns: id, z, f_sdss_u0.*"
                                 r"--id-column none"):
            read_catalog(path, CatalogColumns(id="ID"), FILTERS)

    def test_id_column_none_numbers_the_rows(self, tmp_path):
        path = write_catalog(tmp_path / "cat.csv", ["g1", "g2"])
        records, _ = read_catalog(path, CatalogColumns(id=None), FILTERS)
        assert [(r["id"], r["stem"]) for r in records] == [("row0", "row0"), ("row1", "row1")]

    def test_a_300_character_id_and_unicode_ids_are_kept_in_the_record(self, tmp_path):
        path = write_catalog(tmp_path / "cat.csv", NASTY_IDS)
        records, _ = read_catalog(path, CatalogColumns(), FILTERS)
        assert [r["id"] for r in records] == NASTY_IDS
        assert [r["stem"] for r in records] == object_file_stems(NASTY_IDS)


# ------------------------------------------------------------------ the folder
def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class TestOneRunPerFolder:
    def test_a_live_holder_is_named_and_the_second_run_refused(self, tmp_path):
        out = tmp_path / "fits"
        out.mkdir()
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time\n"
             "from prospect_emulator.fitting.records import OutputFolder\n"
             f"with OutputFolder({str(out)!r}):\n"
             "    print('locked', flush=True); time.sleep(60)"],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            with pytest.raises(FolderBusyError) as err:
                OutputFolder(out).__enter__()
            assert f"pid {holder.pid} on host {socket.gethostname()}" in str(err.value)
        finally:
            holder.kill()
            holder.wait()
        # its process is gone: the lock is stale and taken over
        with OutputFolder(out) as folder:
            with open(folder.lock_path) as f:
                assert json.load(f)["pid"] == os.getpid()
        assert not os.path.exists(out / ".lock")

    def test_the_fit_command_refuses_a_folder_in_use(self, tmp_path, capsys):
        from prospect_emulator.cli.main import main
        cat = write_catalog(tmp_path / "cat.csv", ["g1"])
        out = tmp_path / "fits"
        with OutputFolder(out):  # as another run would hold it
            assert main(["fit", cat, "--out", str(out)] + TINY_ARGS) == 2
        err = capsys.readouterr().err
        assert f"in use by another run: pid {os.getpid()} on host {socket.gethostname()}" in err

    def test_a_stale_lock_of_a_dead_process_is_taken_over(self, tmp_path, capsys):
        (tmp_path / ".lock").write_text(json.dumps(
            {"pid": dead_pid(), "host": socket.gethostname(), "started": "earlier"}))
        with OutputFolder(tmp_path, stream=sys.stderr):
            pass
        assert "which is no longer running" in capsys.readouterr().err

    def test_a_lock_held_on_another_host_is_respected(self, tmp_path):
        (tmp_path / ".lock").write_text(json.dumps(
            {"pid": dead_pid(), "host": "another-node", "started": "earlier"}))
        with pytest.raises(FolderBusyError, match="on host another-node"):
            OutputFolder(tmp_path).__enter__()

    def test_an_unwritable_output_folder_is_a_clear_error(self, tmp_path, capsys):
        from prospect_emulator.cli.main import main
        cat = write_catalog(tmp_path / "cat.csv", ["g1"])
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        assert main(["fit", cat, "--out", str(blocker / "fits")] + TINY_ARGS) == 2
        err = capsys.readouterr().err
        assert "cannot create the output folder" in err and "Traceback" not in err
        if os.geteuid() != 0:  # root writes anywhere
            locked = tmp_path / "locked"
            locked.mkdir(mode=0o500)
            assert main(["fit", cat, "--out", str(locked)] + TINY_ARGS) == 2
            assert "not writable" in capsys.readouterr().err

    def test_partial_files_and_unreadable_records_of_a_crash_are_cleaned(self, tmp_path, capsys):
        (tmp_path / "g1.h5.partial").write_bytes(b"\x89HDF half")
        (tmp_path / "g2.json").write_text('{"id": "g2", "sta')  # torn by a crash
        with OutputFolder(tmp_path, stream=sys.stderr) as folder:
            assert folder.records() == {}
        assert not (tmp_path / "g1.h5.partial").exists()
        assert (tmp_path / "g2.json.corrupt").read_text() == '{"id": "g2", "sta'  # kept
        err = capsys.readouterr().err
        assert "partial file" in err and "unreadable record" in err


def test_an_interrupted_atomic_write_leaves_the_earlier_file(tmp_path):
    from prospect_emulator.fileio import atomic_path
    path = tmp_path / "record.json"
    path.write_text("complete")
    with pytest.raises(OSError, match="No space left"):
        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert path.read_text() == "complete" and os.listdir(tmp_path) == ["record.json"]


# ------------------------------------------------------------------ faults in a run
def failing_writes(monkeypatch, stem, n_failures):
    """Make the first ``n_failures`` writes of ``<stem>.json`` fail as on a full disk."""
    real = catalog.write_record
    left = [n_failures]

    def write_record(path, record):
        if os.path.basename(path) == f"{stem}.json" and left[0] > 0:
            left[0] -= 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(path, record)

    monkeypatch.setattr(catalog, "write_record", write_record)


class TestFaultsDuringARun:
    def test_a_full_disk_fails_one_object_and_retry_failed_fits_it(self, tmp_path, threads,
                                                                  monkeypatch, capsys):
        cat = write_catalog(tmp_path / "cat.csv", ["g1", "g2", "g3"])
        out = str(tmp_path / "fits")
        failing_writes(monkeypatch, "g2", 1)  # the task's write fails, the parent's succeeds
        table = fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, nested_kwargs=TINY, sampler="dynesty",
                            executor=threads, progress=False, seed=1)
        status = dict(zip(table["id"], table["status"]))
        assert status == {"g1": "ok", "g2": "failed", "g3": "ok"}
        record = records_of(out)["g2"]
        assert "could not write g2.json: OSError: [Errno 28] No space left" in record["error"]
        assert not glob.glob(os.path.join(out, "*.partial*"))
        # resuming keeps the failure; --retry-failed fits it again
        table = fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, nested_kwargs=TINY, sampler="dynesty",
                            executor=threads, progress=False, seed=1)
        assert "0 to fit, 2 done and 1 failed earlier" in capsys.readouterr().err
        table = fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, nested_kwargs=TINY, sampler="dynesty",
                            executor=threads, progress=False, seed=1, retry_failed=True)
        assert list(table["status"]) == ["ok", "ok", "ok"]
        assert set(records_of(out)) == {"g1", "g2", "g3"}

    def test_an_object_that_cannot_be_recorded_at_all_is_fitted_by_the_next_run(
            self, tmp_path, threads, monkeypatch, capsys):
        cat = write_catalog(tmp_path / "cat.csv", ["g1", "g2"])
        out = str(tmp_path / "fits")
        failing_writes(monkeypatch, "g1", 2)  # the task's and the parent's writes fail
        table = fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, nested_kwargs=TINY, sampler="dynesty",
                            executor=threads, progress=False)
        assert list(table["id"]) == ["g2"]
        assert "1 object(s) could not be recorded" in capsys.readouterr().err
        table = fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, nested_kwargs=TINY, sampler="dynesty",
                            executor=threads, progress=False)
        assert list(table["status"]) == ["ok", "ok"]

    def test_another_emulator_is_refused_unless_restart(self, tmp_path, threads):
        from prospect_emulator.runtime import load_emulator
        cat = write_catalog(tmp_path / "cat.csv", ["g1", "g2"])
        out = str(tmp_path / "fits")
        first = fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, nested_kwargs=TINY, sampler="dynesty",
                            executor=threads, progress=False)
        other = load_emulator(PARAMETRIC_EMULATOR_PATH)
        other.biases[-1][0] += 1e-3  # retrained, say: same inputs, other network
        other_path = str(tmp_path / "other.h5")
        other.save(other_path)
        with pytest.raises(OutputFolderError, match="another emulator or model definition.*"
                                                    "emulator_checksum.*--restart"):
            fit_catalog(cat, out, other_path, nested_kwargs=TINY, sampler="dynesty", executor=threads,
                        progress=False)
        assert set(records_of(out)) == {"g1", "g2"}  # untouched
        table = fit_catalog(cat, out, other_path, nested_kwargs=TINY, sampler="dynesty", executor=threads,
                            progress=False, restart=True)
        assert table.meta["emulator_checksum"] == other.checksum
        assert table.meta["emulator_checksum"] != first.meta["emulator_checksum"]
        superseded, = glob.glob(os.path.join(out, "superseded-*"))
        assert {"g1.h5", "g1.json", "g2.h5", "g2.json", ".run.json"} <= set(os.listdir(superseded))

    def test_a_summary_of_mixed_emulators_is_refused(self, tmp_path, threads):
        cat = write_catalog(tmp_path / "cat.csv", ["g1", "g2"])
        out = str(tmp_path / "fits")
        fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, nested_kwargs=TINY, sampler="dynesty", executor=threads,
                    progress=False)
        path = os.path.join(out, "g2.json")
        with open(path) as f:
            record = json.load(f)
        record["provenance"]["emulator_checksum"] = "0" * 64  # copied in from another run
        with open(path, "w") as f:
            json.dump(record, f)
        with pytest.raises(OutputFolderError, match="2 different emulator_checksum"):
            summary_table(out)
        assert len(summary_table(out, allow_mixed=True)) == 2
        with pytest.raises(OutputFolderError, match="record.s. made with another emulator"):
            fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, nested_kwargs=TINY, sampler="dynesty",
                        executor=threads, progress=False)

    def test_every_record_carries_its_provenance(self, tmp_path, threads):
        from prospect_emulator._version import __version__
        from prospect_emulator.fitting.records import model_definition_hash
        from prospect_emulator.runtime import load_emulator
        cat = write_catalog(tmp_path / "cat.csv", ["x" * 300])
        out = str(tmp_path / "fits")
        fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, nested_kwargs=TINY, sampler="dynesty", executor=threads,
                    progress=False, seed=7)
        (record,) = records_of(out).values()
        emulator = load_emulator(PARAMETRIC_EMULATOR_PATH)
        prov = record["provenance"]
        assert record["id"] == "x" * 300 and record["status"] == "ok"
        assert prov["emulator_checksum"] == emulator.checksum
        assert prov["model_definition_sha256"] == model_definition_hash(emulator)
        assert len(prov["model_definition_sha256"]) == 64
        assert prov["package_version"] == __version__ and prov["seed"] == 7
        assert prov["sampler"]["nested_nlive_init"] == 30
        assert os.path.exists(os.path.join(out, record["stem"] + ".h5"))


class TestSamplerChoice:
    def test_fit_sampler_ultranest_fits_the_catalogue_and_records_it(self, tmp_path, threads):
        cat = write_catalog(tmp_path / "cat.csv", ["a", "b"])
        out = str(tmp_path / "fits")
        table = fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, executor=threads, progress=False,
                            seed=2, sampler="ultranest",
                            sampler_settings={"nlive": 40, "min_ess": 100, "dlogz": 2.0})
        assert set(table["status"]) == {"ok"}
        for record in records_of(out).values():
            assert record["provenance"]["sampler"]["name"] == "ultranest"
            assert record["provenance"]["sampler"]["nlive"] == 40
            from prospect.io.read_results import results_from
            res, _, _ = results_from(os.path.join(out, record["stem"] + ".h5"))
            assert res["run_params"]["sampler"] == "ultranest"

    def test_dynesty_pool_and_foreign_settings_are_refused_before_any_fit(self, tmp_path, capsys):
        from prospect_emulator.cli.main import main
        cat = write_catalog(tmp_path / "cat.csv", ["a"])
        code = main(["fit", cat, "--out", str(tmp_path / "f"), *TINY_ARGS,
                     "--sampler", "dynesty-pool"])  # after TINY_ARGS' --sampler dynesty
        assert code == 2
        assert "'dynesty-pool' is not for catalogues" in capsys.readouterr().err
        with pytest.raises(EmulatorConfigurationError, match="nested_kwargs are dynesty's"):
            fit_catalog(cat, str(tmp_path / "g"), PARAMETRIC_EMULATOR_PATH, nested_kwargs=TINY,
                        sampler="emcee")
        assert not os.path.exists(tmp_path / "g")


# ------------------------------------------------------------------ the engine
class TestEngineOptions:
    def test_the_slurm_job_script(self):
        cluster = slurm_cluster(cores=8, memory="16GB", walltime="02:00:00", queue="short",
                                account="survey")
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
        assert "#SBATCH --cpus-per-task=8" in script and "#SBATCH -t 02:00:00" in script
        assert "#SBATCH -p short" in script and "#SBATCH -A survey" in script
        assert "--nthreads 1" in script and "--nworkers 8" in script  # a process per core
        assert sys.executable in script

    def test_slurm_without_cores_or_memory_says_what_to_give(self):
        with pytest.raises(EmulatorConfigurationError, match="--cores N --memory SIZE"):
            slurm_cluster(cores=None, memory=None)

    def test_conflicting_engine_options_are_refused(self, tmp_path, capsys):
        from prospect_emulator.cli.main import main
        cat = write_catalog(tmp_path / "cat.csv", ["g1"])
        assert main(["fit", cat, "--out", str(tmp_path / "o"), "--workers", "2", "--scheduler",
                     "tcp://localhost:1"] + TINY_ARGS) == 2
        assert "exclude each other" in capsys.readouterr().err
        assert main(["fit", cat, "--out", str(tmp_path / "o"), "--cores", "4"] + TINY_ARGS) == 2
        assert "only apply with --slurm" in capsys.readouterr().err

    def test_an_unreachable_scheduler_is_a_clear_error(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # nobody listens there once closed
        with pytest.raises(EmulatorConfigurationError,
                           match=f"cannot connect to a Dask scheduler at 'tcp://127.0.0.1:{port}'"):
            DaskExecutor.connect(f"tcp://127.0.0.1:{port}", timeout=1)


def start(args, **kwargs):
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def wait_for(predicate, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.slow
def test_a_real_scheduler_and_two_workers_fit_every_object_once(tmp_path):
    """`dask scheduler` and two `dask worker` processes on localhost; `fit --scheduler`."""
    scheduler_file = str(tmp_path / "scheduler.json")
    procs = [start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0",
                    "--dashboard-address", ":0", "--scheduler-file", scheduler_file])]
    try:
        wait_for(lambda: os.path.exists(scheduler_file), 60, "the scheduler file")
        for _ in range(2):
            procs.append(start([sys.executable, "-m", "distributed.cli.dask_worker",
                                "--scheduler-file", scheduler_file, "--nworkers", "1",
                                "--nthreads", "1"]))
        from distributed import Client
        with Client(scheduler_file=scheduler_file, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            worker_pids = set(client.run(os.getpid).values())
        ids = ["plain-1", "x" * 300, "galaxy/../../etc/passwd", "ünïcødé galaxy"]
        cat = write_catalog(tmp_path / "cat.csv", ids, bom=True)
        out = str(tmp_path / "fits")
        result = subprocess.run(
            [sys.executable, "-m", "prospect_emulator.cli.main", "fit", cat, "--out", out,
             "--scheduler", scheduler_file] + TINY_ARGS, capture_output=True, text=True,
            timeout=300)
        assert result.returncode == 0, result.stderr
        assert "4 objects fitted, 0 failed" in result.stdout
        assert "running on Dask cluster at tcp://" in result.stderr
        records = records_of(out)
        assert set(records) == set(ids)  # each once, original ids kept, BOM ignored
        assert {r["pid"] for r in records.values()} <= worker_pids  # fitted by the workers
        assert all(r["status"] == "ok" for r in records.values())
        assert sorted(os.listdir(out)) == sorted(
            [".run.json", "skipped.txt", "summary.ecsv"]
            + [f"{r['stem']}{ext}" for r in records.values() for ext in (".h5", ".json")])
        # the cluster outlives the command, and the summary can be rebuilt on demand
        assert all(p.poll() is None for p in procs)
        os.remove(os.path.join(out, "summary.ecsv"))
        from prospect_emulator.cli.main import main
        assert main(["summary", out]) == 0
        from astropy.table import Table
        assert sorted(Table.read(os.path.join(out, "summary.ecsv"))["id"]) == sorted(ids)
    finally:
        for proc in procs[::-1]:
            proc.send_signal(signal.SIGINT)
        for proc in procs[::-1]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
def test_a_killed_worker_ends_its_objects_done_or_failed_with_the_reason(tmp_path):
    """SIGKILL one of two worker processes once the first result is in: no hang, every
    object recorded exactly once, the lost ones with Dask's KilledWorker; then retried."""
    ids = [f"g{i}" for i in range(8)]
    cat = write_catalog(tmp_path / "cat.csv", ids)
    out = str(tmp_path / "fits")
    killed = []
    with DaskExecutor.local(n_workers=2, attempts=1, dashboard_address=":0") as executor:
        pids = list(executor.worker_pids().values())

        def kill_a_worker_after_the_first_result():
            wait_for(lambda: glob.glob(os.path.join(out, "g*.json")), 120, "a first result")
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

        watcher = threading.Thread(target=kill_a_worker_after_the_first_result, daemon=True)
        watcher.start()
        t0 = time.time()
        table = fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, executor=executor,
                            nested_kwargs=dict(TINY, nested_target_n_effective=300), sampler="dynesty",
                            attempts=1, progress=False)
        watcher.join(timeout=5)
        assert killed and time.time() - t0 < 120
        assert sorted(table["id"]) == ids  # every object exactly once
        records = records_of(out)
        assert set(records) == set(ids)
        failed = {oid: r["error"] for oid, r in records.items() if r["status"] != "ok"}
        assert failed, "the killed worker was fitting an object"
        assert all("KilledWorker" in error for error in failed.values())
        assert all(records[oid]["status"] == "ok" for oid in set(ids) - set(failed))
        # the failed ones are fitted by --retry-failed
        table = fit_catalog(cat, out, PARAMETRIC_EMULATOR_PATH, executor=executor,
                            nested_kwargs=TINY, sampler="dynesty", progress=False, retry_failed=True)
        assert list(table["status"]) == ["ok"] * len(ids)


def process_tree(pid):
    import psutil
    return psutil.Process(pid).children(recursive=True)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_the_command_stops_its_workers_and_the_next_run_resumes(tmp_path, sig):
    import psutil
    ids = [f"g{i}" for i in range(8)]
    cat = write_catalog(tmp_path / "cat.csv", ids)
    out = str(tmp_path / "fits")
    command = [sys.executable, "-m", "prospect_emulator.cli.main", "fit", cat, "--out", out,
               "--workers", "2", "--emulator", "parametric", "--sampler", "dynesty",
               "--nlive", "30", "--n-effective", "200", "--no-progress"]
    proc = start(command)
    try:
        wait_for(lambda: glob.glob(os.path.join(out, "g*.json")), 120, "a first result")
        workers = process_tree(proc.pid)
        assert len(workers) >= 2
        proc.send_signal(sig)
        proc.wait(timeout=60)
        # no orphan goes on fitting (or lingers) after the command is gone
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"orphaned workers: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "interrupted" in proc.stdout.read()
        assert not os.path.exists(os.path.join(out, ".lock"))  # released on the way out
    else:
        assert os.path.exists(os.path.join(out, ".lock"))  # left behind, stale
    done_before = set(records_of(out))
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{len(done_before)} done and 0 failed earlier" in result.stderr
    if sig == signal.SIGKILL:
        assert "which is no longer running" in result.stderr
    assert "8 objects fitted, 0 failed" in result.stdout
    assert set(records_of(out)) == set(ids)
