"""Light colour temperature (Blender's light temperature) -> linear RGB."""

import numpy as np


def test_blackbody_is_white_near_d65_warm_below_and_cool_above():
    from core.lighting.blackbody import LUMINANCE, blackbody_rgb, planck_xy

    # the locus passes 6504 K at about D65's chromaticity (0.3127, 0.3290) - the fits' accuracy
    x, y = planck_xy(6504)
    assert abs(x - 0.3127) < 0.002 and abs(y - 0.3290) < 0.006
    np.testing.assert_allclose(blackbody_rgb(6504), 1.0, atol=0.06)
    warm, cool = blackbody_rgb(2700), blackbody_rgb(12000)
    assert warm[0] > warm[1] > warm[2] and cool[2] > cool[1] > cool[0]
    for rgb in (warm, cool):
        assert abs(float(rgb @ LUMINANCE) - 1.0) < 1e-12
