"""MACO: only the phase is a parameter, the magnitude is natural photos' and stays so; `--param maco`
works wherever a kind is taken; the spectrum can come from the user's folder."""

from __future__ import annotations

import pytest
import torch

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.evaluate import objective_values
from diffparam.io import save_images
from diffparam.objectives import channel
from diffparam.param import KINDS, MacoImage, kinds, make_param, natural_spectrum
from diffparam.render import render


def test_only_the_phase_is_a_parameter() -> None:
    param = MacoImage(16, 20, batch=2)
    assert [name for name, _ in param.named_parameters()] == ["phase"]
    assert param.phase.shape == (2, 3, 16, 11)
    image = param()
    assert image.shape == (2, 3, 16, 20) and 0 <= image.min() and image.max() <= 1


def test_the_image_keeps_the_natural_magnitude() -> None:
    """Up to the per-image standardisation (one scale per image), the image's spectrum is the
    template's at every frequency; compared where the real FFT has no Hermitian constraint."""
    param = MacoImage(24, 32, batch=2, decorrelate=False, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        param.phase.mul_(5).add_(torch.randn_like(param.phase))
        spectrum = torch.fft.rfft2(param.logits(), norm="ortho").abs()[..., 1:-1]
    ratio = spectrum / param.magnitude[..., 1:-1]
    per_image = ratio.flatten(1)
    assert torch.allclose(per_image, per_image.mean(1, keepdim=True), rtol=1e-3)


def test_natural_spectrum_falls_with_frequency() -> None:
    m = natural_spectrum(32, 32, decorrelate=False)
    assert m.shape == (3, 32, 17)
    low, high = m[:, 1:3, 1:3].mean(), m[:, 14:18, 14:].mean()
    assert low > 5 * high


def test_spectrum_from_a_folder(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    stripes = torch.linspace(0, 40, 64).sin().mul(0.5).add(0.5).expand(1, 3, 64, 64)
    save_images(stripes, tmp_path / "stripes.png")
    save_images(torch.rand(1, 3, 40, 48, generator=g), tmp_path / "noise.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    with pytest.warns(RuntimeWarning, match="only 2 photos"):
        mine = natural_spectrum(16, 16, tmp_path)
    assert mine.shape == (3, 16, 9) and not torch.allclose(mine, natural_spectrum(16, 16))
    with pytest.warns(RuntimeWarning, match="only 2 photos"):
        param = make_param("maco", 16, 16, spectrum_from=tmp_path)
    assert torch.allclose(param.magnitude, mine)


def test_spectrum_folder_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="not found"):
        natural_spectrum(16, 16, tmp_path / "missing")
    with pytest.raises(UserError, match="holds no photos"):
        natural_spectrum(16, 16, tmp_path)
    with pytest.raises(UserError, match="spectrum_from"):
        make_param("fourier", 16, 16, spectrum_from=tmp_path)


def test_registered_everywhere() -> None:
    assert "maco" in KINDS and "maco" in kinds(composable=True)
    assert KINDS["maco"].cls is MacoImage and MacoImage.graph_safe


def test_maco_renders_a_unit_higher(tiny) -> None:
    obj = channel("conv3", 2)
    with torch.no_grad():
        start = MacoImage(32, batch=4, generator=torch.Generator().manual_seed(3))()
    done = render(tiny, obj, param="maco", size=32, steps=40, seed=3, progress=False, transforms=None)
    before, after = objective_values(tiny, obj, start), objective_values(tiny, obj, done.images)
    assert after[0] > 3 * before.max() > 0  # above the best of 4 unoptimised MACO images


def test_cli_param_maco(tmp_path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    save_images(torch.rand(1, 3, 40, 40), folder / "a.png")
    out = tmp_path / "m.png"
    assert main(["render", "blocks.2:3", "--param", "maco", "--spectrum-from", str(folder), "--size", "32",
                 "--steps", "2", "--quiet", "--out", str(out)]) == 0
    assert out.exists()
    plain = ["render", "blocks.2:3", "--spectrum-from", str(folder), "--out", str(tmp_path / "f.png")]
    assert main(plain) == 2
    assert "--spectrum-from applies to --param maco" in capsys.readouterr().err
    assert main(["render", "blocks.2:3", "--param", "maco", "--spectrum-from", str(tmp_path / "none"),
                 "--out", str(tmp_path / "g.png")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists() and not (tmp_path / "g.png").exists()


def test_magnitude_settings_are_checked() -> None:
    with pytest.raises(UserError, match="not both"):
        MacoImage(8, magnitude=torch.ones(3, 8, 5), spectrum_from="photos")
    with pytest.raises(UserError, match="give 1, 3 or 3"):
        MacoImage(8, magnitude=torch.ones(2, 8, 5))
    grey = MacoImage(8, channels=1, magnitude=torch.ones(3, 8, 5))
    assert grey().shape == (1, 1, 8, 8)
