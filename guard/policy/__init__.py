"""Policies: the EQL parser, analyzer, compiler, streaming engine and predicate runtimes."""
