#!/usr/bin/env python3
"""OpenVINO beside PyTorch and paintsd for `make bench-diffusion` (issue 15), on the same random full-size SD1.5
weights: the f32 diffusers folders Benchmarks/torch/sd15_random.py --write made under OUT_DIR (unet/, vae/,
text_encoder/, controlnet/sd15-lineart-random/). Each is loaded with diffusers / transformers from_pretrained, converted
with openvino.convert_model and compiled (static input shapes) for "CPU" with 2 inference threads, f32 inference
precision and the LATENCY hint; then timed as sd15_random.py times PyTorch: one warm-up, then ROUNDS timed rounds,
min and median.

    python Benchmarks/torch/sd15_openvino.py OUT_DIR [--quick] [--compare SWIFT_JSON] [--json OUT.json]

Figures (seconds; `_s` the min over the rounds, `_median_s` the median):
- unet_batch1_s, unet_batch2_s: one UNet pass at 64x64 latents, timestep 500, context [B, 77, 768] random.
- controlnet_step_min_s / _median_s: one classifier-free guidance step with the line-art ControlNet as diffusers'
  StableDiffusionControlNetPipeline runs it: the ControlNet at batch 2 with the hint [2, 3, 512, 512] (embedded inside
  every call), then the UNet at batch 2 with its 12 down residuals and the mid one as inputs (the residual tensors
  handed over without a copy); the two parts as controlnet_controlnet_* and controlnet_unet_*, as the Swift file has.
- vae_decode_512_s, vae_decode_1024_s: decode(z).sample of latents [1, 4, 64, 64] and [1, 4, 128, 128];
  vae_encode_512_s, vae_encode_1024_s: encode(x).latent_dist.mean of images [1, 3, 512, 512] and [1, 3, 1024, 1024].
- clip_encode_s: the text encoder's last_hidden_state for 77 token ids.
- <part>_peak_rss_gib: VmHWM over the part (unet, controlnet, vae, clip), reset at its start (sd15_random.py's
  helpers): the torch module, its conversion, the compiled model and the runs together; not paintsd's measure.
Conversion and compile times per model are printed and written under "setup_s" (not figures to compare). The module
wrappers (a forward taking and returning plain tensors) are what convert_model traces: diffusers' output dataclasses,
keyword-only residual arguments and the VAE's encode/decode methods need them. Each is traced once at the first size it
is timed at, its inputs left dynamic, and reshaped (openvino.Model.reshape) to the static shapes of each case before
that case's compile, so that every compiled model has static shapes: converted with static `input` shapes, the shape
arithmetic is folded into constants and the reshape to another batch or image size fails.

Checked once against PyTorch at the --quick size: the ControlNet's 13 residuals and the UNet's output with them agree
to 5e-6 of their largest magnitude (f32).

--compare SWIFT_JSON (paints-bench-diffusion's OUT_DIR/swift-figures.json): a table figure | paintsd | PyTorch |
OpenVINO | paintsd/OpenVINO over the min figures, the _median_s ones and the peak RSS; the PyTorch column from
torch-figures.json beside SWIFT_JSON when there is one (sd15_random.py prints its figures, it writes no such file);
keys a file lacks print "-".

--quick (or PAINTSD_BENCH_QUICK=1): a smoke run of the same code on the same full-size weights at 128x128 images
(16x16 latents; the "1024" VAE case at 256x256), one timed round; its figures say nothing about speed.

Needs the pinned stack of Tests/Fixtures/diffusion/requirements.txt (openvino included; `make fixtures` installs it)
and the weights of sd15_random.py --write. Writes only the JSON (default OUT_DIR/openvino-figures.json); nothing it
writes is committed.
"""
import argparse
import gc
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sd15_random import (CONTROLNET, ROUNDS, SD15_CLIP, SD15_UNET, cpu_summary, hide_broken_torchvision,  # noqa: E402
                         min_median, peak_rss, quick_mode, reset_peak_rss, timed_rounds)

THREADS = 2
CONFIG = {"INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
TOKENS = 77
# The compare table's rows, in order (the Swift side names its figures the same).
FIGURES = ("unet_batch1_s", "unet_batch1_median_s", "unet_batch2_s", "unet_batch2_median_s",
           "controlnet_step_min_s", "controlnet_step_median_s", "controlnet_controlnet_min_s",
           "controlnet_controlnet_median_s", "controlnet_unet_min_s", "controlnet_unet_median_s",
           "vae_decode_512_s", "vae_decode_512_median_s", "vae_decode_1024_s", "vae_decode_1024_median_s",
           "vae_encode_512_s", "vae_encode_512_median_s", "vae_encode_1024_s", "vae_encode_1024_median_s",
           "clip_encode_s", "clip_encode_median_s",
           "unet_peak_rss_gib", "controlnet_peak_rss_gib", "vae_peak_rss_gib", "clip_peak_rss_gib")


class UNetPass(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


class UNetWithResiduals(torch.nn.Module):
    """The UNet with the ControlNet's 12 down residuals and the mid one as positional inputs."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, *residuals):
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         down_block_additional_residuals=residuals[:-1], mid_block_additional_residual=residuals[-1],
                         return_dict=False)[0]


class ControlNetPass(torch.nn.Module):
    """The ControlNet's residuals as one flat tuple: the 12 down ones, then the mid one."""

    def __init__(self, controlnet):
        super().__init__()
        self.controlnet = controlnet

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond):
        down, mid = self.controlnet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                                    controlnet_cond=controlnet_cond, conditioning_scale=1.0, return_dict=False)
        return (*down, mid)


class VAEDecode(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z).sample


class VAEEncode(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x):
        return self.vae.encode(x).latent_dist.mean


class TextEncode(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids):
        return self.clip(input_ids=input_ids).last_hidden_state


class Runner:
    """Converts, compiles and times; keeps the setup times and the figures."""

    def __init__(self, ov, rounds):
        self.ov = ov
        self.core = ov.Core()
        self.rounds = rounds
        self.setup = {}
        self.figures = {}

    def convert(self, name, module, example):
        """openvino.convert_model of `module` traced with the tensors `example`. Its input shapes stay dynamic: a model
        converted with static ones has its shape arithmetic folded into constants, and Model.reshape to another batch
        or size then fails; `compile` makes them static."""
        start = time.perf_counter()
        with torch.no_grad():
            model = self.ov.convert_model(module, example_input=tuple(example))
        self.setup[f"convert_{name}_s"] = elapsed = time.perf_counter() - start
        print(f"  convert {name}: {elapsed:.1f} s (not a figure)", flush=True)
        return model

    def compile(self, name, model, example):
        """`model` reshaped to the static shapes of the tensors `example`, compiled for the CPU with CONFIG."""
        start = time.perf_counter()
        model.reshape({i: self.ov.PartialShape(list(t.shape)) for i, t in enumerate(example)})
        compiled = self.core.compile_model(model, "CPU", CONFIG)
        self.setup[f"compile_{name}_s"] = elapsed = time.perf_counter() - start
        print(f"  compile {name} (static {[list(t.shape) for t in example]}): {elapsed:.1f} s (not a figure)", flush=True)
        return compiled

    def time(self, key, compiled, inputs):
        """One warm-up, then the timed rounds of one inference: `key` the min, `key` less _s plus _median_s the median."""
        request = compiled.create_infer_request()
        arrays = [np.ascontiguousarray(t.numpy()) for t in inputs]
        times = timed_rounds(self.rounds, run=lambda: request.infer(arrays, share_inputs=True))["run"]
        self.figures[key] = min(times)
        self.figures[key[:-len("_s")] + "_median_s"] = statistics.median(times)
        print(f"  {key}: {min(times):.3f} s (median {statistics.median(times):.3f})", flush=True)

    def peak(self, part):
        self.figures[f"{part}_peak_rss_gib"] = value = peak_rss()
        print(f"  peak RSS, {part} part: {value:.2f} GiB (VmHWM: torch module + conversion + compiled model + runs)",
              flush=True)


def free():
    gc.collect()
    reset_peak_rss()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the folder sd15_random.py --write filled")
    parser.add_argument("--quick", action="store_true", help="128x128 smoke run, one round")
    parser.add_argument("--compare", metavar="SWIFT_JSON", help="paints-bench-diffusion's swift-figures.json")
    parser.add_argument("--json", metavar="OUT_JSON", help="where the figures go (default OUT_DIR/openvino-figures.json)")
    args = parser.parse_args()
    out = args.out
    quick = args.quick or quick_mode()
    side = 16 if quick else 64  # latent side of the "512" case: 128x128 or 512x512 images
    big = 32 if quick else 128  # latent side of the "1024" case: 256x256 or 1024x1024 images
    rounds = 1 if quick else ROUNDS
    torch.set_num_threads(THREADS)
    hide_broken_torchvision()
    import openvino as ov
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel

    print(f"openvino {ov.get_version()}: {cpu_summary()}; {CONFIG}"
          + ("; QUICK smoke run at 128x128, one round: not figures" if quick else ""), flush=True)
    run = Runner(ov, rounds)
    run.figures.update({"quick": quick, "rounds": rounds, "controlnet_rounds": rounds,
                        "openvino": ov.get_version(), "cpu": cpu_summary()})
    g = torch.Generator().manual_seed(1)
    t1, t2 = torch.tensor([500.0]), torch.tensor([500.0, 500.0])

    # UNet alone, batch 1 and 2; then the ControlNet step (the same torch UNet, converted with the residual inputs).
    free()
    print("unet", flush=True)
    unet = UNet2DConditionModel.from_pretrained(os.path.join(out, "unet")).eval()
    assert list(unet.config.block_out_channels) == list(SD15_UNET["block_out_channels"]), unet.config
    plain = UNetPass(unet)
    x1, c1 = torch.randn((1, 4, side, side), generator=g), torch.randn((1, TOKENS, 768), generator=g)
    x2, c2 = torch.randn((2, 4, side, side), generator=g), torch.randn((2, TOKENS, 768), generator=g)
    model = run.convert("unet", plain, [x1, t1, c1])
    compiled = run.compile("unet_batch1", model, [x1, t1, c1])
    run.time("unet_batch1_s", compiled, [x1, t1, c1])
    del compiled
    gc.collect()
    compiled = run.compile("unet_batch2", model, [x2, t2, c2])
    run.time("unet_batch2_s", compiled, [x2, t2, c2])
    del compiled, model
    run.peak("unet")
    free()
    print("controlnet step (batch 2)", flush=True)
    controlnet = ControlNetModel.from_pretrained(os.path.join(out, CONTROLNET)).eval()
    downscale = 2 ** (len(controlnet.config.conditioning_embedding_out_channels) - 1)
    hint = (torch.rand((1, 3, side * downscale, side * downscale), generator=g) > 0.9).float()
    hint = torch.cat([hint] * 2)
    with torch.no_grad():
        residuals = list(ControlNetPass(controlnet)(x2, t2, c2, hint))
    model = run.convert("controlnet", ControlNetPass(controlnet), [x2, t2, c2, hint])
    cn = run.compile("controlnet", model, [x2, t2, c2, hint])
    del model
    model = run.convert("unet_with_residuals", UNetWithResiduals(unet), [x2, t2, c2, *residuals])
    un = run.compile("unet_with_residuals", model, [x2, t2, c2, *residuals])
    del model, residuals
    gc.collect()
    cn_request, un_request = cn.create_infer_request(), un.create_infer_request()
    cn_inputs = [np.ascontiguousarray(t.numpy()) for t in (x2, t2, c2, hint)]
    for i, t in enumerate((x2, t2, c2)):
        un_request.set_input_tensor(i, ov.Tensor(np.ascontiguousarray(t.numpy())))
    parts = {"controlnet": [], "unet": [], "step": []}
    for round_ in range(rounds + 1):
        start = time.perf_counter()
        cn_request.infer(cn_inputs, share_inputs=True)
        middle = time.perf_counter()
        for i in range(len(cn.outputs)):  # the ControlNet's output tensors as the UNet's inputs, no copy
            un_request.set_input_tensor(3 + i, cn_request.get_output_tensor(i))
        un_request.infer()
        end = time.perf_counter()
        if round_ == 0:
            continue  # warm-up
        parts["controlnet"].append(middle - start)
        parts["unet"].append(end - middle)
        parts["step"].append(end - start)
    for name in ("controlnet", "unet", "step"):
        min_median(run.figures, f"controlnet_{name}", parts[name])
    run.figures["controlnet_share"] = statistics.median(c / s for c, s in zip(parts["controlnet"], parts["step"]))
    print(f"  controlnet_step_min_s: {run.figures['controlnet_step_min_s']:.3f} s (median "
          f"{run.figures['controlnet_step_median_s']:.3f}; ControlNet {run.figures['controlnet_controlnet_median_s']:.3f}"
          f", UNet {run.figures['controlnet_unet_median_s']:.3f})", flush=True)
    del cn_request, un_request, cn, un, controlnet, unet, plain
    run.peak("controlnet")
    free()

    # VAE: decode and encode at 512 and 1024 (128 and 256 in quick mode).
    print("vae", flush=True)
    vae = AutoencoderKL.from_pretrained(os.path.join(out, "vae")).eval()
    for name, wrapper, shape in (("decode", VAEDecode(vae), lambda s: (1, 4, s, s)),
                                 ("encode", VAEEncode(vae), lambda s: (1, 3, s * 8, s * 8))):
        small = [torch.randn(shape(side), generator=g)]
        large = [torch.randn(shape(big), generator=g)]
        if name == "encode":
            small, large = [small[0].clamp(-1, 1)], [large[0].clamp(-1, 1)]
        model = run.convert(f"vae_{name}", wrapper, small)
        compiled = run.compile(f"vae_{name}_512", model, small)
        run.time(f"vae_{name}_512_s", compiled, small)
        del compiled
        gc.collect()
        compiled = run.compile(f"vae_{name}_1024", model, large)
        run.time(f"vae_{name}_1024_s", compiled, large)
        del compiled, model, wrapper
        gc.collect()
    del vae
    run.peak("vae")
    free()

    print("text encoder", flush=True)
    clip = CLIPTextModel.from_pretrained(os.path.join(out, "text_encoder")).eval()
    ids = torch.randint(0, SD15_CLIP["vocab_size"], (1, TOKENS), generator=g)
    model = run.convert("clip", TextEncode(clip), [ids])
    compiled = run.compile("clip", model, [ids])
    run.time("clip_encode_s", compiled, [ids])
    del compiled, model, clip
    run.peak("clip")
    gc.collect()

    figures = dict(run.figures, setup_s=run.setup)
    path = args.json or os.path.join(out, "openvino-figures.json")
    with open(path, "w") as f:
        json.dump(figures, f, indent=2, sort_keys=True)
    print(f"openvino figures: {path}")
    print("openvino", json.dumps({k: v for k, v in figures.items() if k != "setup_s"}))
    if args.compare:
        compare(figures, args.compare)


def compare(figures, swift_path):
    """figure | paintsd | PyTorch | OpenVINO | paintsd/OpenVINO; "-" where a file lacks the key."""
    with open(swift_path) as f:
        swift = json.load(f)
    torch_path = os.path.join(os.path.dirname(os.path.abspath(swift_path)), "torch-figures.json")
    pytorch = None
    if os.path.exists(torch_path):
        with open(torch_path) as f:
            pytorch = json.load(f)
    for name, other in (("Swift", swift), ("PyTorch", pytorch)):
        if other is not None and "quick" in other and other["quick"] != figures["quick"]:
            print(f"WARNING: the {name} figures are from a {'quick' if other['quick'] else 'full'} run, these from a "
                  f"{'quick' if figures['quick'] else 'full'} one: sizes differ, the ratios mean nothing")
    side = 16 if figures["quick"] else 64
    print(f"\nOpenVINO {figures['openvino']} beside paintsd{' and PyTorch' if pytorch else ''}: "
          f"{side * 8}x{side * 8} images ({side}x{side} latents), f32 weights, fp32 compute, {THREADS} threads, "
          f"{figures['rounds']} timed round(s) after a warm-up (swift {swift.get('controlnet_rounds', '?')})")

    def cell(source, key, width):
        value = None if source is None else source.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"{'-':>{width}}"
        return f"{value:>{width}.3f}"

    width = max(len(k) for k in FIGURES) + 2
    print(f"{'figure':<{width}}{'paintsd':>10}" + (f"{'PyTorch':>10}" if pytorch else "")
          + f"{'OpenVINO':>10}{'paintsd/OpenVINO':>18}")
    for key in FIGURES:
        if key not in figures and key not in swift:
            continue
        ratio = "-"
        if isinstance(swift.get(key), (int, float)) and figures.get(key):
            ratio = f"{swift[key] / figures[key]:.2f}"
        print(f"{key:<{width}}{cell(swift, key, 10)}" + (cell(pytorch, key, 10) if pytorch else "")
              + f"{cell(figures, key, 10)}{ratio:>18}")
    print("peak RSS: paintsd's per part as its bench measures it; OpenVINO's VmHWM over the part with the torch module "
          "and the conversion alive too (an upper bound)")


if __name__ == "__main__":
    main()
