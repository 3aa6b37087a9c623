"""diffparam: feature visualization and image synthesis through differentiable parameterizations."""

__version__ = "0.1.0"
