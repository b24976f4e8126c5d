"""Redshift-stitched emulators (paper Sec. 4.3, eq. 11-13, Table 2).

Either combine emulators trained elsewhere (:func:`stitch_emulators`) or
train one member per overlapping redshift domain from one training set
(:func:`train_stitched`).  Members are written beside the stitched file
(``OUT.member<i>.h5``), so an interrupted run keeps finished members and
resumes the one in progress from its checkpoint.
"""
import os

import numpy as np

from ..errors import EmulatorConfigurationError
from ..runtime.fileformat import load_emulator
from ..runtime.emulator import Emulator
from ..runtime.stitched import StitchedEmulator

__all__ = ["stitch_emulators", "train_stitched", "check_domains", "parse_domains", "member_path"]


def parse_domains(text):
    """``"0.5:1.75,1.25:3"`` -> [(0.5, 1.75), (1.25, 3.0)]."""
    domains = []
    for part in str(text).split(","):
        try:
            low, high = (float(v) for v in part.split(":"))
        except ValueError:
            raise EmulatorConfigurationError(
                f"redshift domains are LOW:HIGH pairs separated by commas, e.g. 0.5:1.75,1.25:3; "
                f"got {part!r} in {text!r}") from None
        domains.append((low, high))
    return domains


def check_domains(domains):
    """Refuse domains that cannot be stitched (eq. 11-12), before any training.

    Sorted by lower limit, each domain must have low < high, overlap the next
    one with non-zero width, not lie inside it, and no redshift may be
    covered by more than two domains.

    Returns
    -------
    list of (float, float)
        The domains sorted by lower limit.
    """
    domains = sorted((float(lo), float(hi)) for lo, hi in domains)
    if len(domains) < 2:
        raise EmulatorConfigurationError(f"stitching needs at least two redshift domains, got {domains}")
    for lo, hi in domains:
        if not lo < hi:
            raise EmulatorConfigurationError(f"redshift domain {lo}:{hi} must have low < high")
    for i in range(len(domains) - 1):
        (lo1, hi1), (lo2, hi2) = domains[i], domains[i + 1]
        if hi2 <= hi1 or lo1 == lo2:
            raise EmulatorConfigurationError(f"redshift domain {lo2}:{hi2} lies inside {lo1}:{hi1}")
        if lo2 >= hi1:
            raise EmulatorConfigurationError(
                f"redshift domains {lo1}:{hi1} and {lo2}:{hi2} do not overlap: neighbours must "
                f"overlap (Table 2 uses overlaps of 0.5)")
        if i + 2 < len(domains) and domains[i + 2][0] <= hi1:
            raise EmulatorConfigurationError(
                f"redshifts {domains[i + 2][0]}..{hi1} are covered by three domains; at most two "
                f"may overlap at any redshift (eq. 12)")
    return domains


def stitch_emulators(emulators, out=None, zred_param="zred"):
    """One :class:`StitchedEmulator` from single emulators (objects or files).

    Each member's redshift domain is its training range of ``zred_param``.
    """
    members = [load_emulator(e) if isinstance(e, (str, os.PathLike)) else e for e in emulators]
    for e, m in zip(emulators, members):
        if not isinstance(m, Emulator):
            raise EmulatorConfigurationError(f"{e} is a {type(m).__name__}; stitch single emulators")
    if len(members) < 2:
        raise EmulatorConfigurationError("stitching needs at least two emulators")
    stitched = StitchedEmulator(members, zred_param=zred_param)
    if out is not None:
        stitched.save(out)
    return stitched


def member_path(out, index):
    """File of member ``index`` of the stitched emulator written to ``out``."""
    root, ext = os.path.splitext(os.fspath(out))
    return f"{root}.member{index}{ext or '.h5'}"


def _member_matches(path, domain, width, zred_param, seed):
    try:
        emu = load_emulator(path)
    except Exception:
        return None
    if not isinstance(emu, Emulator) or zred_param not in emu.param_names:
        return None
    zr = emu.param_ranges[emu.param_names.index(zred_param)]
    prov = emu.provenance or {}
    if np.allclose(zr, domain) and prov.get("width") == width and prov.get("seed") == seed:
        return emu
    return None


def train_stitched(training_set, domains, width, out, zred_param="zred", verbose=True,
                   **train_kwargs):
    """Train one emulator per redshift domain and stitch them (Table 2).

    Parameters
    ----------
    training_set : str
        Training set whose redshift distribution covers every domain.
    domains : sequence of (float, float) or str
        Overlapping redshift domains ``[(z_L,1, z_H,1), ...]`` or
        ``"0.5:1.75,1.25:3"``.
    width : int
        Nodes per hidden layer of every member.
    out : str
        Stitched emulator file; members go to ``OUT.member<i>.h5``.
    **train_kwargs
        Passed to :func:`~prospect_emulator.training.train.train_emulator`
        (``max_epochs``, ``seed``, ``test_fraction``, ``overwrite`` ...).
        Every member uses the same seed and so the same held-out test rows.
        An existing ``out`` is refused unless ``overwrite=True``.

    Returns
    -------
    StitchedEmulator
    """
    from .train import _check_out_path, train_emulator

    if isinstance(domains, str):
        domains = parse_domains(domains)
    domains = check_domains(domains)
    out = _check_out_path(out, overwrite=bool(train_kwargs.get("overwrite", False)))
    seed = int(train_kwargs.get("seed", 0))
    members = []
    for i, domain in enumerate(domains):
        path = member_path(out, i)
        done = _member_matches(path, domain, int(width), zred_param, seed) \
            if os.path.exists(path) else None
        if done is not None:
            if verbose:
                print(f"member {i + 1}/{len(domains)} ({zred_param} {domain[0]:g}..{domain[1]:g}): "
                      f"using finished {path}", flush=True)
            members.append(done)
            continue
        if verbose:
            print(f"member {i + 1}/{len(domains)}: training on {zred_param} in "
                  f"[{domain[0]:g}, {domain[1]:g}] -> {path}", flush=True)
        result = train_emulator(training_set, width, path, zred_domain=domain,
                                zred_param=zred_param, verbose=verbose, **train_kwargs)
        members.append(result.emulator)
    return stitch_emulators(members, out=out, zred_param=zred_param)
