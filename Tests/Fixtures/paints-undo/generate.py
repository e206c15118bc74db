#!/usr/bin/env python3
"""Builds the Paints-UNDO single-frame parity fixtures: a tiny model folder in the published layout and a whole
keyframe run through the reference's sampling path.

Run from the repository root with the pinned stack (`make fixtures`):
    python Tests/Fixtures/paints-undo/generate.py

The reference (lllyasviel/Paints-UNDO at dd52677) is not a package, so its three pieces of inference code are
restated here step for step, with the file each comes from:
  - diffusers_helper/cat_cond.py: conv_in widened to 8 input channels; the image latent is concatenated after the
    noisy latent in every UNet call (cond and uncond), never scaled by c_in.
  - diffusers_helper/code_cond.py: add_time_proj = Timesteps(256, flip_sin_to_cos=True, shift 0) and
    add_embedding = TimestepEmbedding(256, time_embed_dim) of the operation step, added to the time embedding through
    UNet2DConditionModel.get_aug_embed.
  - diffusers_helper/k_diffusion.py: linear betas in float64, sigmas in float32, Karras sigmas, the nearest-log-sigma
    integer timestep, input x / sqrt(sigma^2 + 1), CFG as two UNet calls, DPM-Solver++(2M), start latent noise * sigma_max
    with one noise shared by the batch (gradio_app.py passes same_noise_in_batch=True).
The networks themselves are diffusers' and transformers' own classes.
"""
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "diffusion"))
from generate import randomize, save as save_in_diffusion  # noqa: E402
import fixture_io  # noqa: E402

MODEL = os.path.join(HERE, "model")


def save(name, tensors, metadata=None):
    save_in_diffusion(os.path.join("..", "paints-undo", name), tensors, metadata)


# --- the reference's patches (diffusers_helper/cat_cond.py, code_cond.py), for a UNet of any width ----------------

def add_concat_conds(unet, new_channels=4):
    with torch.no_grad():
        conv = torch.nn.Conv2d(4 + new_channels, unet.conv_in.out_channels, unet.conv_in.kernel_size,
                               unet.conv_in.stride, unet.conv_in.padding)
        conv.weight.zero_()
        conv.weight[:, :4].copy_(unet.conv_in.weight)
        conv.bias = unet.conv_in.bias
        unet.conv_in = conv


def add_coded_conds(unet):
    from diffusers.models.embeddings import TimestepEmbedding, Timesteps

    time_embed_dim = unet.time_embedding.linear_2.out_features   # 1280 in the published model
    unet.add_time_proj = Timesteps(256, True, 0)
    unet.add_embedding = TimestepEmbedding(256, time_embed_dim)

    def get_aug_embed(emb, encoder_hidden_states, added_cond_kwargs):
        coded = added_cond_kwargs.get("coded_conds")
        projected = unet.add_time_proj(coded.flatten()).reshape((coded.shape[0], -1)).to(emb)
        return unet.add_embedding(projected)

    unet.get_aug_embed = get_aug_embed


def unet_call(unet, sample, t, context, concat, coded):
    """One call of the patched UNet as the reference's hooked forwards make it."""
    concat = torch.cat([concat] * (sample.shape[0] // concat.shape[0]), dim=0)
    coded = torch.cat([coded] * (sample.shape[0] // coded.shape[0]), dim=0)
    return unet(torch.cat([sample, concat], dim=1), t, context, added_cond_kwargs={"coded_conds": coded},
                return_dict=False)[0]


# --- the reference's sampler (diffusers_helper/k_diffusion.py) ------------------------------------------------------

class KModel:
    def __init__(self, linear_start=0.00085, linear_end=0.020, timesteps=1000):
        betas = torch.linspace(linear_start, linear_end, timesteps, dtype=torch.float64)
        alphas_cumprod = torch.tensor(torch.cumprod(1.0 - betas, dim=0).numpy(), dtype=torch.float32)
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    def timestep(self, sigma):
        dists = sigma.log() - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape)

    def karras(self, n, rho=7.0):
        ramp = torch.linspace(0, 1, n)
        min_inv, max_inv = self.sigmas[0] ** (1 / rho), self.sigmas[-1] ** (1 / rho)
        sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
        return torch.cat([sigmas, sigmas.new_zeros([1])])


def sample(unet, k, concat, coded, cond, uncond, noise, steps, cfg):
    sigmas = k.karras(steps)
    batch = coded.shape[0]
    x = torch.zeros_like(concat).repeat(batch, 1, 1, 1) + noise.repeat(batch, 1, 1, 1) * sigmas[0]
    cond, uncond = cond.repeat(batch, 1, 1), uncond.repeat(batch, 1, 1)
    timesteps, old = [], None
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i] * x.new_ones([batch])
        scaled = x / (sigma[:, None, None, None] ** 2 + 1) ** 0.5
        t = k.timestep(sigma)
        timesteps.append(int(t[0]))
        eps_c = unet_call(unet, scaled, t, cond, concat, coded)
        eps_u = unet_call(unet, scaled, t, uncond, concat, coded)
        denoised = x - (eps_u + cfg * (eps_c - eps_u)) * sigma[:, None, None, None]
        t_now, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t_now
        if old is None or sigmas[i + 1] == 0:
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * denoised
        else:
            r = (t_now - (-sigmas[i - 1].log())) / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * d
        old = denoised
    return x, sigmas, timesteps


def build_model():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    g = torch.Generator().manual_seed(31)
    # SD1.5's layout at toy width; the saved config keeps in_channels=4 as the published one does.
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=4, norm_num_groups=8).eval()
    add_concat_conds(unet)
    add_coded_conds(unet)
    randomize(unet, g)
    # The single-frame text encoder is CLIP ViT-L/14 without its last layer (11 of 12): a plain CLIPTextModel whose
    # last_hidden_state (final layer norm on its last layer) is the context. Toy width, the fixture tokenizer's vocab.
    text = CLIPTextModel(CLIPTextConfig(vocab_size=3514, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                        num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                                        projection_dim=16)).eval()
    randomize(text, g)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16), layers_per_block=1,
                        latent_channels=4, norm_num_groups=8, sample_size=32).eval()
    randomize(vae, g)

    os.makedirs(MODEL, exist_ok=True)
    unet.save_pretrained(os.path.join(MODEL, "unet"), safe_serialization=True)
    vae.save_pretrained(os.path.join(MODEL, "vae"), safe_serialization=True)
    folder = os.path.join(MODEL, "text_encoder")
    os.makedirs(folder, exist_ok=True)
    save("model/text_encoder/model.safetensors", {f"text_model.{k}": v for k, v in text.state_dict().items()},
         metadata={"format": "pt"})
    text.config.to_json_file(os.path.join(folder, "config.json"))
    tokenizer = os.path.join(MODEL, "tokenizer")
    os.makedirs(tokenizer, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(HERE, "..", "diffusion", "tokenizer", name), os.path.join(tokenizer, name))
    with open(os.path.join(MODEL, "model_index.json"), "w") as f:
        json.dump({"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.27.2",
                   "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
                   "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}, f, indent=2)
    with open(os.path.join(MODEL, "unet", "config.json")) as f:
        assert json.load(f)["in_channels"] == 4, "the saved config must keep the published in_channels=4"
    return unet, text, vae


def main():
    from transformers import CLIPTokenizer

    unet, text, vae = build_model()
    tok = CLIPTokenizer(vocab=os.path.join(MODEL, "tokenizer", "vocab.json"),
                        merges=os.path.join(MODEL, "tokenizer", "merges.txt"), model_max_length=77)
    g = torch.Generator().manual_seed(37)

    # 1. One UNet call: a batch of two frames at their own operation steps, with the shared image latent.
    sample_in = torch.randn((2, 4, 6, 4), generator=g)
    concat = torch.randn((1, 4, 6, 4), generator=g)
    context = torch.randn((2, 7, 32), generator=g)
    coded = torch.tensor([400, 999])
    with torch.no_grad():
        out = unet_call(unet, sample_in, torch.tensor([10, 700]), context, concat, coded)
    save("unet-io.safetensors", {"sample": sample_in, "concat": concat, "context": context,
                                 "operation_steps": coded, "timesteps": torch.tensor([10, 700]), "output": out})

    # 2. The schedule: Karras sigmas and the timesteps the model sees, for the default 50 steps and a short run.
    k = KModel()
    expected = {"sigmas_table": k.sigmas}
    for n in (50, 4):
        sigmas = k.karras(n)
        expected[f"karras_{n}"] = sigmas
        expected[f"timesteps_{n}"] = k.timestep(sigmas[:-1])
    save("schedule.safetensors", expected)

    # 3. A whole keyframe run (gradio_app.py process()): image -> latent mode * scale, prompts through the 77-token
    # encoder, two operation steps in one batch, 4 DPM++ 2M Karras steps at CFG 3, VAE decode.
    prompt, negative = "1girl, solo, watercolor \\(medium\\)", "lowres, bad anatomy, bad hands, cropped, worst quality"
    image = (torch.rand((1, 3, 24, 16), generator=g) * 2 - 1)
    noise = torch.randn((1, 4, 6, 4), generator=g)
    steps, cfg, operation_steps = 4, 3.0, torch.tensor([400, 999])

    def encode(text_in):
        ids = tok(text_in, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        return text(ids, attention_mask=None).last_hidden_state

    with torch.no_grad():
        latent = vae.encode(image).latent_dist.mode() * vae.config.scaling_factor
        cond, uncond = encode(prompt), encode(negative)
        latents, sigmas, timesteps = sample(unet, k, latent, operation_steps, cond, uncond, noise, steps, cfg)
        pixels = vae.decode(latents / vae.config.scaling_factor).sample
    save("sampling-io.safetensors", {
        "image": image, "noise": noise, "operation_steps": operation_steps, "image_latent": latent,
        "cond": cond, "uncond": uncond, "latents": latents, "pixels": pixels,
        "timesteps": torch.tensor(timesteps), "sigmas": sigmas,
    }, metadata={"prompt": prompt, "negative_prompt": negative, "steps": str(steps), "cfg": str(cfg)})


if __name__ == "__main__":
    fixture_io.hide_broken_torchvision()
    main()
