#!/usr/bin/env python3
"""PyTorch beside paints-bench --sd-speed's `quality: fast` job, on the same random full-size SD1.5 weights (f32 files)
that Benchmarks/torch/sd15_random.py --write made: diffusers' StableDiffusionControlNetPipeline with the line-art
ControlNet, LCMScheduler, guidance 1, 4 steps, 512x512, the random rank-64 kohya LoRA lora/lcm-lora-sdv1-5.safetensors
loaded with load_lora_weights (PEFT, unfused, as the Swift engine binds it; it is random, not an LCM distillation:
only the times mean something), Examples/art/umbrella-lineart.png as the control image, txt2img from noise. 2 threads.
Prints the total pipeline call (with the VAE decode), the time per step from callback_on_step_end's timestamps, the
time outside sampling, the LoRA load time, and one TAESD preview decode (random AutoencoderTiny of OUT/taesd on the
latents area-averaged to 32x32, as the engine previews). Then the same fast run with the LoRA fused (fuse_lora: the
engine's lora_merge), and `balanced` as the engine runs it (no LoRA, DPM-Solver++ 2M Karras, guidance 7, so a batch
of two per step) for 6 steps, its time per step giving estimates of 20 steps (balanced) and 30 (best).

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
    from diffusers import (AutoencoderKL, AutoencoderTiny, ControlNetModel, DPMSolverMultistepScheduler, LCMScheduler,
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

    def run(steps, guidance):
        """One txt2img run to latents, then the VAE decode: total, time per step (callback gaps), decode."""
        stamps.clear()
        start = time.perf_counter()
        latents = pipe("a red umbrella in the rain, watercolor", image=control, num_inference_steps=steps,
                       guidance_scale=guidance, height=size, width=size, generator=torch.Generator().manual_seed(1),
                       output_type="latent", callback_on_step_end=on_step).images
        sampled = time.perf_counter()
        pipe.vae.decode(latents / pipe.vae.config.scaling_factor)
        total = time.perf_counter() - start
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        return latents, total, sum(gaps) / len(gaps), min(gaps), max(gaps), time.perf_counter() - sampled

    with torch.no_grad():
        latents, total, per_step, low, high, decode = run(4, 1.0)
        taesd = AutoencoderTiny.from_pretrained(os.path.join(out, SPEED_TAESD)).eval()
        side = min(32, latents.shape[-1])
        small = torch.nn.functional.adaptive_avg_pool2d(latents, side)
        taesd.decode(small)
        t = time.perf_counter()
        taesd.decode(small)
        preview = time.perf_counter() - t
        t = time.perf_counter()
        pipe.fuse_lora()
        fuse = time.perf_counter() - t
        _, fused_total, fused_step, _, _, _ = run(4, 1.0)
        pipe.unfuse_lora()
        pipe.unload_lora_weights()
        pipe.scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                     num_train_timesteps=1000, steps_offset=1, use_karras_sigmas=True)
        balanced_steps = 2 if quick else 6
        _, b_total, b_step, b_low, b_high, _ = run(balanced_steps, 7.0)
    print(f"  pipeline built from the folders                {load:.2f} s")
    print(f"  load_lora_weights (rank-64 kohya, random)      {lora_load:.2f} s")
    print(f"  fast (LCM, 4 steps, guidance 1, ControlNet)    total {total:.2f} s (incl. VAE decode {decode:.2f} s)")
    print(f"  time per step (callback gaps, 3)               {per_step:.2f} s (min {low:.2f}, max {high:.2f})")
    print(f"  outside sampling (total less 4 x per step)     {total - 4 * per_step:.2f} s")
    print(f"  TAESD preview decode ({side}x{side} latents)          {preview * 1000:.0f} ms")
    print(f"  fuse_lora                                      {fuse:.2f} s")
    print(f"  fast, LoRA fused: time per step / total        {fused_step:.2f} s / {fused_total:.2f} s")
    outside = b_total - balanced_steps * b_step
    print(f"  balanced (DPM++ 2M Karras, CFG 7), {balanced_steps} steps     total {b_total:.2f} s, "
          f"{b_step:.2f} s per step (min {b_low:.2f}, max {b_high:.2f}), outside sampling {outside:.2f} s")
    if not quick:
        print(f"  balanced at 20 steps (estimate)                {outside + 20 * b_step:.1f} s")
        print(f"  best at 30 steps (estimate)                    {outside + 30 * b_step:.1f} s")


if __name__ == "__main__":
    main()
