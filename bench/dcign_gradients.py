"""Gradients of the differentiable renderer (issue 18) against finite differences.

The loss: the squared difference between a render (32 px, 2x supersampled, lit) at azimuth 4°, elevation 9°,
light 30° and the render at 10°, 15°, 30°. Its derivative in azimuth and elevation, from autograd with
interior motion only (`raster.refine`), with outer silhouettes too (`raster.silhouette_gradient`), and
central finite differences of the plain render at several steps (the plain render changes by whole
pixels, so the steps disagree among themselves).

    PYTHONPATH=. python bench/dcign_gradients.py
"""

from __future__ import annotations

import torch

import diffparam.three_d.shading as shading
from diffparam.recipes.dcign_data import render_views, texture
from diffparam.three_d.shapes import shape

STEPS = (0.25, 0.5, 1.0, 2.0)


def main() -> None:
    torch.set_num_threads(1)
    full = shading.silhouette_gradient
    print("| object, texture | factor | interior only | with outer silhouettes | finite differences "
          f"(steps {', '.join(f'{s:g}' for s in STEPS)}°) |")
    print("| --- | --- | --- | --- | --- |")
    for name, tex_name in [("torus", "grey"), ("knot", "grey"), ("torus", "hue"), ("knot", "hue"),
                           ("sphere", "hue")]:
        mesh = shape(name)
        tex = torch.full((1, 3, 8, 8), 0.8) if tex_name == "grey" else texture(tex_name)
        target = render_views(mesh, tex, torch.tensor([[10.0, 15.0, 30.0]]), 32)

        def loss(f: torch.Tensor, differentiable: bool = False, mesh=mesh, tex=tex,
                 target=target) -> torch.Tensor:
            return (render_views(mesh, tex, f, 32, differentiable=differentiable) - target).pow(2).sum()

        grads = []
        for silhouettes in (False, True):
            shading.silhouette_gradient = full if silhouettes else (lambda views, *_: views)
            f = torch.tensor([[4.0, 9.0, 30.0]], requires_grad=True)
            loss(f, True).backward()
            grads.append(f.grad[0])
        shading.silhouette_gradient = full
        for j, factor in ((0, "azimuth"), (1, "elevation")):
            fd = []
            for eps in STEPS:
                step = torch.zeros(1, 3)
                step[0, j] = eps
                with torch.no_grad():
                    start = torch.tensor([[4.0, 9.0, 30.0]])
                    fd.append(float(loss(start + step) - loss(start - step)) / (2 * eps))
            print(f"| {name}, {tex_name} | {factor} | {float(grads[0][j]):.3f} | {float(grads[1][j]):.3f} | "
                  f"{', '.join(f'{v:.3f}' for v in fd)} |")


if __name__ == "__main__":
    main()
