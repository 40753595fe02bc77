"""The automatic matte against a true alpha: synthetic people (Cycles renders with hair, alpha from the
render) composited over real backgrounds, matted as ``relit relight`` mattes a plate without alpha,
and set over another background as a comp does.

    python bench/matte_edges.py --renders RENDERS [RENDERS ...] [--sheet docs/matte_auto.jpg]

RENDERS: capture sets of ``relit synth --subject person --seed S --views 4 --frames 1 --res 384
--samples 64 --no-olats`` (every flat-lit view found is one plate). Backgrounds: scikit-image's ``rocket``
(a night sky, towers and lamps) and ``grass`` tinted as a lawn (no faces in either: a background face
would be matted instead), a mid-grey backdrop and a dark green one (foliage at a dark subject's
brightness). Each matte setting (core.portrait.matte.
MatteSettings) is scored by its alpha's mean absolute error over the frame and in the band where the
true alpha is partial or the edge lies (the true matte's boundary grown by 2 % of the frame), and by
the PSNR, in that band, of the premultiplied subject (core.io.matting) set over dark blue against the
truth set over it.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402

NEW_BACKGROUND = np.array([0.02, 0.03, 0.3], np.float32)  # dark blue: what the subject is set over
# the sheet's rows: plate index -> its backgrounds shown (the first view over each; the second, whose neck the
# segmenter doubts, over two)
SHEET_ROWS = {0: ("rocket", "grass", "grey", "dark green"), 1: ("rocket", "grass")}


def _settings():
    from core.portrait.matte import MatteSettings

    base = MatteSettings()
    before = replace(base, colour_guide=False, crop_margin=None, guide_eps=1e-3, clip=(0.0, 1.0))
    unclipped = replace(base, clip=(0.0, 1.0))
    return {
        "grey guide, the frame once, eps 1e-3, unclipped (before)": before,
        "grey guide, the frame once, eps 3e-4": replace(before, guide_eps=3e-4),
        "grey guide, the person's square again, eps 1e-3": replace(before, crop_margin=base.crop_margin),
        "colour guide, the frame once, eps 1e-3": replace(before, colour_guide=True),
        "colour guide, the person's square again, eps 1e-3": replace(unclipped, guide_eps=1e-3),
        "colour guide, the person's square again, eps 3e-4": replace(unclipped, guide_eps=3e-4),
        "colour guide, the person's square again, eps 1e-4": unclipped,
        "colour guide, the person's square again, eps 3e-5": replace(unclipped, guide_eps=3e-5),
        "the same at eps 1e-4, clipped at 0.05 / 0.95": replace(base, clip=(0.05, 0.95)),
        f"the same, clipped at {base.clip[0]:g} / {base.clip[1]:g} (the default)": base,
    }


def _backgrounds(size: int) -> dict[str, np.ndarray]:  # name -> [size, size, 3] linear
    from skimage import data

    from core.io.colour import convert
    from core.io.images import resize

    out = {}
    for name in ("rocket", "grass"):
        u8 = getattr(data, name)()
        if u8.ndim == 2:  # grass is grey: tinted as a lawn
            u8 = (u8[..., None] * np.array([0.45, 0.75, 0.3])).astype(np.uint8)
        h, w = u8.shape[:2]
        side = min(h, w)
        square = u8[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        lin = convert(square.astype(np.float32) / 255.0, "srgb", "lin_rec709")
        out[name] = resize(np.ascontiguousarray(lin, np.float32), size, size, "box")
    out["grey"] = np.full((size, size, 3), 0.18, np.float32)
    out["dark green"] = np.broadcast_to(np.array([0.02, 0.05, 0.015], np.float32), (size, size, 3)).copy()
    return out


def _plates(renders: list[Path]) -> list[tuple[str, np.ndarray, np.ndarray]]:  # (name, premultiplied, alpha)
    from core.io.plates import read_plate

    out = []
    for folder in renders:
        for path in sorted(folder.glob("flat/cam*/flat.*.exr")):
            plate = read_plate(path)
            out.append((f"{folder.name}/{path.parent.name}", plate.rgb, plate.alpha))
    if not out:
        raise SystemExit(f"no flat-lit views under {', '.join(map(str, renders))}; render them with the command "
                         "in this script's docstring")
    return out


def _band(alpha: np.ndarray) -> np.ndarray:  # [H, W] -> [H, W] bool: the true edge and around it
    import cv2

    grow = max(1, int(round(0.02 * max(alpha.shape))))
    edge = ((alpha > 0.02) & (alpha < 0.98)).astype(np.uint8)
    boundary = cv2.morphologyEx((alpha > 0.5).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    return cv2.dilate(edge | boundary, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12)))


def _placed(subject: np.ndarray, alpha: np.ndarray, scale: int, index: int
            ) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """The render in a frame ``scale`` times its size, standing at the bottom (its shoulders run off the
    frame, as in a portrait), left, centre or right by ``index``; and where it lies."""
    size = alpha.shape[0]
    if scale == 1:
        return subject, alpha, (slice(0, size), slice(0, size))
    frame = scale * size
    x = (frame - size) // 2 + (index % 3 - 1) * (frame - size) // 3
    where = (slice(frame - size, frame), slice(x, x + size))
    big, big_alpha = np.zeros((frame, frame, 3), np.float32), np.zeros((frame, frame), np.float32)
    big[where], big_alpha[where] = subject, alpha
    return big, big_alpha, where


def run(renders: list[Path], sheet: Path | None, scales: tuple[int, ...] = (1, 2)) -> str:
    from core.errors import ValidationError
    from core.io.matting import premultiplied
    from core.portrait.matte import auto_matte

    plates = _plates(renders)
    size = plates[0][1].shape[0]
    settings = _settings()
    scores = {(scale, name): {"frame": [], "band": [], "psnr": [], "time": 0.0, "missed": 0}
              for scale in scales for name in settings}
    tiles = []
    for scale in scales:
        backgrounds = _backgrounds(scale * size)
        for index, (name, rendered, rendered_alpha) in enumerate(plates):
            subject, alpha, where = _placed(rendered, rendered_alpha, scale, index)
            band = _band(alpha)
            truth = subject + (1.0 - alpha[..., None]) * NEW_BACKGROUND
            for bg_name, bg in backgrounds.items():
                plate = subject + (1.0 - alpha[..., None]) * bg  # a photo of the person before that background
                row = [plate[where]]
                for setting_name, setting in settings.items():
                    score = scores[scale, setting_name]
                    start = time.process_time()
                    try:
                        matte = auto_matte(plate, f"{name} over {bg_name}", settings=setting)
                    except ValidationError:  # no face found on this composite: the same for every setting
                        score["missed"] += 1
                        row.append(np.zeros_like(plate[where]))
                        continue
                    score["time"] += time.process_time() - start
                    over = premultiplied(plate, matte) + (1.0 - matte[..., None]) * NEW_BACKGROUND
                    err = np.abs(matte - alpha)
                    score["frame"].append(float(err.mean()))
                    score["band"].append(float(err[band].mean()))
                    score["psnr"].append(_psnr(over[band], truth[band]))
                    row.append(over[where])
                if scale == max(scales) and bg_name in SHEET_ROWS.get(index, ()):
                    tiles.append(np.concatenate(row, axis=1))
    if sheet is not None and tiles:
        from core.portrait.matte import display_rgb8
        import OpenImageIO as oiio

        img = display_rgb8(np.concatenate(tiles, axis=0))
        out = oiio.ImageOutput.create(str(sheet))
        spec = oiio.ImageSpec(img.shape[1], img.shape[0], 3, oiio.UINT8)
        spec.attribute("Compression", "jpeg:92")  # a .jpg sheet: a tenth of the PNG's size
        out.open(str(sheet), spec)
        out.write_image(img)
        out.close()
    count = len(plates) * len(_backgrounds(size))
    lines = [f"{len(plates)} views x {count // len(plates)} backgrounds (rocket, grass, grey, dark green); "
             f"{machine()}. *Fills the frame*: the {size}-px render as it is; *a quarter of the frame*: the render "
             f"standing at the bottom of a frame twice its size (left, centre or right), as a portrait on a "
             "larger plate. The band: where the true alpha is partial or its edge lies, grown by 2 % of the frame.",
             "",
             "| person | matte setting | alpha error, frame | alpha error, band | comp over dark blue, band "
             "| CPU s per matte | no face |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for (scale, setting_name), s in scores.items():
        found = max(1, len(s["frame"]))
        layout = "fills the frame" if scale == 1 else "a quarter of the frame" if scale == 2 else f"1/{scale * scale}"
        lines.append(f"| {layout} | {setting_name} | {np.mean(s['frame']):.4f} | {np.mean(s['band']):.4f} | "
                     f"{np.mean(s['psnr']):.2f} dB | {s['time'] / found:.2f} | {s['missed']} of {count} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renders", type=Path, nargs="+", required=True)
    ap.add_argument("--sheet", type=Path, help="a contact sheet (the person in a quarter of the frame): the plate, "
                    "then each setting's comp over dark blue")
    ap.add_argument("--section", default="matte-edges")
    args = ap.parse_args()
    table = run(args.renders, args.sheet)
    command = "python bench/matte_edges.py --renders " + " ".join(str(r) for r in args.renders)
    if args.sheet:
        command += f" --sheet {args.sheet}"
    write_section(args.section, f"## The automatic matte against a true alpha (`{command}`)\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
