"""Networks the project trains (a style network, a single-image GAN pyramid, a DC-IGN), and the one loop that
trains them (`trainer.fit`: seed, progress, checkpoints, resume)."""

from diffparam.train.dcign import DCIGN
from diffparam.train.singan import Pyramid, load_pyramid
from diffparam.train.style_net import StyleNet
from diffparam.train.trainer import fit, load_checkpoint

__all__ = ["DCIGN", "Pyramid", "StyleNet", "fit", "load_checkpoint", "load_pyramid"]
