# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench test-install clean

# (Re)build the venv whenever pyproject.toml is newer than the last install.
# systemd-python only builds where libsystemd-dev is present; without it the
# daemon still runs (sd_notify falls back to a pure-Python sender).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,systemd]' || \
		$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	@export PICLOUD_STATE_DIR=$${PICLOUD_STATE_DIR:-./.picloud}; \
	echo "PiCloud admin token: $$($(BIN)/picloud token)"; \
	exec $(BIN)/picloud serve

lint: $(STAMP)
	$(BIN)/ruff check picloud tests bench
	$(BIN)/ruff format --check picloud tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict picloud

unit: $(STAMP)
	$(BIN)/pytest -q -m "not install"

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

# install.sh in a booted Debian bookworm container (root, debootstrap, systemd-nspawn).
test-install: $(STAMP)
	$(BIN)/pytest -q -m install tests/install

clean:
	rm -rf $(VENV) build *.egg-info
