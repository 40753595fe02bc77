"""How long the add-on's Relight button blocks Blender: the asynchronous invoke path (build the rig
and job from the scene, hand it to the worker) timed while the worker runs, first with the worker
still to be started, then with it busy on the first job.

Blender's background mode has no window, so the modal timer cannot be registered here; what is
timed is everything ``RELIT_OT_relight.invoke`` does before it (``build_job`` and the dispatcher's
``start``), with the default bundle and plates rendered by ``relit demo``.

    python bench/addon_invoke.py --demo out/demo
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402

SCRIPT = r"""
import json, math, sys, time, bpy, addon_utils
plate, bundle, out, root = sys.argv[1:5]
bpy.ops.wm.read_factory_settings(use_empty=True)
addon_utils.enable("blender_addon", default_set=True)
from blender_addon.dispatch import WorkerDispatcher, set_dispatcher
from blender_addon.operators import build_job
dispatch = WorkerDispatcher(sys.executable, env={"PYTHONPATH": root}, cwd=root)
set_dispatcher(dispatch)
scene = bpy.context.scene
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
cam.location, cam.rotation_euler = (0, -3, 0), (math.radians(90), 0, 0)
scene.collection.objects.link(cam); scene.camera = cam
for i in range(8):
    obj = bpy.data.objects.new(f"lamp{i}", bpy.data.lights.new(f"lamp{i}", "POINT"))
    obj.location = (math.cos(i), -1.5, math.sin(i)); obj.data.energy = 50.0
    scene.collection.objects.link(obj)
s = scene.relit
s.plate, s.bundle, s.output, s.steps, s.use_scene_range = plate, bundle, out, 30, False
times, jobs = [], []
for _ in range(2):
    t = time.perf_counter()
    job, _ = build_job(bpy.context)
    jobs.append(dispatch.start(job))
    times.append(1000 * (time.perf_counter() - t))
t = time.perf_counter()
for j in jobs:
    dispatch.wait(j)
print(json.dumps({"invoke_ms": times, "jobs_s": time.perf_counter() - t, "errors": [j.error for j in jobs],
                  "frames": [len(j.result["frames"]) if j.result else 0 for j in jobs]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default="out/demo", help="a finished `relit demo` folder (its plate is used)")
    ap.add_argument("--bundle", default="bundle/default")
    args = ap.parse_args()
    plate = sorted((Path(args.demo) / "subject" / "flat").rglob("*.exr"))[0]
    out = Path(args.demo) / "addon_bench"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(plate.resolve()), str(Path(args.bundle).resolve()),
                           str(out.resolve()), str(ROOT)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    if any(r["errors"]):
        raise SystemExit(f"jobs failed: {r['errors']}")
    command = "python bench/addon_invoke.py " + shlex.join(sys.argv[1:])
    write_section("addon-invoke", f"""## Add-on: how long the Relight button blocks (`{command}`)

Machine: {machine()}. Scene: 8 point lights, the default bundle, the demo's plate, 30 steps. Timed:
building the rig and job from the scene and handing it to the worker (everything `invoke` does before
registering its timer; background mode has no window for the timer itself).

| invoke | blocked Blender for |
| --- | ---: |
| first (the worker process is spawned, not waited for) | {r['invoke_ms'][0]:.1f} ms |
| second (while the worker runs the first job) | {r['invoke_ms'][1]:.1f} ms |

Both under the 100 ms goal: {'yes' if max(r['invoke_ms']) < 100 else '**no**'}. The two jobs then ran in the
worker in {r['jobs_s']:.1f} s ({r['frames']} frame(s)), torch import and bundle load included.
""")
    print(r)


if __name__ == "__main__":
    main()
