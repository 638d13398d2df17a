"""Benchmarks behind ``guardctl bench``: engine, runtimes, kernel, audit, agent; the synthetic generator."""
