#!/usr/bin/env python3
"""Full-size SD1.5 architecture with random weights, for `make bench-diffusion`: writes the diffusers folders the Swift
benchmark loads (unet/, vae/, text_encoder/ and a line-art ControlNet controlnet/sd15-lineart-random/, each also as an
fp16 variant) and times the same passes in PyTorch (fp32, 2 threads) on this machine; with --compare FILE it prints
them beside the Swift figures of FILE, with the ratios.

    python Benchmarks/torch/sd15_random.py OUT_DIR [--write] [--time] [--compare SWIFT_JSON] [--quick]

--write writes the components that are not there yet (a folder from before the ControlNet gets only the ControlNet;
the seeded generator makes the same weights either way). The ControlNet is diffusers' ControlNetModel.from_unet(unet)
with its default config (conditioning_embedding_out_channels (16, 32, 96, 256), the UNet's encoder weights); its zero
convolutions and the hint embedding's conv_out, which from_unet zeroes, get the default Conv2d initialisation instead
so that its residuals are not zero. --time loads the ControlNet from its f32 file (the weights the Swift benchmark
reads); the UNet, VAE and text encoder are rebuilt from the same seed as written.

--quick (or PAINTSD_BENCH_QUICK=1 in the environment): a smoke run of the same code at 128x128 (16x16 latents), one
timed round; its figures say nothing about speed.

Needs the pinned stack of Tests/Fixtures/diffusion/requirements.txt. Nothing it writes is committed.
"""
import json
import os
import resource
import statistics
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
# The ControlNet folder under OUT_DIR, where the Swift benchmark and the daemon run (MODELS/controlnet/NAME) find it;
# "lineart" in the name makes the sd engine's `controlnet: auto` pick it.
CONTROLNET = os.path.join("controlnet", "sd15-lineart-random")
CONTROLNET_EMBEDDING = (16, 32, 96, 256)
# Timed rounds of the ControlNet step (after one warm-up step), as in paints-bench-diffusion.
ROUNDS = 3


def quick_mode():
    return "--quick" in sys.argv or os.environ.get("PAINTSD_BENCH_QUICK", "") not in ("", "0")


def hide_broken_torchvision():
    """As Tests/Fixtures/controlnet/generate.py: the torchvision timm pulls in is a CUDA build that cannot load beside
    the CPU torch here, and transformers (which diffusers' ControlNetModel imports) then fails; hide it when broken."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None


def cpu_summary():
    """Model name and the vector flags that decide the kernels (first processor of /proc/cpuinfo), and torch's own pick."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    marks = " ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx2", "avx512f", "avx512_bf16"))
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "?")()
    return f"{fields.get('model name', '?')}; {marks}; torch {torch.__version__} capability {capability}"


def main():
    out = sys.argv[1]
    quick = quick_mode()
    side = 16 if quick else 64  # latent side: 128x128 or 512x512 images
    rounds = 1 if quick else ROUNDS
    torch.set_num_threads(2)
    torch.manual_seed(0)
    hide_broken_torchvision()
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(**SD15_UNET).eval()
    vae = AutoencoderKL(**SD15_VAE).eval()
    clip = CLIPTextModel(CLIPTextConfig(**SD15_CLIP)).eval()
    if "--write" in sys.argv:
        write_components(out, skip_existing=True, unet=unet, vae=vae, text_encoder=clip)
        if not os.path.exists(os.path.join(out, CONTROLNET, "diffusion_pytorch_model.fp16.safetensors")):
            write_components(out, **{CONTROLNET: random_controlnet(ControlNetModel, unet)})
    if "--time" not in sys.argv:
        return
    print(f"pytorch: {cpu_summary()}; {torch.get_num_threads()} threads"
          + ("; QUICK smoke run at 128x128, one round: not figures" if quick else ""))
    g = torch.Generator().manual_seed(1)
    figures = {"quick": quick}
    with torch.no_grad():
        for batch in (1, 2):
            x = torch.randn((batch, 4, side, side), generator=g)
            c = torch.randn((batch, 77, 768), generator=g)
            unet(x, torch.tensor([500.0] * batch), encoder_hidden_states=c)  # warm-up
            start = time.perf_counter()
            unet(x, torch.tensor([500.0] * batch), encoder_hidden_states=c)
            figures[f"unet_batch{batch}_s"] = time.perf_counter() - start
        z = torch.randn((1, 4, side, side), generator=g)
        start = time.perf_counter()
        vae.decode(z)
        figures["vae_decode_512_s"] = time.perf_counter() - start
        image = torch.rand((1, 3, side * 8, side * 8), generator=g) * 2 - 1
        start = time.perf_counter()
        vae.encode(image)
        figures["vae_encode_512_s"] = time.perf_counter() - start
        ids = torch.randint(0, 49408, (1, 77), generator=g)
        clip(ids)  # warm-up
        start = time.perf_counter()
        clip(ids)
        figures["clip_encode_s"] = time.perf_counter() - start
    figures["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    del vae, clip
    controlnet = ControlNetModel.from_pretrained(os.path.join(out, CONTROLNET), low_cpu_mem_usage=False).eval()
    figures.update(controlnet_step(unet, controlnet, side, rounds, g))
    figures["controlnet_peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("pytorch", json.dumps(figures))
    compare(figures)


def random_controlnet(ControlNetModel, unet):
    """diffusers' ControlNetModel.from_unet with its defaults (the published SD1.5 ControlNets' config), with random
    rather than zero weights where from_unet zeroes them (controlnet_down_blocks, controlnet_mid_block and the hint
    embedding's conv_out)."""
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROLNET_EMBEDDING)
    for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                 controlnet.controlnet_cond_embedding.conv_out]:
        conv.reset_parameters()
    return controlnet.eval()


def controlnet_step(unet, controlnet, side, rounds, generator):
    """One classifier-free guidance step with a ControlNet as diffusers' StableDiffusionControlNetPipeline runs it: the
    ControlNet on the batch-2 latents with the hint duplicated (it embeds the hint inside every call), then the UNet on
    the same batch with its residuals. One warm-up step, then `rounds` timed ones; each part's min and median, and the
    ControlNet's share of the step (median over the rounds). Also the hint embedding alone (part of each ControlNet
    pass here; paintsd embeds the hint once per run). Works on any UNet/ControlNet pair (the tiny fixtures too)."""
    downscale = 2 ** (len(controlnet.config.conditioning_embedding_out_channels) - 1)
    width = unet.config.cross_attention_dim
    x = torch.randn((2, unet.config.in_channels, side, side), generator=generator)
    c = torch.randn((2, 77, width), generator=generator)
    hint = (torch.rand((1, 3, side * downscale, side * downscale), generator=generator) > 0.9).float()
    hint = torch.cat([hint] * 2)
    t = torch.tensor([500.0, 500.0])
    parts = {"controlnet": [], "unet": [], "step": [], "share": []}
    with torch.no_grad():
        for round_ in range(rounds + 1):
            start = time.perf_counter()
            down, mid = controlnet(x, t, encoder_hidden_states=c, controlnet_cond=hint, conditioning_scale=1.0,
                                   return_dict=False)
            middle = time.perf_counter()
            unet(x, t, encoder_hidden_states=c, down_block_additional_residuals=down,
                 mid_block_additional_residual=mid)
            end = time.perf_counter()
            if round_ == 0:
                continue  # warm-up
            parts["controlnet"].append(middle - start)
            parts["unet"].append(end - middle)
            parts["step"].append(end - start)
            parts["share"].append((middle - start) / (end - start))
        controlnet.controlnet_cond_embedding(hint[:1])  # warm-up at batch 1 (oneDNN sets up each new shape)
        start = time.perf_counter()
        controlnet.controlnet_cond_embedding(hint[:1])
        embed = time.perf_counter() - start
    figures = {"controlnet_rounds": rounds, "controlnet_share": statistics.median(parts["share"]),
               "controlnet_hint_embed_s": embed}
    for name in ("controlnet", "unet", "step"):
        figures[f"controlnet_{name}_min_s"] = min(parts[name])
        figures[f"controlnet_{name}_median_s"] = statistics.median(parts[name])
    return figures


def write_components(out, skip_existing=False, **models):
    """Each model as a diffusers component folder OUT/NAME, in f32 and as the fp16 variant published repositories ship;
    with skip_existing, a folder whose fp16 file is there already is kept."""
    for name, model in models.items():
        folder = os.path.join(out, name)
        if skip_existing and os.path.isdir(folder) and any(f.endswith(".fp16.safetensors") for f in os.listdir(folder)):
            print(f"kept {folder}")
            continue
        model.save_pretrained(folder, safe_serialization=True)
        model.half().save_pretrained(folder, safe_serialization=True, variant="fp16")
        model.float()
        print(f"wrote {folder}")


def compare(figures):
    """With --compare FILE: the PyTorch figures beside the Swift ones of FILE, with the ratios, then Swift's others;
    the ControlNet step (keys controlnet_*) as a table of its own."""
    if "--compare" not in sys.argv:
        return
    with open(sys.argv[sys.argv.index("--compare") + 1]) as f:
        swift = json.load(f)
    if "quick" in figures and swift.get("quick", False) != figures["quick"]:
        print(f"WARNING: the Swift figures are from a {'quick' if swift.get('quick') else 'full'} run, these from a "
              f"{'quick' if figures['quick'] else 'full'} one: sizes differ, the ratios mean nothing")
    plain = [k for k in figures if not k.startswith("controlnet_") and isinstance(figures[k], float)]
    width = max(len(k) for k in plain + list(swift)) + 2
    print(f"{'figure':<{width}}{'swift':>10}{'pytorch':>10}{'ratio':>8}")
    for key in plain:
        if key in swift:
            print(f"{key:<{width}}{swift[key]:>10.2f}{figures[key]:>10.2f}{swift[key] / figures[key]:>8.2f}")
    for key in sorted(set(swift) - set(figures)):
        if isinstance(swift[key], (int, float)) and not isinstance(swift[key], bool) and not key.startswith("controlnet_"):
            print(f"{key:<{width}}{swift[key]:>10.2f}")
    compare_controlnet(figures, swift)


def compare_controlnet(figures, swift):
    if "controlnet_step_median_s" not in figures or "controlnet_step_median_s" not in swift:
        return
    side = 16 if figures.get("quick") else 64
    print(f"\none CFG step with a ControlNet at {side * 8}x{side * 8} ({side}x{side} latents, batch 2), f32 weights, "
          f"fp32 compute, {figures['controlnet_rounds']} timed round(s) after a warm-up (swift {swift.get('controlnet_rounds')})")
    print(f"{'':<34}{'swift min':>10}{'median':>9}{'pytorch min':>13}{'median':>9}{'ratio':>8}")
    for name, label in (("controlnet", "ControlNet pass (12+1 residuals)"), ("unet", "UNet pass with the residuals"),
                        ("step", "whole step")):
        s_min, s_med = swift[f"controlnet_{name}_min_s"], swift[f"controlnet_{name}_median_s"]
        p_min, p_med = figures[f"controlnet_{name}_min_s"], figures[f"controlnet_{name}_median_s"]
        print(f"{label:<34}{s_min:>10.2f}{s_med:>9.2f}{p_min:>13.2f}{p_med:>9.2f}{s_med / p_med:>8.2f}")
    print(f"{'ControlNet share of the step':<34}{swift['controlnet_share']:>19.0%}{figures['controlnet_share']:>22.0%}")
    print(f"{'hint embedding, one image':<34}{swift['controlnet_hint_embed_s']:>19.3f}{figures['controlnet_hint_embed_s']:>22.3f}"
          "   (paintsd: once per run; diffusers: inside every ControlNet pass, x2 for the CFG batch)")
    if "unet_batch2_s" in swift and "unet_batch2_s" in figures:
        print(f"{'step without ControlNet (unet_batch2_s above)':<34}{swift['unet_batch2_s']:>19.2f}{figures['unet_batch2_s']:>22.2f}")
    for key in ("controlnet_peak_rss_gib",):
        if key in swift:
            print(f"{'peak RSS, ControlNet part (GiB)':<34}{swift[key]:>19.2f}{figures.get(key, float('nan')):>22.2f}"
                  "   (pytorch: whole process, all models)")


if __name__ == "__main__":
    main()
