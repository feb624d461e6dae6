# moonchat — the targets everyone uses. `make test` is what CI runs.
GO ?= go

.PHONY: test vet lint fmt build bench scale

test: vet
	$(GO) test -race -count=1 -timeout 14m ./...

vet:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest ./...

build:
	$(GO) build -o bin/moonchat ./cmd/moonchat
	$(GO) build -o bin/moonchat-bench ./cmd/moonchat-bench

# Micro-benchmarks (short runs), then moonchat side by side with the gws
# baseline (cmd/moonchat-bench/internal/loadgen BenchmarkSideBySide), which rewrites
# docs/performance.md from the figures, with the cluster scenario (one node
# against three on a nats-server built from go.mod). About 10 minutes.
bench:
	@mkdir -p bin
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=200ms -timeout 5m ./... | tee bin/microbench.txt
	MOONCHAT_BENCH=1 MOONCHAT_BENCH_MICRO=$(CURDIR)/bin/microbench.txt \
		$(GO) test -count=1 -run '^$$' -bench '^BenchmarkSideBySide$$' -benchtime=1x -v -timeout 10m ./cmd/moonchat-bench/internal/loadgen

# The scale run of issue 15 (bench/scale; docs/performance.md, "Scale run"):
# one nats-server (built from the nats-server module in go.mod), six
# `moonchat serve` nodes in cluster mode and 100,000 idle connections in one
# room from six load worker processes, then timed broadcasts to all of them.
# A few minutes; stops every process it started. SCALE_FLAGS passes flags
# (go run ./bench/scale -h), e.g. SCALE_FLAGS="-clients 20000 -nodes 2".
SCALE_FLAGS ?=
scale: build
	$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2
	$(GO) run ./bench/scale -bin bin -out bin/scale.json $(SCALE_FLAGS)
