"""The output folder of a catalogue fit: per-object records, file names, the lock, the run record.

Layout of a folder (``prospect-emulator fit --out DIR``)::

    DIR/<stem>.h5        Prospector results of one object (written by the task)
    DIR/<stem>.json      its record: status, posterior summary, quality, provenance
    DIR/summary.ecsv     the table, rebuilt from the records (``prospect-emulator summary DIR``)
    DIR/skipped.txt      catalogue rows that cannot be fitted, with the reason
    DIR/.run.json        what the folder's fits were made with (emulator checksum, model
                         definition hash, package version, sampler settings, seed)
    DIR/.lock            the run that owns the folder now (pid, host), while it runs

``<stem>`` is the object id made into a safe, unique file name
(:func:`object_file_stems`); the record keeps the original id.  Every file is
written atomically (:func:`~prospect_emulator.fileio.atomic_path`): it is
complete or absent, whatever happens to the run.
"""
import datetime
import errno
import glob
import hashlib
import json
import os
import re
import socket
import sys
import unicodedata

from ..errors import EmulatorConfigurationError
from ..fileio import atomic_path

__all__ = ["object_file_stems", "model_definition_hash", "run_provenance", "write_record",
           "read_record", "OutputFolder", "OutputFolderError", "FolderBusyError",
           "RECORD_FORMAT", "MAX_STEM_LENGTH", "PROVENANCE_KEYS", "RESTART_KEYS"]

#: ``format`` of a per-object record.
RECORD_FORMAT = "prospect-emulator-catalog-object"
#: ``format`` of the run record ``.run.json``.
RUN_FORMAT = "prospect-emulator-catalog-run"
#: Longest file-name stem (the file systems' limit is 255 bytes; room for suffixes).
MAX_STEM_LENGTH = 96
#: Provenance entries every record carries.
PROVENANCE_KEYS = ("emulator_checksum", "model_definition_sha256", "package_version",
                   "emulator", "filters", "sampler", "seed", "floor", "covariance", "attempts")
#: Provenance entries that must not change between runs on one folder (else ``--restart``).
RESTART_KEYS = ("emulator_checksum", "model_definition_sha256")
#: Names Windows refuses as files (a folder copied there must still work).
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}


class OutputFolderError(EmulatorConfigurationError):
    """The output folder cannot be used (unwritable, mixed emulators, corrupt)."""


class FolderBusyError(OutputFolderError):
    """Another live run owns the output folder."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- file names
def _id_hash(text):
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _sanitise(text):
    """Letters, digits and ``_.+-`` (ASCII); accents dropped (NFKD), the rest ``_``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", ascii_text)
    return stem.lstrip(".-")  # no hidden files, no "..", no option-like names


def object_file_stems(ids):
    """Safe, unique file-name stems of object ids.

    An id that is already a safe name (ASCII letters, digits, ``_.+-``, not
    starting with ``.`` or ``-``, at most :data:`MAX_STEM_LENGTH` characters,
    not a reserved device name) is its own stem, so ``example`` gives
    ``example.h5``.  Any other id, long, unicode, with ``/``, ``..`` or spaces,
    gets its sanitised, truncated form followed by ``-`` and 16 hex digits of
    the SHA-256 of the id: two ids that sanitise alike stay apart, and the
    stem of an id does not depend on the rest of the catalogue.  Stems are
    also unique ignoring case (case-insensitive file systems); a clash left
    after all that (same hash prefix) gets ``-<position>`` appended.

    Parameters
    ----------
    ids : sequence of str

    Returns
    -------
    list of str
    """
    stems, seen = [], set()
    for i, oid in enumerate(ids):
        oid = str(oid)
        clean = _sanitise(oid)
        safe = (clean == oid and 0 < len(clean) <= MAX_STEM_LENGTH
                and clean.split(".")[0].upper() not in _RESERVED)
        stem = clean if safe else f"{clean[:MAX_STEM_LENGTH - 17] or 'id'}-{_id_hash(oid)}"
        if stem.lower() in seen:
            stem = f"{stem}-{i}"
        seen.add(stem.lower())
        stems.append(stem)
    return stems


# ---------------------------------------------------------------- provenance
def model_definition_hash(emulator):
    """SHA-256 of an emulator's model definition (sorted-key JSON), or None if it has none.

    The definition (:func:`~prospect_emulator.definition.fitting_model.definition_of`)
    fixes the fitted model's parameters, fixed physics and priors, so two runs
    with equal hashes fit the same model.
    """
    from ..definition.fitting_model import definition_of
    definition = definition_of(emulator)
    if definition is None:
        return None
    text = json.dumps(definition.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_provenance(emulator, emulator_path, filters, sampler, seed, floor, covariance,
                   attempts):
    """What a catalogue fit is made with; recorded in every object's record and ``.run.json``.

    Returns
    -------
    dict
        :data:`PROVENANCE_KEYS`: ``emulator_checksum`` (content hash,
        :attr:`Emulator.checksum <prospect_emulator.runtime.emulator.Emulator.checksum>`),
        ``model_definition_sha256`` (:func:`model_definition_hash`),
        ``package_version``, ``emulator`` (absolute path), ``filters``,
        ``sampler`` (dynesty settings), ``seed``, ``floor``, ``covariance``,
        ``attempts``.
    """
    from .._version import __version__
    return {"emulator_checksum": emulator.checksum,
            "model_definition_sha256": model_definition_hash(emulator),
            "package_version": __version__,
            "emulator": os.path.abspath(os.fspath(emulator_path)),
            "filters": list(filters),
            "sampler": json.loads(json.dumps(sampler, default=str)),
            "seed": None if seed is None else int(seed),
            "floor": float(floor), "covariance": bool(covariance), "attempts": int(attempts)}


# ---------------------------------------------------------------- records
def write_record(path, record):
    """Write an object's record atomically (JSON; complete or absent, flushed to disk)."""
    text = json.dumps(record, indent=1, allow_nan=True, default=_json_default)
    with atomic_path(path, suffix=f".partial-{os.getpid()}", fsync=True) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def _json_default(value):
    import numpy as np
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def read_record(path):
    """An object's record, or None if the file is not a readable record."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or "id" not in record or "status" not in record:
        return None
    return record


def _is_record_name(name):
    return name.endswith(".json") and not name.startswith(".")


# ---------------------------------------------------------------- the folder
class OutputFolder:
    """An output folder owned by one run: lock, run record, existing records.

    Use as a context manager: entering creates the folder if needed, takes
    the lock (refusing if a live run holds it, taking over a lock left by a
    dead process on this host), removes partial files of an earlier crash and
    sets aside unreadable records; leaving releases the lock.

    Parameters
    ----------
    path : str
    stream : file, optional
        Where notes go (default ``sys.stderr``).
    """

    LOCK_NAME = ".lock"
    RUN_NAME = ".run.json"

    def __init__(self, path, stream=None):
        self.path = os.path.abspath(os.fspath(path))
        self.stream = stream or sys.stderr
        self.lock_path = os.path.join(self.path, self.LOCK_NAME)
        self._lock_content = None
        self.corrupt = []  # (record file, where it was moved)
        self.removed_partials = []

    def __enter__(self):
        self.create()
        self.acquire()
        try:
            self.clean_after_crash()
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def note(self, text):
        print(f"fit: {text}", file=self.stream, flush=True)

    def file(self, name):
        return os.path.join(self.path, name)

    # -------------------------------------------------------- creating
    def create(self):
        """Make the folder; a clear error if it cannot be made or written."""
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as err:
            raise OutputFolderError(
                f"cannot create the output folder {self.path}: {_os_reason(err)}; choose "
                "another --out") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise OutputFolderError(
                f"the output folder {self.path} is not writable (permission denied); choose "
                "another --out or change its permissions")

    # -------------------------------------------------------- the lock
    def _holder(self):
        try:
            with open(self.lock_path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def acquire(self):
        """Take the folder's lock.

        Raises
        ------
        FolderBusyError
            A run that is alive (or on another host, where this process
            cannot tell) holds it; the message names its pid, host and start.
        """
        content = {"pid": os.getpid(), "host": socket.gethostname(),
                   "process_started": _process_start(os.getpid()), "started": _now(),
                   "command": " ".join(sys.argv)}
        text = json.dumps(content, indent=1)
        for _ in range(5):
            if self._create_lock(text):
                self._lock_content = content
                return
            holder = self._holder()
            if holder is None:
                continue  # released meanwhile
            if holder and not _is_stale(holder):
                raise FolderBusyError(
                    f"the output folder {self.path} is in use by another run: pid "
                    f"{holder.get('pid')} on host {holder.get('host')}, started "
                    f"{holder.get('started')} ({holder.get('command', '')!s}). Wait for it to "
                    f"finish, or give another --out. If that run is dead (a crashed node), "
                    f"delete {self.lock_path} and start again")
            if not holder:  # unreadable: written by a process killed while creating it
                self.note(f"removing an unreadable lock file {self.lock_path}")
            else:
                self.note(f"taking over the lock of pid {holder.get('pid')} on "
                          f"{holder.get('host')}, which is no longer running")
            self._remove_stale(holder)
        raise FolderBusyError(f"could not take the lock {self.lock_path} (changing under us)")

    def _create_lock(self, text):
        """Create the lock file with its content in one step; False if it exists."""
        tmp = f"{self.lock_path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            try:
                os.link(tmp, self.lock_path)  # atomic, fails if the lock exists
                return True
            except FileExistsError:
                return False
            except OSError as err:
                if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                # a file system without hard links: exclusive create
                try:
                    fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                return True
        except OSError as err:
            raise OutputFolderError(
                f"cannot write the lock file in {self.path}: {_os_reason(err)}; choose another "
                "--out") from None
        finally:
            try:
                os.remove(tmp)
            except OSError:
                pass

    def _remove_stale(self, holder):
        aside = f"{self.lock_path}.stale-{os.getpid()}"
        try:
            os.rename(self.lock_path, aside)
        except FileNotFoundError:
            return
        # another process may have replaced the stale lock between our read and rename
        try:
            with open(aside, encoding="utf-8") as f:
                moved = json.load(f)
        except (OSError, ValueError):
            moved = {}
        if holder and moved != holder:
            try:
                os.link(aside, self.lock_path)
            except OSError:
                pass
        try:
            os.remove(aside)
        except OSError:
            pass

    def release(self):
        """Remove the lock if it is still this run's."""
        if self._lock_content is None:
            return
        holder = self._holder()
        if holder and holder.get("pid") == self._lock_content["pid"] \
                and holder.get("host") == self._lock_content["host"]:
            try:
                os.remove(self.lock_path)
            except OSError:
                pass
        self._lock_content = None

    # -------------------------------------------------------- after a crash
    def clean_after_crash(self):
        """Remove partial files of an interrupted write; set aside unreadable records.

        A ``*.partial*`` file is a write that never finished (the finished
        file, if any, is intact beside it).  A ``<stem>.json`` that is not a
        readable record (from a crash of an older version, a disk error or a
        hand edit) is renamed ``<stem>.json.corrupt`` and its object fitted
        again; nothing is deleted that holds a result.
        """
        for path in glob.glob(os.path.join(glob.escape(self.path), "*.partial*")):
            try:
                os.remove(path)
                self.removed_partials.append(os.path.basename(path))
            except OSError:
                pass
        if self.removed_partials:
            self.note(f"removed {len(self.removed_partials)} partial file(s) of an interrupted "
                      f"earlier run (e.g. {self.removed_partials[0]}); their objects are "
                      "fitted again")

    def records(self):
        """``{stem: record}`` of the readable records; unreadable ones are set aside."""
        found = {}
        try:
            names = os.listdir(self.path)
        except OSError as err:
            raise OutputFolderError(f"cannot list {self.path}: {_os_reason(err)}") from None
        for name in names:
            if not _is_record_name(name):
                continue
            path = os.path.join(self.path, name)
            record = read_record(path)
            if record is None:
                aside = path + ".corrupt"
                try:
                    os.replace(path, aside)
                except OSError:
                    aside = path
                self.corrupt.append((name, os.path.basename(aside)))
                continue
            found[name[:-len(".json")]] = record
        if self.corrupt:
            self.note(f"{len(self.corrupt)} unreadable record(s) set aside as *.json.corrupt "
                      f"(e.g. {self.corrupt[0][0]}); their objects are fitted again")
        return found

    # -------------------------------------------------------- the run record
    def check_provenance(self, provenance, records, restart=False):
        """Refuse to mix fits of different emulators or model definitions in one folder.

        Compares ``provenance`` (:func:`run_provenance`) with ``.run.json`` and
        with every existing record.  With ``restart``, earlier results are
        moved into ``superseded-<time>/`` (nothing deleted) and the folder
        starts afresh.  Other changes (sampler settings, seed, floor) are
        noted: each record carries its own.

        Returns
        -------
        dict
            The records still valid (empty after a restart).

        Raises
        ------
        OutputFolderError
            A mismatch without ``restart``.
        """
        previous = self.run_record()
        mismatches = []
        if previous is not None:
            for key in RESTART_KEYS:
                if previous.get(key) != provenance.get(key):
                    mismatches.append(f"{key} {_short(previous.get(key))} in {self.RUN_NAME}, "
                                      f"{_short(provenance.get(key))} now")
        foreign = [stem for stem, r in records.items()
                   if any(r.get("provenance", {}).get(k, provenance[k]) != provenance[k]
                          for k in RESTART_KEYS)]
        if foreign:
            mismatches.append(f"{len(foreign)} record(s) made with another emulator or model "
                              f"definition (e.g. {foreign[0]}.json)")
        if mismatches:
            if not restart:
                raise OutputFolderError(
                    f"{self.path} holds fits made with another emulator or model definition "
                    f"({'; '.join(mismatches)}): resuming would mix them in one summary. Give "
                    "another --out, or --restart to set the earlier results aside (moved to "
                    f"{self.path}/superseded-<time>/) and fit everything again")
            self.supersede()
            records = {}
        elif previous is not None:
            changed = [k for k in PROVENANCE_KEYS
                       if k not in RESTART_KEYS and k != "package_version"
                       and previous.get(k) != provenance.get(k)]
            if changed:
                self.note(f"resuming with other {', '.join(changed)} than the earlier run; each "
                          "object's record keeps its own settings")
        self.write_run_record(provenance, previous)
        return records

    def run_record(self):
        path = self.file(self.RUN_NAME)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            os.replace(path, path + ".corrupt")
            self.note(f"unreadable {self.RUN_NAME} set aside as {self.RUN_NAME}.corrupt; the "
                      "records' own provenance is checked instead")
            return None

    def write_run_record(self, provenance, previous=None):
        from .._version import __version__
        content = dict(provenance, format=RUN_FORMAT,
                       created=(previous or {}).get("created", _now()), updated=_now(),
                       package_version=__version__)
        try:
            write_record(self.file(self.RUN_NAME), content)
        except OSError as err:
            raise OutputFolderError(
                f"cannot write {self.file(self.RUN_NAME)}: {_os_reason(err)}; free space or "
                "choose another --out (nothing was fitted)") from None

    def supersede(self):
        """Move every result of the folder into ``superseded-<UTC time>/``."""
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.file(f"superseded-{stamp}")
        os.makedirs(target, exist_ok=True)
        moved = 0
        for name in os.listdir(self.path):
            if name.startswith(".lock") or name.startswith("superseded-"):
                continue
            src = os.path.join(self.path, name)
            if os.path.isfile(src):
                os.replace(src, os.path.join(target, name))
                moved += 1
        self.note(f"--restart: {moved} earlier file(s) moved to {target}")


def _short(value):
    return "none" if value is None else (str(value)[:12] + "..." if len(str(value)) > 12
                                         else str(value))


def _os_reason(err):
    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        reason += " (the disk is full)"
    elif err.errno in (errno.EACCES, errno.EPERM):
        reason += " (permission denied)"
    elif err.errno == errno.EROFS:
        reason += " (read-only file system)"
    return reason


def _process_start(pid):
    """Start time of a process (seconds since the epoch), or None: tells a reused pid apart."""
    try:
        import psutil
        return psutil.Process(pid).create_time()
    except Exception:
        return None


def _is_stale(holder):
    """True if the lock's process is certainly gone: same host, and its pid is not
    running (or is running a process started at another time: a reused pid)."""
    if holder.get("host") != socket.gethostname():
        return False  # cannot see processes on another host
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = holder.get("process_started")
    now = _process_start(pid)
    return started is not None and now is not None and abs(now - started) > 1.0
