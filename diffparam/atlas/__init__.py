"""Atlases: every channel of a layer or a whole model, rendered, grouped and browsable as a web page.

`atlas(model, layers, out)` renders the units (resumable, batched, sharded over torchrun ranks or
CPU workers) and writes `out/manifest.json`, one PNG per unit and `out/index.html`.
"""

from diffparam.atlas.jobs import Batch, Unit, batches, block_layers, job_list, resolve_layers
from diffparam.atlas.run import Options, atlas, prepare, read_manifest, units_objective

__all__ = [
    "Batch",
    "Options",
    "Unit",
    "atlas",
    "batches",
    "block_layers",
    "job_list",
    "prepare",
    "read_manifest",
    "resolve_layers",
    "units_objective",
]
