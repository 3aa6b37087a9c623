"""The UV atlas as an image: which texels the charts cover, and edge padding (each texel outside
the charts takes the colour of the nearest covered texel).

Bilinear lookups at a chart's border read texels just outside it; padding makes those carry the
chart's own colours, so a seam does not show a line of whatever lies between the charts.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from diffparam.three_d.raster import rasterize


def coverage(uv: Tensor, faces: Tensor, size: int) -> Tensor:
    """(size, size) bool: texels whose centre lies in a UV triangle (row 0 is v = 1, as in images)."""
    clip = torch.cat([uv.float() * 2 - 1, uv.new_ones(len(uv), 2)], 1)[None]  # z = w = 1: flat
    return rasterize(clip, faces, size).mask[0]


def padding_index(covered: Tensor) -> Tensor:
    """For each texel (flattened, row-major), the index of the nearest covered texel (itself if covered)."""
    from scipy.ndimage import distance_transform_edt

    mask = covered.cpu().numpy()
    if not mask.any():
        return torch.arange(mask.size)
    _, (rows, cols) = distance_transform_edt(~mask, return_indices=True)
    return torch.from_numpy((rows * mask.shape[1] + cols).reshape(-1).astype(np.int64))


def pad(texture: Tensor, index: Tensor) -> Tensor:
    """Texture (B,C,H,W) with every texel replaced by texel `index[i]` (differentiable gather)."""
    b, c, h, w = texture.shape
    return texture.reshape(b, c, h * w)[:, :, index].reshape(b, c, h, w)
