"""guardctl: the command line. Thin: parse arguments, resolve the configuration, call the library.

``core`` assembles the parser from one module per noun (each registers its subcommands and
handlers), resolves the configuration and maps errors to exit codes; ``output`` prints every
command's result as text or, under ``--json``, as one JSON document.

The commands that probe the kernel or measure it call ``probe_kernel`` and
``run_kernel_benchmark`` through this package's namespace, so a test can replace them here.
"""

from __future__ import annotations

from guard.bench.kernel import run_kernel_benchmark
from guard.cli.core import build_parser, main, resolve_config
from guard.lsm.probe import probe_kernel

__all__ = ["build_parser", "main", "probe_kernel", "resolve_config", "run_kernel_benchmark"]
