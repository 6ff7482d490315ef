# airflow-provider-wan: `make demo` runs the example end to end locally, `make test` runs the test suite.
# Everything is installed from this repo's own files into virtual environments under the repo.

PYTHON ?= python3
LATEST_AIRFLOW ?= 3.3.2
OLDEST_AIRFLOW ?= 3.1.8
VENV ?= .venv
VENV_OLDEST ?= .venv-3.1
UV := $(shell command -v uv 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: help demo test test-latest test-oldest lint venv venv-oldest bench clean

help:
	@echo "make demo          generate a video on the local simulator and land it in a local S3 (PROMPT=... to choose)"
	@echo "make test          lint, then the test suite on Airflow $(LATEST_AIRFLOW) and $(OLDEST_AIRFLOW)"
	@echo "make test-latest   the test suite on Airflow $(LATEST_AIRFLOW) only"
	@echo "make lint          ruff and mypy"
	@echo "make bench         the benchmarks (see benchmarks/README.md)"

# uv makes installs fast: use the one on PATH, else put one in the venv; plain pip when neither can be had.
define make_venv
	@if [ ! -x "$(1)/bin/python" ]; then $(PYTHON) -m venv "$(1)"; fi
	@if [ ! -f "$(1)/.installed-$(2)" ] || [ pyproject.toml -nt "$(1)/.installed-$(2)" ]; then \
		echo ">> installing Airflow $(2) and airflow-provider-wan[dev] into $(1)"; \
		uv="$(UV)"; \
		if [ -z "$$uv" ]; then \
			$(1)/bin/python -m pip --version >/dev/null 2>&1 || $(1)/bin/python -m ensurepip -q >/dev/null 2>&1; \
			$(1)/bin/python -m pip install -q uv >/dev/null 2>&1 && uv="$(1)/bin/uv"; \
		fi; \
		if [ -n "$$uv" ]; then \
			VIRTUAL_ENV=$(1) "$$uv" pip install -q --python "$(1)/bin/python" "apache-airflow==$(2)" -e ".[dev]"; \
		else \
			$(1)/bin/python -m pip install -q "apache-airflow==$(2)" -e ".[dev]"; \
		fi && touch "$(1)/.installed-$(2)"; \
	fi
endef

venv:
	$(call make_venv,$(VENV),$(LATEST_AIRFLOW))

venv-oldest:
	$(call make_venv,$(VENV_OLDEST),$(OLDEST_AIRFLOW))

lint: venv
	$(VENV)/bin/ruff check airflow_provider_wan tests example_dags benchmarks demo
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy demo/run.py

test-latest: venv
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-oldest: venv-oldest
	$(VENV_OLDEST)/bin/python -m pytest $(PYTEST_ARGS)

test: lint test-latest test-oldest

# PROMPT reaches the demo through the environment ("$$PROMPT"), so quotes and backticks in it stay literal text.
demo: venv
	$(VENV)/bin/python demo/run.py $(if $(PROMPT),--prompt "$$PROMPT",)

bench: venv
	$(VENV)/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(VENV_OLDEST) .pytest_cache .mypy_cache .ruff_cache demo-output
