"""Running fits: derived quantities, the bundled demo and catalogue fits.

:func:`load_fit` reads a fit back (results, obs and the rebuilt model);
:func:`fit_quality` is the quality record every fit carries.
"""
from .quality import fit_quality
from .results import load_fit

__all__ = ["load_fit", "fit_quality"]
