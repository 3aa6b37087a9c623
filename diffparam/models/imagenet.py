"""ImageNet-1k class names, so predictions and class-targeted objectives can be named in words."""

from __future__ import annotations

from importlib import resources


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in index order (e.g. 967 is "espresso")."""
    text = resources.files("diffparam.models").joinpath("imagenet_classes.txt").read_text("utf-8")
    return text.splitlines()
