"""Small networks of the architectures diffparam must handle, written here (no timm on the CPU):
a ViT that asserts its input size, a Swin-like model with windowed attention on channels-last maps,
a model returning a dict, a grey (1-channel) model, and a network whose skip connections need a
multiple of its stride."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Attention(nn.Module):
    """timm's attention: per-head queries (B, heads, N, d) through `q_norm`, the heads' outputs
    concatenated through `norm` before the projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.Identity()
        self.norm = nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = torch.nn.functional.scaled_dot_product_attention(self.q_norm(q), k, v)
        return self.proj(self.norm(out.transpose(1, 2).reshape(b, n, c)))


class Block(nn.Module):
    """A pre-norm transformer block: attention (a tuple-returning nn.MultiheadAttention, or timm's
    with `timm_attention`) and an MLP."""

    def __init__(self, dim: int, heads: int, timm_attention: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.timm_attention = timm_attention
        self.attn = (Attention(dim, heads) if timm_attention
                     else nn.MultiheadAttention(dim, heads, batch_first=True))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc1", nn.Linear(dim, 2 * dim))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("fc2", nn.Linear(2 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm1(x)
        x = x + (self.attn(y) if self.timm_attention else self.attn(y, y, y, need_weights=False)[0])
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch embedding, a class token, `depth` blocks; refuses any size but `img_size`, as timm's do."""

    def __init__(self, img_size: int = 32, patch: int = 8, dim: int = 24, depth: int = 2,
                 classes: int = 5, registers: int = 0, timm_attention: bool = False) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1 + registers, dim) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + registers + (img_size // patch) ** 2, dim) * 0.5)
        self.blocks = nn.Sequential(*(Block(dim, 2, timm_attention) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise AssertionError(f"Input height ({x.shape[-2]}) doesn't match model ({self.img_size})")
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(t))[:, 0])


class WindowStage(nn.Module):
    """Attention inside `window` x `window` windows of a channels-last (B, H, W, C) map."""

    def __init__(self, dim: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.block = Block(dim, 2)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        k = self.window
        if h % k or w % k:
            raise RuntimeError(f"height ({h}) must be divisible by window ({k})")
        tiles = x.view(b, h // k, k, w // k, k, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, k * k, c)
        tiles = self.block(tiles)
        return tiles.view(b, h // k, w // k, k, k, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


class Merge(nn.Module):
    """Swin's patch merging: 2x2 neighbours concatenated and projected, channels-last."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        x = x.view(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, h // 2, w // 2, 4 * c)
        return self.reduction(x)


class TinySwin(nn.Module):
    """A Swin-like network: channels-last stages of windowed attention; sides must be multiples of 32."""

    def __init__(self, dim: int = 16, window: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.layers = nn.Sequential(WindowStage(dim, window), Merge(dim), WindowStage(2 * dim, window))
        self.head = nn.Linear(2 * dim, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x).permute(0, 2, 3, 1)
        return self.head(self.layers(x).mean((1, 2)))


class DictNet(nn.Module):
    """A CNN returning {'features': (B, C), 'logits': (B, classes)}, as Hugging Face models do."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 12, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(12, 4)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.body(x).mean((2, 3))
        return {"features": features, "logits": self.fc(features)}


class GreyNet(nn.Module):
    """A CNN for 1-channel images (X-rays, microscopy)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(8, 12, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(12, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv2(self.conv1(x)).mean((2, 3)))


class SkipNet(nn.Module):
    """Down twice by stride 2, up once, and add the skip: sizes must be multiples of 4 (DLA, HRNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.down2 = nn.Sequential(nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2)
        self.fuse = nn.Sequential(nn.Conv2d(8, 10, 3, 1, 1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        skip = self.down1(x)
        return self.fuse(skip + self.up(self.down2(skip))).mean((2, 3))


class SequenceFirstViT(nn.Module):
    """Tokens as (N, B, C), as OpenAI CLIP and `nn.TransformerEncoderLayer(batch_first=False)` make them;
    any size (no position table), patches of 8 px rounded down."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 8, 8)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.0)
        self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.queries = nn.Parameter(torch.randn(5, 1, dim))
        self.decoder = nn.MultiheadAttention(dim, 2)

    def forward(self, x: Tensor) -> Tensor:
        t = self.patch_embed(x).flatten(2).permute(2, 0, 1)  # (N, B, C)
        t = self.blocks(torch.cat([self.cls_token.expand(-1, t.shape[1], -1), t]))
        queries = self.queries.expand(-1, t.shape[1], -1)
        return self.decoder(queries, t, t)[0].mean(0)  # 5 learned queries: tokens with no grid
