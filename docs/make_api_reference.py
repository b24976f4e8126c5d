"""Write docs/api.md from the docstrings of the public API.

    python docs/make_api_reference.py
"""
import inspect
import os

import prospect_emulator
from prospect_emulator import data, priors, transforms
from prospect_emulator.fitting import catalog, derived, models, run
from prospect_emulator.runtime import error_budget, magnitudes
from prospect_emulator.sources import bagpipes_basis, fsps_sources, spec_model
from prospect_emulator.definition import distributions, fitting_model, presets
from prospect_emulator.training import trainingset

SECTIONS = [
    ("Runtime (NumPy only)", [prospect_emulator.Emulator, prospect_emulator.StitchedEmulator,
                              prospect_emulator.load_emulator, magnitudes.maggies_to_arsinh_mags,
                              magnitudes.arsinh_mags_to_maggies, magnitudes.dmaggies_dmag,
                              error_budget.total_sigma]),
    ("Prospector integration", [prospect_emulator.EmulatedSpecModel,
                                prospect_emulator.EmulatedSpecModel.from_emulator,
                                prospect_emulator.EmulatorNoiseModel,
                                prospect_emulator.EmulatorSPS,
                                "prospect_emulator.prospector.physics.check_model_physics",
                                prospect_emulator.VectorisedLikelihood,
                                prospect_emulator.inflate_obs_uncertainties,
                                priors.FastPriorProduct, priors.FastPriorTransform,
                                priors.FastPriorsMixin, transforms.FastParametersMixin,
                                transforms.zred_to_agebins, transforms.logsfr_ratios_to_masses]),
    ("SPS sources", ["prospect_emulator.sources.batched.BatchedPhotometry",
                     "prospect_emulator.sources.filter_projection.FilterProjection",
                     bagpipes_basis.BagpipesBasis, bagpipes_basis.BagpipesSpecModel,
                     spec_model.SPSHomeFreeSpecModel, fsps_sources.make_sps,
                     fsps_sources.make_spec_model]),
    ("Model definition", [fitting_model.definition_of, fitting_model.fitting_model_params,
                          fitting_model.prospector_prior]),
    ("Training sets", [distributions.Uniform, distributions.TruncatedNormal,
                       distributions.TruncatedStudentT, presets.get_preset, presets.load_config,
                       presets.TrainingSetConfig, trainingset.generate_training_set,
                       trainingset.read_training_set]),
    ("Training, evaluation, stitching (TensorFlow)", [
        "prospect_emulator.training.train.train_emulator",
        "prospect_emulator.training.evaluate.evaluate_emulator",
        "prospect_emulator.training.stitch.stitch_emulators",
        "prospect_emulator.training.stitch.train_stitched"]),
    ("Fitting", [models.fitting_model_params, models.build_fitting_model, run.make_obs,
                 run.fit_galaxy, run.posterior_summary, catalog.CatalogColumns,
                 catalog.fit_catalog, derived.sfh_summary, derived.step_sfh_summary,
                 derived.parametric_sfh_summary, "prospect_emulator.fitting.results.load_fit",
                 "prospect_emulator.fitting.quality.fit_quality",
                 "prospect_emulator.fitting.check.check_param_file",
                 "prospect_emulator.fitting.check.check_catalog",
                 "prospect_emulator.fitting.samplers.run_sampler",
                 "prospect_emulator.fitting.smc.run_tempered_smc", data.default_emulator]),
    ("Exact posteriors in JAX (the 'jax' extra)", [
        "prospect_emulator.fitting.jax_likelihood.JaxLikelihood",
        "prospect_emulator.fitting.blackjax_nss.run_blackjax_nss"]),
    ("Catalogues on Dask", ["prospect_emulator.fitting.executor.DaskExecutor",
                            "prospect_emulator.fitting.records.OutputFolder",
                            "prospect_emulator.fitting.records.object_file_stems",
                            "prospect_emulator.fitting.catalog.summary_table"]),
    ("Amortized posteriors (JAX, the 'amortized' extra)", [
        "prospect_emulator.amortized.train.train_amortized_posterior",
        "prospect_emulator.amortized.posterior.AmortizedPosterior",
        "prospect_emulator.amortized.catalog.fit_catalog_amortized",
        "prospect_emulator.amortized.simulate.simulate",
        "prospect_emulator.amortized.simulate.ObservationalNoiseModel"]),
]


def resolve(obj):
    if isinstance(obj, str):
        import importlib
        module, name = obj.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)
    return obj


def entry(obj):
    obj = resolve(obj)
    name = f"{obj.__module__}.{obj.__qualname__}"
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        sig = "(...)"
    kind = "class" if inspect.isclass(obj) else "function"
    lines = [f"### `{obj.__qualname__}{sig}`", "", f"*{kind}* `{name}`", "", "```text",
             inspect.getdoc(obj) or "(no docstring)", "```", ""]
    if inspect.isclass(obj):
        for mname, member in sorted(vars(obj).items()):
            if mname.startswith("_") or not callable(member) and not isinstance(member, property):
                continue
            doc = inspect.getdoc(member)
            if doc:
                lines += [f"- `{mname}`: {doc.splitlines()[0]}"]
        lines.append("")
    return lines


def main():
    out = ["# API reference", "",
           "Generated from the docstrings by `python docs/make_api_reference.py`.", ""]
    for title, objs in SECTIONS:
        out += [f"## {title}", ""]
        for obj in objs:
            out += entry(obj)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "api.md")
    with open(path, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
