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

Issue 14's speed parts (written by --write when missing; timed by paints-bench --sd-speed and sd15_speed.py):
lora/lcm-lora-sdv1-5.safetensors, a RANDOM rank-64 kohya LoRA (not an LCM distillation), and taesd/ (AutoencoderTiny
at its default config, random); see write_speed_models.

Issue 13's parts (written by --write when missing, timed by --time beside the Swift figures):
- clip-vision/vit-h-random/: transformers' CLIPVisionModelWithProjection at CLIP ViT-H/14's size (hidden 1280, 32
  layers, 16 heads, intermediate 5120, patch 14, 224x224, projection 1024, GELU; transformers' own random
  initialisation), config.json + model.safetensors (f32). Timed: one image encode at 224x224.
- ip-adapter/ip-adapter_sd15-random.safetensors: the published ip-adapter_sd15 layout for the UNet above
  (image_proj.proj [3072, 1024] + bias, image_proj.norm [768], ip_adapter.{1..31 odd}.to_k_ip/to_v_ip [inner, 768]:
  N is the attn2 processor's index in diffusers' attn_processors order, as IPA numbers them), normal(0, 0.02) weights
  in float16 as published. Timed: one CFG step (the UNet at batch 2) with the adapter, loaded by diffusers'
  `_load_ip_adapter_weights` (scale 0.6, image_embeds [uncond zeros; cond] through added_cond_kwargs, projected
  inside every call), beside the same step without it (the saved attention processors swapped back, encoder_hid_proj
  off), alternating in each round.
- sdro-random/unet/: SDRO's UNet2DDobuleConditionModel at full size: diffusers' UNet2DConditionModel with SD2.1's
  config (cross_attention_dim 1024, attention_head_dim (5, 10, 20, 20), linear projections, upcast attention) plus
  `controlnet_cond_embedding` (ControlNetConditioningEmbedding, widths (16, 32, 96, 256) -> 320; its conv_out not
  zeroed), one f32 diffusion_pytorch_model.safetensors as the published folder has it. Timed: one sampling step (one
  UNet call, batch 1, no CFG: context [1, 257, 1024], SDRO's vision tower's last_hidden_state width) restated as
  Tests/Fixtures/sdro/generate.py restates SDRO's forward: the blueprint embedding added to conv_in's output (a
  forward hook), computed inside every call as SDRO does; the embedding alone is timed too.
Each is timed as the ControlNet step: one warm-up, then ROUNDS timed rounds, min and median; peak RSS per part as
VmHWM after resetting it (/proc/self/clear_refs), with the part's models the only ones alive.

--quick (or PAINTSD_BENCH_QUICK=1 in the environment): a smoke run of the same code at 128x128 (16x16 latents), one
timed round; its figures say nothing about speed. Issue 13's parts then use small models written under OUT_DIR/quick/
(the ViT-H widths with 2 layers; the SDRO UNet at block widths (32, 64, 128, 128)), so no full-size file is needed
for them; the IP-Adapter file is the full-size one (small) on the full-size SD1.5 UNet at 16x16 latents.

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
# Issue 13: CLIP ViT-H/14 image encoder (transformers CLIPVisionConfig), the IP-Adapter file, SDRO's UNet.
CLIP_VISION = os.path.join("clip-vision", "vit-h-random")
VIT_H = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224,
             patch_size=14, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5)
IP_ADAPTER = os.path.join("ip-adapter", "ip-adapter_sd15-random.safetensors")
IP_ADAPTER_TOKENS = 4
IP_ADAPTER_SCALE = 0.6
SDRO_UNET = os.path.join("sdro-random", "unet")
SD21_UNET = dict(sample_size=96, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                 layers_per_block=2, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=1024,
                 attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, upcast_attention=True)
SDRO_BLUEPRINT_WIDTHS = (16, 32, 96, 256)
SDRO_CONTEXT_TOKENS = 257  # ViT-H/14 at 224x224: 16x16 patches and the class token
# --quick: small stand-ins under OUT_DIR/quick/ (same code paths, seconds to write and run).
QUICK = "quick"
# Figures with a table of their own (left out of the first one).
ISSUE13_PREFIXES = ("controlnet_", "clip_vision_", "ip_adapter_", "sdro_", "issue13_")
QUICK_VIT = dict(VIT_H, num_hidden_layers=2)
QUICK_SDRO_UNET = dict(SD21_UNET, block_out_channels=(32, 64, 128, 128), attention_head_dim=(1, 2, 4, 4))


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

    if "--write" in sys.argv:
        missing = missing_parts(out, quick)
        if not missing:
            print(f"sd15_random.py --write: every component is there under {out}")
        elif missing & {"unet", "vae", "text_encoder", CONTROLNET, IP_ADAPTER}:
            unet = UNet2DConditionModel(**SD15_UNET).eval()  # the seeded weights --time rebuilds
            vae = AutoencoderKL(**SD15_VAE).eval()
            clip = CLIPTextModel(CLIPTextConfig(**SD15_CLIP)).eval()
            write_components(out, skip_existing=True, unet=unet, vae=vae, text_encoder=clip)
            if CONTROLNET in missing:
                write_components(out, **{CONTROLNET: random_controlnet(ControlNetModel, unet)})
            if IP_ADAPTER in missing:
                write_ip_adapter(os.path.join(out, IP_ADAPTER), unet)
            del unet, vae, clip
        write_issue13_models(out, quick, missing)
        write_speed_models(out)
    if "--time" not in sys.argv:
        return
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).eval()
    vae = AutoencoderKL(**SD15_VAE).eval()
    clip = CLIPTextModel(CLIPTextConfig(**SD15_CLIP)).eval()
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
    del controlnet
    held = [unet]  # issue13_figures frees the UNet after the IP-Adapter part, before the others' peak RSS
    del unet
    figures.update(issue13_figures(out, held, side, rounds, quick))
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


SPEED_LORA = "lora/lcm-lora-sdv1-5.safetensors"
SPEED_TAESD = "taesd"


def write_speed_models(out):
    """Issue 14's speed parts for paints-bench --sd-speed, written when missing: OUT/lora/lcm-lora-sdv1-5.safetensors, a
    RANDOM rank-64 LoRA in kohya's layout (lora_unet_<path>.lora_down.weight [64, in] / lora_up.weight [out, 64] / alpha
    64, f16 as published LoRAs ship) on every UNet attention linear (attn1/attn2 to_q, to_k, to_v, to_out.0) and
    feed-forward linear (ff.net.0.proj, ff.net.2) and the text encoder's q/k/v/out_proj. It is named like the LCM-LoRA so
    that the engine's `quality: fast` takes it, but it is no LCM distillation: its pictures are noise, only its time
    means something. And OUT/taesd: diffusers' AutoencoderTiny at its default config (madebyollin/taesd's shape),
    random weights."""
    from diffusers import AutoencoderTiny, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel
    lora_path = os.path.join(out, SPEED_LORA)
    if not os.path.exists(lora_path):
        g = torch.Generator().manual_seed(14)
        rank, tensors = 64, {}
        unet = UNet2DConditionModel(**SD15_UNET)
        clip = CLIPTextModel(CLIPTextConfig(**SD15_CLIP))
        unet_ends = (".to_q", ".to_k", ".to_v", ".to_out.0", ".ff.net.0.proj", ".ff.net.2")
        te_ends = (".q_proj", ".k_proj", ".v_proj", ".out_proj")
        for prefix, model, ends in (("lora_unet_", unet, unet_ends), ("lora_te_", clip, te_ends)):
            for name, module in model.named_modules():
                if isinstance(module, torch.nn.Linear) and name.endswith(ends):
                    key = prefix + name.replace(".", "_")
                    o, i = module.weight.shape
                    tensors[key + ".lora_down.weight"] = (torch.randn((rank, i), generator=g) / i ** 0.5).half()
                    tensors[key + ".lora_up.weight"] = (torch.randn((o, rank), generator=g) * 0.01).half()
                    tensors[key + ".alpha"] = torch.tensor(float(rank)).half()
        del unet, clip
        os.makedirs(os.path.dirname(lora_path), exist_ok=True)
        save_file(tensors, lora_path)
        print(f"wrote {lora_path} ({len(tensors) // 3} modules, rank {rank}, random: not an LCM distillation)")
    taesd = os.path.join(out, SPEED_TAESD)
    if not os.path.exists(os.path.join(taesd, "config.json")):
        torch.manual_seed(14)
        AutoencoderTiny().eval().save_pretrained(taesd, safe_serialization=True)
        print(f"wrote {taesd} (AutoencoderTiny default config, random weights)")


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


def issue13_paths(out, quick):
    """Where the CLIP vision folder and SDRO's unet/ folder are (the small stand-ins under OUT/quick/ with --quick)."""
    base = os.path.join(out, QUICK) if quick else out
    return os.path.join(base, CLIP_VISION), os.path.join(base, SDRO_UNET)


def missing_parts(out, quick):
    """The components --write still has to write (the SD1.5 ones and the IP-Adapter at full size in either mode)."""
    missing = set()
    for name in ("unet", "vae", "text_encoder", CONTROLNET):
        folder = os.path.join(out, name)
        if not (os.path.isdir(folder) and any(f.endswith(".fp16.safetensors") for f in os.listdir(folder))):
            missing.add(name)
    if not os.path.exists(os.path.join(out, IP_ADAPTER)):
        missing.add(IP_ADAPTER)
    vision, sdro = issue13_paths(out, quick)
    if not os.path.exists(os.path.join(vision, "model.safetensors")):
        missing.add(CLIP_VISION)
    if not os.path.exists(os.path.join(sdro, "diffusion_pytorch_model.safetensors")):
        missing.add(SDRO_UNET)
    return missing


def write_ip_adapter(path, unet):
    """A random ip-adapter_sd15 file for `unet`: image_proj.proj [T*C, 1024] + bias, image_proj.norm [C], and per attn2
    processor (index N in diffusers' attn_processors order, odd) ip_adapter.N.to_k_ip / to_v_ip [inner, C]; float16."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(13)
    width = unet.config.cross_attention_dim
    state = {"image_proj.proj.weight": torch.randn((IP_ADAPTER_TOKENS * width, VIT_H["projection_dim"]), generator=g) * 0.02,
             "image_proj.proj.bias": torch.randn((IP_ADAPTER_TOKENS * width,), generator=g) * 0.02,
             "image_proj.norm.weight": 1 + torch.randn((width,), generator=g) * 0.02,
             "image_proj.norm.bias": torch.randn((width,), generator=g) * 0.02}
    for index, name in enumerate(unet.attn_processors):
        if not name.endswith("attn2.processor"):
            continue
        inner = unet.get_submodule(name[: -len(".processor")]).to_k.out_features
        for part in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{index}.{part}.weight"] = torch.randn((inner, width), generator=g) * 0.02
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: v.to(torch.float16).contiguous() for k, v in state.items()}, path)
    print(f"wrote {path} ({sum(k.endswith('to_k_ip.weight') for k in state)} cross-attention layers)")


class ReferenceOnlyUNet(torch.nn.Module):
    """SDRO's UNet2DDobuleConditionModel restated as Tests/Fixtures/sdro/generate.py does: diffusers' UNet with the
    blueprint encoder's output added to conv_in's output, once, before the down blocks (a forward hook on conv_in)."""

    def __init__(self, config):
        super().__init__()
        from diffusers import UNet2DConditionModel
        from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding

        self.unet = UNet2DConditionModel(**config)
        self.controlnet_cond_embedding = ControlNetConditioningEmbedding(
            conditioning_embedding_channels=config["block_out_channels"][0], conditioning_channels=3,
            block_out_channels=SDRO_BLUEPRINT_WIDTHS)

    def weights(self):
        out = dict(self.unet.state_dict())
        out.update({"controlnet_cond_embedding." + k: v for k, v in self.controlnet_cond_embedding.state_dict().items()})
        return out

    def load_weights(self, state):
        self.unet.load_state_dict({k: v for k, v in state.items() if not k.startswith("controlnet_cond_embedding.")})
        self.controlnet_cond_embedding.load_state_dict(
            {k[len("controlnet_cond_embedding."):]: v for k, v in state.items() if k.startswith("controlnet_cond_embedding.")})

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond):
        embedding = self.controlnet_cond_embedding(controlnet_cond)
        handle = self.unet.conv_in.register_forward_hook(lambda module, inputs, output: output + embedding)
        try:
            return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states).sample
        finally:
            handle.remove()


def write_issue13_models(out, quick, missing):
    """The CLIP ViT-H vision tower and SDRO's UNet folder (f32), each only when missing."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    vision, sdro = issue13_paths(out, quick)
    if CLIP_VISION in missing:
        torch.manual_seed(14)
        tower = CLIPVisionModelWithProjection(CLIPVisionConfig(**(QUICK_VIT if quick else VIT_H))).eval()
        tower.save_pretrained(vision, safe_serialization=True)
        print(f"wrote {vision}")
        del tower
    if SDRO_UNET in missing:
        torch.manual_seed(15)
        config = QUICK_SDRO_UNET if quick else SD21_UNET
        model = ReferenceOnlyUNet(config).eval()
        model.controlnet_cond_embedding.conv_out.reset_parameters()  # zero-initialised by diffusers
        unet_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.unet.config).items()
                       if not k.startswith("_")}
        unet_config.update({"_class_name": "UNet2DDobuleConditionModel", "_diffusers_version": "0.21.0",
                            "conditioning_channels": 3, "conditioning_embedding_out_channels": list(SDRO_BLUEPRINT_WIDTHS)})
        os.makedirs(sdro, exist_ok=True)
        with open(os.path.join(sdro, "config.json"), "w") as f:
            json.dump(unet_config, f, indent=2, sort_keys=True)
        save_file({k: v.contiguous() for k, v in model.weights().items()},
                  os.path.join(sdro, "diffusion_pytorch_model.safetensors"))
        print(f"wrote {sdro}")


def reset_peak_rss():
    """Starts a new VmHWM (Linux: 5 to /proc/self/clear_refs), as paints-bench-diffusion does."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss():
    """VmHWM in GiB (ru_maxrss when /proc is not there)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed_rounds(rounds, **steps):
    """One warm-up call of each step, then `rounds` rounds calling each in turn: {name: [seconds per round]}."""
    times = {name: [] for name in steps}
    for round_ in range(rounds + 1):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            elapsed = time.perf_counter() - start
            if round_ > 0:
                times[name].append(elapsed)
    return times


def min_median(figures, prefix, values):
    figures[f"{prefix}_min_s"] = min(values)
    figures[f"{prefix}_median_s"] = statistics.median(values)


def issue13_figures(out, held, side, rounds, quick):
    """Issue 13's parts (see the module docstring): the IP-Adapter step on the SD1.5 UNet `held` = [unet] (taken out
    of the list, so that it is freed after that part), then the CLIP ViT-H image encode and SDRO's step. Parts whose
    files are missing are left out."""
    import gc
    import types

    from safetensors.torch import load_file

    figures = {"issue13_rounds": rounds}
    unet = held.pop()
    g = torch.Generator().manual_seed(2)
    vision, sdro = issue13_paths(out, quick)
    with torch.no_grad():
        if os.path.exists(os.path.join(out, IP_ADAPTER)):
            from diffusers.loaders.ip_adapter import IPAdapterMixin

            gc.collect()
            reset_peak_rss()
            x = torch.randn((2, 4, side, side), generator=g)
            c = torch.randn((2, 77, unet.config.cross_attention_dim), generator=g)
            embeds = torch.cat([torch.zeros((1, VIT_H["projection_dim"])), torch.randn((1, VIT_H["projection_dim"]), generator=g)])
            t = torch.tensor([500.0, 500.0])
            plain = dict(unet.attn_processors)
            state = {}
            for key, value in load_file(os.path.join(out, IP_ADAPTER)).items():
                head, rest = key.split(".", 1)  # what load_ip_adapter does with a .safetensors file
                state.setdefault(head, {})[rest] = value.to(torch.float32)
            unet._load_ip_adapter_weights([state], low_cpu_mem_usage=False)
            IPAdapterMixin.set_ip_adapter_scale(types.SimpleNamespace(unet=unet), IP_ADAPTER_SCALE)
            adapted, projection = dict(unet.attn_processors), unet.encoder_hid_proj

            def without():
                unet.set_attn_processor(dict(plain))  # it pops from the dict it gets
                unet.encoder_hid_proj = None
                unet(x, t, encoder_hidden_states=c)

            def with_adapter():
                unet.set_attn_processor(dict(adapted))
                unet.encoder_hid_proj = projection
                unet(x, t, encoder_hidden_states=c, added_cond_kwargs={"image_embeds": [embeds[:, None]]})

            times = timed_rounds(rounds, plain=without, adapter=with_adapter)
            min_median(figures, "ip_adapter_plain_step", times["plain"])
            min_median(figures, "ip_adapter_step", times["adapter"])
            figures["ip_adapter_peak_rss_gib"] = peak_rss()
            unet.set_attn_processor(dict(plain))  # it pops from the dict it gets
            unet.encoder_hid_proj = None
        del unet
        gc.collect()
        if os.path.exists(os.path.join(vision, "model.safetensors")):
            from transformers import CLIPVisionModelWithProjection

            tower = CLIPVisionModelWithProjection.from_pretrained(vision).eval()
            gc.collect()
            reset_peak_rss()  # from after loading (a load can hold the file's tensors and the model's at once)
            size = tower.config.image_size
            pixels = torch.randn((1, 3, size, size), generator=g)
            times = timed_rounds(rounds, encode=lambda: tower(pixel_values=pixels, output_hidden_states=True))
            min_median(figures, "clip_vision_encode", times["encode"])
            figures["clip_vision_peak_rss_gib"] = peak_rss()
            figures["clip_vision_layers"] = tower.config.num_hidden_layers
            del tower
            gc.collect()
        if os.path.exists(os.path.join(sdro, "diffusion_pytorch_model.safetensors")):
            with open(os.path.join(sdro, "config.json")) as f:
                stored = json.load(f)
            config = dict(QUICK_SDRO_UNET if quick else SD21_UNET)
            assert list(config["block_out_channels"]) == stored["block_out_channels"], (config, stored)
            model = ReferenceOnlyUNet(config).eval()
            model.load_weights(load_file(os.path.join(sdro, "diffusion_pytorch_model.safetensors")))
            gc.collect()
            reset_peak_rss()  # from after loading, as for the vision tower
            x = torch.randn((1, 4, side, side), generator=g)
            context = torch.randn((1, SDRO_CONTEXT_TOKENS, model.unet.config.cross_attention_dim), generator=g)
            blueprint = (torch.rand((1, 3, side * 8, side * 8), generator=g) > 0.9).float()
            t = torch.tensor([500.0])
            times = timed_rounds(rounds, step=lambda: model(x, t, context, blueprint),
                                 embed=lambda: model.controlnet_cond_embedding(blueprint))
            min_median(figures, "sdro_step", times["step"])
            min_median(figures, "sdro_blueprint_embed", times["embed"])
            figures["sdro_peak_rss_gib"] = peak_rss()
            del model
    return figures


def compare_issue13(figures, swift):
    """Issue 13's parts side by side: min and median of each engine, the ratio of the medians (swift / pytorch)."""
    rows = [("clip_vision_encode", "CLIP ViT-H/14 image encode, 224x224, batch 1"),
            ("ip_adapter_plain_step", "SD1.5 CFG step, no adapter (UNet batch 2)"),
            ("ip_adapter_step", "SD1.5 CFG step with the IP-Adapter"),
            ("sdro_step", "SDRO step (one UNet call, batch 1)"),
            ("sdro_blueprint_embed", "SDRO blueprint embedding alone")]
    rows = [(key, label) for key, label in rows if f"{key}_median_s" in figures or f"{key}_median_s" in swift]
    if not rows:
        return
    side = 16 if figures.get("quick") else 64
    print(f"\nissue 13 at {side * 8}x{side * 8} ({side}x{side} latents), f32 weights, fp32 compute, "
          f"{figures.get('issue13_rounds')} timed round(s) after a warm-up (swift {swift.get('issue13_rounds')})"
          + (f"; QUICK: a {figures.get('clip_vision_layers', '?')}-layer ViT-H stand-in and a narrow SDRO UNet" if figures.get("quick") else ""))
    nan = float("nan")
    print(f"{'':<46}{'swift min':>10}{'median':>9}{'pytorch min':>13}{'median':>9}{'ratio':>8}")
    for key, label in rows:
        s_min, s_med = swift.get(f"{key}_min_s", nan), swift.get(f"{key}_median_s", nan)
        p_min, p_med = figures.get(f"{key}_min_s", nan), figures.get(f"{key}_median_s", nan)
        print(f"{label:<46}{s_min:>10.2f}{s_med:>9.2f}{p_min:>13.2f}{p_med:>9.2f}{s_med / p_med:>8.2f}")
    for engine, source in (("swift", swift), ("pytorch", figures)):
        if "ip_adapter_step_median_s" in source and "ip_adapter_plain_step_median_s" in source:
            print(f"IP-Adapter's cost in the step, {engine}: "
                  f"{source['ip_adapter_step_median_s'] / source['ip_adapter_plain_step_median_s'] - 1:+.1%} (medians)")
    if "ip_adapter_apply_s" in swift:
        print(f"{'IP-Adapter tokens + keys/values, once per run':<46}{swift['ip_adapter_apply_s']:>10.3f}"
              "   (swift; diffusers projects the image embeds inside every UNet call)")
    if "sdro_step_median_s" in swift and "sdro_blueprint_embed_median_s" in swift and "sdro_step_median_s" in figures:
        whole = swift["sdro_step_median_s"] + swift["sdro_blueprint_embed_median_s"]
        print(f"{'SDRO step + embedding, as SDRO runs each step':<46}{'':>10}{whole:>9.2f}{'':>13}"
              f"{figures['sdro_step_median_s']:>9.2f}{whole / figures['sdro_step_median_s']:>8.2f}")
    print("SDRO: the restated SDRO forward embeds the blueprint inside every call (in pytorch's step); paintsd once per "
          "run (not in its step; the row above adds it back)")
    for key, label in (("clip_vision_peak_rss_gib", "peak RSS, CLIP vision part (GiB)"),
                       ("ip_adapter_peak_rss_gib", "peak RSS, IP-Adapter part (GiB)"),
                       ("sdro_peak_rss_gib", "peak RSS, SDRO part (GiB)")):
        if key in swift or key in figures:
            print(f"{label:<46}{swift.get(key, nan):>19.2f}{figures.get(key, nan):>22.2f}"
                  + ("" if key.startswith("ip_") else "   (pytorch: from after loading)"))


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
    plain = [k for k in figures if not k.startswith(ISSUE13_PREFIXES) and isinstance(figures[k], float)]
    width = max(len(k) for k in plain + list(swift)) + 2
    print(f"{'figure':<{width}}{'swift':>10}{'pytorch':>10}{'ratio':>8}")
    for key in plain:
        if key in swift:
            print(f"{key:<{width}}{swift[key]:>10.2f}{figures[key]:>10.2f}{swift[key] / figures[key]:>8.2f}")
    for key in sorted(set(swift) - set(figures)):
        if isinstance(swift[key], (int, float)) and not isinstance(swift[key], bool) and not key.startswith(ISSUE13_PREFIXES):
            print(f"{key:<{width}}{swift[key]:>10.2f}")
    compare_controlnet(figures, swift)
    compare_issue13(figures, swift)


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
