# Two commands on a fresh machine:
#   make run    installs everything, then starts the Dagster UI + daemon on http://127.0.0.1:3000
#               with the folder-drop sensor watching ./inbox (seeded with generated samples)
#   make test   installs everything, then runs the test suite (tests start the servers they need)

SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := tesseract-ocr tesseract-ocr-deu tesseract-ocr-eng tesseract-ocr-osd fonts-dejavu-core
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export OMP_THREAD_LIMIT ?= 1
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export LITELLM_LOCAL_MODEL_COST_MAP ?= True
export ANONYMIZED_TELEMETRY ?= False
export DAGSTER_DISABLE_TELEMETRY ?= 1
PYTEST_ARGS ?=

.PHONY: run test install system-deps samples clean

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	$(MAKE) system-deps
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

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
	@echo "Dagster UI on http://127.0.0.1:3000 - drop documents into ./inbox"
	exec $(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	-$(BIN)/idp graph-server stop
	rm -rf .idp .dagster_home exports
