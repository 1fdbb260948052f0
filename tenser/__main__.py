"""`python -m tenser` is the `tenser` command."""

from tenser.cli import main

raise SystemExit(main())
