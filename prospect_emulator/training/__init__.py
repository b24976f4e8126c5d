"""Training emulators: training sets from a Prospector SPS source, and the
TensorFlow network (the ``train`` extra).

Importing this package is light: it does not import TensorFlow (only
``prospect_emulator.training.network`` and the training code do) nor
Prospector or h5py; the names below are loaded on first use.

Training sets::

    from prospect_emulator.training import generate_training_set, get_preset
    generate_training_set("default", ["sdss_g0", "sdss_r0"], n_samples=10_000, seed=1,
                          out="train.h5")

Distributions and configurations (the model definition, shared with fitting):
:mod:`prospect_emulator.definition`;
training, evaluation and stitching (TensorFlow): :mod:`.train`, :mod:`.evaluate`,
:mod:`.stitch`.
"""
import importlib

#: public name -> submodule that defines it (imported lazily)
_LAZY = {
    "Distribution": "..definition.distributions", "Uniform": "..definition.distributions",
    "TruncatedNormal": "..definition.distributions", "TruncatedStudentT": "..definition.distributions",
    "distribution_from_dict": "..definition.distributions",
    "TrainingSetConfig": "..definition.presets", "get_preset": "..definition.presets", "load_config": "..definition.presets",
    "available_presets": "..definition.presets", "PAPER_TRAINING_DISTRIBUTIONS": "..definition.presets",
    "PAPER_PRIOR_DISTRIBUTIONS": "..definition.presets",
    "generate_training_set": "trainingset", "read_training_set": "trainingset",
    "resolve_filters": "trainingset",
    "GenerationSummary": "trainingset", "WorkerDiedError": "trainingset",
    "describe_dropped": "trainingset",
    # TensorFlow side (imported only when one of these is used)
    "train_emulator": "train", "DroppedRowsWarning": "train", "evaluate_emulator": "evaluate",
    "export_emulator": "export", "stitch_emulators": "stitch", "train_stitched": "stitch",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        target = _LAZY[name]
        module = importlib.import_module(target, __package__) if target.startswith(".") \
            else importlib.import_module(f"{__name__}.{target}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
