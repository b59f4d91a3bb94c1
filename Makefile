# Two commands for a fresh machine: `make run` and `make test`.
# Both create the virtual environment when it is missing and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-serve: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[image-nsfw]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[train,dev,image-nsfw]"
	touch $@ $(VENV)/.installed-serve

run: $(VENV)/.installed-serve
	$(PY) -m serving --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .

clean-venv:
	rm -rf $(VENV)
