# Two commands set everything up: `make demo` and `make test`. Both build .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := 2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]' torch==$(TORCH)
	$(BIN)/python -c "import torch, sys; v = torch.__version__.split('+')[0]; \
	sys.exit(0 if v == '$(TORCH)' else f'torch was replaced: {torch.__version__} (wanted $(TORCH))')"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/diffparam demo --out demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/improved_optimisation.py

clean:
	rm -rf $(VENV) demo
