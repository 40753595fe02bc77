"""Farm figures: the plan of a 1000-frame x 4-camera job, and Ray's overhead per unit measured side
by side with the single-process loop over the same units (tiny work per unit: 32 px, 1 step,
3 lights, an untrained tiny bundle made here).

    python bench/farm.py --units 24
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.relight_memory import RES, plates, tiny_bundle  # noqa: E402
from bench.report import machine, write_section  # noqa: E402
from core.jobs import RelightJob  # noqa: E402
from core.lighting.camera import look_at_c2w  # noqa: E402
from core.lighting.rig import Environment, Light, LightRig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=24, help="units of one frame each for the overhead figure")
    ap.add_argument("--out", default="out/bench_farm")
    args = ap.parse_args()
    from core.farm.ray_runner import run_plan_ray
    from core.farm.units import plan_job, run_plan_local
    from core.lighting.hdri import resolve_hdri

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    bundle = tiny_bundle(out / "bundle")
    # 1. the plan of a long multi-camera job (frames need not exist to plan with --frames)
    cams = {f"cam{i}": look_at_c2w(np.array([3 * np.sin(a), -3 * np.cos(a), 0.0]), np.zeros(3)).tolist()
            for i, a in enumerate(np.radians([-40, -15, 15, 40]))}
    rig = LightRig([Light("key", "area", (0.3, 0.4, 0.87), 0.1, (1, 1, 1), 2.0)],
                   Environment(str(resolve_hdri("forest")), (0, 0, 0.5), 1.0), cams["cam0"])
    big = RelightJob(bundle=str(bundle), input=str(out / "{camera}" / "flat.####.exr"), frames="1001-2000",
                     output=str(out / "plan" / "{camera}"), rig=rig.to_json(), cameras=cams, basis=True)
    t = time.perf_counter()
    plan = plan_job(big, chunk=10, light_chunk=16)
    plan.save(out / "units_1000x4.json")
    plan_s = time.perf_counter() - t
    size = (out / "units_1000x4.json").stat().st_size
    kinds = {k: sum(u.kind == k for u in plan.units) for k in ("relight", "merge")}
    n_stage = max(u.light_chunk[1] for u in plan.units if u.light_chunk)
    example = json.loads((out / "units_1000x4.json").read_text())["units"][0]
    # 2. Ray overhead per unit: the same tiny units run in this process and on Ray
    small_rig = LightRig([Light(n, "area", d, 0.1, (1, 1, 1), 1.0) for n, d in
                          (("key", (0.3, 0.4, 0.87)), ("fill", (-0.7, 0.0, 0.71)), ("rim", (0.6, 0.2, -0.77)))])
    seq = plates(out / "plates", range(1, args.units + 1))
    timings, startup = {}, {}
    for mode in ("local", "ray", "ray (cluster up)"):
        job = RelightJob(bundle=str(bundle), input=seq, output=str(out / mode.split()[0]), rig=small_rig.to_json(),
                         steps=1, threads=1)
        units = plan_job(job, chunk=1)
        t = time.perf_counter()
        if mode == "local":
            run_plan_local(units, threads=1)
            timings[mode] = time.perf_counter() - t
        else:
            report = run_plan_ray(units, workers=2, threads=1, progress=False)
            assert not report.failed, report.failed
            timings[mode], startup[mode] = report.seconds, report.startup_s
        shutil.rmtree(out / mode.split()[0])  # the next mode computes everything again
    import ray

    ray.shutdown()
    n = args.units
    per_local = 1000 * timings["local"] / n
    warm = "ray (cluster up)"
    per_ray = 1000 * (timings[warm] - startup[warm]) / n
    command = "python bench/farm.py " + shlex.join(sys.argv[1:])
    write_section("farm", f"""## Farm: plan size and Ray overhead (`{command}`)

Machine: {machine()}.

**Plan of a 1000-frame x 4-camera job** (HDRI by the `stage` strategy plus the OLAT basis on the
tiny bundle's {n_stage}-light stage, `--chunk 10 --light-chunk 16`): {len(plan.units)} units
({kinds['relight']} relight, {kinds['merge']} merge), `units.json` {size / 1024:.0f} KiB, planned in
{plan_s:.2f} s. A unit as a farm sees it:

```
{json.dumps({k: example[k] for k in ("index", "kind", "camera", "light_chunk", "depends_on", "command")})}
frames: {example['frames'][0]}-{example['frames'][-1]}
```

**Ray overhead per unit**, side by side in one run: {n} units of one frame each ({RES} px,
1 DDIM step, 3 lights), one torch thread per worker, outputs removed between runs.

| run | whole run | of which start-up | per unit after start-up |
| --- | ---: | ---: | ---: |
| single process, bundle loaded once | {timings['local']:.2f} s | - | {per_local:.0f} ms |
| Ray, 2 workers, cluster started in the run | {timings['ray']:.2f} s | {startup['ray']:.2f} s | {1000 * (timings['ray'] - startup['ray']) / n:.0f} ms |
| Ray, 2 workers, cluster already up | {timings[warm]:.2f} s | {startup[warm]:.2f} s | {per_ray:.0f} ms |

Start-up is the local cluster (about 2-3 s) and two workers importing torch and loading the bundle
once each. After it, units go through Ray at {per_ray:.0f} ms each against {per_local:.0f} ms in the
single process (two workers in parallel on this machine's 2 cores, so Ray's own per-unit cost is
hidden at this size); real units (many lights, 30 steps,
production resolution) take seconds to minutes, so the per-unit cost vanishes there and the
start-up is paid once per job.
""")
    print(len(plan.units), kinds, size, plan_s, timings, startup)


if __name__ == "__main__":
    main()
