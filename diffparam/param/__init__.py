"""Image parameterizations: modules whose forward() is an image batch (B, C, H, W) in [0, 1].

The kinds that can be built from a size alone ("fourier", "pixel", "maco", "cppn") are registered in
`diffparam.param.kinds`; `make_param(param, height, ...)` builds one by its name.
"""

from __future__ import annotations

from diffparam.deprecation import module_getattr
from diffparam.param.base import Parameterization
from diffparam.param.color import decorrelate_colors
from diffparam.param.cppn import CPPN
from diffparam.param.fourier import FourierImage
from diffparam.param.kinds import KINDS, Kind, kinds, make_param
from diffparam.param.maco import MacoImage, natural_spectrum
from diffparam.param.pixel import PixelImage
from diffparam.param.radiance import RadianceField
from diffparam.param.rgba import RGBAImage
from diffparam.param.shared import SharedImage
from diffparam.param.surface import SolidField
from diffparam.param.texture import TextureImage

__all__ = [
    "CPPN",
    "KINDS",
    "FourierImage",
    "Kind",
    "MacoImage",
    "Parameterization",
    "PixelImage",
    "RadianceField",
    "RGBAImage",
    "SharedImage",
    "SolidField",
    "TextureImage",
    "decorrelate_colors",
    "kinds",
    "make_param",
    "natural_spectrum",
]

__getattr__ = module_getattr(__name__, {
    "composite": "diffparam.backgrounds:composite",
    "to_valid_rgb": "diffparam.param.color:to_valid_rgb",
})
