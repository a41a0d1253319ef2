# Sluice build and test targets. `make test` is the whole suite (what CI runs).
GO ?= go

.PHONY: build test testrace unit compat lint fuzz stress bench benchsuite clean

build:
	$(GO) build -o sluice ./cmd/sluice

# The whole suite: every Go test with the race detector, then the real-client
# compatibility scripts (kcat, kafkajs).
test: testrace compat

# -count=1: never a cached result (internal/clustertest builds and runs the
# sluice binary, which Go's test cache does not see).
testrace:
	$(GO) test -race -count=1 -timeout 20m ./...

unit:
	$(GO) test ./...

# Real clients of other ecosystems against `sluice serve`: kcat (librdkafka)
# and kafkajs (pinned in compat/kafkajs/package-lock.json). Each script
# installs its client when missing (apt-get when root; npm ci).
compat:
	./scripts/kcat-test.sh
	./scripts/kafkajs-test.sh

lint:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...

# Short runs of every fuzz target (FUZZTIME per target); see scripts/fuzz.sh.
FUZZTIME ?= 20s
fuzz:
	GO=$(GO) ./scripts/fuzz.sh $(FUZZTIME)

# Long runs: 200 SIGKILL crash/recover cycles of the storage engine; the
# read-process-write chaos test over 100,000 records and the delayed-message
# test over 1,000 transactions; 20 leader kill/pause/restart cycles of a
# replicated cluster under acks=all produce.
stress:
	$(GO) test -run 'TestCrash$$' -count 1 -timeout 15m ./internal/log/ -crash.cycles=200
	$(GO) test -run 'TestTxnChaosReadProcessWrite|TestTxnDelayedMessages' -count 1 -timeout 15m ./internal/broker/ -txn.chaos.records=100000 -txn.delay.txns=1000
	$(GO) test -run 'TestReplicationFaultCycles' -count 1 -timeout 15m ./internal/clustertest/ -replication.fault-cycles=20

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

# Sluice against kfake and the machine's limits, brokers as child processes
# (see BENCHMARKS.md). Takes ~15-20 minutes.
benchsuite:
	$(GO) run ./bench -runs 5 -md BENCHMARKS.tables.md

clean:
	rm -f sluice
