"""PNG previews of scene-linear images, encoded through an OpenColorIO display and view.

Every preview says which view transform made it: in its labels' caption and in
the PNG's ``Description``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .colour import config, resolve

DISPLAY = "sRGB - Display"
VIEW = "Un-tone-mapped"


def display_encode(rgb: np.ndarray,          # [H, W, 3] scene-linear in ``space``
                   space: str = "lin_rec709",
                   exposure: float = 0.0,    # stops applied before the view
                   view: str = VIEW,
                   ) -> np.ndarray:          # [H, W, 3] float in [0, 1], display-encoded
    import PyOpenColorIO as ocio

    cfg = config()
    transform = ocio.DisplayViewTransform(src=resolve(space), display=DISPLAY, view=view)
    processor = cfg.getProcessor(transform).getDefaultCPUProcessor()
    px = np.ascontiguousarray(rgb * (2.0 ** exposure), dtype=np.float32).copy()
    flat = px.reshape(-1, 3)
    processor.applyRGB(flat)
    return np.clip(flat.reshape(px.shape), 0.0, 1.0)


def contact_sheet(path: str | Path,
                  tiles: list[tuple[str, np.ndarray, float]],  # (label, [H, W, 3] linear, exposure stops)
                  columns: int,
                  title: str = "",
                  space: str = "lin_rec709",
                  scale: int = 1,
                  view: str = VIEW) -> Path:
    """A labelled grid of display-encoded tiles, written atomically as PNG."""
    import OpenImageIO as oiio

    h, w = tiles[0][1].shape[:2]
    h, w = h * scale, w * scale
    label_h, head_h = 14, 20
    rows = -(-len(tiles) // columns)
    sheet = oiio.ImageBuf(oiio.ImageSpec(columns * w, head_h + rows * (h + label_h), 3, "float"))
    caption = f"{title}  [view: {DISPLAY} / {view}]".strip()
    oiio.ImageBufAlgo.render_text(sheet, 4, 14, caption, 12, "", (1, 1, 1))
    for i, (label, rgb, exposure) in enumerate(tiles):
        img = display_encode(rgb, space, exposure, view)
        if scale > 1:
            img = np.kron(img, np.ones((scale, scale, 1)))
        r, c = divmod(i, columns)
        x, y = c * w, head_h + r * (h + label_h)
        tile = oiio.ImageBuf(oiio.ImageSpec(w, h, 3, "float"))
        tile.set_pixels(oiio.ROI(0, w, 0, h), img.astype(np.float32))
        oiio.ImageBufAlgo.paste(sheet, x, y + label_h, 0, 0, tile)
        text = label + (f" ({exposure:+.1f} EV)" if exposure else "")
        oiio.ImageBufAlgo.render_text(sheet, x + 3, y + 11, text, 10, "", (0.9, 0.9, 0.6))
    sheet.specmod().attribute("ImageDescription", caption)
    with atomic_path(path) as tmp:
        if not sheet.write(str(tmp), "uint8"):
            raise OSError(f"{path}: {sheet.geterror()}")
    return Path(path)
