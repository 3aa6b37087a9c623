"""Networks the project trains, and the one loop that trains them (`trainer.fit`: seed, progress,
checkpoints, resume)."""

from diffparam.train.style_net import StyleNet
from diffparam.train.trainer import fit, load_checkpoint

__all__ = ["StyleNet", "fit", "load_checkpoint"]
