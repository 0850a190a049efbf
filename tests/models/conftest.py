"""models/ tests: make the repo root importable even when this directory is run on its own.

Helpers live in model_helpers.py and the numpy references in model_refs.py (unique module
names, since tests/ has no __init__.py files).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
