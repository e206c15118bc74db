#!/usr/bin/env python3
"""Builds the numerical-parity fixtures of the diffusion engine from the reference implementation (diffusers).

Run from the repository root with the pinned stack of requirements.txt (`make fixtures` makes the venv):
    python Tests/Fixtures/diffusion/generate.py
Everything is seeded; outputs are small safetensors files in this folder, committed, so CI never needs torch.
"""
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)


def save(name, tensors, metadata=None):
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(HERE, name), metadata=metadata)
    size = os.path.getsize(os.path.join(HERE, name))
    print(f"{name}: {len(tensors)} tensors, {size / 1024:.1f} KiB")


def dtypes():
    """Values in every float dtype the loader reads, with the exact f32 value each rounds to."""
    values = torch.tensor([0.0, 1.0, -2.5, 3.14159265, 1e-3, -65000.0, 1e-5, 123.456], dtype=torch.float32)
    out = {"values_f32": values, "token_ids_i64": torch.tensor([49406, 320, 1125, 49407], dtype=torch.int64)}
    for name, dtype in [("f16", torch.float16), ("bf16", torch.bfloat16), ("f64", torch.float64)]:
        converted = values.to(dtype)
        out[f"values_{name}"] = converted
        out[f"values_{name}_rounded_f32"] = converted.to(torch.float32)
    save("dtypes.safetensors", out)


# --- schedulers -------------------------------------------------------------------------------------------------

SD_BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
LINEAR_BETAS = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear")

SCHEDULER_CASES = [
    ("ddim-sd15", "DDIMScheduler", dict(**SD_BETAS, set_alpha_to_one=False, steps_offset=1, clip_sample=False,
                                        timestep_spacing="leading"), 20),
    ("ddim-vpred-zsnr", "DDIMScheduler", dict(**SD_BETAS, set_alpha_to_one=False, clip_sample=False,
                                              prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                              timestep_spacing="trailing"), 10),
    ("euler-a-sd15", "EulerAncestralDiscreteScheduler", dict(**SD_BETAS, steps_offset=1, timestep_spacing="leading"), 20),
    ("euler-a-linear-vpred", "EulerAncestralDiscreteScheduler", dict(**LINEAR_BETAS, prediction_type="v_prediction",
                                                                     timestep_spacing="linspace"), 8),
    ("dpmpp2m-karras", "DPMSolverMultistepScheduler", dict(**SD_BETAS, steps_offset=1, use_karras_sigmas=True,
                                                           algorithm_type="dpmsolver++", solver_order=2), 20),
    ("dpmpp2m-linear-vpred", "DPMSolverMultistepScheduler", dict(**LINEAR_BETAS, prediction_type="v_prediction",
                                                                 algorithm_type="dpmsolver++", solver_order=2), 12),
    ("unipc-sd15", "UniPCMultistepScheduler", dict(**SD_BETAS, steps_offset=1, solver_order=2, solver_type="bh2"), 20),
    ("unipc-karras-vpred", "UniPCMultistepScheduler", dict(**SD_BETAS, use_karras_sigmas=True, solver_order=2,
                                                           prediction_type="v_prediction"), 10),
]


def toy_model(model_input, t):
    """A deterministic stand-in for the UNet that the Swift test computes the same way."""
    return torch.tanh(model_input * 0.7) * 0.9 + 0.01 * (float(t) / 1000.0)


def schedulers():
    import diffusers
    import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_a_module

    for name, cls_name, config, steps in SCHEDULER_CASES:
        cls = getattr(diffusers, cls_name)
        scheduler = cls(**config)
        scheduler.set_timesteps(steps)
        g = torch.Generator().manual_seed(1234)
        sample = torch.randn((1, 4, 8, 8), generator=g) * scheduler.init_noise_sigma
        tensors = {
            "timesteps": scheduler.timesteps.to(torch.float64),
            "alphas_cumprod": scheduler.alphas_cumprod.to(torch.float32),
            "init_noise_sigma": torch.tensor([float(scheduler.init_noise_sigma)], dtype=torch.float64),
            "sample_0": sample.clone(),
        }
        if hasattr(scheduler, "sigmas"):
            tensors["sigmas"] = scheduler.sigmas.to(torch.float32)
        recorded = []

        def recording_randn(shape, generator=None, device=None, dtype=None, layout=None):
            noise = torch.randn(shape, generator=g, dtype=torch.float32)
            recorded.append(noise.clone())
            return noise.to(dtype or torch.float32)

        euler_a_module.randn_tensor = recording_randn
        for i, t in enumerate(scheduler.timesteps):
            model_input = scheduler.scale_model_input(sample, t)
            output = toy_model(model_input, t)
            tensors[f"model_input_{i}"] = model_input.clone()
            sample = scheduler.step(output, t, sample).prev_sample
            tensors[f"sample_{i + 1}"] = sample.clone()
        for i, noise in enumerate(recorded):
            tensors[f"noise_{i}"] = noise
        save(f"scheduler-{name}.safetensors", tensors,
             metadata={"class": cls_name, "config": json.dumps(config), "steps": str(steps)})


if __name__ == "__main__":
    dtypes()
    schedulers()
