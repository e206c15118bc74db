#!/usr/bin/env python3
"""The Paints-UNDO single-frame model at full size with random weights, for `make bench-diffusion`: writes a model
folder in the published layout (SD1.5 UNet with the reference's 8-channel conv_in and operation-step add_embedding,
11-layer CLIP text encoder, SD1.5 VAE, the fixtures' tokenizer), each component also as an fp16 variant, and times
one sampling step at 512x640 (the reference's default size: two UNet calls, cond and uncond, at 80x64 latents) and
the VAE passes in PyTorch (fp32, 2 threads); with --compare FILE it prints them beside the Swift figures.

    python Benchmarks/torch/paints_undo_random.py OUT_DIR [--write] [--time] [--compare SWIFT_JSON]

Needs the pinned stack of Tests/Fixtures/diffusion/requirements.txt. Nothing it writes is committed.
"""
import json
import os
import resource
import shutil
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
from sd15_random import SD15_CLIP, SD15_UNET, SD15_VAE, compare, write_components  # noqa: E402


def reference_patches():
    """The fixture generator's restatement of the reference's UNet patches (loaded under its own module name)."""
    import importlib.util

    path = os.path.join(ROOT, "Tests", "Fixtures", "paints-undo", "generate.py")
    spec = importlib.util.spec_from_file_location("paints_undo_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

HEIGHT, WIDTH = 640, 512


def main():
    out = sys.argv[1]
    torch.set_num_threads(2)
    torch.manual_seed(0)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    patches = reference_patches()
    unet = UNet2DConditionModel(**SD15_UNET).eval()
    patches.add_concat_conds(unet)
    patches.add_coded_conds(unet)
    unet_call = patches.unet_call
    vae = AutoencoderKL(**SD15_VAE).eval()
    clip = CLIPTextModel(CLIPTextConfig(**dict(SD15_CLIP, num_hidden_layers=11))).eval()
    if "--write" in sys.argv:
        write_components(out, unet=unet, vae=vae, text_encoder=clip)
        tokenizer = os.path.join(out, "tokenizer")
        os.makedirs(tokenizer, exist_ok=True)
        for name in ("vocab.json", "merges.txt"):
            shutil.copyfile(os.path.join(ROOT, "Tests", "Fixtures", "diffusion", "tokenizer", name), os.path.join(tokenizer, name))
        with open(os.path.join(out, "model_index.json"), "w") as f:
            json.dump({"_class_name": "StableDiffusionPipeline"}, f)
    if "--time" not in sys.argv:
        return
    g = torch.Generator().manual_seed(1)
    figures = {}
    with torch.no_grad():
        x = torch.randn((1, 4, HEIGHT // 8, WIDTH // 8), generator=g)
        concat = torch.randn((1, 4, HEIGHT // 8, WIDTH // 8), generator=g)
        cond, uncond = torch.randn((1, 77, 768), generator=g), torch.randn((1, 77, 768), generator=g)
        coded, t = torch.tensor([400]), torch.tensor([500])
        unet_call(unet, x, t, cond, concat, coded)  # warm-up
        start = time.perf_counter()
        unet_call(unet, x, t, cond, concat, coded)
        unet_call(unet, x, t, uncond, concat, coded)
        figures["undo_step_512x640_s"] = time.perf_counter() - start
        image = torch.rand((1, 3, HEIGHT, WIDTH), generator=g) * 2 - 1
        start = time.perf_counter()
        vae.encode(image)
        figures["undo_vae_encode_512x640_s"] = time.perf_counter() - start
        start = time.perf_counter()
        vae.decode(x)
        figures["undo_vae_decode_512x640_s"] = time.perf_counter() - start
    figures["undo_peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("pytorch", json.dumps(figures))
    compare(figures)


if __name__ == "__main__":
    main()
