# switchd — two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: start switchd on the simulated board with demo traffic (Ctrl-C stops it)
run: $(STAMP)
	$(BIN)/switchd run -c config.yaml

## test: ruff, then the whole test suite
test: $(STAMP)
	$(BIN)/ruff check switchd tests
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check switchd tests

check: $(STAMP)
	$(BIN)/switchd check -c config.yaml

## bench: calls per second, core in virtual time and the live daemon over the socket
bench: $(STAMP)
	$(BIN)/switchd bench calls --json
	$(BIN)/switchd bench calls --live --json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
