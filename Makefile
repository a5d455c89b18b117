# Two commands do all the set-up on a fresh machine:
#   make demo   - installs framelab and runs the Caltech-101 transfer-learning demo on an embedded local Ray
#   make test   - installs framelab with its test tools, then runs ruff and the whole test suite
PYTHON ?= python3
STAMP := .setup.stamp

.PHONY: setup demo test lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m pip install -q -e '.[dev]'
	@# headless Chromium renders the HTML explorer in the tests (Debian's package; needs root)
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PYTHON) -m framelab.platform.cli demo

lint: setup
	$(PYTHON) -m ruff check .

test: lint
	$(PYTHON) -m pytest -q
