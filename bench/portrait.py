"""The portrait model's training ablations: held-out people, each candidate over seeds, at every
validation step of its runs (``relit train --conditioning envmap`` writes them to metrics.jsonl).

    python bench/portrait.py --runs RUNS_DIR --section portrait-ablation
    python bench/portrait.py --sheet RUN --out docs/portrait_RUN.png   # held-out pairs: input, model, truth

RUNS_DIR holds one run folder per candidate and seed, named ``CANDIDATE-sSEED``; the candidates'
commands are read from the runs' checkpoints. Every run scores the same held-out pairs (the
validation draw is fixed), so candidates compare pair for pair.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402


def _runs(folder: Path) -> dict[str, dict[int, list[dict]]]:
    """{candidate: {seed: [metrics rows]}} from ``CANDIDATE-sSEED/metrics.jsonl``."""
    out: dict[str, dict[int, list[dict]]] = defaultdict(dict)
    for metrics in sorted(folder.glob("*-s*/metrics.jsonl")):
        match = re.fullmatch(r"(.+)-s(\d+)", metrics.parent.name)
        if match:
            out[match[1]][int(match[2])] = [json.loads(line) for line in metrics.read_text().splitlines() if line]
    return out


def _brace(words: list[str]) -> list[str]:
    """Runs of consecutive numbered words (``a/person-0003 a/person-0004 ...``) as one bash brace range."""
    out: list[str] = []
    run: list[tuple[str, int, str]] = []  # (prefix, number, digits) of the current run

    def flush() -> None:
        if len(run) > 2:
            out.append(f"{run[0][0]}{{{run[0][2]}..{run[-1][2]}}}")
        else:
            out.extend(p + d for p, _, d in run)
        run.clear()

    for word in words:
        match = re.fullmatch(r"(.*?)(\d{4})", word)
        if match and run and match[1] == run[-1][0] and int(match[2]) == run[-1][1] + 1:
            run.append((match[1], int(match[2]), match[2]))
            continue
        flush()
        if match:
            run.append((match[1], int(match[2]), match[2]))
        else:
            out.append(word)
    flush()
    return out


def _command(folder: Path) -> str:
    """The run's command, with runs of numbered people written as bash brace ranges."""
    states = sorted(folder.glob("checkpoints/step_*/state.json"))
    command = json.loads(states[-1].read_text())["config"].get("command", "") if states else ""
    return " ".join(_brace(command.split()))


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    return f"{np.mean(values):.2f}" + (f" ± {np.std(values):.2f}" if len(values) > 1 else "")


def table(folder: Path) -> str:
    runs = _runs(folder)
    key = next((k for rows in runs.values() for r in rows.values() for k in r[0] if k.endswith("_env_psnr")), None)
    if key is None:
        raise SystemExit(f"{folder}: no envmap runs (CANDIDATE-sSEED/metrics.jsonl)")
    split = key.removesuffix("_env_psnr")
    steps = sorted({r["step"] for rows in runs.values() for seed in rows.values() for r in seed})
    lines = ["| candidate | seeds | " + " | ".join(f"step {s}" for s in steps) + " | SSIM at the last step |",
             "| --- | ---: | " + " | ".join("---:" for _ in steps) + " | ---: |"]
    baseline = []
    for name, seeds in sorted(runs.items()):
        cells = []
        for s in steps:
            cells.append(_cell([r[key] for rows in seeds.values() for r in rows if r["step"] == s]))
        last = [rows[-1][f"{split}_env_ssim"] for rows in seeds.values()]
        baseline += [rows[-1][f"{split}_input_x_constant_psnr"] for rows in seeds.values()]
        lines.append(f"| {name} | {len(seeds)} | " + " | ".join(cells) + f" | {_cell(last)} |")
    lines.append(f"| input x best constant (the scale fitted to the truth) | | "
                 + " | ".join(_cell(sorted(set(baseline))) for _ in steps) + " | |")
    commands = [f"- `{name}`: `{_command(folder / f'{name}-s{min(seeds)}')}`" for name, seeds in sorted(runs.items())]
    return "\n".join(lines) + "\n\nRuns (seed 0's command; the others differ in `--seed` only):\n\n" + "\n".join(commands)


def sheet(run: Path, out: Path, pairs: int = 16, shown: int = 6) -> str:
    """A contact sheet of held-out pairs (input, the run's last checkpoint, truth) and a table of the
    per-pair scores, with the scale fitted to the truth for the input and for the model (what is left
    when the exposure is given away)."""
    import torch

    from core.io.preview import contact_sheet
    from core.model.metrics import best_scale, psnr, ssim
    from core.model.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    state = sorted(run.glob("checkpoints/step_*/state.json"))[-1]
    trainer = Trainer(TrainConfig(**json.loads(state.read_text())["config"]))
    pipe = trainer.pipeline(trainer.ema_model())
    batch = trainer.data.sample_portrait(np.random.default_rng(1234), pairs, trainer.split.val_views,
                                         trainer.environments)
    rows, tiles = [], []
    for b in range(pairs):
        x, y, m = batch["flat"][b], batch["target"][b], batch["alpha"][b] > 0.5
        p = pipe(x, environment=batch["environment"][b:b + 1], num_inference_steps=1).images[0]
        cx, cp = best_scale(x, y, m), best_scale(p, y, m)
        rows.append([psnr(cx * x, y, m), psnr(p, y, m), psnr(cp * p, y, m), ssim(cx * x, y, m), ssim(p, y, m)])
        if b < shown:
            tiles += [(f"input {b}", x, 0.0), (f"model {b}", p, 0.0), (f"truth {b}", y, 0.0)]
    contact_sheet(out, tiles, 3, title=f"{run.name} step {trainer.step}: held-out people", scale=3)
    mean = np.mean(rows, axis=0)
    return ("| pairs | input x fitted scale | model | model x fitted scale | SSIM input x scale | SSIM model |\n"
            "| ---: | ---: | ---: | ---: | ---: | ---: |\n"
            f"| {pairs} | {mean[0]:.2f} dB | {mean[1]:.2f} dB | {mean[2]:.2f} dB | {mean[3]:.3f} | {mean[4]:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, help="folder of CANDIDATE-sSEED run folders")
    parser.add_argument("--sheet", type=Path, help="a run folder: contact sheet of held-out pairs (with --out)")
    parser.add_argument("--out", type=Path, help="the contact sheet's PNG")
    parser.add_argument("--section", default="portrait-ablation", help="docs/benchmarks.md section to write")
    parser.add_argument("--title", default="Portrait model: candidates on held-out people")
    args = parser.parse_args()
    if args.sheet:
        print(sheet(args.sheet, args.out or Path(f"{args.sheet.name}.png")))
        return
    if not args.runs:
        parser.error("give --runs (the ablation table) or --sheet (a run's contact sheet)")
    body = (f"## {args.title} (`python bench/portrait.py --runs {args.runs.name} --section {args.section}`)\n\n"
            f"PSNR (dB, mean ± sd over seeds) on the held-out people's pairs at each validation step, on "
            f"{machine()}, one torch thread per run.\n\n{table(args.runs)}\n")
    write_section(args.section, body)
    print(body)


if __name__ == "__main__":
    main()
