"""A value inside nested JSON-like documents (events, audit records), read as plain indexing would."""

from __future__ import annotations

from collections.abc import Mapping


def dig(doc: object, *keys: str) -> object:
    """Return ``doc[k1][k2]...``; a missing key raises KeyError, a non-mapping on the way fails the test."""
    for key in keys:
        assert isinstance(doc, Mapping), f"{key!r} looked up in {doc!r}"
        doc = doc[key]
    return doc
