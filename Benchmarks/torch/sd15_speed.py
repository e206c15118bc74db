#!/usr/bin/env python3
"""PyTorch beside paints-bench --sd-speed's `quality: fast` job, on the same random full-size SD1.5 weights (f32 files)
that Benchmarks/torch/sd15_random.py --write made: diffusers' StableDiffusionControlNetPipeline with the line-art
ControlNet, LCMScheduler, guidance 1, 4 steps, 512x512, the random rank-64 kohya LoRA lora/lcm-lora-sdv1-5.safetensors
loaded with load_lora_weights (PEFT, unfused, as the Swift engine binds it; it is random, not an LCM distillation:
only the times mean something), Examples/art/umbrella-lineart.png as the control image, txt2img from noise. 2 threads.
Prints the total pipeline call (with the VAE decode), the time per step from callback_on_step_end's timestamps, the
time outside sampling, the LoRA load time, and one TAESD preview decode (random AutoencoderTiny of OUT/taesd on the
latents area-averaged to 32x32, as the engine previews).

    python Benchmarks/torch/sd15_speed.py BENCH_MODELS [ART_DIR]
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sd15_random import CONTROLNET, SPEED_LORA, SPEED_TAESD, cpu_summary, hide_broken_torchvision, quick_mode  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/paintsd-sd15-random"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    art = sys.argv[2] if len(sys.argv) > 2 else os.path.join(repo, "Examples", "art")
    quick = quick_mode()
    size = 128 if quick else 512
    torch.set_num_threads(2)
    hide_broken_torchvision()
    from diffusers import (AutoencoderKL, AutoencoderTiny, ControlNetModel, LCMScheduler,
                           StableDiffusionControlNetPipeline, UNet2DConditionModel)
    from PIL import Image
    from transformers import CLIPTextModel, CLIPTokenizer

    print(f"pytorch sd speed (fast): {cpu_summary()}; {torch.get_num_threads()} threads"
          + ("; QUICK smoke run at 128: not figures" if quick else ""))
    start = time.perf_counter()
    pipe = StableDiffusionControlNetPipeline(
        vae=AutoencoderKL.from_pretrained(os.path.join(out, "vae")),
        text_encoder=CLIPTextModel.from_pretrained(os.path.join(out, "text_encoder")),
        tokenizer=CLIPTokenizer.from_pretrained(os.path.join(repo, "Tests", "Fixtures", "diffusion", "tokenizer"),
                                        model_max_length=77),
        unet=UNet2DConditionModel.from_pretrained(os.path.join(out, "unet")),
        controlnet=ControlNetModel.from_pretrained(os.path.join(out, CONTROLNET)),
        scheduler=LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                               set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    load = time.perf_counter() - start
    start = time.perf_counter()
    pipe.load_lora_weights(os.path.join(out, SPEED_LORA), adapter_name="fast")
    pipe.unet.to(torch.float32)  # PEFT makes the LoRA layers in the file's f16; the Swift engine computes them in f32
    pipe.text_encoder.to(torch.float32)
    lora_load = time.perf_counter() - start
    control = Image.open(os.path.join(art, "umbrella-lineart.png")).convert("RGB").resize((size, size))

    stamps = []

    def on_step(pipeline, step, timestep, kwargs):
        stamps.append(time.perf_counter())
        return kwargs

    with torch.no_grad():
        start = time.perf_counter()
        latents = pipe("a red umbrella in the rain, watercolor", image=control, num_inference_steps=4, guidance_scale=1.0,
                       height=size, width=size, generator=torch.Generator().manual_seed(1), output_type="latent",
                       callback_on_step_end=on_step).images
        sampled = time.perf_counter()
        pipe.vae.decode(latents / pipe.vae.config.scaling_factor)
        total = time.perf_counter() - start
        decode = time.perf_counter() - sampled
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        per_step = sum(gaps) / len(gaps)
        taesd = AutoencoderTiny.from_pretrained(os.path.join(out, SPEED_TAESD)).eval()
        side = min(32, latents.shape[-1])
        small = torch.nn.functional.adaptive_avg_pool2d(latents, side)
        taesd.decode(small)
        t = time.perf_counter()
        taesd.decode(small)
        preview = time.perf_counter() - t
    print(f"  pipeline built from the folders                {load:.2f} s")
    print(f"  load_lora_weights (rank-64 kohya, random)      {lora_load:.2f} s")
    print(f"  fast (LCM, 4 steps, guidance 1, ControlNet)    total {total:.2f} s (incl. VAE decode {decode:.2f} s)")
    print(f"  time per step (callback gaps, {len(gaps)})              {per_step:.2f} s (min {min(gaps):.2f}, max {max(gaps):.2f})")
    print(f"  outside sampling (total less 4 x per step)     {total - 4 * per_step:.2f} s")
    print(f"  TAESD preview decode ({side}x{side} latents)          {preview * 1000:.0f} ms")


if __name__ == "__main__":
    main()
