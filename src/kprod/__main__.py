"""``python -m kprod``: the ``kprod`` command (see ``kprod.cli.main``)."""

import sys

from kprod.cli.main import main

sys.exit(main())
