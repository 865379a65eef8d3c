# The README's two commands. Each creates its own virtualenv in .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/segops: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/segops

demo: $(BIN)/segops
	$(BIN)/segops demo

test: $(BIN)/segops
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest

bench: $(BIN)/segops
	$(BIN)/segops bench

clean:
	rm -rf $(VENV) segops.db segops.db-wal segops.db-shm demo-output
