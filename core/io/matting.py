"""A plate premultiplied by a separate matte, with the subject's own colour at the matte's edge.

Where a matte is partial (hair, a soft shoulder, motion blur) a plate shot without alpha holds a mix
of the subject and what stood behind it: ``I = a F + (1 - a) B``. Multiplying the plate by the matte
keeps ``a (1 - a) B`` of that background inside the premultiplied subject: a fringe of the old
background's colour (a green rim from a lawn, a grey glow from a backdrop) that every relit layer
carries and that shows once the subject is set over anything else. The premultiplied subject is
``a F``; ``F`` is estimated here by blur fusion (Forte and Pitie, "Approximate Fast Foreground Colour
Estimation", ICIP 2021): local means of the subject's and of the background's colours, taken over a
wide, a middle and a narrow window, and the compositing equation solved for ``F`` around them.

Measured on synthetic people with a true alpha composited over four backgrounds, the composite over
a new background in the matte's edge band gains 0.2-1.8 dB over the plate times the matte
(docs/portrait.md, section 20). pymatting's multilevel estimator was the library candidate: its
import JIT-compiles for about a minute wherever numba cannot write its cache (a read-only farm
install), and it brings numba and llvmlite to every install.
"""

from __future__ import annotations

import numpy as np

# box half-widths of the blur-fusion passes, as fractions of the plate's larger side (a 2K plate: 102, 20
# and 6 pixels); a middle pass halves the error under a soft edge a few percent of the frame wide
FOREGROUND_WINDOWS = (0.05, 0.01, 0.003)
_EPS = 1e-5  # guards the local means where a window holds no subject (or no background) at all


def _box(x: np.ndarray, half: int) -> np.ndarray:
    import cv2

    return cv2.blur(x, (2 * half + 1, 2 * half + 1), borderType=cv2.BORDER_REFLECT)


def foreground_colour(rgb: np.ndarray,    # [H, W, 3] scene-linear plate, not premultiplied
                      matte: np.ndarray,  # [H, W] in [0, 1]
                      ) -> np.ndarray:    # [H, W, 3] float32: the subject's colour F, >= 0
    """The subject's own colour under a partial matte (blur fusion); the plate itself where the matte
    is opaque. Linear in the plate: scene-linear values above 1 are kept."""
    a = np.clip(matte.astype(np.float32), 0.0, 1.0)[..., None]
    img = rgb.astype(np.float32)
    fg, bg = img, img
    for fraction in FOREGROUND_WINDOWS:
        half = max(1, int(round(fraction * max(a.shape[:2]))))
        blurred_a = _box(a[..., 0], half)[..., None]
        fg_mean = _box(fg * a, half) / (blurred_a + _EPS)
        bg = _box(bg * (1.0 - a), half) / (1.0 - blurred_a + _EPS)
        fg = np.maximum(fg_mean + a * (img - a * fg_mean - (1.0 - a) * bg), 0.0)
    return np.where(a >= 1.0, img, fg).astype(np.float32)


def premultiplied(rgb: np.ndarray,    # [H, W, 3] scene-linear plate, not premultiplied
                  matte: np.ndarray,  # [H, W] in [0, 1]
                  ) -> np.ndarray:    # [H, W, 3] float32: matte x the subject's colour
    """The plate premultiplied by a separate matte, its edge in the subject's colour, not the background's."""
    a = np.clip(matte.astype(np.float32), 0.0, 1.0)
    return (a[..., None] * foreground_colour(rgb, a)).astype(np.float32)
