# The two commands a newcomer runs: `make demo` and `make test`. Both set up first.
SHELL := /bin/bash
VENV  := .venv

.PHONY: setup demo test lint unit clean

setup:                ## install Debian packages, the venv and the bcc shim (idempotent)
	@scripts/setup

demo: setup           ## the main job: the agent enforcing policies/ against a scripted attack (in the 6.1 guest without BPF-LSM)
	@scripts/demo

test: setup           ## every check: ruff, mypy, import contracts, clang-format, pytest (privileged tests too when root)
	@scripts/test

lint: setup           ## static checks only
	@scripts/test --lint-only

unit: setup           ## unprivileged pytest only
	@$(VENV)/bin/pytest -q tests

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
