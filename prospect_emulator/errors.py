"""Exception classes.

Prospector's ``lnprobfn`` turns a ``ValueError`` raised while predicting the
model into ``-inf``.  That is the right fate for a proposal outside the
emulator's training range, so :class:`OutOfTrainingRangeError` derives from
``ValueError``.  Everything else here is a mistake in the set-up (unknown
filter, missing parameter, NaN input, unreadable file) and deliberately does
*not* derive from ``ValueError``, so that it reaches the user through
``lnprobfn`` and ``fit_model`` instead of silently becoming ``-inf``.
"""

__all__ = ["EmulatorError", "EmulatorConfigurationError", "NonFiniteInputError",
           "OutOfTrainingRangeError", "EmulatorFileError"]


class EmulatorError(Exception):
    """Base class of every error raised by prospect-emulator."""


class EmulatorConfigurationError(EmulatorError):
    """The emulator cannot serve the request: unknown filter, missing input
    parameter, spectrum asked of a photometric emulator, inconsistent members."""


class NonFiniteInputError(EmulatorError):
    """An emulator input is NaN or infinite."""


class OutOfTrainingRangeError(EmulatorError, ValueError):
    """An input lies outside the emulator's training range.

    Subclasses ``ValueError`` on purpose: inside ``prospect.fitting.lnprobfn``
    such a proposal gets ``ln p = -inf`` instead of an extrapolated model.
    """


class EmulatorFileError(EmulatorError, OSError):
    """A file is missing, unreadable, corrupt, of a foreign format or of an
    unsupported schema version."""
