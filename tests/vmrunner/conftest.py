"""Make vm-tests/ importable (its runner is a script directory, not a package of guard)."""

import sys
from pathlib import Path

VM_TESTS = Path(__file__).resolve().parents[2] / "vm-tests"
if str(VM_TESTS) not in sys.path:
    sys.path.insert(0, str(VM_TESTS))
