# `make repro` runs the pipeline, `make test` the test suite; both build .venv first.
# The venv is rebuilt only when requirements.txt or pyproject.toml change.
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# dvc runs stage commands through the shell: `python` must be the venv's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# OpenMP threads that spin while waiting make torch several times slower when anything
# else shares the cores; passive waiting changes no result.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup repro test docs bench clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

repro: $(STAMP)
	dvc repro

# Test groups (tests/conftest.py: the shared `dvc repro`, else one per module) go to the two workers
# in the order tests/conftest.py sorts them, longest first, not by their number of tests.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PYTHON) -m pytest -ra -n 2 --dist loadscope --no-loadscope-reorder
	$(MAKE) docs

# The documentation site (site/, git-ignored): its generated tables must be current, and
# --strict fails on any warning (a broken link, a page missing from the nav).
docs: $(STAMP)
	$(PYTHON) docs/gen_tables.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

clean-venv:
	rm -rf $(VENV)
