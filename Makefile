# callrouter — `make run` starts the server on the embedded store,
# `make test` runs every test (PostgreSQL suite included when reachable;
# REQUIRE_POSTGRES=1 makes an unreachable database a failure).

GO          ?= go
BIN         := bin/router
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
# VERSION is what `router version` prints: git describe of the checkout
# ("dev" outside git, as a plain go build gives).
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
FUZZTIME    ?= 60s
SHORTFUZZTIME ?= 5s
# Shrinking a new input for the default 60 s would stall short runs.
FUZZMINTIME ?= 200x

export POSTGRES_URL

.PHONY: all build run test unit chromium screenshots lint fmt tidy vet staticcheck fuzz fuzz-short bench bench-quick bench-micro soak soak-quick clean tools wrk

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/router

## run: start the server on the embedded SQLite store under ./data (console logs)
run: build
	ROUTER_LOG_FORMAT=$${ROUTER_LOG_FORMAT:-console} ./$(BIN) serve

## test: lint, every test with the race detector (fuzz seed corpora included),
## then short fuzz runs of the HTTP parsers
test: lint unit fuzz-short

# -parallel 4: the end-to-end tests of cmd/router spend most of their time
# waiting on servers, child processes and fake CRMs, so four at a time fill
# two cores.
unit: chromium
	$(GO) test -race -count=1 -parallel 4 -timeout 8m ./...

## chromium: install Debian's Chromium for the console's browser tests when missing
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## screenshots: retake docs/screenshots/*.png from the console's browser tests
screenshots: chromium
	CONSOLE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestBrowser' ./internal/console

lint: fmt tidy vet staticcheck

# tidy: go.mod and go.sum say exactly what the code imports
tidy:
	$(GO) mod tidy -diff

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
	$(GO) test ./internal/httpapi -run '^$$' -fuzz '^FuzzParseRouteRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/httpapi -run '^$$' -fuzz '^FuzzRouteHTTP$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME)
	$(GO) test ./internal/httpapi -run '^$$' -fuzz '^FuzzEventsHTTP$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME)
	$(GO) test ./internal/httpapi -run '^$$' -fuzz '^FuzzImportHTTP$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME)

## fuzz-short: the route, event and import parsers fuzzed through the HTTP layer, SHORTFUZZTIME each
fuzz-short:
	$(GO) test ./internal/httpapi -run '^$$' -fuzz '^FuzzRouteHTTP$$' -fuzztime $(SHORTFUZZTIME) -fuzzminimizetime $(FUZZMINTIME)
	$(GO) test ./internal/httpapi -run '^$$' -fuzz '^FuzzEventsHTTP$$' -fuzztime $(SHORTFUZZTIME) -fuzzminimizetime $(FUZZMINTIME)
	$(GO) test ./internal/httpapi -run '^$$' -fuzz '^FuzzImportHTTP$$' -fuzztime $(SHORTFUZZTIME) -fuzzminimizetime $(FUZZMINTIME)

## bench: the benchmark suite, every figure of the performance contract beside
## its target, the ceiling and the baselines, by our load generator and by wrk
## (1M phones, ≤ 12 min); writes bench/results/{results.md,results.json,latency.png}.
## Exits non-zero when a target misses; BENCHFLAGS=-suite.report-only only reports.
bench: wrk
	cd bench && $(GO) test -count=1 -v -run '^TestSuite$$' -timeout 20m . -args -suite=full -suite.profile -suite.out=results $(BENCHFLAGS)

## bench-quick: the same table from short runs and 20k phones (≤ 90 s), into bench/results/quick
bench-quick: wrk
	cd bench && $(GO) test -count=1 -v -run '^TestSuite$$' -timeout 5m . -args -suite=quick -suite.out=results/quick $(BENCHFLAGS)

## wrk: Debian's wrk, the external load generator of the suite, installed when missing
wrk:
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }

## soak: 10 min of mixed load (routes 2k req/s, call events to a fake amoCRM) through a
## graceful restart and a crash; nothing lost; writes bench/results/soak.md
## (PostgreSQL: make soak SOAKFLAGS=-soak.backend=postgres)
soak:
	cd bench && $(GO) test -count=1 -v -run '^TestSoak$$' -timeout 20m . -args -soak=10m $(SOAKFLAGS)

## soak-quick: the same checks over 45 s
soak-quick:
	cd bench && $(GO) test -count=1 -v -run '^TestSoak$$' -timeout 5m . -args -soak=45s -soak.out=results/quick/soak.md $(SOAKFLAGS)

## bench-micro: the in-process micro-benchmarks, benchstat-comparable
## (normalize, cache get, route decision, request and event parsing)
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/phone ./internal/cache ./internal/lookup ./internal/httpapi ./internal/events

clean:
	rm -rf bin
