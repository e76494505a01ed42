"""``python -m confide`` is the ``confide`` command."""

from confide.cli import main

raise SystemExit(main())
