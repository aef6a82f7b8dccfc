"""``python -m tlstiming``."""

import sys

from tlstiming.cli import main

sys.exit(main())
