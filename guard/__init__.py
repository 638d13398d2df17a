"""kestrel-guard: an inline enforcement agent for Linux built around BPF-LSM."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
