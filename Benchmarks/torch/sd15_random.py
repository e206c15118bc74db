#!/usr/bin/env python3
"""Full-size SD1.5 architecture with random weights, for `make bench-diffusion`: writes the diffusers folders the Swift
benchmark loads (unet/, vae/, text_encoder/, each also as an fp16 variant) and times the same passes in PyTorch (fp32,
2 threads) on this machine; with --compare FILE it prints them beside the Swift figures of FILE, with the ratios.

    python Benchmarks/torch/sd15_random.py OUT_DIR [--write] [--time] [--compare SWIFT_JSON]

Needs the pinned stack of Tests/Fixtures/diffusion/requirements.txt. Nothing it writes is committed.
"""
import json
import os
import resource
import sys
import time

import torch

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                 layers_per_block=2, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768,
                 attention_head_dim=8)
SD15_VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                latent_channels=4, sample_size=512)
SD15_CLIP = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)


def main():
    out = sys.argv[1]
    torch.set_num_threads(2)
    torch.manual_seed(0)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(**SD15_UNET).eval()
    vae = AutoencoderKL(**SD15_VAE).eval()
    clip = CLIPTextModel(CLIPTextConfig(**SD15_CLIP)).eval()
    if "--write" in sys.argv:
        write_components(out, unet=unet, vae=vae, text_encoder=clip)
    if "--time" not in sys.argv:
        return
    g = torch.Generator().manual_seed(1)
    figures = {}
    with torch.no_grad():
        for batch in (1, 2):
            x = torch.randn((batch, 4, 64, 64), generator=g)
            c = torch.randn((batch, 77, 768), generator=g)
            unet(x, torch.tensor([500.0] * batch), encoder_hidden_states=c)  # warm-up
            start = time.perf_counter()
            unet(x, torch.tensor([500.0] * batch), encoder_hidden_states=c)
            figures[f"unet_batch{batch}_s"] = time.perf_counter() - start
        z = torch.randn((1, 4, 64, 64), generator=g)
        start = time.perf_counter()
        vae.decode(z)
        figures["vae_decode_512_s"] = time.perf_counter() - start
        image = torch.rand((1, 3, 512, 512), generator=g) * 2 - 1
        start = time.perf_counter()
        vae.encode(image)
        figures["vae_encode_512_s"] = time.perf_counter() - start
        ids = torch.randint(0, 49408, (1, 77), generator=g)
        clip(ids)  # warm-up
        start = time.perf_counter()
        clip(ids)
        figures["clip_encode_s"] = time.perf_counter() - start
    figures["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("pytorch", json.dumps(figures))
    compare(figures)


def write_components(out, **models):
    """Each model as a diffusers component folder OUT/NAME, in f32 and as the fp16 variant published repositories ship."""
    for name, model in models.items():
        folder = os.path.join(out, name)
        model.save_pretrained(folder, safe_serialization=True)
        model.half().save_pretrained(folder, safe_serialization=True, variant="fp16")
        model.float()


def compare(figures):
    """With --compare FILE: the PyTorch figures beside the Swift ones of FILE, with the ratios, then Swift's others."""
    if "--compare" not in sys.argv:
        return
    with open(sys.argv[sys.argv.index("--compare") + 1]) as f:
        swift = json.load(f)
    width = max(len(k) for k in list(figures) + list(swift)) + 2
    print(f"{'figure':<{width}}{'swift':>10}{'pytorch':>10}{'ratio':>8}")
    for key, value in figures.items():
        if key in swift:
            print(f"{key:<{width}}{swift[key]:>10.2f}{value:>10.2f}{swift[key] / value:>8.2f}")
    for key in sorted(set(swift) - set(figures)):
        if isinstance(swift[key], (int, float)):
            print(f"{key:<{width}}{swift[key]:>10.2f}")


if __name__ == "__main__":
    main()
