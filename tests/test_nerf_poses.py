"""Camera poses for plain photos (`nerf poses`, issue 14): photos of a test scene rendered here, their
poses stripped, estimated by COLMAP and compared with the true ones after a similarity transform;
the camera conventions, the writer, and the errors."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.recipes import nerf_poses
from diffparam.three_d.cameras import orbit
from diffparam.three_d.posed import PosedViews, c2w_from_opencv, load_posed, write_cameras

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def estimated(tmp_path_factory):
    """24 photos of the knot on its floor at 200 px and one unrelated picture (noise), through `nerf
    poses` with two held-out test photos; with the true cameras."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        photos = tmp_path_factory.mktemp("photos")
        true = nerf_poses.make_photos(photos, views=24, size=200)
        noise = (np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8)
        Image.fromarray(noise).save(photos / "zz_unrelated.png")
        out = tmp_path_factory.mktemp("data") / "scene"
        return true, nerf_poses.estimate_poses(photos, out, test=2, progress=False), out
    finally:
        torch.set_num_threads(before)


def test_estimated_poses_match_the_true_cameras(estimated) -> None:
    """Every view is registered (the unrelated picture is listed, not dropped silently); after the best
    similarity transform the camera centres lie within 1% of the camera distance of the true ones and
    the orientations within 1° (median), the focal length within 2%."""
    true, result, _ = estimated
    m = result.metrics
    assert (m["photos"], m["registered"], m["unregistered"]) == (25, 24, ["zz_unrelated.png"])
    views = result.extras["views"]
    assert [n.removeprefix("images/") for n in views.names] == true.names
    centre_error, angle = nerf_poses.pose_errors(views.c2w, true.c2w)
    assert centre_error.median() < 0.01 * 4.0 and centre_error.max() < 0.03 * 4.0, centre_error
    assert angle.median() < 1.0 and angle.max() < 3.0, angle
    assert abs(float(views.intrinsics[0, 0]) / float(true.intrinsics[0, 0]) - 1) < 0.02, views.intrinsics[0]
    # recentred on what the cameras look at (the true origin), scaled to stand 4 units away from it, and
    # upright: the true scene's +y (its floor's normal) is the estimated one's, up to a turn about it
    assert abs(float(views.c2w[:, :3, 3].norm(dim=1).mean()) - 4.0) < 1e-4
    scale, rot, shift = nerf_poses.similarity(views.c2w[:, :3, 3], true.c2w[:, :3, 3])
    assert abs(scale - 1) < 0.02 and float(shift.norm()) < 0.1, (scale, shift)
    assert float(rot[1, 1]) > math.cos(math.radians(1)), rot


def test_similarity_recovers_a_known_transform() -> None:
    """Cameras turned, scaled and moved give back that transform, and errors of zero; one camera turned
    by a further 90° about its own x axis is 90° off."""
    c2w = torch.linalg.inv(orbit(torch.arange(6.0) * 60, torch.linspace(-10, 50, 6), torch.full((6,), 4.0),
                                 torch.full((6,), 40.0)).view.double())
    c, s = math.cos(0.7), math.sin(0.7)
    rot = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)
    moved = c2w.clone()
    moved[:, :3, :3] = rot @ c2w[:, :3, :3]
    moved[:, :3, 3] = 2.5 * c2w[:, :3, 3] @ rot.T + torch.tensor([1.0, -3.0, 0.2], dtype=torch.float64)
    scale, found, shift = nerf_poses.similarity(c2w[:, :3, 3], moved[:, :3, 3])
    assert math.isclose(scale, 2.5) and torch.allclose(found, rot) and torch.allclose(shift, torch.tensor(
        [1.0, -3.0, 0.2], dtype=torch.float64))
    centre, turn = nerf_poses.pose_errors(moved, c2w)
    assert float(centre.max()) < 1e-9 and float(turn.max()) < 1e-4
    wrong = moved.clone()
    quarter = torch.tensor([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64)
    wrong[0, :3, :3] = moved[0, :3, :3] @ quarter
    assert abs(float(nerf_poses.pose_errors(wrong, c2w)[1][0]) - 90) < 1e-6


def test_the_scene_folder_loads_with_its_splits(estimated) -> None:
    """transforms_train.json and transforms_test.json split the registered photos, and each split reads
    back through `three_d.posed` with its undistorted pictures."""
    _, result, out = estimated
    train, test = load_posed(out, "train"), load_posed(out, "test")
    assert train is not None and test is not None and (len(train), len(test)) == (22, 2)
    assert sorted(train.names + test.names) == sorted(result.extras["views"].names)
    assert test.names == result.metrics["test"] and train.images.shape[1:] == (3, train.height, train.width)
    assert all(path.is_file() and path.parent == out for path in result.files.values())
    assert sorted(result.files) == ["report", "test", "train", "transforms"]
    assert len(load_posed(out / "transforms.json")) == 24
    report = json.loads((out / "poses.json").read_text())
    assert report["registered"] == 24 and report["unregistered"] == ["zz_unrelated.png"]


def test_opencv_cameras_become_the_inverse_of_the_view() -> None:
    """COLMAP's world-to-camera matrices (OpenCV: y down, looking down +z) of `Cameras` become their
    camera-to-world matrices in the file's OpenGL convention: the inverse of `Cameras.view`."""
    cams = orbit(torch.tensor([10.0, 130.0, 250.0]), torch.tensor([-20.0, 5.0, 60.0]),
                 torch.tensor([3.0, 4.0, 5.0]), torch.full((3,), 40.0))
    opencv = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0])) @ cams.view  # flip y and z of the camera
    expected = torch.linalg.inv(cams.view.double())
    assert torch.allclose(c2w_from_opencv(opencv[:, :3]), expected, atol=1e-5)
    assert torch.allclose(c2w_from_opencv(opencv), expected, atol=1e-5)


def test_written_cameras_read_back(tmp_path) -> None:
    """`write_cameras` writes shared intrinsics once and differing ones per frame; both read back."""
    c2w = torch.linalg.inv(orbit(torch.tensor([0.0, 90.0]), torch.zeros(2), torch.full((2,), 4.0),
                                 torch.full((2,), 40.0)).view)
    for k in ([[50.0, 52.0, 15.5, 12.0]] * 2, [[50.0, 52.0, 15.5, 12.0], [60.0, 61.0, 16.0, 11.0]]):
        views = PosedViews(c2w, torch.tensor(k), 24, 32, ["a.png", "b.png"])
        path = write_cameras(views, tmp_path / "cams.json", {"camera_model": "PINHOLE"})
        meta = json.loads(path.read_text())
        assert ("fl_x" in meta) == (k[0] == k[1]) and meta["camera_model"] == "PINHOLE"
        back = load_posed(path, images=False)
        assert (back.height, back.width, back.names) == (24, 32, ["a.png", "b.png"])
        assert torch.allclose(back.c2w, c2w, atol=1e-6) and torch.allclose(back.intrinsics, torch.tensor(k))


def test_recentring_finds_what_the_cameras_look_at() -> None:
    """Cameras looking at a point from all around give that point; parallel ones give none, and the
    scene is then centred on its points."""
    full = torch.ones(8)
    cams = orbit(torch.arange(8.0) * 45, full * 20, full * 3, full * 40)
    c2w = torch.linalg.inv(cams.view.double())
    c2w[:, :3, 3] += torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert torch.allclose(nerf_poses.look_at_point(c2w), torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64),
                          atol=1e-6)
    parallel = torch.eye(4, dtype=torch.float64).repeat(5, 1, 1)
    parallel[:, 0, 3] = torch.arange(5.0)
    assert nerf_poses.look_at_point(parallel) is None
    moved, world = nerf_poses.normalise(parallel, torch.tensor([[2.0, 0.0, -3.0]] * 3), 4.0)
    assert torch.allclose(world @ torch.tensor([2.0, 0.0, -3.0, 1.0], dtype=torch.float64),
                          torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-9)
    assert math.isclose(float(moved[:, :3, 3].norm(dim=1).mean()), 4.0)
    rotations = moved[:, :3, :3]
    assert torch.allclose(rotations.transpose(1, 2) @ rotations, torch.eye(3, dtype=torch.float64))


def test_the_scene_is_turned_upright() -> None:
    """Level cameras around a tilted scene come out with the scene's up along +y and their own y axes
    leaning up: the ring lies in a horizontal plane."""
    full = torch.ones(10)
    c2w = torch.linalg.inv(orbit(torch.arange(10.0) * 36, full * 25, full * 3, full * 40).view.double())
    c, s = math.cos(0.5), math.sin(0.5)
    tilt = torch.eye(4, dtype=torch.float64)
    tilt[:3, :3] = torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)
    moved, _ = nerf_poses.normalise(tilt @ c2w, torch.zeros(0, 3), 4.0)
    heights = moved[:, 1, 3]
    assert float(heights.std()) < 1e-5 and float(heights.mean()) > 0  # one ring, above the centre
    assert bool((moved[:, 1, 1] > 0).all())


def test_missing_pycolmap_names_the_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pycolmap", None)
    with pytest.raises(UserError, match=r"pip install 'diffparam\[poses\]'"):
        nerf_poses.estimate_poses(tmp_path, tmp_path / "out")


def test_photos_without_common_features_fail_in_one_line(tmp_path, capsys) -> None:
    """Three unrelated noise pictures give COLMAP nothing to match: exit 2, one line, nothing written."""
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / f"n{i}.png")
    assert main(["nerf", "poses", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "found no camera poses" in err[0]
    assert not (tmp_path / "out").exists() and len(list(tmp_path.iterdir())) == 3
