# Two commands do all the set-up on a fresh machine: `make book` (the study, then the book) and
# `make test`. The virtual environment lives in $(VENV); every target installs it when needed.
VENV ?= .venv
PROFILE ?= tiny
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The stamp changes with pyproject.toml, so a new dependency reinstalls on the next target.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install book study test test-fast bench lab world clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch, torchvision and torchaudio must be matching builds: install them together first.
	$(PIP) install --quiet torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1
	$(PIP) install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

world: install
	$(VENV)/bin/xmd world --profile $(PROFILE)

study: install
	$(VENV)/bin/xmd study --profile $(PROFILE)

book: install
	$(VENV)/bin/xmd study --profile $(PROFILE)
	$(VENV)/bin/xmd book --profile $(PROFILE) --check

test: install
	$(VENV)/bin/python -m pytest -q

# the edit loop: everything but the notebooks, the multi-process runs and end-to-end training
test-fast: install
	$(VENV)/bin/python -m pytest -q -m "not slow and not multiprocess and not training"

bench: install
	$(VENV)/bin/python -m benchmarks.run --profile $(PROFILE)

lab: install
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf _build artifacts results notebooks/executed
