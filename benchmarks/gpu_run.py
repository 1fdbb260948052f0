"""Run `benchmarks/gpu.sh`'s steps before a deadline: `python benchmarks/gpu_run.py all|GROUP|STEP...`.

Each step is one process group under a time limit; when it ends, killed or not, its figures are
written under OUT. Steps that cannot finish before the deadline are recorded as skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from typing import IO

from gpu_record import Record, hardware
from gpu_steps import GROUPS, RESERVE_S, STEPS, Env, Step


def preload() -> None:
    """Import what every step imports, once: each step is then a fork that starts in a second, not in 5."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # a CUDA check here must not initialise CUDA
    import harness.recipes.bench  # noqa: F401
    import tenser.cli  # noqa: F401


def python_main(args: list[str]) -> int:
    """What `python ARGS` does (-m MODULE, -c CODE or SCRIPT), in this process; its exit code."""
    import runpy

    try:
        if args[0] == "-m":
            sys.argv = [args[1], *args[2:]]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
        else:
            sys.argv = list(args)
            runpy.run_path(args[0], run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    return 0


def spawn(argv: list[str], log: IO[str], fork: bool) -> int:
    """Start `argv` as the leader of a new process group: a fork of this (preloaded) process, or a new one."""
    if not fork:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True).pid
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        code = python_main(argv[1:])
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def wait(pid: int, timeout: float) -> int | None:
    """The exit code of `pid`, or None after killing its process group at `timeout`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # the group: data-loader and compile workers too
        end = time.monotonic() + grace
        while time.monotonic() < end:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return None
            time.sleep(0.1)
    return None


def execute(argv: list[str], timeout: float, log: IO[str], fork: bool) -> int | None:
    """Run `argv` under `timeout`; its exit code, or None when it was killed."""
    log.write(f"\n$ {shlex.join(argv)}\n")
    log.flush()
    pid = spawn(argv, log, fork)
    try:
        return wait(pid, timeout)
    except BaseException:  # our own interruption: leave no step running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        raise


def fork_works(env: Env, log: IO[str]) -> bool:
    """Whether a forked step can use the device (CUDA breaks in a fork of a process that initialised it)."""
    probe = f"import torch; torch.ones(2, device={env.device!r}).sum().item()"
    return execute([env.python, "-c", probe], 120, log, fork=True) == 0


def run_step(step: Step, env: Env, rec: Record, end: float, log: IO[str], fork: bool) -> None:
    """Plan, run (if there is time) and record one step."""
    left = end - time.monotonic() - RESERVE_S
    need = step.min_s * env.min_scale
    if step.name in env.skip.replace(",", " ").split():
        rec.step(step.name, {"status": "skipped: named in SKIP"})
        return
    if left < need:
        rec.step(step.name, {"status": f"skipped: deadline (needs about {need:.0f} s, {max(0.0, left):.0f} s left)"})
        return
    allowed = min(step.cap_s, left)
    built = (env.models / "params.json").is_file()
    plan = step.plan(env, rec, allowed) if built or step.name == "build" else "no models (the build step failed)"
    if isinstance(plan, str):
        rec.step(step.name, {"status": f"skipped: {plan}"})
        return
    t0 = time.monotonic()
    code = execute(plan, allowed, log, fork)
    seconds = time.monotonic() - t0
    status = "ok" if code == 0 else f"timeout after {allowed:.0f} s" if code is None else f"failed (exit {code})"
    try:
        figures, text = step.collect(env, rec, step.name)
    except (OSError, ValueError, KeyError) as exc:  # a half-written file: keep the status
        figures, text = {"collect_error": repr(exc)}, ""
    rec.step(step.name, {"status": status, "seconds": round(seconds, 1), "command": shlex.join(plan), **figures}, text)


def chosen(names: list[str]) -> list[Step]:
    by_name = {s.name: s for s in STEPS}
    wanted = [n for name in names or ["all"] for n in GROUPS.get(name, [name])]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise SystemExit(f"gpu.sh: unknown step {', '.join(unknown)}; give {', '.join(GROUPS)} or steps of: "
                         f"{' '.join(by_name)}")
    if "build" not in wanted:
        wanted.insert(0, "build")
    return [by_name[n] for n in dict.fromkeys(wanted)]


def main(argv: list[str]) -> int:
    start = time.monotonic()
    steps = chosen(argv)
    env = Env.from_environ()
    end = start + env.deadline_s
    env.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TENSER_CACHE", str(env.work / "cache"))
    os.environ.setdefault("TQDM_MININTERVAL", "30")  # a progress line every 30 s, not a flood in log.txt
    preload()
    settings = {k: str(v) for k, v in dataclasses.asdict(env).items() if k != "python"}
    env.out.mkdir(parents=True, exist_ok=True)
    with open(env.out / "log.txt", "a") as log:
        fork = os.environ.get("FORK", "1") != "0" and fork_works(env, log)
        rec = Record(env.out, {**settings, "steps": " ".join(s.name for s in steps), "forked_steps": str(fork)},
                     hardware())
        for step in steps:
            run_step(step, env, rec, end, log, fork)
    failed = [n for n, e in rec.data["steps"].items() if not e["status"].startswith(("ok", "skipped"))]
    print(f"gpu.sh: done in {time.monotonic() - start:.0f} s; figures in {env.out}/summary.md and results.json"
          + (f"; not ok: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
