# Two commands on a fresh machine:
#   make run    installs everything, then starts the Dagster UI + daemon on http://127.0.0.1:3000
#               with the folder-drop sensor watching ./inbox (seeded with generated samples)
#   make test   installs everything, then runs the test suite (tests start the servers they need)

SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
UV_VERSION := 0.13.8
# the platform the lock is resolved for: glibc >= 2.34 x86-64 Linux, CPython 3.11 (Debian 12 and newer)
LOCK_PLATFORM := x86_64-manylinux_2_34
APT_PACKAGES := tesseract-ocr tesseract-ocr-deu tesseract-ocr-eng tesseract-ocr-osd fonts-dejavu-core chromium chromium-driver
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
API_PID := $(CURDIR)/.idp/api.pid
export OMP_THREAD_LIMIT ?= 1
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export LITELLM_LOCAL_MODEL_COST_MAP ?= True
export ANONYMIZED_TELEMETRY ?= False
export DAGSTER_DISABLE_TELEMETRY ?= 1
PYTEST_ARGS ?=

.PHONY: run test install system-deps samples clean lock lock-upgrade

# Debian packages: Tesseract always; the PostgreSQL and RabbitMQ server binaries only where nothing
# answers on 127.0.0.1:5432 / :5672 (the tests then start private servers from them, tests/fixtures/servers.py).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql postgresql-contrib"; fi; \
	if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then \
	  test -x /usr/lib/rabbitmq/bin/rabbitmq-server || missing="$$missing rabbitmq-server"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Installs exactly the versions in the lock (every package pinned with its hashes, no resolver run),
# then the project itself without dependencies; `pip check` proves the set is complete.
$(STAMP): pyproject.toml $(LOCK)
	$(MAKE) system-deps
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

# Resolve pyproject.toml into the lock.  `make lock` keeps every version already locked that still
# satisfies pyproject.toml (run it after changing dependencies); `make lock-upgrade` takes the newest
# releases of everything.  Then run `make test` and commit pyproject.toml and the lock together.
UV_UPGRADE ?=
lock:
	@test -x .lock-venv/bin/uv || { $(PY) -m venv .lock-venv && .lock-venv/bin/pip install -q uv==$(UV_VERSION); }
	@cp $(LOCK) $(LOCK).new 2>/dev/null || true
	.lock-venv/bin/uv pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11 \
	  --python-platform $(LOCK_PLATFORM) --no-header $(UV_UPGRADE) -o $(LOCK).new
	@{ echo "# Every Python dependency, pinned with hashes. Regenerate with 'make lock' (uv $(UV_VERSION))."; \
	   echo "# Resolved for CPython 3.11 on $(LOCK_PLATFORM)."; grep -v '^# Every Python dependency\|^# Resolved for CPython' $(LOCK).new; } > $(LOCK) && rm -f $(LOCK).new

lock-upgrade:
	$(MAKE) lock UV_UPGRADE=--upgrade

install: $(STAMP)

samples: install
	$(BIN)/idp samples --out ./inbox

run: export DAGSTER_HOME := $(DAGSTER_HOME)
run: install samples
	@mkdir -p $(DAGSTER_HOME)
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster instance concurrency set cpu 2 >/dev/null
	$(BIN)/dagster instance concurrency set gpu 1 >/dev/null
	$(BIN)/idp graph-server start
	@# the HTTP API + review page on 127.0.0.1:8000 beside the UI, stopped when `make run` ends (or `make clean`);
	@# without IDP_API_KEYS / IDP_API_KEYS_FILE a local admin key is made once: .idp/api-dev.key (mode 600)
	@mkdir -p .idp; if [ -z "$$IDP_API_KEYS$$IDP_API_KEYS_FILE$$IDP_API_JWT_SECRET" ]; then \
	  export IDP_API_KEYS_FILE=$(CURDIR)/.idp/api-keys.json; test -s .idp/api-dev.key || \
	  $(BIN)/idp api new-key dev --role admin --append-to .idp/api-keys.json --key-out .idp/api-dev.key; fi; \
	$(BIN)/idp api serve --host 127.0.0.1 --port 8000 > .idp/api.log 2>&1 & api=$$!; echo $$api > $(API_PID); \
	trap 'kill $$api 2>/dev/null; rm -f $(API_PID)' EXIT INT TERM; \
	echo "Dagster UI on http://127.0.0.1:3000 - drop documents into ./inbox"; \
	echo "API + review page on http://127.0.0.1:8000 (/api/v1/docs, /review; log .idp/api.log)"; \
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

test: system-deps install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	-test -f $(API_PID) && kill $$(cat $(API_PID)) 2>/dev/null; rm -f $(API_PID)
	-$(BIN)/idp graph-server stop
	rm -rf .idp .dagster_home exports
