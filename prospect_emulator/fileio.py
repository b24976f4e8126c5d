"""Writing files atomically and opening HDF5 files with clear errors."""
import contextlib
import os

from .errors import EmulatorFileError

__all__ = ["atomic_path", "open_hdf5"]


@contextlib.contextmanager
def atomic_path(path, suffix=".partial", fsync=False):
    """A temporary path beside ``path``, renamed onto it when the block succeeds.

    An interrupted write never leaves a half-written ``path`` behind: the
    file appears complete, or not at all.  If the block raises (a full disk,
    an interruption), the temporary file is removed and the exception
    propagates; an earlier ``path`` is left as it was.

    Parameters
    ----------
    path : str or path
    suffix : str
        Appended to ``path`` to name the temporary file.
    fsync : bool
        Flush the file and the rename to disk before returning, so that a
        finished file also survives a power cut or a node crash (costs a
        few milliseconds).

    Yields
    ------
    str
        Where to write.
    """
    path = os.fspath(path)
    tmp = path + suffix
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        # a failed write (full disk, interruption) leaves neither a partial file nor a
        # damaged ``path``: an earlier complete file is still there
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    if fsync:
        _fsync_dir(os.path.dirname(path) or ".")


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path):
    """Make a rename in ``path`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_hdf5(path, missing=None, advice=""):
    """Open an HDF5 file for reading.

    Parameters
    ----------
    path : str or path
    missing : str, optional
        Error message for a file that does not exist (default: h5py's error,
        reported as not readable).
    advice : str
        Appended to the message for a file that is not readable HDF5.

    Returns
    -------
    h5py.File

    Raises
    ------
    EmulatorFileError
        The file is missing or not readable HDF5.
    """
    import h5py
    path = os.fspath(path)
    if missing is not None and not os.path.exists(path):
        raise EmulatorFileError(missing)
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise EmulatorFileError(f"{path} is not a readable HDF5 file ({err}){advice}") from None
