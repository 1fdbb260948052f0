"""`python -m harness` is the `tenser` command."""

from harness.cli import main

raise SystemExit(main())
