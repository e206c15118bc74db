#!/usr/bin/env python3
"""Builds the ControlNet parity fixtures from diffusers' ControlNetModel (tiny models of the real architecture).

Run from the repository root with the pinned stack of Tests/Fixtures/diffusion/requirements.txt:
    python Tests/Fixtures/controlnet/generate.py
Each case is a diffusers folder (config.json + diffusion_pytorch_model.safetensors) with io.safetensors beside it:
inputs sample, timesteps, encoder_hidden_states, controlnet_cond (0..1, 8x the latent size), conditioning_scale [1];
outputs down_0 .. down_{k-1} (one per skip connection, 12 for the SD1.5 layout) and mid.
Every parameter, the zero convolutions included, is re-initialised with seeded random values so that each residual
depends on every weight.
"""
import os
import sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    # SD1.x layout at SD1.5's depth: four levels of two layers (12 down residuals), heads given as attention_head_dim,
    # conv projections; the conditioning embedding downsamples 8x with four channel widths, as the real (16, 32, 96, 256).
    "tiny": dict(in_channels=4, conditioning_channels=3, block_out_channels=(8, 16, 16, 16), layers_per_block=2,
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                 cross_attention_dim=32, attention_head_dim=4, norm_num_groups=4,
                 conditioning_embedding_out_channels=(4, 8, 8, 16)),
    # SD2.x layout: per-block head dims, linear projections, upcast attention, three levels of one layer (6 residuals),
    # BGR conditioning channel order.
    "tiny-sd2": dict(in_channels=4, conditioning_channels=3, block_out_channels=(8, 16, 16), layers_per_block=1,
                     down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                     cross_attention_dim=24, attention_head_dim=(2, 4, 4), use_linear_projection=True, norm_num_groups=4,
                     upcast_attention=True, conditioning_embedding_out_channels=(4, 4, 8, 8),
                     controlnet_conditioning_channel_order="bgr"),
}


def randomize(model, generator):
    """Non-trivial weights everywhere (zero convolutions included): normal(0, 0.2), norm gains around 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)


def save(path, tensors):
    save_file({k: v.contiguous().clone() for k, v in tensors.items()}, path)
    print(f"{os.path.relpath(path, HERE)}: {len(tensors)} tensors, {os.path.getsize(path) / 1024:.1f} KiB")


def hide_broken_torchvision():
    """timm (in the pinned stack) pulls torchvision from PyPI, a CUDA build that cannot load beside the CPU torch of
    these machines; transformers, which diffusers' ControlNetModel imports, then fails. Hide it when it is broken
    (the ControlNet never uses it)."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None


def main():
    hide_broken_torchvision()
    from diffusers import ControlNetModel

    for name, config in CASES.items():
        g = torch.Generator().manual_seed(23)
        model = ControlNetModel(**config).eval()
        randomize(model, g)
        sample = torch.randn((2, 4, 8, 12), generator=g)
        timesteps = torch.tensor([10.0, 700.0])
        context = torch.randn((2, 5, config["cross_attention_dim"]), generator=g)
        cond = torch.rand((2, 3, 64, 96), generator=g)
        scale = torch.tensor([0.7])
        with torch.no_grad():
            down, mid = model(sample, timesteps, encoder_hidden_states=context, controlnet_cond=cond,
                              conditioning_scale=float(scale[0]), return_dict=False)
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        model.save_pretrained(folder, safe_serialization=True)
        io = {"sample": sample, "timesteps": timesteps, "encoder_hidden_states": context, "controlnet_cond": cond,
              "conditioning_scale": scale, "mid": mid}
        io.update({f"down_{i}": d for i, d in enumerate(down)})
        save(os.path.join(folder, "io.safetensors"), io)
        print(f"{name}: {len(down)} down residuals, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
