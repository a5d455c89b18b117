# Two commands do all the set-up on a fresh machine; both work in a virtual environment of their own (.venv),
# so nothing installed on the machine before, and nothing installed after, changes what runs:
#   make demo   - installs framelab and runs the Caltech-101 transfer-learning demo on an embedded local Ray
#   make test   - installs framelab with its test tools, then runs ruff and the whole test suite
#   make check  - the fast tier: ruff and the tests that start no multi-node cluster and build nothing
# Installing takes the exact versions in requirements.lock with --no-deps, so pip's resolver has nothing to
# search; `make lock` refreshes that file from pyproject.toml.
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
# The stamp lives beside the interpreter it describes, so a removed venv is set up again.
STAMP := $(dir $(PYTHON)).framelab-setup
LOCK := requirements.lock
LOCK_VENV := .lock-venv

.PHONY: setup test-deps demo test check lint lock

$(PYTHON):
	python3 -m venv $(VENV)

$(STAMP): $(PYTHON) $(LOCK) pyproject.toml setup.py
	$(PYTHON) -m pip install -q --no-deps -r $(LOCK)
	$(PYTHON) -m pip install -q --no-deps --no-build-isolation -e .
	$(PYTHON) -m pip check
	@touch $(STAMP)

setup: $(STAMP)

# What only the tests need, from Debian's packages (needs root): headless Chromium renders the HTML
# explorer, and WordNet 3.0 is what the image tagger's hierarchy is rebuilt from.
test-deps:
	@need=""; command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	[ -e /usr/share/wordnet/data.noun ] || need="$$need wordnet-base"; \
	if [ -n "$$need" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; fi

demo: setup
	$(PYTHON) -m framelab.toolkits.cli demo

lint: setup
	$(PYTHON) -m ruff check .

test: lint test-deps
	$(PYTHON) -m pytest -q

# The inner loop: every test that starts no multi-node cluster and builds nothing (markers in pyproject.toml).
check: lint
	$(PYTHON) -m pytest -q -m "not multinode and not slow"

# Resolve pyproject.toml's dependencies (dev included) in a throw-away venv and pin every installed
# distribution, transitive ones too. Run it after changing a dependency, and commit requirements.lock.
lock:
	rm -rf $(LOCK_VENV)
	python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q '.[dev]'
	{ echo "# Exact versions of every dependency of framelab[dev], for Python 3.11 on Linux x86_64."; \
	  echo "# Made by 'make lock' from pyproject.toml; 'make setup' installs it with pip --no-deps."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable --exclude framelab --exclude pip; } > $(LOCK)
	rm -rf $(LOCK_VENV)
