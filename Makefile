# paintsd: `make demo` colorizes the sample line art; `make test` runs every test. Both install what they need.
SWIFT ?= swift
DEPS := libzmq3-dev libopenblas-dev libpng-dev libjson-c-dev pkg-config python3-zmq
DEMO_OUT ?= out/demo

.PHONY: all deps build release test demo bench fixtures clean

all: build

deps:
	@scripts/install-deps.sh $(DEPS)

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Every test: Swift unit and end-to-end tests (real daemon, real ZeroMQ), then the example scripts against the binaries.
test: build
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	Tests/examples.sh .build/debug

# Colorizes the sample line art and makes undo previews with the built-in engines; writes $(DEMO_OUT)/.
demo: release
	Examples/demo.sh .build/release $(DEMO_OUT)

# Prints speed figures (release build).
bench: release
	.build/release/paints-bench Examples/art

# Regenerates the diffusion parity fixtures with the pinned reference stack (torch, diffusers); CI never runs it.
FIXTURE_VENV ?= .venv-fixtures
fixtures:
	test -x $(FIXTURE_VENV)/bin/python || python3 -m venv $(FIXTURE_VENV)
	$(FIXTURE_VENV)/bin/pip install -q -r Tests/Fixtures/diffusion/requirements.txt
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/diffusion/generate.py

clean:
	rm -rf .build out
