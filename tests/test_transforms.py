"""The presets' depends_on transforms equal Prospector's, at fit-time speed."""
import numpy as np
import pytest
from prospect.models import transforms as stock

from prospect_emulator import transforms


def prospector_alpha_bins(n=7):
    bins = np.zeros((n, 2))
    bins[0] = [0.0, np.log10(3e7)]
    bins[1] = [np.log10(3e7), 8.0]
    return bins


@pytest.mark.parametrize("zred", [0.0, 0.5, 1.3, 3.0, 9.7])
def test_agebins_equal_prospector_and_are_cached_per_redshift(zred):
    template = prospector_alpha_bins()
    expected = stock.zred_to_agebins(zred=zred, agebins=template)
    first = transforms.zred_to_agebins(zred=np.array([zred]), agebins=template)
    np.testing.assert_array_equal(first, expected)
    # the model feeds the previous result back in: same bins, from the cache
    again = transforms.zred_to_agebins(zred=zred, agebins=first)
    np.testing.assert_array_equal(again, expected)
    again[:] = 0.0  # a caller modifying its copy does not corrupt the cache
    np.testing.assert_array_equal(transforms.zred_to_agebins(zred=zred, agebins=first), expected)


def test_masses_equal_prospector():
    rng = np.random.default_rng(3)
    bins = stock.zred_to_agebins(zred=1.0, agebins=prospector_alpha_bins())
    for _ in range(200):
        logmass, ratios = rng.uniform(6, 12.5), rng.standard_t(2, size=6) * 3
        np.testing.assert_allclose(
            transforms.logsfr_ratios_to_masses(logmass=logmass, logsfr_ratios=ratios, agebins=bins),
            stock.logsfr_ratios_to_masses(logmass=logmass, logsfr_ratios=ratios, agebins=bins),
            rtol=1e-13)


def test_emulated_model_uses_the_fast_equivalents_of_stock_transforms():
    assert transforms.FAST_EQUIVALENTS[id(stock.zred_to_agebins)][1] is transforms.zred_to_agebins
    assert (transforms.FAST_EQUIVALENTS[id(stock.logsfr_ratios_to_masses)][1]
            is transforms.logsfr_ratios_to_masses)
