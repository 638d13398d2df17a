"""Signed policy bundles: manifest, archive, build and sign, verify against a trust store, keep, deploy."""
