"""Several processes, one job: rank and world size from the launcher, and the few collectives we need.

`torchrun`, `python -m torch.distributed.run` and `accelerate launch` set RANK, WORLD_SIZE and
LOCAL_RANK. With one process (no launcher) every helper here is a plain local call and no process
group is created. With several, `init` joins them over gloo for the small Python objects we
exchange (which rank failed and why, prediction records), plus NCCL for GPU tensors so that the
Trainer's own distributed training can share the group. Rank 0 is the main process: it alone
writes final files and prints to stdout.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from harness.errors import UserError

T = TypeVar("T")
TIMEOUT = timedelta(minutes=60)  # a rank may wait this long for the slowest one to finish its share


@dataclass(frozen=True)
class World:
    """This process's place among the launched processes."""

    rank: int
    size: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


class PeerError(UserError):
    """A user error raised on another rank, re-raised here so every rank stops; rank 0 reports it."""


def world() -> World:
    """Rank, world size and local rank from the launcher's environment (0, 1, 0 without one)."""
    try:
        rank, size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers; start with torchrun "
                        "or accelerate launch") from None
    mpi = os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ.get("PMI_SIZE")
    if "WORLD_SIZE" not in os.environ and mpi and mpi != "1":  # each process would score everything
        raise UserError(f"started by MPI with {mpi} processes, which Tenser cannot tell apart; launch with "
                        f"torchrun (or accelerate launch --multi_gpu) instead")
    if size < 1 or not 0 <= rank < size:
        raise UserError(f"RANK={rank} WORLD_SIZE={size}: the rank must be in [0, WORLD_SIZE); check the launcher")
    return World(rank, size, local)


def init() -> World:
    """Join the process group when launched with several processes; a no-op otherwise."""
    import torch
    import torch.distributed as dist

    w = world()
    if w.size > 1 and not dist.is_initialized():
        backend = "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(w.local_rank % torch.cuda.device_count())
            backend = "cpu:gloo,cuda:nccl"  # objects and barriers over gloo; GPU tensors (the Trainer's) over NCCL
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    return w


def shutdown() -> None:
    """Leave the process group, if joined (a process that exits inside one aborts)."""
    import sys

    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    import torch.distributed as dist

    return world().size > 1 and dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait until every rank gets here."""
    if _active():
        import torch.distributed as dist

        dist.barrier()


def all_gather(obj: T) -> list[T]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not _active():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world().size
    dist.all_gather_object(out, obj)
    return out


def gather(obj: T) -> list[T] | None:
    """Every rank's `obj`, in rank order, on rank 0; None on the others."""
    if not _active():
        return [obj]
    import torch.distributed as dist

    w = world()
    out: list[Any] | None = [None] * w.size if w.main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast(obj: T) -> T:
    """Rank 0's `obj` on every rank."""
    if not _active():
        return obj
    import torch.distributed as dist

    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_all(error: UserError | None) -> None:
    """Raise on every rank if any rank met a user error (`error`: this rank's, or None)."""
    messages = [m for m in all_gather(str(error) if error else None) if m]
    if error is not None:
        raise error
    if messages:
        raise PeerError(messages[0])


def on_main(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only and hand its result to every rank; its user error stops every rank."""
    if not _active():
        return fn()
    result: Any = None
    error: UserError | None = None
    if world().main:
        try:
            result = fn()
        except UserError as exc:
            error = exc
    message, result = broadcast((str(error) if error else None, result))
    if error is not None:
        raise error
    if message is not None:
        raise PeerError(message)
    return result  # type: ignore[no-any-return]
