# make demo  - run one subscriber's machine end to end on the embedded defaults
# make test  - run the test suite (builds llama.cpp's llama-server once into a cache first)
# Both create/update .venv first. Pass demo options with ARGS='--duration 90'.
# make llama-server - only build/find the cached llama-server (tests/control_plane/build-llama-server.sh)

PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python

.PHONY: demo test venv clean llama-server

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11) on PATH; set PYTHON=..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/control-plane demo $(ARGS)

llama-server: $(STAMP)
	@PYTHON=$(PY) tests/control_plane/build-llama-server.sh

test: llama-server
	$(PY) -m pytest $(ARGS)

clean:
	rm -rf $(VENV) .data
