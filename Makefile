# reprlab: `make demo` and `make test` work on a fresh clone (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test check-export nbdev-test pytest lab clean-nbs

install: $(STAMP)

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

demo: install
	$(BIN)/reprlab run quickstart

test: install check-export nbdev-test pytest

# reprlab/ must be exactly what nbs/ exports: export a copy elsewhere and compare.
check-export: install
	@tmp=$$(mktemp -d) && cp -r nbs pyproject.toml settings.ini $$tmp/ && mkdir $$tmp/reprlab && \
	  cp reprlab/__init__.py $$tmp/reprlab/ && (cd $$tmp && $(BIN)/nbdev-export) && \
	  if diff -r -x __pycache__ $$tmp/reprlab reprlab; then echo "reprlab/ matches nbs/"; rm -rf $$tmp; \
	  else echo "reprlab/ differs from what nbs/ exports: edit the notebooks, run nbdev-export, commit both"; rm -rf $$tmp; exit 1; fi

nbdev-test: install
	$(BIN)/nbdev-test --timing

pytest: install
	$(BIN)/pytest -q

lab: install
	$(BIN)/jupyter lab --notebook-dir=nbs

clean-nbs: install
	$(BIN)/nbdev-clean
