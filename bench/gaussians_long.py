"""Dynamic 3DGS on a long performance (issue 30): one deformable model (a), independent segments (b)
and DifFRelight's K-frame model + segments (c) at equal total iterations, with (c)'s keyframe count,
K-frame share, warm-up share and keyframe tie on a grid.

The capture is a long `relit synth --motion performance` sequence (head turns of +-30 degrees,
nods, speech, a step forward), one camera held out. Each variant runs in a process of its own (so
its peak memory is its own) and leaves RESULTS/NAME.json; a rerun skips the finished ones, so a
study can span sessions. ``--report`` writes the section from what is there.

    python bench/gaussians_long.py --capture ~/relit-work/perf240 --frames 1-120 --budget 12000 \\
        --results ~/relit-work/bench/gs-long --variants a b:K=8 c:K=8 c:K=8,warmup=0 --report
    for n in 30 60 120 240; do python bench/gaussians_long.py --capture ~/relit-work/perf240 --frames 1-$n \
        --budget $((100 * n)) --results ~/relit-work/bench/gs-long --variants a c:K=$((n / 15 + 1)); done
    python bench/gaussians_long.py --capture ~/relit-work/perf240 --results ~/relit-work/bench/gs-long --growth

A variant: ``a`` | ``b:K=8`` | ``c:K=8,kframe=0.3,warmup=0.25,tie=100,anchor=0,source=kframe,ashare=0.25,aviews=8``,
each optionally with ``,seed=S`` and ``,scale=2`` (the budget times 2). Defaults: K 8, the K-frame
model 30 % of the budget, a warm-up of 25 % of each segment, tie 100, no anchor views (when on: a
quarter of the iterations on 8 orbit views, of the K-frame model), seed 0 (the tiny preset's
proportions).
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gaussians_sequence import HOLDOUT, evaluate  # noqa: E402
from bench.report import machine, write_section  # noqa: E402

SYNTH = ("relit synth --subject person --seed 100 --views 8 --frames 240 --motion performance --res 64 "
         "--samples 32 --no-olats --threads 1 --quiet -o CAPTURE")
KINDS = {"a": "one deformable model", "b": "independent segments", "c": "K-frame model + segments"}


@dataclass(frozen=True)
class Variant:
    kind: str                 # a key of KINDS
    keyframes: int = 8        # b, c: keyframes, first and last included (segments = keyframes - 1)
    kframe: float = 0.3       # c: share of the budget for the K-frame model
    warmup: float = 0.25      # c: share of each segment's iterations with the Gaussians frozen and tied
    tie: float = 100.0        # c: weight of the keyframe tie during the warm-up
    anchor: float = 0.0       # c: weight of the image tie to the K-frame model's keyframe renders from orbit views,
                              # after the warm-up (ReconConfig.anchor_weight; 0: off)
    source: str = "kframe"    # c: what the anchor views show (ReconConfig.anchor_source: kframe | neighbours)
    ashare: float = 0.25      # c: share of a segment's iterations after the warm-up on anchor views
    aviews: int = 8           # c: orbit views (each rendered at the tied keyframes)
    overlap: int = 0          # b, c: frames a segment also trains on past each keyframe, dissolved over
                              # (ReconConfig.overlap; 0: a cut at the keyframe)
    scale: float = 1.0        # the budget times this
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> "Variant":
        kind, _, rest = text.partition(":")
        if kind not in KINDS:
            raise SystemExit(f"variant {text!r}: the kind is one of {sorted(KINDS)}")
        fields = {"K": "keyframes"}
        kw = {}
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            key = fields.get(key, key)
            if key not in cls.__dataclass_fields__ or key == "kind":
                raise SystemExit(f"variant {text!r}: unknown setting {key!r}")
            kw[key] = type(getattr(cls, key))(value)
        return cls(kind, **kw)

    @property
    def name(self) -> str:
        """The spec that parses back to this variant: K always (b, c), other settings where not default."""
        applies = {"a": ("scale", "seed"), "b": ("keyframes", "scale", "seed", "overlap")}.get(
            self.kind, tuple(asdict(self))[1:])
        default = Variant(self.kind)
        parts = [("K" if k == "keyframes" else k) + "=" + (f"{v:g}" if isinstance(v, float) else str(v))
                 for k, v in asdict(self).items()
                 if k in applies and (k == "keyframes" or v != getattr(default, k))]
        return self.kind + (":" + ",".join(parts) if parts else "")

    def iterations(self, budget: int) -> tuple[int, int, int]:
        """(K-frame model, per segment, warm-up per segment) iterations of a total ``budget``."""
        total = round(budget * self.scale)
        if self.kind == "a":
            return 0, total, 0
        segments = self.keyframes - 1
        if self.kind == "b":
            return 0, total // segments, 0
        kframe = round(total * self.kframe)
        per = (total - kframe) // segments
        return kframe, per, round(per * self.warmup)


def run(variant: Variant, capture_path: Path, frames: list[int], budget: int, out: Path) -> None:
    """Train and score one variant; write its row to ``out``."""
    import torch

    from core.data.capture import CaptureSet
    from core.gaussians.train import load_views, preset, reconstruct, single_model

    torch.set_num_threads(1)
    capture = CaptureSet(capture_path)
    kframe, per, warm = variant.iterations(budget)
    cfg = preset("tiny", keyframes=variant.keyframes, holdout_cameras=[HOLDOUT], frames=frames, seed=variant.seed,
                 kframe_iterations=kframe, segment_iterations=per, warmup=warm, tie_weight=variant.tie,
                 anchor_weight=variant.anchor, anchor_source=variant.source, anchor_share=variant.ashare,
                 anchor_views=variant.aviews, overlap=variant.overlap)
    views = load_views(capture, cfg.resolution, frames)
    cam = views.cameras.index(HOLDOUT)
    start, cpu = time.perf_counter(), time.process_time()
    if variant.kind == "a":
        recon = single_model(views, cfg, per)
    else:
        recon = reconstruct(views, cfg, kframe_init=variant.kind == "c")
    # wall time counts what else the machine ran (and a paused run); CPU time, one torch thread, does not
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    row = {"variant": variant.name, **asdict(variant), "frames": [frames[0], frames[-1]], "budget": budget,
           "iterations": {"kframe": kframe, "segment": per, "warmup": warm}, "seconds": seconds,
           "cpu_seconds": cpu_seconds,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "gaussians": max(len(m.params["means"]) for m in recon.segments), **evaluate(recon, views, capture, cam)}
    if variant.kind == "c":  # the K-frame model alone over every frame: the start each segment gets
        alone = replace(recon, segments=[recon.kframe])
        row["kframe_alone_psnr"] = evaluate(alone, views, capture, cam)["psnr"]
    out.parent.mkdir(parents=True, exist_ok=True)
    width, height = views.size
    with torch.no_grad():  # the held-out camera at every frame, for the contact sheets
        renders = [recon.render(f, views.viewmats[cam:cam + 1], views.Ks[cam:cam + 1], width, height)[0][0].numpy()
                   for f in views.frames]
    np.savez_compressed(out.with_suffix(".npz"), frames=np.array(views.frames), renders=np.stack(renders))
    out.write_text(json.dumps(row, indent=1) + "\n")


SHOWN = 6  # frames of the held-out camera on the contact sheet


def sheet(results: Path, capture_path: Path, out: Path) -> None:
    """Cycles' held-out frames above every variant's renders of them (the variants that saved them;
    SHOWN frames spread over the sequence, of every frame saved or of the few earlier runs kept)."""
    from core.data.capture import CaptureSet
    from core.io.preview import contact_sheet

    saved = {p.stem: np.load(p) for p in sorted(results.glob("*.npz"))}
    if not saved:
        return
    frames = sorted(set.intersection(*(set(d["frames"].tolist()) for d in saved.values())))
    frames = [frames[i] for i in np.linspace(0, len(frames) - 1, min(SHOWN, len(frames))).round().astype(int)]
    capture = CaptureSet(capture_path)
    tiles = [(f"Cycles {f}", capture.flat(HOLDOUT, f).rgb, 0.0) for f in frames]
    for stem, data in saved.items():
        index = {f: i for i, f in enumerate(data["frames"].tolist())}
        tiles += [(f"{stem} {f}", data["renders"][index[f]], 0.0) for f in frames]
    contact_sheet(out, tiles, len(frames), title=f"held-out {HOLDOUT}: Cycles, then each variant", scale=3)


def seam_strip(results: Path, capture_path: Path, key: int, out: Path, span: int = 3, gain: float = 4.0) -> None:
    """Frames ``key - span`` .. ``key + span`` of the held-out camera around a keyframe: Cycles, then for
    each variant that saved every frame its renders and, below, the change from the previous frame
    (absolute, times ``gain``): a cut shows its jump in one column, a dissolve spreads it."""
    from core.data.capture import CaptureSet
    from core.io.preview import contact_sheet

    frames = list(range(key - span, key + span + 1))
    capture = CaptureSet(capture_path)
    truth = {f: capture.flat(HOLDOUT, f).rgb for f in [frames[0] - 1] + frames}
    tiles = [(f"Cycles {f}", truth[f], 0.0) for f in frames]
    tiles += [(f"Cycles change {f}", gain * np.abs(truth[f] - truth[f - 1]), 0.0) for f in frames]
    for p in sorted(results.glob("*.npz")):
        data = np.load(p)
        index = {f: i for i, f in enumerate(data["frames"].tolist())}
        if not all(f in index for f in [frames[0] - 1] + frames):
            continue  # an earlier run that kept a few frames only
        r = data["renders"]
        tiles += [(f"{p.stem} {f}", r[index[f]], 0.0) for f in frames]
        tiles += [(f"change {f}", gain * np.abs(r[index[f]] - r[index[f - 1]]), 0.0) for f in frames]
    contact_sheet(out, tiles, len(frames), title=f"held-out {HOLDOUT} around keyframe {key}: renders, and the "
                  f"change from the previous frame x{gain:g}", scale=3)


def _cell(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(np.mean(values), fmt)} ± {format(np.std(values), fmt)}"


def report(results: Path, section: str, command: str, capture: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    if not rows:
        raise SystemExit(f"{results}: no results yet")
    groups: dict[str, list[dict]] = {}  # the seeds of one variant together
    for r in rows:
        groups.setdefault(replace(Variant.parse(r["variant"]), seed=0).name, []).append(r)
    truth_warp = _truth_warp(capture, rows[0]["frames"])
    lines = ["| variant | seeds | iterations: K-frame / per segment (warm-up) | held-out PSNR (dB) | worst frame | "
             "SSIM | pop at boundaries | seam jump | warping error | K-frame model alone (dB) | Gaussians | time | "
             "peak RSS |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, rs in sorted(groups.items(), key=lambda kv: (kv[1][0]["scale"], kv[0])):
        it = rs[0]["iterations"]
        kind = rs[0]["kind"]
        iters = (f"— / {it['segment']} (one model)" if kind == "a" else
                 f"— / {it['segment']} x {rs[0]['keyframes'] - 1}" if kind == "b" else
                 f"{it['kframe']} / {it['segment']} x {rs[0]['keyframes'] - 1} ({it['warmup']})")
        alone = [r["kframe_alone_psnr"] for r in rs if "kframe_alone_psnr" in r]
        seams = [100 * r["seam"] for r in rs if "seam" in r]  # rows scored before the measure have none
        seam = _cell(seams, ".2f") + " %" if seams and kind != "a" else "—"  # one model has no seam
        lines.append(
            f"| {KINDS[kind]} `{name}` | {len(rs)} | {iters} | {_cell([r['psnr'] for r in rs], '.2f')} | "
            f"{_cell([min(r['psnr_frames']) for r in rs], '.2f')} | {_cell([r['ssim'] for r in rs], '.3f')} | "
            f"{_cell([100 * r['pop'] for r in rs], '.2f')} % | {seam} | "
            f"{_cell([100 * r['warp'] for r in rs], '.2f')} % | "
            f"{_cell(alone, '.2f') if alone else '—'} | {max(r['gaussians'] for r in rs)} | "
            f"{_cell([r['seconds'] / 60 for r in rs], '.1f')} min | {max(r['peak_rss_mb'] for r in rs):.0f} MB |")
    first, last = rows[0]["frames"]
    body = f"""## Dynamic 3DGS on a long performance (`{command}`)

Machine: {machine()}, one torch thread per run. Data: `{SYNTH.replace('CAPTURE', str(capture))}`
(Cycles, flat-lit with true motion; 8 cameras of a head-and-shoulders person; head turns of +-30
degrees, nods, speech at syllable rate, a 12 cm step forward), frames {first}-{last}, trained at 64
px on 7 cameras, `{HOLDOUT}` held out; preset `tiny` otherwise. Every row of one budget gets the same
total iterations. Scores on the held-out camera over every frame, whole image: PSNR (mean, and the
worst frame) and SSIM against Cycles; *pop*: mean absolute difference, relative to the mean, between
the two segments meeting at a keyframe rendering it; *seam jump*: what a viewer sees there, the largest
warping error of a transition where the render changes segment (a cut: into the keyframe; a dissolve,
`overlap=N`: each of its 2N steps) less the median transition's elsewhere (— : scored before the
measure); *warping error*: consecutive renders compared
along Cycles' true motion (the ground truth's own: {100 * truth_warp:.2f} %). Seeds: mean ± standard
deviation.

{chr(10).join(lines)}
"""
    write_section(section, body)
    return body


def _per(total: float | None, count: int) -> str:
    return "—" if total is None else f"{total / count:.2f}"


def growth(results_root: Path, section: str, command: str) -> str:
    """Cost as the sequence grows: every study folder of ``results_root`` (one per frame range and
    budget), its one-model row (a) beside its K-frame + segments rows (c): seconds and iterations per
    frame, peak memory, held-out PSNR."""
    lines = ["| frames | variant | iterations | CPU seconds per frame | wall seconds per frame | peak RSS | "
             "held-out PSNR (dB) | pop |", "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    found = []
    for folder in results_root.glob("frames*_budget*"):
        for path in sorted(folder.glob("*.json")):
            r = json.loads(path.read_text())
            if r["kind"] in ("a", "c") and r["seed"] == 0 and r["scale"] == 1.0:
                found.append(r)
    if not found:
        raise SystemExit(f"{results_root}: no study folders with (a) or (c) rows")
    for r in sorted(found, key=lambda r: (r["frames"][1] - r["frames"][0], r["kind"], r["keyframes"])):
        count = r["frames"][1] - r["frames"][0] + 1
        lines.append(f"| {count} | {KINDS[r['kind']]} `{r['variant']}` | {r['budget']} | "
                     f"{_per(r.get('cpu_seconds'), count)} | {r['seconds'] / count:.2f} | {r['peak_rss_mb']:.0f} MB | "
                     f"{r['psnr']:.2f} | "
                     f"{100 * r['pop']:.2f} % |")
    body = f"""## Dynamic 3DGS: cost as the sequence grows (`{command}`)

Machine: {machine()}, one torch thread per run, each run in a process of its own (its peak memory is
its own). CPU time is the cost (— : a run from before it was recorded); wall time also counts whatever
else shared the machine, or a run paused. The studies of `bench/gaussians_long.py` over growing ranges of the same performance, the
budget growing with the frames; held-out camera `{HOLDOUT}`.

{chr(10).join(lines)}
"""
    write_section(section, body)
    return body


def _truth_warp(capture_path: Path, span: list[int]) -> float:
    from core.data.capture import CaptureSet
    from core.temporal.metrics import warping_error

    capture = CaptureSet(capture_path)
    frames = [f.frame for f in capture.manifest.frames if span[0] <= f.frame <= span[1]]
    imgs = [capture.flat(HOLDOUT, f) for f in frames]
    return warping_error([i.rgb for i in imgs], [capture.motion(HOLDOUT, f)[0] for f in frames],
                         [i.alpha for i in imgs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", type=Path, required=True, help=f"made by: {SYNTH}")
    ap.add_argument("--frames", default="1-120", help="the capture's frames to reconstruct")
    ap.add_argument("--budget", type=int, default=12000, help="total iterations of every variant (times its scale)")
    ap.add_argument("--results", type=Path, required=True,
                    help="one JSON per finished variant, in a folder per frame range and budget")
    ap.add_argument("--variants", nargs="*", default=["a", "b:K=8", "c:K=8"])
    ap.add_argument("--report", action="store_true", help="write the docs/benchmarks.md section afterwards")
    ap.add_argument("--section", default="gaussians-long")
    ap.add_argument("--sheet", type=Path, help="with --report: a contact sheet PNG of the held-out camera")
    ap.add_argument("--strip", nargs=2, metavar=("KEYFRAME", "PNG"),
                    help="with --report: the held-out camera's frames around KEYFRAME and their change from frame "
                         "to frame, for every variant that saved all its frames")
    ap.add_argument("--growth", action="store_true",
                    help="write the cost-growth section from every study folder under --results, and stop")
    ap.add_argument("--run", help=argparse.SUPPRESS)  # one variant, in this process (what the driver spawns)
    args = ap.parse_args()
    from core.io.sequence import parse_frame_range

    frames = parse_frame_range(args.frames)
    if args.growth:
        command = "python bench/gaussians_long.py " + shlex.join(sys.argv[1:])
        print(growth(args.results, "gaussians-growth", command))
        return
    if not (args.capture / "manifest.json").exists():
        raise SystemExit(f"{args.capture}: no capture set; make it with: {SYNTH.replace('CAPTURE', str(args.capture))}")
    results = args.results / f"frames{frames[0]}-{frames[-1]}_budget{args.budget}"  # one study per range and budget
    if args.run:
        variant = Variant.parse(args.run)
        run(variant, args.capture, frames, args.budget, results / f"{_file(variant.name)}.json")
        return
    for text in args.variants:
        variant = Variant.parse(text)
        out = results / f"{_file(variant.name)}.json"
        if out.exists():
            continue
        print(f"{variant.name}: training", flush=True)
        subprocess.run([sys.executable, __file__, "--capture", str(args.capture), "--frames", args.frames,
                        "--budget", str(args.budget), "--results", str(args.results), "--run", variant.name],
                       check=True)
    if args.report:
        command = "python bench/gaussians_long.py " + shlex.join(sys.argv[1:])
        print(report(results, args.section, command, args.capture))
        if args.sheet:
            sheet(results, args.capture, args.sheet)
        if args.strip:
            seam_strip(results, args.capture, int(args.strip[0]), Path(args.strip[1]))


def _file(name: str) -> str:
    return name.replace(":", "_").replace(",", "_").replace("=", "")


if __name__ == "__main__":
    main()
