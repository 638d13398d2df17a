"""``python -m guard.cli``: run guardctl."""

from __future__ import annotations

import sys

from guard.cli.core import main

sys.exit(main())
