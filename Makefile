# callrouter — `make run` starts the server on the embedded store,
# `make test` runs every test (PostgreSQL suite included when reachable;
# REQUIRE_POSTGRES=1 makes an unreachable database a failure).

GO          ?= go
BIN         := bin/router
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
FUZZTIME    ?= 60s

export POSTGRES_URL

.PHONY: all build run test unit lint fmt vet staticcheck fuzz bench-micro clean tools

all: build

build:
	$(GO) build -o $(BIN) ./cmd/router

## run: start the server on the embedded SQLite store under ./data (console logs)
run: build
	ROUTER_LOG_FORMAT=$${ROUTER_LOG_FORMAT:-console} ./$(BIN) serve

## test: lint, then every test with the race detector (fuzz seed corpora included)
test: lint unit

unit:
	$(GO) test -race -count=1 -timeout 8m ./...

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

tools: $(STATICCHECK)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

## fuzz: run every fuzz target for FUZZTIME each (long runs; seeds run in `make test`)
fuzz:
	$(GO) test ./internal/phone -run '^$$' -fuzz FuzzFastAgreesWithPhonenumbers -fuzztime $(FUZZTIME)
	$(GO) test ./internal/httpapi -run '^$$' -fuzz FuzzParseRouteRequest -fuzztime $(FUZZTIME)

## bench-micro: the in-process micro-benchmarks, benchstat-comparable
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/phone ./internal/cache ./internal/lookup ./internal/httpapi

clean:
	rm -rf bin
