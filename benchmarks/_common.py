"""What the benchmark scripts share: the machine description, Markdown tables,
the output, the 16-filter set and a generated training set.

The scripts import it as ``_common`` (their own directory is on ``sys.path``).
"""
import contextlib
import os
import platform
import sys
import tempfile

import numpy as np

from prospect_emulator import __version__

#: GALEX FUV/NUV, SDSS ugriz, 2MASS JHKs, IRAC 1-4, MIPS 24, WISE W3.
FILTERS_16 = ["galex_FUV", "galex_NUV", "sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0",
              "twomass_J", "twomass_H", "twomass_Ks", "spitzer_irac_ch1", "spitzer_irac_ch2",
              "spitzer_irac_ch3", "spitzer_irac_ch4", "spitzer_mips_24", "wise_w3"]


def blas_threads():
    """The number of threads the BLAS behind NumPy uses, as best we can tell."""
    try:
        from threadpoolctl import threadpool_info
        info = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if info:
            return ", ".join(f"{p['internal_api']} {p.get('version', '')}: {p['num_threads']} threads"
                             for p in info)
    except ImportError:
        pass
    env = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
           if k in os.environ}
    return f"unknown (threadpoolctl not installed; environment: {env or 'no thread variables set'})"


def cpu_model():
    """The CPU's model name (Linux), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_caches():
    """The first core's caches, e.g. "L1d 48K, L1i 32K, L2 2048K, L3 107520K" (Linux), or None."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        out = []
        for index in sorted(os.listdir(base)):
            if not index.startswith("index"):
                continue
            read = lambda name: open(os.path.join(base, index, name)).read().strip()  # noqa: E731
            kind = {"Data": "d", "Instruction": "i"}.get(read("type"), "")
            out.append(f"L{read('level')}{kind} {read('size')}")
        return ", ".join(out) or None
    except OSError:
        return None


def machine_info():
    """(name, value) pairs describing the machine and the software versions."""
    caches = cpu_caches()
    return [
        ("CPU", f"{cpu_model()} ({os.cpu_count()} logical cores)"),
        *([("caches of core 0", caches)] if caches else []),
        ("Python", platform.python_version()),
        ("NumPy", np.__version__),
        ("BLAS threads", blas_threads()),
        ("prospect-emulator", __version__),
        ("platform", platform.platform()),
    ]


def machine_lines():
    """:func:`machine_info` as Markdown list items."""
    return [f"- {name}: {value}" for name, value in machine_info()]


def dynesty_sampling(sample, walks):
    """How dynesty proposed new points, for report labels: ``"rwalk, 25 walks"``; the
    other methods (``rslice``, ``slice``, ``unif``) take no walks, so none are named."""
    return f"{sample}, {walks} walks" if sample == "rwalk" else sample


def markdown_table(header, rows, align):
    """Lines of a Markdown table.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : iterable of sequences of str
        Cells, already formatted.
    align : str
        One letter per column: ``"l"`` (left) or ``"r"`` (right).
    """
    if len(align) != len(header):
        raise ValueError(f"{len(header)} columns but alignment {align!r}")
    rule = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def emit(lines, out=None):
    """Print the report (lines of Markdown) and also write it to ``out`` if given."""
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if out:
        with open(out, "w") as fh:
            fh.write(text)
    return text


@contextlib.contextmanager
def training_set(path=None, n_samples=None, who="benchmark"):
    """``path``, or else a new ``default`` training set of ``n_samples`` models
    (16 filters, BagpipesBasis, seed 1) in a temporary directory, removed after."""
    if path is not None:
        yield path
        return
    from prospect_emulator.training import generate_training_set
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.h5")
        print(f"{who}: generating {n_samples} models (16 filters) ...", file=sys.stderr, flush=True)
        generate_training_set("default", FILTERS_16, n_samples, seed=1, out=path, progress=False)
        yield path
