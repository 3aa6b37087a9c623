"""Deprecated: the atlas's analyses now live in `circuits`, `patches`, `grouping` and `naming`."""

from diffparam.deprecation import module_getattr

_MOVED = {
    "circuits": ("GATE_PHOTOS", "METHODS", "Connections", "circuit", "connections", "expected_gradient",
                 "gate_photos", "mbconv_weights", "previous_layer"),
    "patches": ("PATCH_PHOTOS", "LayerStatistics", "PhotoSet", "effective_field", "photo_set",
                "photo_statistics", "top_patches"),
    "grouping": ("Grouping", "feature_layers", "group_channels", "silhouette", "visualization_features"),
    "naming": ("COLOURFUL", "HUES", "ORIENTED", "describe_image", "judge_groups", "name_group"),
}

__getattr__ = module_getattr(__name__, {name: f"diffparam.atlas.{module}:{name}"
                                        for module, names in _MOVED.items() for name in names})
