"""The automatic matte against a true alpha: synthetic people (Cycles renders with hair, alpha from the
render) composited over real backgrounds, matted as ``relit relight`` mattes a plate without alpha,
and set over another background as a comp does.

    python bench/matte_edges.py --renders RENDERS [RENDERS ...] [--sheet docs/matte_auto.jpg]

RENDERS: capture sets of ``relit synth --subject person --seed S --views 8 --frames 1 --res 384
--samples 64 --no-olats`` (every flat-lit view is one plate). Backgrounds: scikit-image's ``rocket``
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
    return {
        "grey guide, the frame once (before)": replace(base, colour_guide=False, crop_margin=None),
        "grey guide, person's box segmented again": replace(base, colour_guide=False, crop_margin=0.15),
        "colour guide, the frame once": replace(base, colour_guide=True, crop_margin=None),
        "colour guide, person's box segmented again": replace(base, colour_guide=True, crop_margin=0.15),
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


def run(renders: list[Path], sheet: Path | None) -> str:
    from core.errors import ValidationError
    from core.io.matting import premultiplied
    from core.portrait.matte import auto_matte

    plates = _plates(renders)
    size = plates[0][1].shape[0]
    backgrounds = _backgrounds(size)
    settings = _settings()
    scores = {name: {"frame": [], "band": [], "psnr": [], "time": 0.0, "missed": 0} for name in settings}
    tiles = []
    for index, (name, subject, alpha) in enumerate(plates):
        band = _band(alpha)
        truth = subject + (1.0 - alpha[..., None]) * NEW_BACKGROUND
        for bg_name, bg in backgrounds.items():
            plate = subject + (1.0 - alpha[..., None]) * bg  # a photo of the person before that background
            row = [plate]
            for setting_name, setting in settings.items():
                start = time.process_time()
                try:
                    matte = auto_matte(plate, f"{name} over {bg_name}", settings=setting)
                except ValidationError:  # no face found on this composite: the same for every setting
                    scores[setting_name]["missed"] += 1
                    row.append(np.zeros_like(plate))
                    continue
                scores[setting_name]["time"] += time.process_time() - start
                over = premultiplied(plate, matte) + (1.0 - matte[..., None]) * NEW_BACKGROUND
                err = np.abs(matte - alpha)
                scores[setting_name]["frame"].append(float(err.mean()))
                scores[setting_name]["band"].append(float(err[band].mean()))
                scores[setting_name]["psnr"].append(_psnr(over[band], truth[band]))
                row.append(over)
            if bg_name in SHEET_ROWS.get(index, ()):
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
    count = len(plates) * len(backgrounds)
    lines = [f"{len(plates)} views x {len(backgrounds)} backgrounds ({', '.join(backgrounds)}), {size} px; "
             f"{machine()}. The band: where the true alpha is partial or its edge lies, grown by 2 % of the frame.",
             "",
             "| matte setting | alpha error, frame | alpha error, band | comp over dark blue, band "
             "| CPU s per matte | no face |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for setting_name, s in scores.items():
        found = max(1, len(s["frame"]))
        lines.append(f"| {setting_name} | {np.mean(s['frame']):.4f} | {np.mean(s['band']):.4f} | "
                     f"{np.mean(s['psnr']):.2f} dB | {s['time'] / found:.2f} | {s['missed']} of {count} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renders", type=Path, nargs="+", required=True)
    ap.add_argument("--sheet", type=Path, help="a contact sheet: the plate, then each setting's comp over dark blue")
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
