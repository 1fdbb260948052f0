"""`python -m harness` was the `tenser` command; the CLI now lives outside `harness` (see `tenser`)."""

import sys

print("error: `python -m harness` is now `python -m tenser` (e.g. torchrun ... -m tenser run ...)", file=sys.stderr)
raise SystemExit(2)
