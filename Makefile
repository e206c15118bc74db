# paintsd: `make demo` colorizes the sample line art; `make test` runs every test. Both install what they need.
SWIFT ?= swift
DEPS := libzmq3-dev libopenblas-dev libdnnl-dev libpng-dev libjson-c-dev pkg-config python3-zmq
# What the bridges' tests run inside: real GIMP 2.10 (and its plug-in headers) and real Krita with its Python.
BRIDGE_DEPS := gimp libgimp2.0-dev krita python3-pyqt5 xvfb xauth
DEMO_OUT ?= out/demo

.PHONY: all deps build release test demo bench bench-builtin bench-diffusion fixtures fuzz clean install-gimp install-krita

all: build

deps:
	@scripts/install-deps.sh $(DEPS)

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Every test: Swift unit and end-to-end tests (real daemon, real ZeroMQ), the example scripts against the binaries, then
# the bridges: the Python and C clients against a real daemon, the GIMP and Krita plug-ins inside the real apps.
test: build
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	Tests/examples.sh .build/debug
	scripts/with-daemon.sh .build/debug /usr/bin/python3 -m unittest discover -s Tests/bridges
	Tests/bridges/c_client.sh .build/debug
	@scripts/install-deps.sh $(BRIDGE_DEPS)
	Tests/bridges/gimp.sh .build/debug
	Tests/bridges/krita.sh .build/debug

# Colorizes the sample line art and makes undo previews with the built-in engines; writes $(DEMO_OUT)/.
demo: release
	Examples/demo.sh .build/release $(DEMO_OUT)

# Prints speed figures (release build): the built-in engines and the daemon, then the diffusion engine against PyTorch.
bench: bench-builtin bench-diffusion

bench-builtin: release
	.build/release/paints-bench Examples/art

# Full-size SD1.5 components with random weights and a line-art ControlNet (diffusers' ControlNetModel.from_unet): the
# Swift engine, then PyTorch on the same weights, then both side by side with the ratios (one CFG step with the
# ControlNet among them); then a whole sd colorize of a 2048x2048 sketch with hints and the ControlNet through a fresh
# paintsd (time per step, time outside sampling, peak RSS beside the estimate). Issue 13's parts in the same two runs:
# CLIP ViT-H/14 image encode, an SD1.5 CFG step with and without an IP-Adapter, one SDRO step (SD2.1-shaped UNet with
# the blueprint encoder). Needs the fixture venv; writes ~14 GB under $(BENCH_MODELS), not committed.
# PAINTSD_BENCH_QUICK=1: a smoke run of the same code at small sizes, one round, 4 steps (its figures mean nothing),
# issue 13's CLIP and SDRO parts on small stand-ins under $(BENCH_MODELS)/quick/, without the Paints-UNDO part.
BENCH_MODELS ?= /tmp/paintsd-sd15-random
BENCH_UNDO_MODELS ?= /tmp/paintsd-undo-random
bench-diffusion: release
	test -x $(FIXTURE_VENV)/bin/python || $(MAKE) fixtures
	@case "$$PAINTSD_BENCH_QUICK" in ""|0) sub=;; *) sub=/quick;; esac; set -x; \
	test -f $(BENCH_MODELS)/text_encoder/model.fp16.safetensors -a -f $(BENCH_MODELS)/controlnet/sd15-lineart-random/diffusion_pytorch_model.fp16.safetensors \
		-a -f $(BENCH_MODELS)/ip-adapter/ip-adapter_sd15-random.safetensors -a -f $(BENCH_MODELS)$$sub/clip-vision/vit-h-random/model.safetensors \
		-a -f $(BENCH_MODELS)$$sub/sdro-random/unet/diffusion_pytorch_model.safetensors \
		-a -f $(BENCH_MODELS)/lora/lcm-lora-sdv1-5.safetensors -a -f $(BENCH_MODELS)/taesd/config.json \
		|| $(FIXTURE_VENV)/bin/python Benchmarks/torch/sd15_random.py $(BENCH_MODELS) --write
	# The daemon's own kernel choice is what is measured: an OPENBLAS_CORETYPE inherited from the shell (some machines
	# here export Haswell) would pin the AVX2 kernels.
	env -u OPENBLAS_CORETYPE .build/release/paints-bench-diffusion $(BENCH_MODELS)
	$(FIXTURE_VENV)/bin/python Benchmarks/torch/sd15_random.py $(BENCH_MODELS) --time --compare $(BENCH_MODELS)/swift-figures.json
	# Issue 15: OpenVINO (f32, 2 threads) on the same weights beside paintsd's figures; then paintsd's kernels: the FMA
	# peak, each convolution backend side by side, where a UNet pass and a VAE decode spend their time.
	$(FIXTURE_VENV)/bin/python -c "import openvino" 2>/dev/null || $(FIXTURE_VENV)/bin/pip install -q -r Tests/Fixtures/diffusion/requirements.txt
	$(FIXTURE_VENV)/bin/python Benchmarks/torch/sd15_openvino.py $(BENCH_MODELS) --compare $(BENCH_MODELS)/swift-figures.json
	env -u OPENBLAS_CORETYPE .build/release/paints-bench-diffusion --kernels $(BENCH_MODELS)
	# bfloat16 convolutions and linear layers beside f32 (times and output errors; on CPUs without bf16 it says so).
	env -u OPENBLAS_CORETYPE .build/release/paints-bench-diffusion --precision $(BENCH_MODELS)
	env -u OPENBLAS_CORETYPE .build/release/paints-bench --sd-colorize $(BENCH_MODELS) Examples/art
	# Issue 14's speed options (runnable alone: the lines below): a random rank-64 kohya LoRA named like the LCM-LoRA
	# (times only, not a distillation) read and bound in-process; then through a fresh paintsd: quality fast with and
	# without TAESD previews, balanced at 6 steps (its per-step time is the figure), a 1-step LoRA switch; then PyTorch's
	# fast run (LCMScheduler, 4 steps, guidance 1, the same LoRA by load_lora_weights).
	env -u OPENBLAS_CORETYPE .build/release/paints-bench-diffusion --lora-bind $(BENCH_MODELS)
	env -u OPENBLAS_CORETYPE .build/release/paints-bench --sd-speed $(BENCH_MODELS) Examples/art
	$(FIXTURE_VENV)/bin/python Benchmarks/torch/sd15_speed.py $(BENCH_MODELS) Examples/art
	# The Paints-UNDO single-frame model at its default 512x640 (~6 GB more under $(BENCH_UNDO_MODELS)).
	@case "$$PAINTSD_BENCH_QUICK" in ""|0) ;; *) echo "quick run: the Paints-UNDO part left out"; exit 0;; esac; set -ex; \
	test -f $(BENCH_UNDO_MODELS)/text_encoder/model.fp16.safetensors || $(FIXTURE_VENV)/bin/python Benchmarks/torch/paints_undo_random.py $(BENCH_UNDO_MODELS) --write; \
	env -u OPENBLAS_CORETYPE .build/release/paints-bench-diffusion --paints-undo $(BENCH_UNDO_MODELS); \
	$(FIXTURE_VENV)/bin/python Benchmarks/torch/paints_undo_random.py $(BENCH_UNDO_MODELS) --time --compare $(BENCH_UNDO_MODELS)/swift-figures.json

# Regenerates the parity fixtures (diffusion core, Paints-UNDO, WD taggers, ControlNets, SDRO) with the pinned reference
# stack (torch, diffusers, transformers, timm; OpenCV for SDRO's line-art threshold); CI never runs it.
FIXTURE_VENV ?= .venv-fixtures
fixtures:
	test -x $(FIXTURE_VENV)/bin/python || python3 -m venv $(FIXTURE_VENV)
	$(FIXTURE_VENV)/bin/pip install -q -r Tests/Fixtures/diffusion/requirements.txt -r Tests/Fixtures/sdro/requirements.txt
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/diffusion/generate.py
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/schedulers-fewstep/generate.py
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/paints-undo/generate.py
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/tagger/generate.py
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/controlnet/generate.py
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/ip-adapter/generate.py
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/reference-only/generate.py
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/sdro/generate.py
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/clip-vision/generate.py
	$(FIXTURE_VENV)/bin/python Tests/Fixtures/taesd/generate.py
	$(FIXTURE_VENV)/bin/pip install -q peft==0.21.2 && $(FIXTURE_VENV)/bin/python Tests/Fixtures/lora/generate.py

# Fuzzing, outside CI and `make test`: a seeded random mutator over the safetensors reader, the single-file and folder
# model loaders, the PNG decoder and the request header parser, FUZZ_ITERATIONS inputs per target from the seed corpus
# in Tests/Fixtures/fuzz/ (the same seed makes the same inputs). An input that crashes or hangs its worker process is
# saved under Tests/Fixtures/fuzz/regressions/<target>/, where the regression tests load it, and the run fails. About
# two minutes at the defaults on two cores; `paints-fuzz --replay TARGET FILE` reruns one input in-process.
FUZZ_ITERATIONS ?= 500
FUZZ_SEED ?= 1
fuzz: deps
	$(SWIFT) build --product paints-fuzz
	.build/debug/paints-fuzz --iterations $(FUZZ_ITERATIONS) --seed $(FUZZ_SEED)

# The Krita plug-in, installed and enabled for this user (restart Krita afterwards).
install-krita:
	Bridges/krita/install.sh

# The GIMP plug-in and its Script-Fu procedures, into $GIMP2_DIRECTORY (default ~/.config/GIMP/2.10); a profile GIMP
# has not made yet is made by GIMP itself first (one headless run), so GIMP finds every data folder it saves into.
install-gimp:
	@scripts/install-deps.sh $(DEPS) $(BRIDGE_DEPS)
	$(MAKE) -C Bridges/gimp install

clean:
	rm -rf .build out
	$(MAKE) -C Bridges/gimp clean
	$(MAKE) -C Bridges/c clean
