"""Run a plan's units on Ray: a pool of actors, each loading the model bundle once and running
units one after another (relight units first, a merge as soon as its light chunks are done).

A unit whose actor dies (a killed worker, a lost node) or which raises is retried on a fresh or
another actor, up to ``attempts`` times in all; one that still fails is reported with its command
and error and the rest of the job completes. Units write atomically and skip frames already done,
so a retry or a rerun after a crash recomputes only what is missing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import ray

from ..errors import RelitError
from ..io.atomic import STALE_AFTER_S, remove_stale_partials
from ..relight.cache import CACHE_DIR
from .units import Plan, run_unit

log = logging.getLogger(__name__)

WORKER_START_S = 300.0  # how long a worker may take to start (a bundle to load) before a run goes on without it


def _connect(address: str | None, workers: int, cpus: int, gpus: float) -> None:
    """Join the Ray cluster at ``address``, or start a local one sized for the workers."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=max(workers * cpus, 1), num_gpus=gpus * workers or None, include_dashboard=False,
                 log_to_driver=False)


@ray.remote
class UnitRunner:
    """One worker: the bundle is loaded once, at start, and serves every unit sent here."""

    def __init__(self, plan: dict, threads: int):
        import torch

        from ..model.bundle import load_bundle

        if threads:
            torch.set_num_threads(threads)
        self.plan = Plan(plan["job"], plan["folders"], [_unit(u) for u in plan["units"]])
        job = self.plan.job
        self.model = load_bundle(job["bundle"], job.get("device", "cpu"))
        self.loads = 1

    def info(self) -> dict:
        return {"pid": os.getpid(), "loads": self.loads}

    def run(self, index: int) -> dict:
        out = run_unit(self.plan, index, pipe_and_info=self.model)
        out["pid"] = os.getpid()
        return out


def _unit(data: dict):
    from .units import WorkUnit

    return WorkUnit(**data)


@dataclass
class FarmReport:
    done: list[dict] = field(default_factory=list)       # results of finished units
    failed: list[dict] = field(default_factory=list)     # {unit, command, error, attempts}
    workers: dict[int, int] = field(default_factory=dict)  # pid -> bundle loads, of every actor started
    retries: int = 0
    startup_s: float = 0.0        # until the first workers had loaded the bundle (cluster start included)
    seconds: float = 0.0          # the whole run


def run_plan_ray(plan: Plan, address: str | None = None, workers: int = 2, cpus: int = 1, gpus: float = 0.0,
                 attempts: int = 3, threads: int = 0, progress: bool = True,
                 on_result: Callable[[dict, dict], None] | None = None) -> FarmReport:
    """Run every unit of ``plan`` on Ray (a local cluster started here, or ``address``).

    ``on_result(result, actors)`` is called after each finished unit with the live actors by pid
    (tests use it to kill one).
    """
    import time
    from dataclasses import asdict

    from tqdm import tqdm

    started = time.perf_counter()
    _connect(address, workers, cpus, gpus)
    payload = {"job": plan.job, "folders": plan.folders, "units": [asdict(u) for u in plan.units]}
    options = {"num_cpus": cpus, "num_gpus": gpus, "max_restarts": 0}
    report = FarmReport()

    def start_actors(n: int) -> list[tuple]:  # [(actor, pid)] of those of n new workers that started in time
        actors = [UnitRunner.options(**options).remote(payload, threads) for _ in range(n)]
        infos = {actor.info.remote(): actor for actor in actors}
        ready, late = ray.wait(list(infos), num_returns=n, timeout=WORKER_START_S)
        for future in late:
            ray.kill(infos[future])
            log.warning("a worker did not start within %.0f s (the cluster has no free %s?); going on without it",
                        WORKER_START_S, f"{gpus} GPU" if gpus else f"{cpus} CPU(s)")
        started_ = []
        for future in ready:
            info = ray.get(future)
            report.workers[info["pid"]] = info["loads"]
            started_.append((infos[future], info["pid"]))
        return started_

    total, free = ray.cluster_resources().get("CPU", 0), ray.available_resources().get("CPU", 0)
    if total < cpus:
        raise RelitError(f"each Ray worker asks for {cpus} CPU(s) and the cluster has {total:g}: ask for fewer "
                         "(--cpus) or join a larger cluster (--address)")
    if free < workers * cpus:  # start what fits now (at least one: a busy cluster may free CPUs meanwhile)
        fits = max(1, int(free // cpus))
        log.warning("the cluster has %g free CPU(s): %d worker(s) of %d CPU(s) instead of %d", free, fits, cpus,
                    workers)
        workers = min(workers, fits)
    idle = start_actors(workers)
    if not idle:
        raise RelitError(f"no Ray worker started within {WORKER_START_S:.0f} s: each needs {cpus} CPU(s)"
                         f"{f' and {gpus} GPU' if gpus else ''} free on the cluster; check `ray status` or ask for "
                         "less (--cpus)")
    report.startup_s = time.perf_counter() - started
    tries = {u.index: 0 for u in plan.units}
    finished: set[int] = set()
    blocked: set[int] = set()     # merges whose inputs failed
    queue = [u.index for u in plan.units]
    running: dict = {}             # future -> (unit index, actor, pid)
    bar = tqdm(total=len(plan.units), desc="units", unit="unit", disable=not progress)
    while queue or running:
        ready = [i for i in queue if all(d in finished for d in plan.units[i].depends_on)]
        for i in [i for i in queue if any(d in blocked or _failed(report, d) for d in plan.units[i].depends_on)]:
            queue.remove(i)
            blocked.add(i)
            report.failed.append({"unit": i, "command": plan.units[i].command, "attempts": 0,
                                  "error": f"not run: a unit it depends on failed ({plan.units[i].depends_on})"})
        while ready and idle:
            i = ready.pop(0)
            queue.remove(i)
            actor, pid = idle.pop()
            tries[i] += 1
            running[actor.run.remote(i)] = (i, actor, pid)
        if not running:
            if not idle:  # every worker died and none could be started again: the rest cannot run
                for i in list(queue):
                    queue.remove(i)
                    report.failed.append({"unit": i, "command": plan.units[i].command, "attempts": tries[i],
                                          "error": "not run: no Ray worker left (none could be started again)"})
            continue
        done, _ = ray.wait(list(running), num_returns=1)
        future = done[0]
        i, actor, pid = running.pop(future)
        try:
            result = ray.get(future)
        except ray.exceptions.RayActorError as e:  # the worker died: replace it, retry its unit
            log.warning("worker %d died running unit %d (%s); retrying on a new worker", pid, i, type(e).__name__)
            idle += start_actors(1)
            _retry_or_fail(report, plan, i, tries, attempts, queue, f"worker {pid} died: {e}")
            continue
        except ray.exceptions.RayTaskError as e:
            idle.append((actor, pid))
            _retry_or_fail(report, plan, i, tries, attempts, queue, str(e.cause if e.cause else e))
            continue
        idle.append((actor, pid))
        finished.add(i)
        report.done.append(result)
        bar.update(1)
        if on_result is not None:
            on_result(result, {p: a for a, p in idle} | {p: a for _, a, p in running.values()})
    bar.close()
    # what a killed worker was writing into the shared prediction cache is debris; another run may share
    # the cache, so only what no writer has touched for a while
    cache = Path(plan.job["output"]) / CACHE_DIR
    if cache.is_dir() and (stale := remove_stale_partials(cache, STALE_AFTER_S)):
        log.info("%s: removed %d partial file(s) killed workers left", cache, stale)
    report.seconds = time.perf_counter() - started
    return report


def _failed(report: FarmReport, index: int) -> bool:
    return any(f["unit"] == index for f in report.failed)


def _retry_or_fail(report: FarmReport, plan: Plan, index: int, tries: dict, attempts: int, queue: list,
                   error: str) -> None:
    if tries[index] < attempts:
        report.retries += 1
        queue.append(index)
        return
    report.failed.append({"unit": index, "command": plan.units[index].command, "attempts": tries[index],
                          "error": error})


@ray.remote(max_retries=2, retry_exceptions=True)
def _call(module: str, name: str, args: tuple):
    """Run ``module.name(*args)`` in a Ray worker (retried twice on failure or a lost worker)."""
    import importlib

    return getattr(importlib.import_module(module), name)(*args)


def map_ray(module: str, name: str, calls: list[tuple], address: str | None = None, workers: int = 2,
            cpus: int = 1, gpus: float = 0.0, progress: bool = True) -> tuple[list, list[dict]]:
    """Independent calls of one core function as Ray tasks (segments of a reconstruction, chunks of
    frames to render): (results in call order, failures {call, error} after three attempts)."""
    from tqdm import tqdm

    _connect(address, workers, cpus, gpus)
    futures = [_call.options(num_cpus=cpus, num_gpus=gpus).remote(module, name, args) for args in calls]
    index = {f: i for i, f in enumerate(futures)}
    results, failures = [None] * len(calls), []
    bar = tqdm(total=len(calls), desc=name, unit="task", disable=not progress)
    pending = list(futures)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        i = index[done[0]]
        try:
            results[i] = ray.get(done[0])
        except ray.exceptions.RayError as e:
            failures.append({"call": list(calls[i]), "error": str(e)})
        bar.update(1)
    bar.close()
    return results, failures
