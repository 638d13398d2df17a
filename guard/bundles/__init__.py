"""Signed policy bundles: build, sign, verify against a trust store, keep, deploy and roll back."""
