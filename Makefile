# SIPEdge: the two commands of the README, plus the pieces they are made of.
#   make run   install system packages (if missing), build release, run sip-edge with its embedded defaults
#   make test  install system packages (if missing), run the lint and the whole test suite
SHELL := /bin/bash
SWIFT ?= swift
RUN_ARGS ?=

.PHONY: run test test-sanitizers deps build build-release lint fuzz bench install

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

build-release: deps
	$(SWIFT) build -c release

run: build-release
	./.build/release/sip-edge $(RUN_ARGS)

lint:
	@scripts/lint.sh

test: deps lint
	@scripts/test.sh

# The suites under ASan+UBSan and TSan (scripts/test-sanitizers.sh; SHORT=1 for CI's form).
test-sanitizers: deps
	@scripts/test-sanitizers.sh $(if $(SHORT),short,full)

fuzz:
	perf/fuzz.sh $${SECONDS_TO_RUN:-60}

bench:
	cd Benchmarks && $(SWIFT) package benchmark --no-progress

# Binary, systemd unit, sysusers entry, defaults and configuration; PREFIX=/usr/local DESTDIR= as usual.
install: build-release
	scripts/install.sh .build/release/sip-edge
