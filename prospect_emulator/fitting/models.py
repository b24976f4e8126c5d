"""The Prospector model of a fit: the one the emulator was trained for.

Every fit builds its model from the emulator's stored model definition
(:mod:`prospect_emulator.definition.fitting_model`): the same inputs, fixed
physics and ``depends_on`` transforms as the training set, with the fitting
priors (Table 1's prior column for the continuity presets, the
``parametric_sfh`` template's for the parametric one), never wider than the
training ranges.
"""
__all__ = ["fitting_model_params", "build_fitting_model"]


def fitting_model_params(zred=None, emulator=None, definition=None, **overrides):
    """``model_params`` for fitting with an emulator.

    Parameters
    ----------
    zred : float, optional
        Fix the redshift (the continuity SFH bins follow it); default free
        over the training range.
    emulator : Emulator, StitchedEmulator, path or shipped name, optional
        Whose model definition and training ranges to use (default: the
        shipped ``"default"`` emulator).
    definition : TrainingSetConfig, optional
        A model definition to use instead of the emulator's (training ranges
        from its distributions); for SPS fits of the same model.
    **overrides
        Per parameter: a value (fixed) or a dict updating its specification.

    Returns
    -------
    dict
    """
    if definition is not None:
        from ..definition.fitting_model import fitting_model_params as from_definition
        return from_definition(definition, zred=zred, **overrides)
    from ..definition.fitting_model import emulator_model_params
    from ..prospector.model import _as_emulator
    return emulator_model_params(_as_emulator(emulator), zred=zred, **overrides)


def build_fitting_model(emulator=None, zred=None, **overrides):
    """An :class:`~prospect_emulator.EmulatedSpecModel` for one object:
    :meth:`EmulatedSpecModel.from_emulator <prospect_emulator.EmulatedSpecModel.from_emulator>`.

    Parameters
    ----------
    emulator : Emulator, StitchedEmulator, path or shipped name, optional
    zred : float, optional
        The object's redshift (fixed); default free.
    **overrides
        See :func:`fitting_model_params`.
    """
    from ..prospector import EmulatedSpecModel
    return EmulatedSpecModel.from_emulator(emulator, zred=zred, **overrides)
