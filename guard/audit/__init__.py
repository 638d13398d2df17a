"""Audit: the hash-chained, checkpoint-signed audit trail and its verifier."""
