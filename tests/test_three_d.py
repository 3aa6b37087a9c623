"""The 3D pieces: sample meshes, loading and export, cameras, the rasteriser, UV padding, seams."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from diffparam.errors import UserError
from diffparam.three_d import cameras as C
from diffparam.three_d import raster as R
from diffparam.three_d import seams, shapes, uvmap
from diffparam.three_d.export import export_glb, export_obj
from diffparam.three_d.mesh import Mesh, from_arrays, load_mesh

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def knot() -> Mesh:
    return shapes.knot(12)


def _quad(z: float, size: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A square facing +z at depth z: vertices, faces, UVs (u along x, v along y)."""
    h = size / 2
    v = torch.tensor([[-h, -h, z], [h, -h, z], [h, h, z], [-h, h, z]])
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    return v, f, uv


def _front_camera(distance: float = 2.0, fov: float = 60.0) -> C.Cameras:
    return C.orbit(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([distance]), torch.tensor([fov]))


@pytest.mark.parametrize("name", ["sphere", "torus", "knot"])
def test_sample_shapes_fill_a_unit_box_with_uvs(name: str) -> None:
    mesh = shapes.shape(name, 8)
    lo, hi = mesh.vertices.min(0).values, mesh.vertices.max(0).values
    assert torch.allclose(lo + hi, torch.zeros(3), atol=1e-5)
    assert math.isclose(float((hi - lo).max()), 1.0, rel_tol=1e-5)
    assert mesh.uv.min() >= 0 and mesh.uv.max() <= 1
    keys, seam = seams.edge_pairs(mesh)
    assert 0 < int(seam.sum()) < len(keys)  # every sample shape has a cut atlas


def test_unknown_shape_and_bad_resolution() -> None:
    with pytest.raises(UserError, match="choose one of: sphere, torus, knot"):
        shapes.shape("cube")
    with pytest.raises(UserError, match="resolution"):
        shapes.sphere(2)


def test_look_at_puts_the_target_straight_ahead() -> None:
    eye = torch.tensor([[1.0, 2.0, 3.0]])
    view = C.look_at(eye)
    at_eye = view[0] @ torch.tensor([1.0, 2.0, 3.0, 1.0])
    at_target = view[0] @ torch.tensor([0.0, 0.0, 0.0, 1.0])
    assert torch.allclose(at_eye[:3], torch.zeros(3), atol=1e-5)
    assert torch.allclose(at_target[:2], torch.zeros(2), atol=1e-5) and at_target[2] < 0
    assert math.isclose(float(-at_target[2]), math.sqrt(14), rel_tol=1e-5)


def test_view_sampler_ranges_and_seed() -> None:
    sampler = C.ViewSampler(distance=(2.0, 3.0), elevation=(-10.0, 40.0), fov=(30.0, 50.0))
    a = sampler.sample(64, torch.Generator().manual_seed(3))
    b = sampler.sample(64, torch.Generator().manual_seed(3))
    assert torch.equal(a.view, b.view) and torch.equal(a.fov, b.fov)
    eye = -torch.einsum("bji,bj->bi", a.view[:, :3, :3], a.view[:, :3, 3])  # camera centres
    dist = eye.norm(dim=1)
    elev = torch.rad2deg(torch.asin(eye[:, 1] / dist))
    assert dist.min() >= 2.0 - 1e-4 and dist.max() <= 3.0 + 1e-4
    assert elev.min() >= -10.0 - 1e-3 and elev.max() <= 40.0 + 1e-3
    assert a.fov.min() >= 30 and a.fov.max() <= 50
    with pytest.raises(UserError, match="distance range"):
        C.ViewSampler(distance=(3.0, 2.0))
    assert len(C.turntable(12)) == 12


def test_a_square_covers_its_projected_area_at_its_depth() -> None:
    v, f, _ = _quad(0.0)
    cams = _front_camera(distance=2.0, fov=60.0)
    frags = R.rasterize(cams.project(v), f, 64)
    side = 64 * 1.0 / (2 * 2.0 * math.tan(math.radians(30.0)))  # the square's side in pixels
    assert abs(int(frags.mask.sum()) - side * side) < 4 * side  # within one pixel row per edge
    assert torch.allclose(frags.depth[frags.mask], torch.full_like(frags.depth[frags.mask], 2.0))
    assert set(frags.face[frags.mask].unique().tolist()) == {0, 1}
    assert torch.allclose(frags.bary.sum(-1)[frags.mask], torch.ones(int(frags.mask.sum())), atol=1e-5)


def test_the_nearest_face_wins_from_either_side() -> None:
    near, f, _ = _quad(0.2)
    far, _, _ = _quad(-0.2, size=1.5)
    verts = torch.cat([near, far])
    faces = torch.cat([f, f + 4])
    for azimuth, expected in ((0.0, {0, 1}), (180.0, {2, 3})):
        cams = C.orbit(torch.tensor([azimuth]), torch.tensor([0.0]), torch.tensor([2.0]),
                       torch.tensor([40.0]))
        frags = R.rasterize(cams.project(verts), faces, 48)
        centre = frags.face[0, 20:28, 20:28]
        assert set(centre.unique().tolist()) == expected


def test_uvs_are_perspective_correct() -> None:
    """A floor seen at a slant: the interpolated UV equals the ray-plane intersection's."""
    v, f, uv = _quad(0.0, size=2.0)
    v = v[:, [0, 2, 1]]  # the square lies in the y=0 plane; v grows with z
    cams = C.orbit(torch.tensor([0.0]), torch.tensor([30.0]), torch.tensor([2.0]), torch.tensor([60.0]))
    frags = R.rasterize(cams.project(v), f, 64)
    got = R.interpolate(uv, f, frags)[0]
    # Ray through each pixel centre, in world space.
    size = 64
    ndc = (torch.arange(size) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(-ndc, ndc, indexing="ij")
    t = math.tan(math.radians(30.0))
    d_cam = torch.stack([x * t, y * t, -torch.ones_like(x)], -1)
    rot = cams.view[0, :3, :3]
    eye = -rot.T @ cams.view[0, :3, 3]
    d = d_cam @ rot  # camera → world (rot is orthonormal)
    s = -eye[1] / d[..., 1]
    hit = eye + s[..., None] * d
    want = torch.stack([(hit[..., 0] + 1) / 2, (hit[..., 2] + 1) / 2], -1)
    mask = frags.mask[0]
    assert mask.sum() > 500
    assert (got[mask] - want[mask]).abs().max() < 2e-3


def test_sphere_coverage_matches_the_projected_disc() -> None:
    sphere = shapes.sphere(48)
    d, fov, size = 2.0, 40.0, 96
    frags = R.rasterize(_front_camera(d, fov).project(sphere.vertices), sphere.faces, size)
    radius = math.tan(math.asin(0.5 / d)) / math.tan(math.radians(fov / 2)) * size / 2
    assert abs(float(frags.mask.sum()) / (math.pi * radius**2) - 1) < 0.02


def test_chunked_rasterisation_is_identical(knot: Mesh) -> None:
    cams = C.ViewSampler().sample(2, torch.Generator().manual_seed(0))
    clip = cams.project(knot.vertices)
    a = R.rasterize(clip, knot.faces, 48)
    b = R.rasterize(clip, knot.faces, 48, max_pairs=500)
    assert torch.equal(a.face, b.face) and torch.equal(a.bary, b.bary)
    culled = R.rasterize(clip, knot.faces, 48, cull_backfaces=True)
    assert torch.equal(culled.face, a.face)  # a closed surface looks the same without its back faces


def test_render_is_differentiable_in_the_texture_only(knot: Mesh) -> None:
    texture = torch.full((1, 3, 32, 32), 0.5, requires_grad=True)
    cams = C.turntable(2)
    views = R.render_mesh(knot, cams, 32, texture, supersample=2)
    assert views.shape == (2, 4, 32, 32)
    assert 0.05 < float(views[:, 3].detach().mean()) < 0.9
    views[:, :3].sum().backward()
    assert texture.grad is not None and (texture.grad > 0).any()
    with pytest.raises(UserError, match="has no texture"):
        R.render_mesh(knot, cams, 32)


def test_padding_copies_the_nearest_covered_texel(knot: Mesh) -> None:
    covered = uvmap.coverage(knot.uv, knot.faces, 64)
    assert 0.2 < float(covered.float().mean()) < 0.95
    index = uvmap.padding_index(covered)
    flat = covered.flatten()
    assert torch.equal(index[flat], torch.arange(64 * 64)[flat])
    assert bool(flat[index].all())  # every texel copies a covered one


def test_position_map_puts_every_texel_on_the_surface() -> None:
    """Sphere of radius 0.5: texels inside the charts, those extended past a chart's edge and the
    far padding all show points on it (faces are chords: a little inside)."""
    sphere = shapes.sphere(16)
    pos, covered, _ = uvmap.position_map(sphere.vertices, sphere.faces, sphere.uv, 64)
    assert pos.shape == (64, 64, 3) and torch.equal(covered, uvmap.coverage(sphere.uv, sphere.faces, 64))
    radius = pos.norm(dim=-1)
    assert float(radius.min()) > 0.5 * math.cos(math.pi / 16) ** 2 and float(radius.max()) < 0.5 + 1e-4
    clip = torch.cat([sphere.uv * 2 - 1, torch.ones(len(sphere.uv), 2)], 1)[None]
    inside = R.interpolate(sphere.vertices, sphere.faces, R.rasterize(clip, sphere.faces, 64))[0]
    assert torch.allclose(pos[covered], inside[covered], atol=1e-5)


def test_position_map_gives_both_sides_of_a_seam_the_same_point(knot: Mesh) -> None:
    """Along every seam edge, the position map read (bilinearly, as textures are) at the edge's UVs
    in either chart gives the edge's 3D point: to well under a texel on average, a texel at worst."""
    size = 128
    pos, covered, _ = uvmap.position_map(knot.vertices, knot.faces, knot.uv, size)
    keys, seam = seams.edge_pairs(knot)
    welded, nf = knot.welded(), knot.num_faces
    uv_a, uv_b, xyz = [], [], []
    for key in keys[seam].tolist():
        fa, fb = knot.faces[key // nf], knot.faces[key % nf]
        wa, wb = welded[fa].tolist(), welded[fb].tolist()
        ends = [w for w in wa if w in wb]
        for t in (0.25, 0.5, 0.75):
            weights = ((1 - t, ends[0]), (t, ends[1]))
            uv_a.append(sum(w * knot.uv[fa[wa.index(e)]] for w, e in weights))
            uv_b.append(sum(w * knot.uv[fb[wb.index(e)]] for w, e in weights))
            xyz.append(sum(w * knot.vertices[fa[wa.index(e)]] for w, e in weights))
    want = torch.stack(xyz)

    def read(uv: list[torch.Tensor]) -> torch.Tensor:
        g = torch.stack(uv)
        grid = torch.stack([g[:, 0] * 2 - 1, 1 - g[:, 1] * 2], -1)[None, None]
        return torch.nn.functional.grid_sample(pos.permute(2, 0, 1)[None], grid, align_corners=False,
                                               padding_mode="border")[0, :, 0].T

    p = knot.vertices[knot.faces]
    area = float(torch.linalg.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]).norm(dim=1).sum()) / 2
    texel = math.sqrt(area / float(covered.sum()))  # surface length per texel
    err = torch.cat([(read(uv_a) - want).norm(dim=1), (read(uv_b) - want).norm(dim=1)])
    assert len(want) > 300
    # measured: mean 0.012 texel, max 0.81 texel
    assert float(err.mean()) < 0.05 * texel and float(err.max()) < texel, (float(err.mean()), texel)


def _baked(mesh: Mesh, size: int, frequency: float) -> torch.Tensor:
    """A texture holding a smooth function of the 3D position: continuous on the surface."""
    clip = torch.cat([mesh.uv * 2 - 1, torch.ones(len(mesh.uv), 2)], 1)[None]
    frags = R.rasterize(clip, mesh.faces, size)
    pos = R.interpolate(mesh.vertices, mesh.faces, frags)[0]
    tex = (0.5 + 0.5 * torch.sin(frequency * pos + torch.tensor([0.0, 1.0, 2.0]))).permute(2, 0, 1)[None]
    return uvmap.pad(tex, uvmap.padding_index(frags.mask[0]))


def test_seam_contrast_tells_continuous_from_pasted(knot: Mesh) -> None:
    cams = C.ViewSampler().sample(4, torch.Generator().manual_seed(1))
    continuous = seams.seam_contrast(knot, _baked(knot, 128, 8.0), cams, 64)
    assert continuous.seam_pairs > 100 and continuous.interior_pairs > 500
    assert continuous.ratio < 1.2, continuous
    # The same kind of smooth pattern made in UV space (as a 2D image would be) jumps at seams.
    u, v = knot.uv[:, 0], knot.uv[:, 1]
    pasted = _baked(Mesh(torch.stack([u, v, u * v], 1), knot.faces, knot.uv), 128, 8.0)
    assert seams.seam_contrast(knot, pasted, cams, 64).ratio > 3 * continuous.ratio


def test_export_and_load_round_trip(tmp_path, knot: Mesh) -> None:
    texture = torch.rand(3, 32, 48, generator=torch.Generator().manual_seed(0))
    obj, mtl, png = export_obj(knot, tmp_path / "m.obj", texture, texture_file="texture.png")
    glb = export_glb(knot, tmp_path / "m.glb", texture)
    assert mtl.name == "m.mtl" and png.name == "texture.png" and "map_Kd texture.png" in mtl.read_text()
    written = np.asarray(Image.open(png))
    expected = (texture.permute(1, 2, 0) * 255).round().byte().numpy()
    assert np.array_equal(written, expected)
    for path in (obj, glb):
        loaded = trimesh.load(path, force="mesh", process=False)
        material = loaded.visual.material
        image = getattr(material, "image", None) or material.baseColorTexture
        assert np.array_equal(np.asarray(image.convert("RGB")), expected), path
        # Colours trimesh reads at the vertices are the texture's at our UVs.
        ours = trimesh.visual.color.uv_to_color(knot.uv.numpy(), Image.fromarray(expected))
        theirs = trimesh.visual.color.uv_to_color(loaded.visual.uv, image)
        assert np.array_equal(ours, theirs), path
        back = load_mesh(path, normalize=False)
        assert back.texture is not None and back.num_faces == knot.num_faces
        assert torch.allclose(back.vertices, knot.vertices, atol=1e-5)
        assert torch.allclose(back.uv, knot.uv, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.glb", "m.mtl", "m.obj", "texture.png"]


def test_a_mesh_without_uvs_is_unwrapped(tmp_path) -> None:
    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    box.export(tmp_path / "box.ply")
    mesh = load_mesh(tmp_path / "box.ply")
    assert mesh.num_faces == 12 and mesh.texture is None
    assert mesh.uv.min() >= 0 and mesh.uv.max() <= 1
    assert torch.allclose(mesh.vertices.max(0).values, torch.tensor([0.5, 0.25, 0.125]), atol=1e-5)
    assert int(seams.edge_pairs(mesh)[1].sum()) > 0


def test_bad_mesh_files(tmp_path) -> None:
    with pytest.raises(UserError, match="mesh file not found"):
        load_mesh(tmp_path / "missing.obj")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="unknown type"):
        load_mesh(tmp_path / "notes.txt")
    (tmp_path / "empty.obj").write_text("# nothing here\n")
    with pytest.raises(UserError, match="cannot read mesh .*empty.obj: it holds no triangles"):
        load_mesh(tmp_path / "empty.obj")
    (tmp_path / "broken.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage")
    with pytest.raises(UserError, match=r"cannot read mesh .*broken.glb: not a readable GLB file \("):
        load_mesh(tmp_path / "broken.glb")
    (tmp_path / "nothing.glb").write_bytes(b"")
    with pytest.raises(UserError, match="cannot read mesh .*nothing.glb: the file is empty"):
        load_mesh(tmp_path / "nothing.glb")
    with pytest.raises(UserError, match="non-empty"):
        from_arrays(np.zeros((3, 3)), np.zeros((0, 3)))


def test_geometry_is_checked_before_unwrapping() -> None:
    """A vertex at infinity used to hang xatlas; a flat mesh had a misleading message."""
    corners = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float64)
    with pytest.raises(UserError, match="mesh tri has vertex positions that are not finite numbers"):
        from_arrays(np.where(np.arange(3)[:, None] == 2, np.inf, corners), [[0, 1, 2]], name="tri")
    with pytest.raises(UserError, match="mesh tri is degenerate: none of its 1 triangles has an area"):
        from_arrays(np.zeros((3, 3)), [[0, 1, 2]], name="tri")
    with pytest.raises(UserError, match=r"mesh tri has faces that index vertices outside 0\.\.2"):
        from_arrays(corners, [[0, 1, 3]], name="tri")


def test_unwrapping_that_crashes_or_hangs_is_an_error(monkeypatch) -> None:
    """xatlas runs in a child process: its crash (it segfaulted on some large meshes) or a hang
    becomes one line instead of taking the program down."""
    import os
    import signal
    import time

    from diffparam.three_d import mesh as M

    box = trimesh.creation.box()
    monkeypatch.setattr(M, "_xatlas", lambda v, f: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(UserError, match=r"xatlas failed \(exit -11\) unwrapping mesh box \(12 faces\): "
                                        "give it UVs"):
        M.unwrap(box.vertices, box.faces, "box")
    monkeypatch.setattr(M, "_xatlas", lambda v, f: time.sleep(60))
    with pytest.raises(UserError, match=r"unwrapping mesh box \(12 faces\) took over 1 s"):
        M.unwrap(box.vertices, box.faces, "box", seconds=1)
