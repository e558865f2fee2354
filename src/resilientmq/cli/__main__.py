"""``python -m resilientmq.cli``."""

from . import main

raise SystemExit(main())
