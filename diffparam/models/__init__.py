"""Networks: the `Model` wrapper, the embedded EfficientNet-Lite0 and `load_model` for any other."""

from diffparam.models.base import OUTPUT, Model
from diffparam.models.layout import LayerInfo
from diffparam.models.registry import DEFAULT_MODEL, efficientnet_lite0, load_model

__all__ = ["DEFAULT_MODEL", "OUTPUT", "LayerInfo", "Model", "efficientnet_lite0", "load_model"]
