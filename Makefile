# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sdegen-installed

.PHONY: setup test test-all demo lint bench docs docs-serve clean

setup: $(STAMP)

# Re-install only when the project's metadata changes, so a second `make` is a no-op.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[all]"
	touch $(STAMP)

# One pytest worker per core (pytest-xdist); every test is independent and seeds its own generators.
test: $(STAMP)
	$(PY) -m pytest -q -n 2

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "slow or not slow" --hypothesis-profile=thorough

demo: $(STAMP)
	$(VENV)/bin/sdegen demo --out runs/demo

lint: $(STAMP)
	$(PY) -m ruff check sdegen tests benchmarks examples docs/_ext
	$(PY) -m ruff format --check sdegen tests benchmarks examples docs/_ext

# The documentation site, into build/site/; any warning fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# The site served on http://127.0.0.1:8000 (it uses directory URLs, so opening the built files from
# disk shows folder listings).
docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve --dev-addr 127.0.0.1:8000

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis runs
