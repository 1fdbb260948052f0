"""The `tenser` command line. User errors print one line and exit with code 2.

Subcommands: `tasks`, `run`, `finetune`, `compare`, `report`, `gate`, `plan`, `bench`, `demo`. Their flags
are declared in `tenser.parser` and their bodies live in `tenser.commands`; this module runs the
chosen command and speaks to the user in flags: a `UserError` names Python parameters, printed here
as the flags that set them (`batch_size` -> `--batch-size`).
"""

from __future__ import annotations

import os
import sys

from harness.errors import UserError
from tenser import commands
from tenser.parser import EXIT_USER_ERROR, build_parser

# Parameters whose flag is not `--` + the name with dashes (a dotted name is a field of a parameter).
FLAGS = {"training.batch_size": "--train-batch-size", "overrides": "-T"}


def flag(param: str) -> str:
    """The flag that sets a Python parameter: `batch_size` -> `--batch-size`, `training.lr` -> `--lr`."""
    return FLAGS.get(param) or "--" + param.rpartition(".")[2].replace("_", "-")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tenser` console script."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    from tasks import TaskError

    try:
        return int(getattr(commands, "cmd_" + args.command)(args))
    except (UserError, TaskError) as exc:
        from harness.distributed import PeerError

        if not (isinstance(exc, PeerError) and os.environ.get("RANK", "0") != "0"):  # rank 0 reports it
            message = exc.speak(flag) if isinstance(exc, UserError) else str(exc)
            print(f"tenser {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        from harness.recipes.jobs import interrupted_message

        kept = interrupted_message(exc, args.command, getattr(args, "output", None))
        print(f"tenser {args.command}: interrupted; {kept}", file=sys.stderr)
        return 130
    finally:
        from harness.distributed import shutdown

        shutdown()
