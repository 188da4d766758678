# One entry point for people and CI: every target creates .venv when it is missing.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.asklepios-installed
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
# torch and torchvision are pinned to the releases this machine's pip takes from local files.
TORCH   := torch==2.14.1 torchvision==0.29.1
PYTEST  ?= $(PY) -m pytest
export ASKLEPIOS_STRICT_PLUGINS := 1

.PHONY: install demo test test-fast bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml sdk/pyproject.toml $(wildcard plugins/*/pyproject.toml)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet $(TORCH) -e sdk -e '.[dev]' $(addprefix -e ,$(PLUGIN_DIRS))
	touch $(STAMP)

demo: install
	$(VENV)/bin/asklepios run examples/configs/quickstart.yaml

# Core and SDK tests in one session, then each plugin's own suite on its own, as its users run it.
test: install
	$(PYTEST) tests sdk/tests $(PYTEST_ARGS)
	set -e; for d in $(PLUGIN_DIRS); do echo "== $$d"; (cd $$d && $(abspath $(PY)) -m pytest tests $(PYTEST_ARGS)); done

test-fast: PYTEST_ARGS += -m "not slow"
test-fast: test

# Every benchmark prints its figures as ratios against a baseline measured in the same run.
bench: install
	set -e; for b in bench/*.py $(wildcard plugins/*/bench/*.py); do echo "== $$b"; $(PY) $$b; done

# ruff over everything; mypy (root [tool.mypy]) over the core, the SDK and every plugin's package.
MYPY_TARGETS := core/asklepios sdk/src/asklepios_sdk \
	$(patsubst %/__init__.py,%,$(wildcard plugins/*/src/asklepios_*/__init__.py)) \
	examples/third_party_plugin/src/asklepios_polyloss

lint: install
	$(VENV)/bin/ruff check core sdk plugins tests bench examples
	$(VENV)/bin/ruff format --check core sdk plugins tests bench examples
	$(VENV)/bin/mypy $(MYPY_TARGETS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
