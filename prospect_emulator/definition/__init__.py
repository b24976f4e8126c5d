"""The model definition: one description of the physical model, shared by
training, fitting and amortized inference.

* :mod:`.distributions` -- training and prior distributions (Table 1);
* :mod:`.presets` -- the shipped model definitions (``default``, ``paper18``,
  ``parametric``): emulator inputs, fixed SPS physics, ``depends_on``
  transforms, training distributions and priors.

This layer sits below :mod:`prospect_emulator.training` and
:mod:`prospect_emulator.fitting`; it imports neither (nor TensorFlow).
"""
