# auditpipe. `make run` and `make test` are the two commands a newcomer needs;
# both install what they need first (make deps), idempotently.
SHELL := /bin/bash
GO ?= go
BIN := bin/auditpipe
CACHE ?= $(HOME)/.cache/auditpipe
export AUDITPIPE_CACHE := $(CACHE)

.PHONY: deps build run test bench fuzz mutate lint clean

deps: ## install everything the project needs (idempotent)
	@bash scripts/deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/auditpipe

run: deps build ## the main job on the bundled sample
	@bash scripts/run.sh

test: deps ## the whole test suite
	$(GO) vet ./...
	$(GO) test -shuffle=on -timeout 20m -count=1 ./...

bench: deps ## benchmarks against their baselines (see bench/README.md)
	@bash scripts/bench.sh

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME
	@bash scripts/fuzz.sh $(FUZZTIME)

# MUTATE_PKGS="collector/checkpoint forwarder" make mutate: a subset (see
# scripts/mutate.d/packages for the list and the thresholds).
mutate: deps ## mutation testing (gremlins), one package at a time; fails below a package's threshold
	@bash scripts/mutate.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin
