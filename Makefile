# paintsd: `make demo` colorizes the sample line art; `make test` runs every test. Both install what they need.
SWIFT ?= swift
DEPS := libzmq3-dev libopenblas-dev libpng-dev libjson-c-dev pkg-config python3-zmq
DEMO_OUT ?= out/demo

.PHONY: all deps build release test demo bench clean

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

clean:
	rm -rf .build out
