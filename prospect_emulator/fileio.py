"""Writing files atomically and opening HDF5 files with clear errors."""
import contextlib
import os

from .errors import EmulatorFileError

__all__ = ["atomic_path", "open_hdf5"]


@contextlib.contextmanager
def atomic_path(path, suffix=".partial"):
    """A temporary path beside ``path``, renamed onto it when the block succeeds.

    An interrupted write never leaves a half-written ``path`` behind: the
    file appears complete, or not at all.

    Parameters
    ----------
    path : str or path
    suffix : str
        Appended to ``path`` to name the temporary file.

    Yields
    ------
    str
        Where to write.
    """
    path = os.fspath(path)
    tmp = path + suffix
    yield tmp
    os.replace(tmp, path)


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
