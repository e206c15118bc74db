"""What every fixture script here shares: saving safetensors only when their content changed, seeded random weights,
and hiding the broken torchvision of the pinned stack. Imported by Tests/Fixtures/*/generate.py."""
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def unchanged(path, tensors, metadata):
    """Whether `path` already holds exactly these tensors and metadata (safetensors orders its header at random, so
    rewriting equal content would still change the bytes)."""
    if not os.path.exists(path):
        return False
    with safe_open(path, "pt") as f:
        if set(f.keys()) != set(tensors) or (f.metadata() or {}) != (metadata or {}):
            return False
        return all(f.get_tensor(k).dtype == v.dtype and torch.equal(f.get_tensor(k), v) for k, v in tensors.items())


def save(path, tensors, metadata=None, root=None):
    """Writes `tensors` (contiguous copies) to `path` unless it holds them already; prints the path relative to
    `root` with the count and size."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tensors = {k: v.contiguous().clone() for k, v in tensors.items()}
    if not unchanged(path, tensors, metadata):
        save_file(tensors, path, metadata=metadata)
    shown = os.path.relpath(path, root) if root else path
    print(f"{shown}: {len(tensors)} tensors, {os.path.getsize(path) / 1024:.1f} KiB")


def randomize(model, generator, is_norm=lambda name: "norm" in name):
    """Non-trivial weights everywhere: normal(0, 0.2) for every parameter, the gains of norms (`is_norm(name)`, for a
    weight) around 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
            if is_norm(name) and name.endswith("weight"):
                p.add_(1.0)


def hide_broken_torchvision():
    """timm (in the pinned stack) pulls torchvision from PyPI, a CUDA build that cannot load beside the CPU torch of
    these machines; transformers, which diffusers' models and pipelines import, then fails. Hide it when it is broken
    (no fixture uses it)."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None
