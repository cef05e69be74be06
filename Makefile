# synthloop developer entry points. `make help` lists them.
#
# Every target runs from the project's own virtualenv ($(VENV)), created with `python3 -m venv`
# and filled from pyproject.toml the first time a target needs it (and again whenever
# pyproject.toml changes). Nothing is ever installed into the system interpreter.
SYSTEM_PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= train,report,dev
PYTHON := $(VENV)/bin/python
PYTEST := $(PYTHON) -m pytest
SYNTHLOOP := $(VENV)/bin/synthloop
VENV_STAMP := $(VENV)/.synthloop-installed
KIND_CLUSTER ?= synthloop
KIND_WORKER_IMAGE ?= synthloop/trainer:dev
# console scripts (synthloop, synthloop-worker, kubectl wrappers) resolve from the venv first
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help venv install crds verify deps-check lint typecheck test test-unit test-integration test-e2e demo \
        local-build local-up local-down report bench kind-up kind-test

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV_STAMP): pyproject.toml
	@test -x $(PYTHON) || { echo "== creating $(VENV) with $(SYSTEM_PYTHON) -m venv"; $(SYSTEM_PYTHON) -m venv $(VENV); }
	@echo "== installing synthloop[$(EXTRAS)] into $(VENV) (the first time downloads torch: a few minutes)"
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[$(EXTRAS)]'
	@touch $@

venv: $(VENV_STAMP)  ## create .venv and install synthloop with the CPU training extras and dev tools

install: venv  ## same as venv

crds: venv  ## regenerate crds/ from the pydantic models
	$(SYNTHLOOP) crds --out crds

verify: venv  ## fail if crds/ differs from what the models generate
	$(SYNTHLOOP) crds --out crds --check

deps-check: venv  ## fail if a third-party import is declared nowhere in pyproject.toml
	$(PYTHON) ../shared/tools/undeclared-imports . operator tests bench

lint: venv  ## ruff
	$(PYTHON) -m ruff check operator tests bench

typecheck: venv  ## mypy strict on the operator side
	$(PYTHON) -m mypy

local-build: venv  ## build (or reuse) the pinned Kubernetes, etcd, KWOK, MinIO and Kueue binaries
	$(SYNTHLOOP) local build

local-up: local-build  ## start the embedded cluster (etcd, apiserver, controllers, scheduler, MinIO, nodes)
	$(SYNTHLOOP) local up

local-down: venv  ## stop exactly what local-up started
	$(SYNTHLOOP) local down

test: verify local-build  ## every test tier: unit, integration (real local cluster) and e2e
	$(PYTEST) -q -m "unit or integration or e2e" tests

test-unit: venv  ## fast tests, no cluster
	$(PYTEST) -q -m unit tests

test-integration: local-build  ## tests against the real local cluster
	$(PYTEST) -q -m integration tests

test-e2e: local-build  ## the weak-to-strong loop end to end
	$(PYTEST) -q -m e2e tests

demo: venv local-build  ## run the two-iteration weak-to-strong loop on the embedded default
	$(PYTHON) -m synthloop.demo

report: venv  ## write the HTML report of the loop in the current cluster to ./report/
	$(SYNTHLOOP) report --out report

bench: venv  ## CPU benchmarks (ratios against baselines measured in the same run)
	$(PYTHON) bench/train_throughput.py
	$(PYTHON) bench/synth_throughput.py

kind-up:  ## (needs Docker) a kind cluster whose workers look like DGX H100 nodes
	kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml
	# kind cannot set extended resources from its config: advertise 8 GPUs and RDMA per worker
	for n in $$(kubectl get nodes -l nvidia.com/gpu.count=8 -o name); do \
	  kubectl patch $$n --subresource=status --type=merge \
	    -p '{"status":{"capacity":{"nvidia.com/gpu":"8","rdma/rdma_shared_device_a":"1"}}}'; done
	kubectl apply --server-side -k crds

kind-test: venv  ## (needs Docker and a MinIO: set SYNTHLOOP_S3_ENDPOINT and AWS_*) integration tests on kind
	kind export kubeconfig --name $(KIND_CLUSTER) --kubeconfig .kind-kubeconfig
	# the operator tests run the real workers in pods: an image of this checkout on every node
	docker build -t $(KIND_WORKER_IMAGE) -f images/trainer/Dockerfile .
	kind load docker-image $(KIND_WORKER_IMAGE) --name $(KIND_CLUSTER)
	# tests of the embedded cluster itself (local_only) cannot run on kind: deselected, never skipped
	SYNTHLOOP_TEST_KUBECONFIG=$(CURDIR)/.kind-kubeconfig SYNTHLOOP_TEST_WORKER_IMAGE=$(KIND_WORKER_IMAGE) \
	  $(PYTEST) -q -m "integration and not local_only" tests
