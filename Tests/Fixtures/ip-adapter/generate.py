#!/usr/bin/env python3
"""Builds the IP-Adapter parity fixtures: tiny IP-Adapter files in the original published layout for the tiny SD1 UNet
of ../diffusion/unet-sd1, and the outputs diffusers computes with them.

Run from the repository root with the pinned stack of Tests/Fixtures/diffusion/requirements.txt:
    python Tests/Fixtures/ip-adapter/generate.py
Everything is seeded. A file whose tensors and metadata are already on disk is not rewritten (safetensors orders a
header with metadata differently from run to run).

All three adapters are for the tiny SD1 UNet of ../diffusion/unet-sd1 (cross_attention_dim C = 32, block_out_channels
(32, 64), 4 heads in every attention, attn2 layers: down_blocks.0 (1), up_blocks.1 (2), mid (1)). Adapter files are in
the ORIGINAL published single-file layout (h94/IP-Adapter ip-adapter_sd15.safetensors /
ip-adapter-plus_sd15.safetensors; gustproof's style-components files), float16 as published, no metadata; every
weight is normal(0, 0.2) (LayerNorm gains 1 + that), rounded through float16 before any expected output is computed
(in float32), so the files hold exactly the weights used.

Layer numbering (ip_adapter.N.*): IPA trains `torch.nn.ModuleList(unet.attn_processors.values())` and saves it, so N is
the index of the attn2 processor in diffusers' attn_processors order; attn1 processors carry no weights, so the
attn2 ones are the odd N. Order (diffusers 0.42.1, models/attention.py L40-62: depth-first over named_children in
registration order; models/unets/unet_2d_condition.py registers down_blocks L326, up_blocks L327, then mid_block
L397): down blocks, then up blocks, then the mid block. diffusers' loader walks the same order with a counter
key_id = 1, 3, 5, ... over the cross-attention processors (loaders/unet.py L626-690). Here:
    1 down_blocks.0.attentions.0.transformer_blocks.0.attn2   to_k_ip / to_v_ip [32, 32]
    3 up_blocks.1.attentions.0.transformer_blocks.0.attn2     [32, 32]
    5 up_blocks.1.attentions.1.transformer_blocks.0.attn2     [32, 32]
    7 mid_block.attentions.0.transformer_blocks.0.attn2       [64, 32]
(each io.safetensors carries this map as metadata "ip_adapter_layers"). to_k_ip / to_v_ip are Linear(C -> the layer's
inner width), no bias.

Files and tensors
1. linear/ -- IP-Adapter (IPA ip_adapter.py ImageProjModel: Linear(E -> T*C), reshape [T, C], LayerNorm(C); E = 24,
   T = 4)
   - linear/ip-adapter_tiny.safetensors (f16): image_proj.proj.weight [128, 24], image_proj.proj.bias [128],
     image_proj.norm.weight [32], image_proj.norm.bias [32], ip_adapter.{1,3,5,7}.{to_k_ip,to_v_ip}.weight.
   - linear/io.safetensors (f32): sample [2,4,8,6], timesteps [2] (10, 700), encoder_hidden_states [2,5,32] (the text),
     image_embeds [2,24] (the image encoder's projected embedding, one per batch row), scale [1] (0.7), image_tokens
     [2,4,32] (the projection's output), output [2,4,8,6] (the UNet's noise prediction with the adapter),
     output_no_adapter [2,4,8,6] (the same UNet and inputs without it). Metadata: adapter, kind, scale, timesteps,
     embed_dim, tokens, ip_adapter_layers.
2. plus/ -- IP-Adapter Plus (IPA resampler.py Resampler as IPAdapterPlus.init_proj builds it: dim = output_dim = C,
   embedding_dim = W = 20 (the tiny image encoder's hidden width), 16 queries, depth 4, heads 2, dim_head 64,
   ff_mult 4)
   - plus/ip-adapter-plus_tiny.safetensors (f16): image_proj.latents [1,16,32]; image_proj.proj_in.{weight [32,20],
     bias}; for L = 0..3: image_proj.layers.L.0.{norm1,norm2}.{weight,bias} [32], image_proj.layers.L.0.to_q.weight
     [128,32], .to_kv.weight [256,32] (k rows then v rows), .to_out.weight [32,128]; image_proj.layers.L.1.0.{weight,
     bias} [32] (LayerNorm), .1.1.weight [128,32], .1.3.weight [32,128] (Linear, GELU (exact erf), Linear; no
     biases); image_proj.proj_out.{weight [32,32], bias}; image_proj.norm_out.{weight,bias} [32];
     ip_adapter.{1,3,5,7}.{to_k_ip,to_v_ip}.weight.
     Why depth 4 / dim_head 64 and not smaller: diffusers' converter (loaders/unet.py L520-545) builds
     IPAdapterPlusImageProjection with its default depth 4 (and loads strictly) and with heads = to_q rows // 64, i.e.
     it assumes dim_head 64 as every published Plus file has (SD1.5: dim 768, heads 12); a smaller file would not
     load. The head count is therefore rows(to_q) / 64; 2 heads here, so the head split is exercised.
     Resampler forward: latents = repeat(latents); x = proj_in(x); per layer:
       latents = attn(x, latents) + latents, attn: q = to_q(norm2(latents)), k|v = to_kv(cat[norm1(x), norm2(latents)]
       on the token axis).chunk(2), softmax(q k^T / sqrt(64)) v per head, to_out; latents = ff(latents) + latents;
     then norm_out(proj_out(latents)).
   - plus/io.safetensors: as linear/, with image_embeds [2,9,20] (penultimate hidden states of a tiny image encoder,
     [N, tokens, W]) and image_tokens [2,16,32]. Metadata also width, input_tokens, queries, depth, heads, dim_head,
     ff_mult.
   The file round-trips through _convert_ip_adapter_image_proj_to_diffusers (strict load) and diffusers' outputs
   agree with the IPA code restated below to ~5e-6.
3. style/ -- Style Components layout (conditioning.md section 7: MLPProjModelFaceId E -> 2E -> GELU -> 1*C,
   LayerNorm(C); ONE token; to_v_ip only; E = 30)
   - style/ip-adapter-style_tiny.safetensors (f16): image_proj.proj.0.{weight [60,30], bias [60]},
     image_proj.proj.2.{weight [32,60], bias [32]}, image_proj.norm.{weight,bias} [32],
     ip_adapter.{1,3,5,7}.to_v_ip.weight (NO to_k_ip). The hidden width is 2E as in MLPProjModelFaceId (the SDXL
     file is 768 -> 1536); diffusers' FaceID converter also needs it to be a multiple of E (mult = H // E). This is
     the layout of the SDXL Style Components files, scaled to SD1; the SD1 v0.1 file itself has not been inspected
     (conditioning.md section 7), so its exact shapes are an assumption.
   - style/io.safetensors: as linear/, image_embeds [2,30], image_tokens [2,1,32].
   RESTATED, not diffusers: diffusers cannot load a to_v_ip-only file (loaders/unet.py L679 reads
   f"{key_id}.to_k_ip.weight"). The expected output comes from the restated processor below: with one image token
   the softmax over it is exactly 1, so in each attn2 the IP branch is to_v_ip(token), the same vector for every
   query, times scale, added to the text attention output before to_out. Cross-check: diffusers, loading the same
   file plus a to_k_ip (random x3, then zeros) in every layer, gives the same image tokens and the same output to 0.0
   (asserted to 2e-5), whatever to_k_ip is.
4. pipeline/io.safetensors -- whole txt2img runs of diffusers' StableDiffusionPipeline with the tiny components of
   ../diffusion (unet-sd1, vae, clip-sd1, tokenizer), as its pipeline(): a fresh DPMSolverMultistepScheduler (SD
   betas, steps_offset 1, Karras sigmas, dpmsolver++, order 2) per run, 32x24 (8x6 latents), 5 steps, guidance 7.5,
   prompt "a watercolor painting of a cat", negative "blurry", output_type "np" (images NCHW, 0..1), explicit latents,
   adapter loaded with unet._load_ip_adapter_weights (what load_ip_adapter calls) and pipe.set_ip_adapter_scale(0.7),
   precomputed ip_adapter_image_embeds (no image encoder).
   Tensors: latents [1,4,8,6] (all three runs start from it);
     linear run (../linear/ip-adapter_tiny.safetensors): image_embeds [1,24], negative_image_embeds [1,24] (zeros: IPA's
       uncond is the projection of a zero embedding, and diffusers' encode_image does the same,
       pipeline_stable_diffusion.py L534), image [1,3,32,24];
     plus run (../plus/ip-adapter-plus_tiny.safetensors): plus_image_embeds [1,9,20], plus_negative_image_embeds
       [1,9,20] (an independent random tensor standing in for the encoder's hidden states of a zero image, which is
       what IPA and diffusers' encode_image (L525) use), plus_image [1,3,32,24];
     image_no_adapter [1,3,32,24]: the same run without any adapter (so a test can see the adapter matters).
   Metadata: scheduler (config JSON), prompt, negative_prompt, steps, guidance, height, width, scale, and per run
   ("linear", "plus", "no_adapter") JSON with the timesteps run, the UNet batch, the adapter file and the shape of
   the image_embeds the UNet got.
   How the precomputed embeds are fed (prepare_ip_adapter_image_embeds, pipeline_stable_diffusion.py L538-581): one
   tensor per adapter, with CFG [negative; positive] on the batch axis, which it splits with .chunk(2) (L567) and
   reassembles as torch.cat([negative, positive]) (L576); here linear [2,1,24] = cat([negative_image_embeds,
   image_embeds])[:, None], plus [2,1,9,20] = cat([plus_negative_image_embeds, plus_image_embeds])[:, None] (axis 1 =
   images per adapter). prompt_embeds are cat([negative, positive]) (L978), the latents cat([latents] * 2) (L1037),
   and noise_pred.chunk(2) gives (uncond, text) (L1054): every UNet batch is [uncond; cond], and the uncond half sees
   the negative text AND the negative image tokens. Each step the UNet gets added_cond_kwargs {"image_embeds":
   [that tensor]} (L1013-1017), unchanged (asserted).

diffusers 0.42.1 semantics (paths under diffusers/)
- Projection: UNet2DConditionModel.process_encoder_hidden_states (models/unets/unet_2d_condition.py L964-975) runs
  encoder_hid_proj = MultiIPAdapterImageProjection (models/embeddings.py L2339-2378: flattens [B, n_images, ...] to
  [B*n, ...], projects, back to [B, n, T, C]) and passes encoder_hidden_states = (text, [tokens per adapter]) as a
  TUPLE. ImageProjection L1280-1300 (keys proj -> image_embeds, loaders/unet.py L403-418, T fixed at 4),
  IPAdapterFaceIDImageProjection L1315-1328 (proj.0 -> ff.net.0.proj, proj.2 -> ff.net.2; chosen by "norm.weight" in
  the keys, L498-518; tokens = rows(proj.2) / C), IPAdapterPlusImageProjection L2019-2074 (+ block L1986-2016; keys
  norm1/norm2 -> ln0/ln1, to_kv split in halves into to_k/to_v, to_out -> attn.to_out.0, 1.0/1.1/1.3 ->
  ff.0/ff.1.net.0.proj/ff.1.net.2, loaders/unet.py L520-591).
- Attention (models/attention_processor.py IPAdapterAttnProcessor2_0, L4408-4635): the tuple is split (L4465-4466;
  the deprecated path for a plain tensor takes the last num_tokens tokens as the image tokens, L4467-4477, which is
  IPA's original concatenation); text attention as usual; then for each adapter, ip_key = to_k_ip(tokens), ip_value =
  to_v_ip(tokens), split into the layer's heads (same head count and head width as the text attention), attention
  with the SAME query, no mask (L4604-4620), and hidden_states = hidden_states + scale * ip_attention (L4622); the
  branch is skipped when scale == 0 (L4562-4571); then to_out[0], to_out[1] (L4625-4627). IPA's IPAttnProcessor2_0
  is the same with the tokens concatenated after the text. The scale is the processor's per-adapter list `scale`,
  set by IPAdapterMixin.set_ip_adapter_scale (loaders/ip_adapter.py L259-310) for every IP processor; the processors
  are built with scale 1.0 (loaders/unet.py L669-675).
- Each case is also computed with the published code restated here (ImageProjModel, Resampler/PerceiverAttention,
  MLPProjModelFaceId, IPAttnProcessor2_0 with the image tokens concatenated to the text, numbered as IPA numbers
  them) from the file alone; diffusers agrees with it (linear exactly, plus to ~5e-6, style to 0.0).
"""
import importlib.util
import json
import os
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import fixture_io  # noqa: E402
from fixture_io import hide_broken_torchvision  # noqa: E402
DIFFUSION = os.path.join(HERE, "..", "diffusion")

SCALE = 0.7
TIMESTEPS = [10.0, 700.0]
LINEAR = dict(embed_dim=24, tokens=4)  # ImageProjModel: E = 24 (the tiny image encoder's projection width), T = 4
PLUS = dict(width=20, input_tokens=9, queries=16, depth=4, heads=2, dim_head=64, ff_mult=4)  # IPA Resampler
STYLE = dict(embed_dim=30, hidden=60, tokens=1)  # MLPProjModelFaceId: 30 -> 60 -> GELU -> 1*32, LayerNorm(32)


# --- the reference implementations of the published code, restated (IPA = tencent-ailab/IP-Adapter) ---------------

class ImageProjModel(nn.Module):
    """IPA ip_adapter/ip_adapter.py ImageProjModel: Linear(E -> T*C) -> reshape (T, C) -> LayerNorm(C)."""

    def __init__(self, cross_attention_dim, clip_embeddings_dim, clip_extra_context_tokens):
        super().__init__()
        self.cross_attention_dim, self.tokens = cross_attention_dim, clip_extra_context_tokens
        self.proj = nn.Linear(clip_embeddings_dim, clip_extra_context_tokens * cross_attention_dim)
        self.norm = nn.LayerNorm(cross_attention_dim)

    def forward(self, image_embeds):
        return self.norm(self.proj(image_embeds).reshape(-1, self.tokens, self.cross_attention_dim))


class MLPProjModelFaceId(nn.Module):
    """The Style Components projection (ComfyUI_IPAdapter_plus MLPProjModelFaceId, as init_proj_sc builds it; IPA
    ip_adapter_faceid.py MLPProjModel is the same): Linear(E -> 2E), GELU, Linear(2E -> T*C), reshape, LayerNorm(C)."""

    def __init__(self, cross_attention_dim, id_embeddings_dim, num_tokens):
        super().__init__()
        self.cross_attention_dim, self.num_tokens = cross_attention_dim, num_tokens
        self.proj = nn.Sequential(nn.Linear(id_embeddings_dim, id_embeddings_dim * 2), nn.GELU(),
                                  nn.Linear(id_embeddings_dim * 2, cross_attention_dim * num_tokens))
        self.norm = nn.LayerNorm(cross_attention_dim)

    def forward(self, id_embeds):
        return self.norm(self.proj(id_embeds).reshape(-1, self.num_tokens, self.cross_attention_dim))


def save(name, tensors, metadata=None):
    fixture_io.save(os.path.join(HERE, name), tensors, metadata, root=HERE)


def FeedForward(dim, mult=4):  # noqa: N802  (IPA resampler.py)
    inner_dim = int(dim * mult)
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, inner_dim, bias=False), nn.GELU(),
                         nn.Linear(inner_dim, dim, bias=False))


class PerceiverAttention(nn.Module):
    """IPA ip_adapter/resampler.py PerceiverAttention."""

    def __init__(self, *, dim, dim_head=64, heads=8):
        super().__init__()
        self.dim_head, self.heads = dim_head, heads
        inner_dim = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)

    def forward(self, x, latents):
        x = self.norm1(x)
        latents = self.norm2(latents)
        b, length, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat((x, latents), dim=-2)).chunk(2, dim=-1)

        def heads(t):
            return t.view(b, t.shape[1], self.heads, -1).transpose(1, 2)

        q, k, v = heads(q), heads(k), heads(v)
        scale = 1 / (self.dim_head ** 0.25)
        weight = torch.softmax((q * scale) @ (k * scale).transpose(-2, -1), dim=-1)
        out = (weight @ v).permute(0, 2, 1, 3).reshape(b, length, -1)
        return self.to_out(out)


class Resampler(nn.Module):
    """IPA ip_adapter/resampler.py Resampler (as IPAdapterPlus.init_proj builds it: dim = output_dim = the UNet's
    cross_attention_dim, embedding_dim = the image encoder's hidden width, depth 4, dim_head 64)."""

    def __init__(self, dim, depth, dim_head, heads, num_queries, embedding_dim, output_dim, ff_mult=4):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, num_queries, dim) / dim ** 0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList([nn.ModuleList([PerceiverAttention(dim=dim, dim_head=dim_head, heads=heads),
                                                    FeedForward(dim=dim, mult=ff_mult)]) for _ in range(depth)])

    def forward(self, x):
        latents = self.latents.repeat(x.size(0), 1, 1)
        x = self.proj_in(x)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))


class RestatedIPAttnProcessor(nn.Module):
    """IPA ip_adapter/attention_processor.py IPAttnProcessor2_0 (image tokens appended to the text context, split off
    as the last num_tokens; text_attn + scale * ip_attn, then to_out), and, with value_only, the Style Components
    variant (ComfyUI_IPAdapter_plus CrossAttentionPatch, commit 76ed1c8): with one image token the softmax over it is
    exactly 1, so ip_attn = to_v_ip(token), the same vector for every query, and there is no to_k_ip."""

    def __init__(self, hidden_size, cross_attention_dim, num_tokens, scale, value_only=False):
        super().__init__()
        self.num_tokens, self.scale = num_tokens, scale
        self.to_k_ip = None if value_only else nn.Linear(cross_attention_dim, hidden_size, bias=False)
        self.to_v_ip = nn.Linear(cross_attention_dim, hidden_size, bias=False)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        assert encoder_hidden_states is not None and attention_mask is None and hidden_states.ndim == 3
        assert attn.group_norm is None and attn.spatial_norm is None and not attn.norm_cross
        assert not attn.residual_connection and attn.rescale_output_factor == 1.0
        end = encoder_hidden_states.shape[1] - self.num_tokens
        text, ip = encoder_hidden_states[:, :end], encoder_hidden_states[:, end:]
        b = hidden_states.shape[0]

        def split(t):
            return t.view(b, -1, attn.heads, t.shape[-1] // attn.heads).transpose(1, 2)

        def merge(t):
            return t.transpose(1, 2).reshape(b, -1, t.shape[1] * t.shape[-1])

        query = split(attn.to_q(hidden_states))
        out = merge(F.scaled_dot_product_attention(query, split(attn.to_k(text)), split(attn.to_v(text))))
        if self.to_k_ip is None:
            assert self.num_tokens == 1
            out = out + self.scale * self.to_v_ip(ip)  # [b, 1, hidden], broadcast over the queries
        else:
            ip_out = F.scaled_dot_product_attention(query, split(self.to_k_ip(ip)), split(self.to_v_ip(ip)))
            out = out + self.scale * merge(ip_out)
        return attn.to_out[1](attn.to_out[0](out))


# --- helpers ------------------------------------------------------------------------------------------------------

def diffusion_fixtures():
    """Tests/Fixtures/diffusion/generate.py as a module (for SD_BETAS)."""
    spec = importlib.util.spec_from_file_location("diffusion_fixtures", os.path.join(DIFFUSION, "generate.py"))
    module = importlib.util.module_from_spec(spec)
    state = torch.random.get_rng_state()
    spec.loader.exec_module(module)
    torch.random.set_rng_state(state)  # it seeds the global generator on import; leave ours as it was
    return module


def randomize(module, generator):
    """normal(0, 0.2) for every parameter, LayerNorm gains around 1; then rounded through float16, so that the
    float16 files (the published IP-Adapter files are float16) hold exactly the weights the outputs come from."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
        for m in module.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.add_(1.0)
        for p in module.parameters():
            p.copy_(p.to(torch.float16).to(torch.float32))


def load_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(os.path.join(DIFFUSION, "unet-sd1"), low_cpu_mem_usage=False).eval()


def attn2_layers(unet):
    """IPA's numbering: the index of each attn2 processor in unet.attn_processors (IPA trains
    `torch.nn.ModuleList(unet.attn_processors.values())` and saves it as ip_adapter.*), with its hidden size."""
    names = list(unet.attn_processors.keys())
    layers = {}
    for i, name in enumerate(names):
        if name.endswith("attn2.processor"):
            module = unet.get_submodule(name[:-len(".processor")])
            layers[i] = (name[:-len(".processor")], module.to_v.out_features)
        else:
            assert name.endswith("attn1.processor"), name
    return layers


def ip_layer_weights(unet, generator, with_key=True):
    cross = unet.config.cross_attention_dim
    out = {}
    for n, (_, hidden) in attn2_layers(unet).items():
        kinds = ["to_k_ip", "to_v_ip"] if with_key else ["to_v_ip"]
        for kind in kinds:
            w = torch.randn((hidden, cross), generator=generator) * 0.2
            out[f"ip_adapter.{n}.{kind}.weight"] = w.to(torch.float16)
    return out


def adapter_file(image_proj, ip_weights):
    """The published single-file layout: image_proj.<the projection's own state dict>, ip_adapter.<N>.to_*_ip.weight;
    float16 as the published files."""
    state = {f"image_proj.{k}": v.detach().to(torch.float16) for k, v in image_proj.state_dict().items()}
    state.update(ip_weights)
    return state


def split_file(state):
    """What diffusers' load_ip_adapter does with a .safetensors file (loaders/ip_adapter.py L180-188): keys under
    image_proj. and ip_adapter., prefixes stripped (here also float32)."""
    out = {"image_proj": {}, "ip_adapter": {}}
    for key, value in state.items():
        head, rest = key.split(".", 1)
        out[head][rest] = value.to(torch.float32)
    return out


def diffusers_unet_with(state, scale):
    """The tiny UNet with the adapter loaded as diffusers loads it, and the scale set by set_ip_adapter_scale."""
    from diffusers.loaders.ip_adapter import IPAdapterMixin

    unet = load_unet()
    unet._load_ip_adapter_weights([split_file(state)], low_cpu_mem_usage=False)
    IPAdapterMixin.set_ip_adapter_scale(types.SimpleNamespace(unet=unet), scale)
    return unet


def restated_unet_with(state, image_proj, num_tokens, scale, value_only=False):
    """The tiny UNet with IPA's processors built from the file alone (IPA numbering), and a forward function taking
    (sample, timesteps, text, image_embeds) that appends the projected image tokens to the text as IPA does."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    unet = load_unet()
    proj_state = {k[len("image_proj."):]: v.float() for k, v in state.items() if k.startswith("image_proj.")}
    image_proj.load_state_dict(proj_state, strict=True)
    processors = {}
    used = set()
    for i, name in enumerate(unet.attn_processors.keys()):
        if name.endswith("attn1.processor"):
            processors[name] = AttnProcessor2_0()
            continue
        module = unet.get_submodule(name[:-len(".processor")])
        proc = RestatedIPAttnProcessor(module.to_v.out_features, unet.config.cross_attention_dim, num_tokens, scale,
                                       value_only)
        with torch.no_grad():
            proc.to_v_ip.weight.copy_(state[f"ip_adapter.{i}.to_v_ip.weight"].float())
            used.add(f"ip_adapter.{i}.to_v_ip.weight")
            if not value_only:
                proc.to_k_ip.weight.copy_(state[f"ip_adapter.{i}.to_k_ip.weight"].float())
                used.add(f"ip_adapter.{i}.to_k_ip.weight")
        processors[name] = proc
    assert used == {k for k in state if k.startswith("ip_adapter.")}, "every ip_adapter weight has its layer"
    unet.set_attn_processor(processors)

    def forward(sample, timesteps, text, image_embeds):
        tokens = image_proj(image_embeds)
        return unet(sample, timesteps, encoder_hidden_states=torch.cat([text, tokens], dim=1)).sample, tokens

    return forward


def unet_inputs(cross_attention_dim):
    g = torch.Generator().manual_seed(61)
    sample = torch.randn((2, 4, 8, 6), generator=g)
    context = torch.randn((2, 5, cross_attention_dim), generator=g)
    return sample, torch.tensor(TIMESTEPS), context


def max_diff(a, b):
    return (a - b).abs().max().item()


# --- cases --------------------------------------------------------------------------------------------------------

def io_metadata(unet, kind, filename, extra):
    layers = {str(n): name for n, (name, _) in attn2_layers(unet).items()}
    meta = {"adapter": filename, "kind": kind, "scale": str(SCALE), "timesteps": json.dumps(TIMESTEPS),
            "ip_adapter_layers": json.dumps(layers)}
    meta.update({k: json.dumps(v) if not isinstance(v, str) else v for k, v in extra.items()})
    return meta


def linear_case():
    base = load_unet()
    cross = base.config.cross_attention_dim
    g = torch.Generator().manual_seed(71)
    proj = ImageProjModel(cross, LINEAR["embed_dim"], LINEAR["tokens"]).eval()
    randomize(proj, g)
    state = adapter_file(proj, ip_layer_weights(base, g))
    embeds = torch.randn((2, LINEAR["embed_dim"]), generator=g)
    sample, timesteps, context = unet_inputs(cross)
    with torch.no_grad():
        unet = diffusers_unet_with(state, SCALE)
        tokens = unet.encoder_hid_proj([embeds[:, None]])[0][:, 0]
        out = unet(sample, timesteps, encoder_hidden_states=context,
                   added_cond_kwargs={"image_embeds": [embeds[:, None]]}).sample
        plain = base(sample, timesteps, encoder_hidden_states=context).sample
        restated, restated_tokens = restated_unet_with(state, ImageProjModel(cross, LINEAR["embed_dim"],
                                                                             LINEAR["tokens"]).eval(),
                                                       LINEAR["tokens"], SCALE)(sample, timesteps, context, embeds)
    check("linear", tokens, restated_tokens, out, restated, plain)
    save("linear/ip-adapter_tiny.safetensors", state)
    save("linear/io.safetensors", {"sample": sample, "timesteps": timesteps, "encoder_hidden_states": context,
                                   "image_embeds": embeds, "scale": torch.tensor([SCALE]), "image_tokens": tokens,
                                   "output": out, "output_no_adapter": plain},
         io_metadata(base, "ImageProjModel", "ip-adapter_tiny.safetensors", LINEAR))
    return state


def plus_case():
    base = load_unet()
    cross = base.config.cross_attention_dim

    def resampler():
        return Resampler(dim=cross, depth=PLUS["depth"], dim_head=PLUS["dim_head"], heads=PLUS["heads"],
                         num_queries=PLUS["queries"], embedding_dim=PLUS["width"], output_dim=cross,
                         ff_mult=PLUS["ff_mult"]).eval()

    g = torch.Generator().manual_seed(73)
    proj = resampler()
    randomize(proj, g)
    state = adapter_file(proj, ip_layer_weights(base, g))
    embeds = torch.randn((2, PLUS["input_tokens"], PLUS["width"]), generator=g)
    sample, timesteps, context = unet_inputs(cross)
    with torch.no_grad():
        unet = diffusers_unet_with(state, SCALE)
        converted = unet.encoder_hid_proj.image_projection_layers[0]
        assert type(converted).__name__ == "IPAdapterPlusImageProjection"
        assert len(converted.layers) == PLUS["depth"] and converted.layers[0].attn.heads == PLUS["heads"]
        tokens = unet.encoder_hid_proj([embeds[:, None]])[0][:, 0]
        out = unet(sample, timesteps, encoder_hidden_states=context,
                   added_cond_kwargs={"image_embeds": [embeds[:, None]]}).sample
        plain = base(sample, timesteps, encoder_hidden_states=context).sample
        restated, restated_tokens = restated_unet_with(state, resampler(), PLUS["queries"], SCALE)(
            sample, timesteps, context, embeds)
    check("plus", tokens, restated_tokens, out, restated, plain)
    save("plus/ip-adapter-plus_tiny.safetensors", state)
    save("plus/io.safetensors", {"sample": sample, "timesteps": timesteps, "encoder_hidden_states": context,
                                 "image_embeds": embeds, "scale": torch.tensor([SCALE]), "image_tokens": tokens,
                                 "output": out, "output_no_adapter": plain},
         io_metadata(base, "Resampler", "ip-adapter-plus_tiny.safetensors", PLUS))
    return state


def style_case():
    base = load_unet()
    cross = base.config.cross_attention_dim
    assert STYLE["hidden"] == 2 * STYLE["embed_dim"]

    def mlp():
        return MLPProjModelFaceId(cross, STYLE["embed_dim"], STYLE["tokens"]).eval()

    g = torch.Generator().manual_seed(79)
    proj = mlp()
    randomize(proj, g)
    state = adapter_file(proj, ip_layer_weights(base, g, with_key=False))
    embeds = torch.randn((2, STYLE["embed_dim"]), generator=g)
    sample, timesteps, context = unet_inputs(cross)
    with torch.no_grad():
        plain = base(sample, timesteps, encoder_hidden_states=context).sample
        out, tokens = restated_unet_with(state, mlp(), STYLE["tokens"], SCALE, value_only=True)(
            sample, timesteps, context, embeds)
        # Cross-check with diffusers, which needs a to_k_ip (loaders/unet.py L681): any to_k_ip gives the same output.
        key_g = torch.Generator().manual_seed(97)
        for label, make in [("random", lambda s: torch.randn(s, generator=key_g) * 3.0), ("zero", torch.zeros)]:
            with_key = dict(state)
            for k, v in state.items():
                if k.endswith("to_v_ip.weight"):
                    with_key[k.replace("to_v_ip", "to_k_ip")] = make(v.shape).to(torch.float16)
            unet = diffusers_unet_with(with_key, SCALE)
            assert type(unet.encoder_hid_proj.image_projection_layers[0]).__name__ == "IPAdapterFaceIDImageProjection"
            d_tokens = unet.encoder_hid_proj([embeds[:, None]])[0][:, 0]
            d_out = unet(sample, timesteps, encoder_hidden_states=context,
                         added_cond_kwargs={"image_embeds": [embeds[:, None]]}).sample
            print(f"style: diffusers with a {label} to_k_ip: tokens differ by {max_diff(d_tokens, tokens):.2e}, "
                  f"output by {max_diff(d_out, out):.2e}")
            assert torch.allclose(d_tokens, tokens, atol=1e-6, rtol=0) and torch.allclose(d_out, out, atol=2e-5, rtol=0)
    assert max_diff(out, plain) > 1e-2
    print(f"style: the adapter changes the output by up to {max_diff(out, plain):.3f}")
    save("style/ip-adapter-style_tiny.safetensors", state)
    save("style/io.safetensors", {"sample": sample, "timesteps": timesteps, "encoder_hidden_states": context,
                                  "image_embeds": embeds, "scale": torch.tensor([SCALE]), "image_tokens": tokens,
                                  "output": out, "output_no_adapter": plain},
         io_metadata(base, "MLPProjModelFaceId (to_v_ip only)", "ip-adapter-style_tiny.safetensors", STYLE))
    return state


def check(name, tokens, restated_tokens, out, restated, plain):
    print(f"{name}: diffusers vs the restated IPA code: tokens {max_diff(tokens, restated_tokens):.2e}, "
          f"output {max_diff(out, restated):.2e}; the adapter changes the output by up to {max_diff(out, plain):.3f}")
    assert torch.allclose(tokens, restated_tokens, atol=1e-5, rtol=0)
    assert torch.allclose(out, restated, atol=2e-5, rtol=0)
    assert max_diff(out, plain) > 1e-2


# --- whole pipelines ----------------------------------------------------------------------------------------------

def pipelines(linear_state, plus_state):
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel, CLIPTokenizer

    sd_betas = diffusion_fixtures().SD_BETAS
    vae = AutoencoderKL.from_pretrained(os.path.join(DIFFUSION, "vae")).eval()
    text = CLIPTextModel.from_pretrained(os.path.join(DIFFUSION, "clip-sd1")).eval()
    folder = os.path.join(DIFFUSION, "tokenizer")
    tok = CLIPTokenizer(vocab=os.path.join(folder, "vocab.json"), merges=os.path.join(folder, "merges.txt"),
                        model_max_length=77)
    scheduler_config = dict(**sd_betas, steps_offset=1, use_karras_sigmas=True, algorithm_type="dpmsolver++",
                            solver_order=2)
    prompt, negative = "a watercolor painting of a cat", "blurry"
    settings = dict(height=32, width=24, num_inference_steps=5, guidance_scale=7.5)

    g = torch.Generator().manual_seed(83)
    latents = torch.randn((1, 4, 8, 6), generator=g)
    image_embeds = torch.randn((1, LINEAR["embed_dim"]), generator=g)
    negative_image_embeds = torch.zeros_like(image_embeds)
    plus_embeds = torch.randn((1, PLUS["input_tokens"], PLUS["width"]), generator=g)
    plus_negative = torch.randn((1, PLUS["input_tokens"], PLUS["width"]), generator=g)

    metadata = {"scheduler": json.dumps(scheduler_config), "prompt": prompt, "negative_prompt": negative,
                "steps": str(settings["num_inference_steps"]), "guidance": str(settings["guidance_scale"]),
                "height": str(settings["height"]), "width": str(settings["width"]), "scale": str(SCALE)}

    def run(key, state, ip_embeds, file):
        unet = load_unet()
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                       scheduler=DPMSolverMultistepScheduler(**scheduler_config), safety_checker=None,
                                       feature_extractor=None, image_encoder=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        extra = {}
        if state is not None:
            unet._load_ip_adapter_weights([split_file(state)], low_cpu_mem_usage=False)
            pipe.set_ip_adapter_scale(SCALE)
            extra["ip_adapter_image_embeds"] = ip_embeds
        calls = []

        def hook(module, args, kwargs):
            added = kwargs.get("added_cond_kwargs") or {}
            calls.append(dict(t=int(args[1]), batch=args[0].shape[0],
                              text=kwargs["encoder_hidden_states"].shape[0],
                              image_embeds=[e.clone() for e in added.get("image_embeds", [])]))

        handle = unet.register_forward_pre_hook(hook, with_kwargs=True)
        with torch.no_grad():
            image = pipe(prompt, negative_prompt=negative, latents=latents.clone(), output_type="np", **settings,
                         **extra).images
        handle.remove()
        image = torch.from_numpy(image).permute(0, 3, 1, 2).contiguous()
        entry = dict(timesteps=[c["t"] for c in calls], unet_batch=calls[0]["batch"])
        if state is not None:
            assert all(torch.equal(c["image_embeds"][0], ip_embeds[0]) for c in calls), "embeds passed unchanged"
            entry.update(adapter=file, unet_image_embeds=list(calls[0]["image_embeds"][0].shape),
                         order="[negative, positive] on the batch axis, as prompt_embeds")
        metadata[key] = json.dumps(entry)
        print(f"pipeline {key}: timesteps {entry['timesteps']}, image {image.min():.3f}..{image.max():.3f}")
        return image

    # precomputed embeds: one tensor per adapter, [negative; positive] on the batch axis, a num_images axis of 1.
    linear_in = [torch.cat([negative_image_embeds, image_embeds])[:, None]]  # [2, 1, E]
    plus_in = [torch.cat([plus_negative, plus_embeds])[:, None]]  # [2, 1, tokens, W]
    image = run("linear", linear_state, linear_in, "../linear/ip-adapter_tiny.safetensors")
    plus_image = run("plus", plus_state, plus_in, "../plus/ip-adapter-plus_tiny.safetensors")
    no_adapter = run("no_adapter", None, None, None)
    print(f"pipeline: the adapter changes the image by up to {max_diff(image, no_adapter):.3f} (linear), "
          f"{max_diff(plus_image, no_adapter):.3f} (plus)")
    assert max_diff(image, no_adapter) > 1e-2 and max_diff(plus_image, no_adapter) > 1e-2
    save("pipeline/io.safetensors", {
        "latents": latents, "image_embeds": image_embeds, "negative_image_embeds": negative_image_embeds,
        "image": image, "plus_image_embeds": plus_embeds, "plus_negative_image_embeds": plus_negative,
        "plus_image": plus_image, "image_no_adapter": no_adapter}, metadata)


def main():
    hide_broken_torchvision()
    torch.manual_seed(0)
    linear_state = linear_case()
    plus_state = plus_case()
    style_case()
    pipelines(linear_state, plus_state)


if __name__ == "__main__":
    main()
