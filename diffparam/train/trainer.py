"""One small training loop for every network the project trains (a style network now; GANs and
DC-IGNs later): a seed, a progress bar, periodic checkpoints written atomically, and resume.

A checkpoint holds the modules' and optimisers' states, the step reached, the loss history, the
random generator's state and the run's settings. Run again with the same settings, training goes
on from where it stopped and ends as an uninterrupted run would; other settings are refused.
"""

from __future__ import annotations

import math
import os
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from diffparam.checks import positive_int
from diffparam.errors import NonFiniteLossError, UserError, first_line
from diffparam.io import atomic_path

Step = Callable[[int, torch.Generator], float | torch.Tensor]
"""One optimisation step: (step index, the run's generator) → the step's loss. A 0-d tensor is read
back to the host only when a checkpoint is written and at the end, so GPU steps never wait on it."""


def _floats(history: list[float | torch.Tensor]) -> list[float]:
    """The losses as floats, the tensors among them read back to the host in one transfer."""
    tensors = [x for x in history if isinstance(x, torch.Tensor)]
    read = iter(torch.stack([t.reshape(()) for t in tensors]).float().tolist() if tensors else [])
    return [next(read) if isinstance(x, torch.Tensor) else x for x in history]


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint written by `fit`, with a one-line error for a file that is not one."""
    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)  # tensors and plain data only
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise UserError(f"cannot read checkpoint {p}: {first_line(exc)}") from exc
    if not isinstance(state, dict) or not {"settings", "step", "modules"} <= set(state):
        raise UserError(f"{p} is not a diffparam training checkpoint")
    return state


def fit(step: Step, modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
        steps: int, settings: Mapping[str, Any], checkpoint: str | os.PathLike | None = None,
        every: int = 100, seed: int = 0, progress: bool = True, desc: str = "training",
        extra: Callable[[], Mapping[str, Any]] | None = None) -> list[float]:
    """Run `step` until `steps` steps are done; return the loss of every step (resumed ones included).

    With `checkpoint`, the state is written there every `every` steps, at the end and on Ctrl-C, and a
    run whose checkpoint exists resumes from it (its `settings` must equal these). `extra()` adds
    entries to what is written (what a user of the file needs besides the weights).
    """
    every = positive_int("every", every)
    generator = torch.Generator().manual_seed(seed)
    history: list[float | torch.Tensor] = []
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        if state["settings"] != dict(settings):
            changed = sorted(k for k in set(state["settings"]) | set(settings)
                             if state["settings"].get(k) != settings.get(k))
            raise UserError(f"{checkpoint} was trained with other settings ({', '.join(changed)}): give "
                            "the same ones to resume, or another --out to start afresh")
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        generator.set_state(state["generator"])
        history, start = list(state["history"]), int(state["step"])
        if start > steps:
            raise UserError(f"{checkpoint} has already trained {start} steps, more than the {steps} asked")

    def save(done: int) -> None:
        history[:] = _floats(history)
        bad = next((n for n, x in enumerate(history) if not math.isfinite(x)), None)
        if bad is not None:
            raise NonFiniteLossError(f"training diverged: the loss of step {bad + 1} is {history[bad]}; "
                                     "nothing was saved (a lower learning rate may help)")
        if history:
            bar.set_postfix(loss=f"{history[-1]:.4g}", refresh=False)
        if checkpoint is None:
            return
        state = {"settings": dict(settings), "step": done, "history": history,
                 "modules": {k: m.state_dict() for k, m in modules.items()},
                 "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                 "generator": generator.get_state(), **(extra() if extra else {})}
        with atomic_path(checkpoint) as tmp:
            torch.save(state, tmp)

    bar = tqdm(total=steps, initial=start, disable=not progress or not sys.stderr.isatty(), desc=desc,
               unit="step", leave=False)
    done = start
    before = None
    try:
        for i in range(start, steps):
            before = generator.get_state()  # a step cut short is redone from its own draws on resume
            loss = step(i, generator)
            history.append(loss.detach() if isinstance(loss, torch.Tensor) else float(loss))
            done, before = i + 1, None
            bar.update(1)
            if not isinstance(loss, torch.Tensor):
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            if done % every == 0 and done < steps:
                save(done)
    except KeyboardInterrupt:
        if before is not None:
            generator.set_state(before)
        save(done)
        raise
    finally:
        bar.close()
    save(done)
    return history  # type: ignore[return-value]  # all floats since save()
