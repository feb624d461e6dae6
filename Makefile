# moonchat — the targets everyone uses. `make test` is what CI runs.
GO ?= go

.PHONY: test vet lint fmt build bench

test: vet
	$(GO) test -race -count=1 -timeout 14m ./...

vet:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest ./...

build:
	$(GO) build -o bin/moonchat ./cmd/moonchat

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
