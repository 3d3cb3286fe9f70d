"""``python -m training.cli train ...``: the same as ``lstm-train train ...``."""

import sys

from training.cli import main

sys.exit(main())
