# auditpipe. `make run` and `make test` are the two commands a newcomer needs;
# both install what they need first (make deps), idempotently.
SHELL := /bin/bash
GO ?= go
BIN := bin/auditpipe
CACHE ?= $(HOME)/.cache/auditpipe
export AUDITPIPE_CACHE := $(CACHE)

.PHONY: deps build run test test-race test-faults bench fuzz mutate lint clean deb

deps: ## install everything the project needs (idempotent)
	@bash scripts/deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/auditpipe

run: deps build ## the main job on the bundled sample
	@bash scripts/run.sh

test: deps ## the whole test suite, then the race detector on the unit packages
	$(GO) vet ./...
	cd deploy/kitcheck && $(GO) vet .
	$(GO) test -shuffle=on -timeout 20m -count=1 ./...
	$(MAKE) test-race

# The race detector on every package but those that load chDB's 178 MB
# library (the store, the query endpoint, the indexer and the composition
# root: slow to instrument and to run, and their concurrency is the Kafka
# readers' and the collector's, covered here). The tests against a real
# Apache Kafka run once, in make test: the same code runs under the race
# detector against kfake, and the JVM broker would double CI's time. deploy/
# has no code of its own (its tests run external tools and the binary).
RACE_PKGS = $$($(GO) list ./... | grep -v -e '/indexer$$' -e '/clickhouse' -e '/queryapi$$' -e '/internal/app$$' -e '/deploy$$')
test-race: deps ## go test -race on the unit packages
	$(GO) test -race -shuffle=on -timeout 15m -count=1 -skip '/apache$$|Apache' $(RACE_PKGS)

# The fault suite (issue 17; internal/app/faults_test.go, build tag faults):
# the split targets as processes on a real Apache Kafka, killed, the broker
# restarted, rsyslog stopped, the collector's disk filled, during a run of
# FAULT_EVENTS events; it prints each count. Root (a tmpfs is mounted).
# FAULT_SEED repeats a run's faults (its seed is printed); the other knobs:
# AUDITPIPE_FAULT_WINDOW, AUDITPIPE_FAULT_SIEM_DOWN, AUDITPIPE_FAULT_KILLS,
# AUDITPIPE_FAULT_SETTLE (see the test). CI runs a smaller configuration
# (.ci/run).
FAULT_EVENTS ?= 200000
FAULT_SEED ?=
test-faults: deps ## the fault suite: kills and outages during a FAULT_EVENTS-event run
	$(GO) vet -tags faults ./internal/app/
	AUDITPIPE_FAULT_EVENTS=$(FAULT_EVENTS) AUDITPIPE_FAULT_SEED=$(FAULT_SEED) \
		$(GO) test -tags faults -count=1 -v -timeout 40m -run '^TestFault' ./internal/app/

bench: deps ## benchmarks against their baselines (see bench/README.md)
	@bash scripts/bench.sh

# The whole pipeline under load (scripts/bench.d/pipeline.sh, bench/README.md
# "Pipeline"): minutes, not part of make test.
.PHONY: bench-pipeline
bench-pipeline: deps ## the all-in-one on generated traffic: events/s, latency, RSS, CPU
	@BENCH_PIPELINE="$(BENCH_PIPELINE)" bash scripts/bench.d/pipeline.sh

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME
	@bash scripts/fuzz.sh $(FUZZTIME)

# MUTATE_PKGS="collector/checkpoint forwarder" make mutate: a subset (see
# scripts/mutate.d/packages for the list and the thresholds).
mutate: deps ## mutation testing (gremlins), one package at a time; fails below a package's threshold
	@bash scripts/mutate.sh

# The Debian package (scripts/deb.sh): bin/auditpipe, the systemd units, the
# auditd plugin file (inactive), example configurations; into dist/.
DEB_VERSION ?= 0.1.0
deb: build
	@bash scripts/deb.sh $(BIN) $(DEB_VERSION) dist

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	cd deploy/kitcheck && $(GO) vet .

clean:
	rm -rf bin dist
