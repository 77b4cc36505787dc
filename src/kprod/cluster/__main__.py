"""``python -m kprod.cluster``: run the embedded cluster in the foreground (see ``main.run``)."""

import sys

from kprod.cluster.main import run

sys.exit(run())
