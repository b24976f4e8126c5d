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
      checksum_sha256      attr: SHA-256 of the content (:func:`emulator_checksum`)
    stitched emulator:
      attrs zred_param, n_members, checksum_sha256; members/<i> as above

Reading validates everything a prediction relies on (finite weights, exact
shapes, finite training ranges with low < high, the member count, the
checksum): a file that passes gives the emulator that was saved.  Files
written before the checksum existed have none and still load.
"""
import hashlib
import json
import os

import numpy as np

from .._version import __version__
from ..errors import EmulatorConfigurationError, EmulatorFileError
from ..fileio import atomic_path, open_hdf5
from .emulator import RESIDUAL_STAT_COLUMNS, Emulator

FORMAT_NAME = "prospect-emulator"
SCHEMA_VERSION = 1
#: Attribute holding the SHA-256 hex digest of an emulator's content.
CHECKSUM_ATTR = "checksum_sha256"

__all__ = ["save_emulator", "load_emulator", "emulator_checksum", "FORMAT_NAME",
           "SCHEMA_VERSION", "CHECKSUM_ATTR"]

_NETWORK_ARRAYS = ("input_mean", "input_std", "output_mean", "output_std")


def _h5py():
    import h5py
    return h5py


# ------------------------------------------------------------------ checksum
def _single_content(emu):
    """(name, value) pairs of what defines a single emulator, in checksum order.

    Everything that changes a prediction or the noise model is here;
    ``provenance`` (a free-form description) is not.
    """
    yield "param_names", list(emu.param_names)
    yield "filter_names", list(emu.filter_names)
    yield "extra_names", list(emu.extra_names)
    yield "extra_transforms", list(emu.extra_transforms)
    yield "param_ranges", emu.param_ranges
    for key in _NETWORK_ARRAYS:
        yield f"network/{key}", getattr(emu, key)
    for i, (w, b) in enumerate(zip(emu.weights, emu.biases)):
        yield f"network/layer_{i}/weight", w
        yield f"network/layer_{i}/bias", b
    yield "residuals/stats", emu.residual_stats
    yield "residuals/covariance", emu.residual_covariance
    yield "magnitudes", {"mu0": float(emu.mu0), "a": float(emu.a),
                         "mass_param": None if emu.mass_param is None else str(emu.mass_param),
                         "mass_mu0": None if emu.mass_mu0 is None else float(emu.mass_mu0)}


def emulator_checksum(emu):
    """SHA-256 hex digest of an emulator's content, as stored in its file.

    A single emulator hashes, in the order of ``_single_content``, each
    field's name and then either its float64 little-endian C-order bytes with
    the shape, or (names and magnitude constants) its JSON text.  A stitched
    emulator hashes ``zred_param`` and its members' digests in order.  The
    digest depends only on the content: the same emulator saved twice, or
    never saved, has the same checksum (the file's bytes can differ).

    Parameters
    ----------
    emu : Emulator or StitchedEmulator

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    from .stitched import StitchedEmulator
    digest = hashlib.sha256()
    if isinstance(emu, StitchedEmulator):
        digest.update(b"stitched\n" + json.dumps(str(emu.zred_param)).encode() + b"\n")
        for m in emu.members:
            digest.update(emulator_checksum(m).encode() + b"\n")
        return digest.hexdigest()
    if not isinstance(emu, Emulator):
        raise TypeError(f"no checksum for a {type(emu).__name__}")
    for name, value in _single_content(emu):
        if isinstance(value, np.ndarray):
            arr = np.ascontiguousarray(value, dtype="<f8")
            digest.update(f"{name} float64 {list(arr.shape)}\n".encode())
            digest.update(arr.tobytes())
        else:
            digest.update(f"{name} json\n{json.dumps(value, sort_keys=True)}\n".encode())
    return digest.hexdigest()


# ------------------------------------------------------------------- writing
def _strings(values):
    return np.array([str(v) for v in values], dtype=_h5py().string_dtype())


def _check_savable(emu, where=""):
    """Refuse to write a file that :func:`load_emulator` would refuse."""
    for name, value in _single_content(emu):
        if name.startswith("network/") and not np.isfinite(value).all():
            raise EmulatorConfigurationError(
                f"cannot save the emulator: {where}{name} has non-finite values")
    problem = _range_problem(emu.param_ranges, emu.param_names)
    if problem:
        raise EmulatorConfigurationError(
            f"cannot save the emulator: {where}param_ranges {problem}; an emulator file needs "
            "the finite training range [low, high] of every input")


def _write_single(g, emu):
    g["param_names"] = _strings(emu.param_names)
    g["param_ranges"] = emu.param_ranges
    g["filter_names"] = _strings(emu.filter_names)
    g["extra_names"] = _strings(emu.extra_names)
    g["extra_transforms"] = _strings(emu.extra_transforms)
    net = g.create_group("network")
    net.attrs["n_layers"] = len(emu.weights)
    net.attrs["activation"] = "gelu_tanh"
    for key in _NETWORK_ARRAYS:
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
    g.attrs[CHECKSUM_ATTR] = emulator_checksum(emu)


def _json_value(obj):
    """NumPy scalars and arrays as their Python values (not their str), so that
    a provenance such as ``{"n_train": np.int64(10**6)}`` reads back as a number."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    return str(obj)


def save_emulator(emu, path):
    """Write an :class:`Emulator` or :class:`StitchedEmulator` to ``path`` (HDF5).

    The file is written beside the target and renamed into place, so an
    interrupted save never leaves a half-written emulator behind.  Each
    emulator (and a stitched file as a whole) carries its
    :func:`emulator_checksum`, verified when the file is read.

    Raises
    ------
    EmulatorConfigurationError
        If the emulator has non-finite network arrays or training ranges
        that are not finite with low < high (such a file would not load).
    """
    from .stitched import StitchedEmulator
    if isinstance(emu, StitchedEmulator):
        for i, m in enumerate(emu.members):
            _check_savable(m, f"member {i}: ")
    elif isinstance(emu, Emulator):
        _check_savable(emu)
    else:
        raise TypeError(f"cannot save a {type(emu).__name__}")
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
            f.attrs[CHECKSUM_ATTR] = emulator_checksum(emu)
        else:
            f.attrs["kind"] = "single"
            _write_single(f, emu)


# ------------------------------------------------------------------- reading
def _range_problem(ranges, names):
    """What is wrong with training ranges ``ranges`` (n, 2), or None."""
    for name, (low, high) in zip(names, np.asarray(ranges, dtype=float)):
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            return f"of {name!r} is [{low}, {high}]: need finite low < high"
    return None


class _GroupReader:
    """Reads one single emulator's group, naming the file and the field in
    every :class:`EmulatorFileError`."""

    def __init__(self, path, group):
        self.path, self.g = path, group
        self.prefix = "" if group.name == "/" else group.name.lstrip("/") + "/"

    def fail(self, field, problem):
        return EmulatorFileError(
            f"{self.path} is a damaged {FORMAT_NAME} file: {self.prefix}{field} {problem}")

    def node(self, field):
        try:
            return self.g[field]
        except KeyError:
            raise self.fail(field, "is missing") from None

    def dataset(self, field):
        ds = self.node(field)
        if not isinstance(ds, _h5py().Dataset):
            raise self.fail(field, "must be a dataset; found a group")
        return ds

    def strings(self, field):
        ds = self.dataset(field)
        if ds.ndim != 1 or _h5py().check_string_dtype(ds.dtype) is None:
            raise self.fail(field, f"must be a 1-d array of strings; found {ds.dtype} of shape {ds.shape}")
        return [s.decode() if isinstance(s, bytes) else str(s) for s in ds[()]]

    def numbers(self, field, shape, meaning, finite=True):
        """A float64 array of exactly ``shape`` (None: any length), never reshaped."""
        ds = self.dataset(field)
        if ds.dtype.kind not in "fiu":
            raise self.fail(field, f"must hold numbers; found {ds.dtype}")

        def fits(found, wanted):
            return len(found) == len(wanted) and all(w is None or w == n for n, w in zip(found, wanted))
        if not fits(ds.shape, shape):
            hint = " (stored transposed?)" if len(shape) > 1 and fits(ds.shape, shape[::-1]) else ""
            wanted = str(tuple("n" if w is None else w for w in shape)).replace("'", "")
            raise self.fail(field, f"has shape {ds.shape}; expected {wanted}, {meaning}{hint}")
        arr = np.asarray(ds[()], dtype=np.float64)
        if finite and not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(np.atleast_1d(arr)))[0].tolist()
            raise self.fail(field, f"has non-finite values (first at index {bad}: "
                                   f"{np.atleast_1d(arr)[tuple(bad)]})")
        return arr

    def scalar_attr(self, node, field, key):
        if key not in node.attrs:
            raise self.fail(f"{field} attribute {key!r}", "is missing")
        value = node.attrs[key]
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise self.fail(f"{field} attribute {key!r}", f"must be a number; found {value!r}") from None
        if not np.isfinite(value):
            raise self.fail(f"{field} attribute {key!r}", f"must be finite; found {value}")
        return value

    def read(self):
        param_names = self.strings("param_names")
        filter_names = self.strings("filter_names")
        extra_names = self.strings("extra_names")
        extra_transforms = self.strings("extra_transforms")
        if len(extra_transforms) != len(extra_names):
            raise self.fail("extra_transforms", f"has {len(extra_transforms)} entries for "
                                                f"{len(extra_names)} extra_names")
        n_params, n_filters = len(param_names), len(filter_names)

        mags = self.node("magnitudes")
        mu0 = self.scalar_attr(mags, "magnitudes", "mu0")
        a = self.scalar_attr(mags, "magnitudes", "a")
        if a <= 0:
            raise self.fail("magnitudes attribute 'a'", f"must be positive; found {a}")
        mass_param = mags.attrs.get("mass_param")
        mass_mu0 = None
        if mass_param is not None:
            mass_param = mass_param.decode() if isinstance(mass_param, bytes) else str(mass_param)
            if mass_param not in param_names:
                raise self.fail("magnitudes attribute 'mass_param'",
                                f"is {mass_param!r}, not one of param_names {param_names}")
            mass_mu0 = self.scalar_attr(mags, "magnitudes", "mass_mu0")

        net = self.node("network")
        activation = net.attrs.get("activation", "gelu_tanh")
        if activation != "gelu_tanh":
            raise self.fail("network attribute 'activation'",
                            f"is {activation!r}: unsupported activation (this version reads 'gelu_tanh')")
        try:
            n_layers = int(net.attrs["n_layers"])
        except (KeyError, TypeError, ValueError):
            raise self.fail("network attribute 'n_layers'", "is missing or not an integer") from None
        layers = sorted(k for k in net.keys() if k not in _NETWORK_ARRAYS)
        expected = sorted(f"layer_{i}" for i in range(n_layers))
        if n_layers < 1 or layers != expected:
            raise self.fail("network", f"has n_layers = {n_layers} but holds groups {layers}")

        # the chain of shapes: n_network_inputs -> width ... -> n_filters + n_extra
        n_in = n_params - (mass_param is not None)
        n_out = n_filters + len(extra_names)
        inputs = (f"{n_in} = network inputs (param_names"
                  + (f" without {mass_param!r})" if mass_param is not None else ")"))
        weights, biases = [], []
        width_in, meaning_in = n_in, inputs
        for i in range(n_layers):
            field = f"network/layer_{i}/weight"
            if i == n_layers - 1:
                shape, meaning = (width_in, n_out), (
                    f"({meaning_in}, {n_out} = {n_filters} filter_names + {len(extra_names)} extra_names)")
            else:
                shape, meaning = (width_in, None), f"({meaning_in}, n = layer width)"
            w = self.numbers(field, shape, meaning)
            weights.append(w)
            biases.append(self.numbers(f"network/layer_{i}/bias", (w.shape[1],),
                                       f"the outputs of {field}"))
            width_in, meaning_in = w.shape[1], f"{w.shape[1]} = outputs of layer {i}"
        arrays = {}
        for key, size, meaning in [("input_mean", n_in, inputs), ("input_std", n_in, inputs),
                                   ("output_mean", n_out, "the network outputs"),
                                   ("output_std", n_out, "the network outputs")]:
            arrays[key] = self.numbers(f"network/{key}", (size,), meaning)
        if (arrays["input_std"] == 0).any():
            raise self.fail("network/input_std", "has zeros (it divides the inputs)")

        ranges = self.numbers("param_ranges", (n_params, 2), "[low, high] per parameter",
                              finite=False)
        problem = _range_problem(ranges, param_names)
        if problem:
            raise self.fail("param_ranges", problem)
        # residual statistics may be NaN: unknown
        stat_columns = self.strings("residuals/stat_columns")
        if stat_columns != list(RESIDUAL_STAT_COLUMNS):
            raise self.fail("residuals/stat_columns",
                            f"are {stat_columns}; this version reads {list(RESIDUAL_STAT_COLUMNS)}")
        stats = self.numbers("residuals/stats", (n_filters, len(RESIDUAL_STAT_COLUMNS)),
                             "(filters, statistics)", finite=False)
        covariance = self.numbers("residuals/covariance", (n_filters, n_filters),
                                  "(filters, filters)", finite=False)
        try:
            provenance = json.loads(self.g.attrs.get("provenance", "{}"))
        except (TypeError, ValueError) as err:
            raise self.fail("provenance", f"is not JSON ({err})") from None

        try:
            emu = Emulator(weights, biases, param_names, filter_names, arrays["input_mean"],
                           arrays["input_std"], arrays["output_mean"], arrays["output_std"],
                           param_ranges=ranges, residual_stats=stats,
                           residual_covariance=covariance, extra_names=extra_names,
                           extra_transforms=extra_transforms, mass_param=mass_param,
                           mass_mu0=mass_mu0, mu0=mu0, a=a, provenance=provenance)
        except EmulatorConfigurationError as err:
            where = f"{self.prefix.rstrip('/')}: " if self.prefix else ""
            raise EmulatorFileError(f"{self.path} is a damaged {FORMAT_NAME} file: {where}{err}") from None
        self.verify_checksum(self.g, emu)
        return emu

    def verify_checksum(self, node, emu):
        """Compare the stored checksum (if any: older files have none)."""
        stored = node.attrs.get(CHECKSUM_ATTR)
        if stored is None:
            return
        stored = stored.decode() if isinstance(stored, bytes) else str(stored)
        found = emulator_checksum(emu)
        if found != stored:
            raise EmulatorFileError(
                f"{self.path}: the content does not match its checksum "
                f"({self.prefix}{CHECKSUM_ATTR} {stored[:12]}..., recomputed {found[:12]}...): "
                "an array or name was changed or corrupted after the file was saved; "
                "use the original file or save the emulator again")


def _read_stitched(path, f):
    from .stitched import StitchedEmulator
    root = _GroupReader(path, f)
    try:
        n = int(f.attrs["n_members"])
    except (KeyError, TypeError, ValueError):
        raise root.fail("attribute 'n_members'", "is missing or not an integer") from None
    groups = sorted(f["members"].keys(), key=lambda k: (len(k), k)) if "members" in f else []
    if n < 1 or groups != [str(i) for i in range(n)]:
        raise root.fail("attribute 'n_members'",
                        f"is {n} but the file holds member groups {groups or 'none'} under members/")
    if "zred_param" not in f.attrs:
        raise root.fail("attribute 'zred_param'", "is missing")
    members = [_GroupReader(path, f[f"members/{i}"]).read() for i in range(n)]
    try:
        stitched = StitchedEmulator(members, zred_param=str(f.attrs["zred_param"]))
    except EmulatorConfigurationError as err:
        raise EmulatorFileError(f"{path} is a damaged {FORMAT_NAME} file: members: {err}") from None
    root.verify_checksum(f, stitched)
    return stitched


def load_emulator(path):
    """Read a native emulator file: an :class:`Emulator` or a :class:`StitchedEmulator`.

    Validates what predictions rely on: finite weights, biases and
    normalisation; exact array shapes along the chain parameters -> layers
    -> filters + extra outputs; finite training ranges with low < high; a
    stitched file's ``n_members`` against its ``members/`` groups; and the
    SHA-256 checksum stored at save time (files without one still load).
    The emulator's :attr:`~prospect_emulator.runtime.emulator.EmulatorBase.checksum`
    then identifies it.

    Raises
    ------
    EmulatorFileError
        If the file is missing, not HDF5, not a prospect-emulator file, of a
        newer schema version, or damaged (the message names the field).
    """
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
                return _read_stitched(path, f)
            return _GroupReader(path, f).read()
        except EmulatorFileError:
            raise
        # HDF5 reports damaged metadata or data as OSError/KeyError on access
        except (KeyError, ValueError, TypeError, OSError, EmulatorConfigurationError) as err:
            raise EmulatorFileError(f"{path} is a damaged {FORMAT_NAME} file: {err}") from None
