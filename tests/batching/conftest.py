"""``bench`` is a folder run with ``python -m bench``, not an installed package: make it importable."""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
