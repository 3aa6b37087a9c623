# Two commands set everything up: `make demo` and `make test`. Both build .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := 2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test browser clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev,poses]' torch==$(TORCH)
	$(BIN)/python -c "import torch, sys; v = torch.__version__.split('+')[0]; \
	sys.exit(0 if v == '$(TORCH)' else f'torch was replaced: {torch.__version__} (wanted $(TORCH))')"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/diffparam demo --out demo

# The atlas browser test drives Debian's Chromium; install it where apt-get can (it skips elsewhere).
browser:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "could not install chromium: the browser test will skip"

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo
