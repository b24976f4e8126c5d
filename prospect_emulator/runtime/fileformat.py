"""The native emulator file: one HDF5 file, no pickle anywhere.

Layout (schema version 1)::

    /                      attrs: format="prospect-emulator", schema_version=1,
                                  kind="single"|"stitched", package_version
    single emulator (at the root, or at /members/<i> of a stitched file):
      param_names          (n_params,) str     ordered inputs; vector p -> p_1..p_k
      param_ranges         (n_params, 2)       training range [low, high]
      filter_names         (n_filters,) str    sedpy names, output order
      extra_names          (n_extra,) str      e.g. ["mfrac"]
      extra_transforms     (n_extra,) str      "identity" | "log10"
      network/             attrs: n_layers, activation="gelu_tanh"
        input_mean, input_std, output_mean, output_std
        layer_<i>/weight   (n_in, n_out)       y = x @ W + b
        layer_<i>/bias     (n_out,)
      magnitudes           attrs: mu0, a (eq. 2); mass_param, mass_mu0 if mass-normalised
      residuals/stats      (n_filters, 11)     columns in residuals/stat_columns
      residuals/covariance (n_filters, n_filters)  arsinh mag^2
      provenance           attr "json": SPS code and version, training-set size
                           and distributions, seed, package version, ...
    stitched emulator:
      attrs zred_param, n_members; members/<i> as above
"""
import json
import os

import numpy as np

from .._version import __version__
from ..errors import EmulatorConfigurationError, EmulatorFileError
from ..fileio import atomic_path, open_hdf5
from .emulator import RESIDUAL_STAT_COLUMNS, Emulator

FORMAT_NAME = "prospect-emulator"
SCHEMA_VERSION = 1

__all__ = ["save_emulator", "load_emulator", "FORMAT_NAME", "SCHEMA_VERSION"]


def _h5py():
    import h5py
    return h5py


def _strings(values):
    return np.array([str(v) for v in values], dtype=_h5py().string_dtype())


def _write_single(g, emu):
    g["param_names"] = _strings(emu.param_names)
    g["param_ranges"] = emu.param_ranges
    g["filter_names"] = _strings(emu.filter_names)
    g["extra_names"] = _strings(emu.extra_names)
    g["extra_transforms"] = _strings(emu.extra_transforms)
    net = g.create_group("network")
    net.attrs["n_layers"] = len(emu.weights)
    net.attrs["activation"] = "gelu_tanh"
    for key in ("input_mean", "input_std", "output_mean", "output_std"):
        net[key] = getattr(emu, key)
    for i, (w, b) in enumerate(zip(emu.weights, emu.biases)):
        net[f"layer_{i}/weight"] = w
        net[f"layer_{i}/bias"] = b
    mags = g.create_group("magnitudes")
    mags.attrs["mu0"] = emu.mu0
    mags.attrs["a"] = emu.a
    if emu.mass_param is not None:
        mags.attrs["mass_param"] = emu.mass_param
        mags.attrs["mass_mu0"] = emu.mass_mu0
    res = g.create_group("residuals")
    res["stats"] = emu.residual_stats
    res["stat_columns"] = _strings(RESIDUAL_STAT_COLUMNS)
    res["covariance"] = emu.residual_covariance
    g.attrs["provenance"] = json.dumps(emu.provenance, default=_json_value)


def _json_value(obj):
    """NumPy scalars and arrays as their Python values (not their str), so that
    a provenance such as ``{"n_train": np.int64(10**6)}`` reads back as a number."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    return str(obj)


def _read_strings(ds):
    return [s.decode() if isinstance(s, bytes) else str(s) for s in ds[()]]


def _read_single(g):
    net = g["network"]
    if net.attrs.get("activation", "gelu_tanh") != "gelu_tanh":
        raise EmulatorFileError(f"unsupported activation {net.attrs['activation']!r}")
    n_layers = int(net.attrs["n_layers"])
    mags = g["magnitudes"].attrs
    return Emulator(
        [net[f"layer_{i}/weight"][()] for i in range(n_layers)],
        [net[f"layer_{i}/bias"][()] for i in range(n_layers)],
        _read_strings(g["param_names"]), _read_strings(g["filter_names"]),
        net["input_mean"][()], net["input_std"][()], net["output_mean"][()], net["output_std"][()],
        param_ranges=g["param_ranges"][()], residual_stats=g["residuals/stats"][()],
        residual_covariance=g["residuals/covariance"][()],
        extra_names=_read_strings(g["extra_names"]),
        extra_transforms=_read_strings(g["extra_transforms"]),
        mass_param=mags.get("mass_param"), mass_mu0=mags.get("mass_mu0"),
        mu0=mags["mu0"], a=mags["a"], provenance=json.loads(g.attrs.get("provenance", "{}")))


def save_emulator(emu, path):
    """Write an :class:`Emulator` or :class:`StitchedEmulator` to ``path`` (HDF5).

    The file is written beside the target and renamed into place, so an
    interrupted save never leaves a half-written emulator behind.
    """
    from .stitched import StitchedEmulator
    h5py = _h5py()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["package_version"] = __version__
        if isinstance(emu, StitchedEmulator):
            f.attrs["kind"] = "stitched"
            f.attrs["zred_param"] = emu.zred_param
            f.attrs["n_members"] = len(emu.members)
            for i, m in enumerate(emu.members):
                _write_single(f.create_group(f"members/{i}"), m)
        elif isinstance(emu, Emulator):
            f.attrs["kind"] = "single"
            _write_single(f, emu)
        else:
            raise TypeError(f"cannot save a {type(emu).__name__}")


def load_emulator(path):
    """Read a native emulator file: an :class:`Emulator` or a :class:`StitchedEmulator`.

    Raises
    ------
    EmulatorFileError
        If the file is missing, not HDF5, not a prospect-emulator file, of a
        newer schema version, or damaged.
    """
    from .stitched import StitchedEmulator
    path = os.fspath(path)
    hint = (" It looks like a NumPy .npy file: published Parrot emulators are read with "
            "Emulator.from_parrot()." if path.endswith(".npy") else "")
    with open_hdf5(path, missing=f"no emulator file at {path}", advice="." + hint) as f:
        try:
            if f.attrs.get("format") != FORMAT_NAME:
                raise EmulatorFileError(
                    f"{path} is an HDF5 file but not a {FORMAT_NAME} emulator "
                    f"(format attribute: {f.attrs.get('format')!r})")
            version = int(f.attrs.get("schema_version", -1))
            if version > SCHEMA_VERSION or version < 1:
                raise EmulatorFileError(
                    f"{path} has schema version {version}; this prospect-emulator {__version__} reads "
                    f"versions 1..{SCHEMA_VERSION}: upgrade the package")
            if f.attrs.get("kind") == "stitched":
                n = int(f.attrs["n_members"])
                return StitchedEmulator([_read_single(f[f"members/{i}"]) for i in range(n)],
                                        zred_param=str(f.attrs["zred_param"]))
            return _read_single(f)
        except EmulatorFileError:
            raise
        # HDF5 reports damaged metadata or data as OSError/KeyError on access
        except (KeyError, ValueError, TypeError, OSError, EmulatorConfigurationError) as err:
            raise EmulatorFileError(f"{path} is a damaged {FORMAT_NAME} file: {err}") from None
