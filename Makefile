# AI Gateway infrastructure (cdktf, Python). `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# pip's own default index unless the caller points elsewhere (mirrors, proxies).
PIP_INDEX_URL ?= $(shell python3 -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')
export PIP_INDEX_URL
# The Pipfile's source is the only index: a machine-wide pip.conf may add
# local file:// indexes that pipenv's resolver mishandles.
export PIP_CONFIG_FILE := /dev/null
export PIP_FIND_LINKS :=
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
# Node 22 from package.json (node_modules/.bin, first on PATH below) runs the
# cdktf CLI and jsii. Should a system Node 20 be used anyway, its jsii
# end-of-life banner is known and silenced; so is a deprecation notice that
# the cdktf runtime triggers under Node 22 (util.isArray).
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# cdktf sets --max-old-space-size itself unless NODE_OPTIONS is set, then warns: set both.
export NODE_OPTIONS := --disable-warning=DEP0044 --max-old-space-size=4096
export CHECKPOINT_DISABLE := 1
# mypy's incremental cache, shared by every checkout on this machine: a fresh
# clone then checks in seconds instead of about a minute. mypy revalidates each
# entry against the source's hash, so a stale or foreign entry costs time, never
# a missed error.
export MYPY_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ai-gateway-infra/mypy

PIPENV_VERSION := 2026.10.3
BOOTSTRAP := .bootstrap
export PATH := $(CURDIR)/$(BOOTSTRAP)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
PY := .venv/bin/python
# pytest-xdist workers for `make test`: the e2e tier's deployments wait more than they
# compute, so more workers than this machine's 2 cores still pay off; each test file
# stays on one worker (--dist loadfile), so module fixtures are built once.
TEST_WORKERS ?= 4

.PHONY: help setup system-deps synth deploy destroy token bootstrap hybrid-secrets test security gateway-local lint docs bench clean

# --- the local emulator environment (environments/local.toml) ----------------
LOCAL_ENV := local
# The emulator takes any credentials; they live only in these commands' environment.
# The proxy settings send any call that misses the emulator (an AWS service without
# an emulator endpoint) to a closed loopback port instead of the internet.
EMULATOR_CREDENTIALS := AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator AWS_DEFAULT_REGION=us-east-1 \
	HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost
# Offline / air-gapped: TF_PLUGIN_DIR=<provider mirror dir> makes terraform init and
# `terraform providers lock` (both run by cdktf deploy) use the mirror, not the registry.
# Unset, `make deploy` looks for a mirror on this machine (tools/provider_mirror.sh).
WITH_MIRROR = mirror=$${TF_PLUGIN_DIR:-$$(tools/provider_mirror.sh)}; \
	if [ -n "$$mirror" ]; then export TF_CLI_ARGS_init="-plugin-dir=$$mirror" TF_CLI_ARGS_providers_lock="-fs-mirror=$$mirror"; \
	echo "using the Terraform provider mirror at $$mirror" >&2; fi;

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

INSTALLS := .venv/.synced node_modules/.synced .tools/checkov/.installed
setup: ## Install Python (pipenv, .venv), Node (cdktf-cli, Node 22, gateway) and checkov
	@$(MAKE) --no-print-directory --jobs=3 --output-sync=target $(INSTALLS)

# Debian packages the local harness, the Lua unit tests and the benchmark run:
# nginx with ngx_lua, LuaJIT's lua-resty-core and cjson (the data plane's code;
# the image is OpenResty, which has them built in), busted (the Lua tests),
# BusyBox (the tools of the image's Alpine, which run its start command),
# wrk, and redis-server and openssl (the stand-in for the teams' shared store,
# over TLS). Installed only when missing.
SYSTEM_PACKAGES := nginx-light libnginx-mod-http-lua lua-resty-core lua-cjson lua-busted busybox wrk redis-server openssl
system-deps: ## Install the harness's Debian packages when missing (apt-get; needs root)
	@missing=""; for package in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "ok installed" || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing" >&2; exit 1; fi; \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BOOTSTRAP)/bin/pipenv:
	python3 -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet pipenv==$(PIPENV_VERSION)

# pip's own byte-compiling of all ~2,200 provider modules was most of the install:
# tools/compile_venv.py compiles everything else, in parallel (see there).
.venv/.synced: Pipfile Pipfile.lock tools/compile_venv.py | $(BOOTSTRAP)/bin/pipenv
	PIP_COMPILE=0 pipenv sync --dev
	$(PY) -m tools.compile_venv
	touch $@

# checkov pins old boto3/packaging releases: it gets a virtualenv of its own.
.tools/checkov/.installed: security/requirements-checkov.txt
	python3 -m venv .tools/checkov
	.tools/checkov/bin/pip install --quiet -r security/requirements-checkov.txt
	touch $@

node_modules/.synced: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: setup ## Synthesize every environment into cdktf.out/ (through the cdktf CLI)
	cdktf synth

deploy: setup system-deps ## Deploy ai-gateway-local to a local AWS emulator (moto), print its outputs, run its task on loopback
	$(PY) -m tools.emulator start $(LOCAL_ENV)
	$(EMULATOR_CREDENTIALS) $(PY) -m tools.state_bootstrap $(LOCAL_ENV)
	@$(WITH_MIRROR) $(EMULATOR_CREDENTIALS) $(PY) -m tools.quiet .tools/logs/deploy-$(LOCAL_ENV).log -- \
	  cdktf deploy ai-gateway-$(LOCAL_ENV) --auto-approve --outputs-file .tools/local-outputs.json
	@echo "outputs of ai-gateway-$(LOCAL_ENV):" && cat .tools/local-outputs.json
	@$(EMULATOR_CREDENTIALS) $(PY) -m tests.local_task start $(LOCAL_ENV)

destroy: setup ## Stop the local task, destroy ai-gateway-local and stop the emulator
	$(PY) -m tests.local_task stop
	@$(WITH_MIRROR) $(EMULATOR_CREDENTIALS) $(PY) -m tools.quiet .tools/logs/destroy-$(LOCAL_ENV).log -- \
	  cdktf destroy ai-gateway-$(LOCAL_ENV) --auto-approve
	$(PY) -m tools.emulator stop $(LOCAL_ENV)
	rm -f .tools/local-outputs.json

token: setup ## Print a machine token of ENV=<env>'s TEAM=<team> (how to get one on stderr; SHOW_SECRET=1 adds the secret)
	@test -n "$(ENV)" || { echo "usage: make token ENV=<environment> [TEAM=<team>]" >&2; exit 2; }
	@$(WITH_MIRROR) $(PY) -m tools.token $(ENV) $(if $(TEAM),--team $(TEAM)) $(if $(SHOW_SECRET),--show-secret)

prices: setup ## Write config/pricing/prices.toml into ENV=<env>'s pricing table (cost attribution; idempotent)
	@test -n "$(ENV)" || { echo "usage: make prices ENV=<environment>" >&2; exit 2; }
	@$(PY) -m tools.prices $(ENV)

bootstrap: setup ## Create the state bucket and lock table of ENV=<env> (AWS credentials from your shell)
	@test -n "$(ENV)" || { echo "usage: make bootstrap ENV=<environment>" >&2; exit 2; }
	$(PY) -m tools.state_bootstrap $(ENV)

# Silent lines (@): stdout is only the TOML snippet (`make -s hybrid-secrets ENV=prod >> snippet.toml`).
hybrid-secrets: setup ## Create ENV=<env>'s hybrid-mode secrets, KMS-encrypted (values from your shell or prompts); print their ARNs
	@test -n "$(ENV)" || { echo "usage: make hybrid-secrets ENV=<environment> [ONLY=registry|client-org]" >&2; exit 2; }
	@$(PY) -m tools.hybrid_secrets $(ENV) $(if $(ONLY),--$(ONLY))

test: setup system-deps ## Run the whole test suite (after ruff and mypy)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

security: setup ## Security gate on every shipped environment and example, freshly synthesized: rules, checkov, secrets
	$(PY) -m security.gate --synthesize --outdir .tools/security.out

gateway-local: setup system-deps ## Run the gateway behind the data plane on loopback, with mock providers
	$(PY) -m tests.gateway_harness

lint: setup ## Ruff lint and format check, mypy (strict) over our packages
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: setup system-deps bench/.venv-peer/.installed ## Benchmarks: synth (stock vs fast vs AWS CDK peer), the data plane's overhead (wrk), streams held per core
	$(PY) -m bench.synth --runs 3
	$(PY) -m bench.dataplane --rounds 3
	$(PY) -m bench.concurrency

bench/.venv-peer/.installed: bench/requirements-peer.txt
	python3 -m venv bench/.venv-peer
	bench/.venv-peer/bin/pip install --quiet -r bench/requirements-peer.txt
	touch $@

docs: setup ## Regenerate the configuration reference in README.md
	$(PY) -m aigw.docs --write README.md

clean: ## Remove synthesized output and caches (keeps installed dependencies)
	if [ -x $(PY) ]; then $(PY) -m tests.local_task stop; fi
	rm -rf cdktf.out .pytest_cache .ruff_cache .mypy_cache .tools/logs .tools/security.out .tools/local-outputs.json \
	  .tools/local-task
	find . -name __pycache__ -not -path './.venv/*' -not -path './node_modules/*' -prune -exec rm -rf {} +
