"""``python -m qac.report``."""

import sys

from qac.report.cli import main

sys.exit(main())
