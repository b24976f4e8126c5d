"""Per-call cost of Prospector's lnprobfn with EmulatedSpecModel.

The paper's 18-input continuity-SFH model (Sec. 2.1, Table 1) with a random
emulator of the paper's shape (5 hidden layers of 256, 137 filters), fitted to
20 of those filters.  Compares

* the bare emulator (``predict_maggies`` of the emulator restricted to the 20
  obs filters): the floor,
* ``EmulatedSpecModel.predict``,
* ``prospect.fitting.lnprobfn`` with ``EmulatorNoiseModel`` (diagonal and
  full covariance; with and without ``nested=True``, dynesty's mode),
* Prospector's stock ``prior_product`` / ``set_parameters`` against ours,
* the overhead by network width, and each part of the call alone and right
  after a network call (the weights of a 5x256 float64 network exceed a 2 MiB
  L2 cache and slow down the Python-side work that follows them).

Target (issue 2): lnprobfn adds at most 50 microseconds over the bare emulator.

Usage::

    python benchmarks/bench_lnprobfn.py            # the table for docs/performance.md
    python benchmarks/bench_lnprobfn.py --quick    # a fast smoke run
"""
import argparse
import os
import sys
import timeit
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402

N_HIDDEN, WIDTH, N_FILTERS, N_OBS_FILTERS = 5, 256, 137, 20
TARGET_OVERHEAD_US = 50.0

INPUTS = (["logmass", "logzsol"] + [f"logsfr_ratios_{i}" for i in range(1, 7)] +
          ["dust2", "dust_index", "dust1_fraction", "log_fagn", "log_agn_tau", "gas_logz", "zred",
           "duste_qpah", "duste_umin", "log_duste_gamma"])
TRAINING_RANGES = ([(6, 12.5), (-1.98, 0.19)] + [(-5, 5)] * 6 +
                   [(0, 4), (-1.2, 0.4), (0, 2), (-5, np.log10(3)), (np.log10(5), np.log10(150)),
                    (-2, 0.5), (0.5, 3), (0, 7), (0.1, 25), (-4, 0)])


def random_emulator(seed=0, width=WIDTH):
    """An emulator of the paper's shape with random weights (runtime cost only)."""
    from prospect_emulator import Emulator
    from sedpy import observate
    filter_dir = os.path.join(os.path.dirname(observate.__file__), "data", "filters")
    names = sorted(f[:-4] for f in os.listdir(filter_dir) if f.endswith(".par"))[:N_FILTERS]
    rng = np.random.default_rng(seed)
    sizes = [len(INPUTS)] + [width] * N_HIDDEN + [N_FILTERS + 1]  # + mfrac
    weights = [rng.normal(scale=1 / np.sqrt(a), size=(a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(scale=0.1, size=b) for b in sizes[1:]]
    lo, hi = np.array(TRAINING_RANGES, dtype=float).T
    stats = np.tile(np.r_[np.linspace(-0.08, 0.08, 9), 0.0, 0.02], (N_FILTERS, 1))
    return Emulator(weights, biases, INPUTS, names, input_mean=(lo + hi) / 2,
                    input_std=(hi - lo) / np.sqrt(12), output_mean=np.r_[np.full(N_FILTERS, 23.5), 0.6],
                    param_ranges=np.column_stack([lo, hi]), residual_stats=stats,
                    extra_names=["mfrac"])


def paper_model_params():
    """Continuity SFH (7 bins) with the paper's free parameters and priors
    (Table 1).  Only the emulator inputs and the template's own ``mass``
    (depends_on ``logsfr_ratios_to_masses``) are kept: FSPS-only transforms
    such as dust1 or fagn are not needed with an emulator."""
    from prospect.models import priors
    from prospect.models.templates import TemplateLibrary
    p = TemplateLibrary["continuity_sfh"]
    edges = np.array([0.0, 7.47712, 8.0, 8.5, 9.0, 9.5, 9.8, 10.13])
    nbins = len(edges) - 1
    p["agebins"].update(N=nbins, init=np.column_stack([edges[:-1], edges[1:]]))
    p["mass"].update(N=nbins, init=np.full(nbins, 1e6))
    p["logsfr_ratios"].update(N=nbins - 1, init=np.zeros(nbins - 1), prior=priors.StudentT(
        mean=np.zeros(nbins - 1), scale=np.full(nbins - 1, 0.3), df=np.full(nbins - 1, 2)))
    p["logmass"]["prior"] = priors.TopHat(mini=6, maxi=12.5)
    p["logzsol"]["prior"] = priors.ClippedNormal(mean=-0.5, sigma=0.5, mini=-1.98, maxi=0.19)
    p["dust2"]["prior"] = priors.ClippedNormal(mean=0.3, sigma=1, mini=0, maxi=4)
    p["zred"]["init"] = 1.2

    def free(init, prior):
        return {"N": 1, "isfree": True, "init": init, "prior": prior}
    p["dust_index"] = free(0.0, priors.TopHat(mini=-1.2, maxi=0.4))
    p["dust1_fraction"] = free(1.0, priors.ClippedNormal(mean=1, sigma=0.3, mini=0, maxi=2))
    p["log_fagn"] = free(-2.0, priors.TopHat(mini=-5, maxi=np.log10(3)))
    p["log_agn_tau"] = free(1.5, priors.TopHat(mini=np.log10(5), maxi=np.log10(150)))
    p["gas_logz"] = free(0.0, priors.TopHat(mini=-2, maxi=0.5))
    p["duste_qpah"] = free(2.0, priors.ClippedNormal(mean=2, sigma=2, mini=0, maxi=7))
    p["duste_umin"] = free(1.0, priors.ClippedNormal(mean=1, sigma=10, mini=0.1, maxi=25))
    p["log_duste_gamma"] = free(-2.0, priors.ClippedNormal(mean=-2, sigma=1, mini=-4, maxi=0))
    return p


def per_call_us(func, number, repeat):
    """Best-of-``repeat`` time of one call, microseconds."""
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number * 1e6


def interleaved_per_call_us(funcs, number, repeat):
    """Best-of-``repeat`` time of one call of each function, microseconds, the
    functions timed in turn within every repeat: differences between them are
    then not differences between quiet and busy moments of a shared machine."""
    best = {name: np.inf for name in funcs}
    for _ in range(repeat):
        for name, func in funcs.items():
            best[name] = min(best[name], timeit.timeit(func, number=number) / number * 1e6)
    return best


class _ZeroCostModel:
    """A model whose prior and parameters cost nothing and whose prediction is
    a fixed array, or the bare emulator at fixed inputs: what remains of a
    lnprobfn call is Prospector's own code (and, with the emulator, the cost of
    interleaving it with the network)."""

    def __init__(self, phot, emulator=None, x=None):
        self.params, self._phot, self._emulator, self._x = {}, phot, emulator, x

    def prior_product(self, theta, nested=False):
        return 0.0

    def set_parameters(self, theta):
        pass

    def predict(self, theta, obs=None, sps=None, sigma_spec=None):
        if self._emulator is not None:
            return np.zeros(0), self._emulator.predict_maggies(self._x), 1.0
        return np.zeros(0), self._phot, 1.0


class _ZeroCostNoise:
    """A photometric noise model that does nothing (see _ZeroCostModel)."""
    Sigma, log_det = None, 0.0

    def update(self, **params):
        pass

    def compute(self, **vectors):
        pass

    def lnlikelihood(self, phot_mu, phot_obs):
        return 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    number, repeat = (50, 3) if args.quick else (1000, 11)

    from prospect.fitting import lnprobfn
    from prospect.models.parameters import ProspectorParams
    from sedpy.observate import load_filters
    from prospect_emulator.prospector import EmulatedSpecModel, EmulatorNoiseModel

    emulator = random_emulator()
    obs_filters = emulator.filter_names[::7][:N_OBS_FILTERS]
    with warnings.catch_warnings():  # the Student-t SFR-ratio prior is wider than [-5, 5]
        warnings.simplefilter("ignore")
        model = EmulatedSpecModel(paper_model_params(), emulator=emulator)
    stock = ProspectorParams(paper_model_params())
    obs = {"filters": load_filters(obs_filters), "wavelength": None, "spectrum": None}
    rng = np.random.default_rng(1)
    theta = model.theta.copy()
    theta[model.theta_index["logsfr_ratios"]] = rng.normal(scale=0.3, size=6)
    _, phot, _ = model.predict(theta, obs=obs)
    obs["maggies"] = phot * (1 + 0.05 * rng.normal(size=phot.size))
    obs["maggies_unc"] = 0.05 * phot
    obs["phot_mask"] = np.ones(phot.size, dtype=bool)

    zero_cost = _ZeroCostModel(phot)
    unit = rng.uniform(size=model.ndim)
    selected = emulator.select(obs_filters)
    x = model.last_emulator_inputs.copy()
    bare_inside = _ZeroCostModel(phot, selected, x)
    diag = (None, EmulatorNoiseModel(model))
    full = (None, EmulatorNoiseModel(model, covariance=True))
    assert np.isfinite(lnprobfn(theta, model=model, obs=obs, sps=None, noise=diag))
    assert abs(model.prior_product(theta) - stock.prior_product(theta)) < 1e-10

    rows = [
        ("bare emulator, 137 filters: predict_maggies(x)", lambda: emulator.predict_maggies(x)),
        (f"bare emulator, {N_OBS_FILTERS} obs filters: predict_maggies(x)", lambda: selected.predict_maggies(x)),
        ("EmulatedSpecModel.predict(theta, obs)", lambda: model.predict(theta, obs=obs)),
        ("lnprobfn, EmulatorNoiseModel (diagonal)",
         lambda: lnprobfn(theta, model=model, obs=obs, sps=None, noise=diag)),
        ("lnprobfn, EmulatorNoiseModel (diagonal), nested=True",
         lambda: lnprobfn(theta, model=model, obs=obs, sps=None, noise=diag, nested=True)),
        ("lnprobfn, EmulatorNoiseModel (covariance)",
         lambda: lnprobfn(theta, model=model, obs=obs, sps=None, noise=full)),
        ("lnprobfn, no noise model (Prospector chi^2)",
         lambda: lnprobfn(theta, model=model, obs=obs, sps=None)),
        ("Prospector's own share: lnprobfn of a zero-cost model and noise model",
         lambda: lnprobfn(theta, model=zero_cost, obs=obs, sps=None, noise=(None, _ZeroCostNoise()))),
        ("lower bound: that lnprobfn around the bare emulator (nothing of this package but the network)",
         lambda: lnprobfn(theta, model=bare_inside, obs=obs, sps=None, noise=(None, _ZeroCostNoise()))),
        ("prior_product: Prospector (scipy.stats)", lambda: stock.prior_product(theta)),
        ("prior_product: EmulatedSpecModel (FastPriorProduct)", lambda: model.prior_product(theta)),
        ("prior_transform: Prospector (scipy.stats)", lambda: stock.prior_transform(unit)),
        ("prior_transform: EmulatedSpecModel (FastPriorTransform)", lambda: model.prior_transform(unit)),
        ("set_parameters: Prospector", lambda: stock.set_parameters(theta)),
        ("set_parameters: EmulatedSpecModel", lambda: model.set_parameters(theta)),
    ]
    times = interleaved_per_call_us(dict(rows), number, repeat)
    floor = times[f"bare emulator, {N_OBS_FILTERS} obs filters: predict_maggies(x)"]

    lines = machine_lines()
    if args.quick:
        lines.append("- --quick: few repetitions, not for reporting")
    lines += [f"- model: continuity SFH, {len(INPUTS)} emulator inputs, {model.ndim} free "
              f"parameters; emulator {N_HIDDEN}x{WIDTH}, {N_FILTERS} filters, {N_OBS_FILTERS} in "
              "the obs", ""]
    compared = ("lnprobfn", "EmulatedSpecModel")
    lines += markdown_table(
        ["call", "time per call (us)", "over the bare emulator (us)"],
        [[name, f"{times[name]:.1f}",
          f"{times[name] - floor:+.1f}" if name.startswith(compared + ("lower bound",)) else ""]
         for name, _ in rows],
        "lrr")
    overhead = times["lnprobfn, EmulatorNoiseModel (diagonal)"] - floor
    nested = times["lnprobfn, EmulatorNoiseModel (diagonal), nested=True"] - floor
    prospector = times["Prospector's own share: lnprobfn of a zero-cost model and noise model"]
    lower = times["lower bound: that lnprobfn around the bare emulator (nothing of this package "
                  "but the network)"] - floor
    verdict = ("no verdict from a --quick run" if args.quick
               else "met" if overhead <= TARGET_OVERHEAD_US else "NOT met")
    speedup = (times["prior_product: Prospector (scipy.stats)"]
               / times["prior_product: EmulatedSpecModel (FastPriorProduct)"])
    lines += ["", f"lnprobfn overhead over the emulator: {overhead:.1f} us "
              f"(target <= {TARGET_OVERHEAD_US:.0f} us: {verdict}); with nested=True (dynesty's "
              f"mode): {nested:.1f} us. Of it, Prospector's own lnprobfn code: {prospector:.1f} us; "
              f"prior, parameters, input gathering and noise model of this package: "
              f"{overhead - prospector:.1f} us ({nested - prospector:.1f} us nested). "
              f"Lower bound for any implementation of those: Prospector's lnprobfn wrapped "
              f"around the bare network already adds {lower:.1f} us. "
              f"prior_product speed-up: {speedup:.0f}x"]
    inside, rest = emulator_share_inside_lnprobfn(model, obs, theta, diag, 5 * number)
    lines += ["", f"Measured inside lnprobfn (the emulator call timed in place, {5 * number} calls): "
              f"emulator {inside:.1f} us, everything else {rest:.1f} us per call. Interleaved with "
              "Prospector's work the network no longer runs from warm caches, so both parts are "
              "slower than in the tight loops above."]
    lines += ["", *overhead_by_width_lines(obs, number, repeat)]
    lines += ["", *work_after_network_lines(model, obs, theta, diag, 4 * number)]
    lines += ["", *shipped_model_lines(number, repeat)]
    emit(lines, args.out)
    return 0


def emulator_share_inside_lnprobfn(model, obs, theta, noise, n):
    """(emulator, rest) microseconds per lnprobfn call, timing the emulator in place."""
    import time
    from prospect.fitting import lnprobfn
    emu = model._plan_for(obs["filters"]).emulator
    acc = [0.0]

    def timed(x, check=True, _orig=emu.predict_maggies_and_extras):
        t0 = time.perf_counter()
        out = _orig(x, check=check)
        acc[0] += time.perf_counter() - t0
        return out
    emu.predict_maggies_and_extras = timed
    try:
        for _ in range(n // 10):  # warm up
            lnprobfn(theta, model=model, obs=obs, sps=None, noise=noise)
        acc[0] = 0.0
        t0 = time.perf_counter()
        for _ in range(n):
            lnprobfn(theta, model=model, obs=obs, sps=None, noise=noise)
        total = time.perf_counter() - t0
    finally:
        del emu.predict_maggies_and_extras
    return acc[0] / n * 1e6, (total - acc[0]) / n * 1e6


def overhead_by_width_lines(obs, number, repeat, widths=(32, 64, 128, 256, 512)):
    """lnprobfn overhead over the bare emulator for networks of several widths
    (same model, obs and noise model): it grows with the weights because a
    network that does not fit the core's cache evicts Python's own working set."""
    from prospect.fitting import lnprobfn
    from prospect_emulator.prospector import EmulatedSpecModel, EmulatorNoiseModel
    names = [f.name for f in obs["filters"]]
    rows = []
    for width in widths:
        emulator = random_emulator(width=width)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = EmulatedSpecModel(paper_model_params(), emulator=emulator)
        theta = model.theta.copy()
        noise = (None, EmulatorNoiseModel(model))
        model.predict(theta, obs=obs)
        selected, x = emulator.select(names), model.last_emulator_inputs.copy()
        t = interleaved_per_call_us({
            "bare": lambda: selected.predict_maggies(x),
            "full": lambda: lnprobfn(theta, model=model, obs=obs, sps=None, noise=noise),
            "nested": lambda: lnprobfn(theta, model=model, obs=obs, sps=None, noise=noise,
                                       nested=True)}, number, repeat)
        weights_kib = sum(w.nbytes for w in selected.weights) / 1024
        rows.append([str(width), f"{weights_kib:.0f}", f"{t['bare']:.1f}", f"{t['full']:.1f}",
                     f"{t['full'] - t['bare']:+.1f}", f"{t['nested'] - t['bare']:+.1f}"])
    return ["lnprobfn overhead by network width (5 hidden layers, float64 weights):", "",
            *markdown_table(["width", "weights (KiB)", "bare emulator (us)",
                             "lnprobfn, diagonal noise (us)", "overhead (us)",
                             "overhead, nested=True (us)"], rows, "rrrrrr")]


def work_after_network_lines(model, obs, theta, noise, n, widths=(32, 128, 256)):
    """Why the overhead exceeds the sum of its parts: each part of a likelihood
    call timed alone (in a loop of itself) and right after a network call.

    A network whose float64 weights exceed the core's L2 cache streams them
    through it on every call and evicts the interpreter's and NumPy's working
    set; the Python-side work that follows then runs from L3 and costs more.
    """
    import time
    from prospect.fitting import lnprobfn
    clock = time.perf_counter
    names = [f.name for f in obs["filters"]]
    x = model.last_emulator_inputs.copy()
    networks = {w: random_emulator(width=w).select(names) for w in widths}
    _, phot, _ = model.predict(theta, obs=obs)
    phot_noise = noise[1]
    vectors = {"phot_unc": obs["maggies_unc"], "phot": obs["maggies"], "mask": obs["phot_mask"]}
    zero_cost = (_ZeroCostModel(phot), (None, _ZeroCostNoise()))

    def noise_model():
        phot_noise.compute(**vectors)
        phot_noise.lnlikelihood(phot, obs["maggies"])
    parts = [
        ("prior_product(theta)", lambda: model.prior_product(theta)),
        ("set_parameters(theta)", lambda: model.set_parameters(theta)),
        ("EmulatorNoiseModel compute + lnlikelihood", noise_model),
        ("Prospector's own share (zero-cost model and noise)",
         lambda: lnprobfn(theta, model=zero_cost[0], obs=obs, sps=None, noise=zero_cost[1])),
    ]

    def per_call(before, part):
        total = 0.0
        for i in range(n + n // 10):  # the first tenth warms up
            before()
            t0 = clock()
            part()
            if i >= n // 10:
                total += clock() - t0
        return total / n * 1e6

    rows = []
    for label, part in parts:
        row = [label, f"{per_call(lambda: None, part):.1f}"]
        row += [f"{per_call(lambda net=net: net.predict_maggies(x), part):.1f}"
                for net in networks.values()]
        rows.append(row)
    kib = {w: sum(a.nbytes for a in net.weights) // 1024 for w, net in networks.items()}
    return ["Each part of a likelihood call alone and right after a network call (us per call, "
            f"{n} calls, timed with perf_counter around the part only):", "",
            *markdown_table(["part", "alone"] + [f"after a 5x{w} network ({kib[w]} KiB)"
                                                 for w in widths], rows, "lrrrr"),
            "", "Prospector's lnprobfn calls these parts in turn around the network, so the "
            "overhead over the bare network is their sum as they run after it: each costs "
            "more after a network whose float64 weights do not fit the core's L2 cache (see "
            "the machine lines), which streams them through the cache on every call and "
            "pushes out the interpreter's and NumPy's working set."]


def shipped_model_lines(number, repeat):
    """The same measurement for the shipped default emulator and its fitting model
    (``fitting_model_params``: Table-1 priors, SFH bins following the redshift) on
    the bundled example galaxy."""
    from prospect.fitting import lnprobfn
    from prospect_emulator import EmulatedSpecModel, EmulatorNoiseModel, default_emulator
    from prospect_emulator.data import EXAMPLE_GALAXY_PATH
    from prospect_emulator.fitting.catalog import CatalogColumns, read_catalog
    from prospect_emulator.fitting.models import fitting_model_params
    from prospect_emulator.fitting.run import make_obs
    emu = default_emulator()
    (rec,), filters = read_catalog(EXAMPLE_GALAXY_PATH, CatalogColumns(), emu.filter_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EmulatedSpecModel(fitting_model_params(rec["zred"]), emulator=emu)
    noise = (None, EmulatorNoiseModel(model))
    obs = make_obs(filters, rec["maggies"], rec["maggies_unc"])
    theta = model.theta.copy()
    assert np.isfinite(lnprobfn(theta, model=model, obs=obs, sps=None, noise=noise))
    selected, x = emu.select(filters), model.last_emulator_inputs.copy()
    t = interleaved_per_call_us({
        "bare": lambda: selected.predict_maggies(x),
        "full": lambda: lnprobfn(theta, model=model, obs=obs, sps=None, noise=noise),
        "nested": lambda: lnprobfn(theta, model=model, obs=obs, sps=None, noise=noise, nested=True),
    }, number, repeat)
    bare, full = t["bare"], t["full"]
    return [f"Shipped default emulator ({emu!r}) with `fitting_model_params(zred={rec['zred']})` "
            f"({model.ndim} free parameters, 5 depends_on transforms) on the example galaxy "
            f"({len(filters)} bands):", "",
            *markdown_table(["call", "time per call (us)"],
                            [["bare emulator: predict_maggies(x)", f"{bare:.1f}"],
                             ["lnprobfn, EmulatorNoiseModel (diagonal)", f"{full:.1f}"],
                             ["overhead over the emulator", f"{full - bare:+.1f}"],
                             ["lnprobfn, nested=True (dynesty's mode)", f"{t['nested']:.1f}"],
                             ["overhead over the emulator, nested=True",
                              f"{t['nested'] - bare:+.1f}"]], "lr")]


if __name__ == "__main__":
    raise SystemExit(main())
