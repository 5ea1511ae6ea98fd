"""``python -m sdegen``: the ``sdegen`` command."""

from sdegen.cli import main

raise SystemExit(main())
