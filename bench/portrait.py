"""The portrait model's training ablations: held-out people, each candidate over seeds, at every
validation step of its runs (``relit train --conditioning envmap`` writes them to metrics.jsonl).

    python bench/portrait.py --runs RUNS_DIR --section portrait-ablation

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


def _command(folder: Path) -> str:
    states = sorted(folder.glob("checkpoints/step_*/state.json"))
    return json.loads(states[-1].read_text())["config"].get("command", "") if states else ""


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
    lines.append(f"| input x best constant (oracle scale) | | {_cell(sorted(set(baseline)))} | | |")
    commands = [f"- `{name}`: `{_command(folder / f'{name}-s{min(seeds)}')}`" for name, seeds in sorted(runs.items())]
    return "\n".join(lines) + "\n\nRuns (seed 0's command; the others differ in `--seed` only):\n\n" + "\n".join(commands)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="folder of CANDIDATE-sSEED run folders")
    parser.add_argument("--section", default="portrait-ablation", help="docs/benchmarks.md section to write")
    parser.add_argument("--title", default="Portrait model: candidates on held-out people")
    args = parser.parse_args()
    body = (f"## {args.title} (`python bench/portrait.py --runs {args.runs.name} --section {args.section}`)\n\n"
            f"PSNR (dB, mean ± sd over seeds) on the held-out people's pairs at each validation step, on "
            f"{machine()}, one torch thread per run.\n\n{table(args.runs)}\n")
    write_section(args.section, body)
    print(body)


if __name__ == "__main__":
    main()
