"""Per-run checkpoints on disk, and the layout-independent AdamW state they and the outputs hold.

A run's checkpoints live in ``<root>/<config hash>/`` (:func:`checkpoint_dir`), outside the
rule's declared outputs, so Snakemake never deletes them and a changed config never resumes
from a stale one. Each is a directory ``step-<n>`` holding

* ``model.safetensors``: the run's weights under the model's TransformerLens parameter names,
  with metadata ``config_hash`` and ``step``;
* ``state.pt``: ``config_hash``, ``step``, ``optimizer`` (:func:`run_optimizer_state`),
  ``stream`` (the training stream's generators), ``log`` (the log rows so far, JSON) and
  ``pending`` (the losses since the last log row, JSON), written by the trainer.

:func:`write_checkpoint` writes a temporary directory, syncs it and renames it into place, then
drops older checkpoints, so a crash or kill at any moment leaves at least one complete
checkpoint. Everything is stored per run and in the hooked model's layout, so a run resumes the
same however it is batched with others; :func:`run_optimizer_state` and
:func:`load_optimizer_states` convert AdamW's moments between that form and the stacked
training layout (exactly: AdamW is elementwise).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from .config import ModelConfig, RunConfig
from .model import save_tensors
from .stacked import stack_state_dicts, unstack_state_dict

#: AdamW's per-parameter moments, stored beside its step count.
MOMENTS = ("exp_avg", "exp_avg_sq")


class CheckpointError(RuntimeError):
    """A checkpoint on disk cannot be used."""


def checkpoint_dir(root: Path | str, cfg: RunConfig) -> Path:
    """Where checkpoints of this exact config live: ``root/<config hash>``."""
    return Path(root) / cfg.hash()


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint in ``directory``; None when there is none."""
    found = sorted(directory.glob("step-*")) if directory.is_dir() else []
    return found[-1] if found else None


def write_checkpoint(
    directory: Path, cfg: RunConfig, step: int, weights: dict, extra: dict
) -> Path:
    """Write ``directory/step-<n>`` atomically (temp dir + rename), then drop older ones."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:09d}"
    tmp = directory / f".tmp-step-{step:09d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    meta = {"config_hash": cfg.hash(), "step": str(step)}
    tensors = {k: v.cpu().contiguous() for k, v in weights.items()}
    save_tensors(tensors, tmp / "model.safetensors", meta)
    torch.save({"config_hash": cfg.hash(), "step": step, **extra}, tmp / "state.pt")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in directory.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def snapshot_dir(root: Path | str, cfg: RunConfig) -> Path:
    """Where the weights snapshots of this exact config live: ``root/<config hash>/snapshots``
    (beside the checkpoints, which :func:`write_checkpoint` never drops)."""
    return checkpoint_dir(root, cfg) / "snapshots"


def snapshot_steps(steps: int, every: int) -> list[int]:
    """The steps at which a run of ``steps`` steps keeps a snapshot: every multiple of ``every``
    up to and including ``steps`` (none when ``every`` is 0)."""
    return list(range(every, steps + 1, every)) if every else []


def snapshot_name(step: int) -> str:
    return f"step-{step:09d}.safetensors"


def snapshot_step(path: Path | str) -> int:
    """The step of a snapshot file named by :func:`snapshot_name`."""
    return int(Path(path).name.removeprefix("step-").split(".")[0])


def write_snapshot(directory: Path, weights: dict, metadata: dict[str, str], step: int) -> Path:
    """Write one run's weights at ``step`` as ``directory/step-<n>.safetensors``, atomically
    (temp file + rename), so a kill leaves either the whole snapshot or none."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / snapshot_name(step)
    tmp = directory / f".tmp-{final.name}-{os.getpid()}"
    tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    save_tensors(tensors, tmp, {**metadata, "step": str(step)})
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def read_checkpoint(path: Path, cfg: RunConfig) -> tuple[dict, dict]:
    """Weights and extra state of one run's checkpoint, refusing one of another config."""
    hint = f"delete {path} to restart this run from step 0"
    try:
        extra = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        weights = load_file(str(path / "model.safetensors"))
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({exc}); {hint}") from exc
    if extra.get("config_hash") != cfg.hash():
        raise CheckpointError(
            f"checkpoint {path} was written by config {extra.get('config_hash')}, "
            f"not this run's {cfg.hash()}; {hint}"
        )
    return weights, extra


def read_latest(roots: list[Path], cfgs: list[RunConfig]) -> list[tuple[dict, dict]] | None:
    """Weights and extra state of every run's newest checkpoint; None when no run has one.

    Runs that train batched must resume from the same step, so checkpoints at different steps
    (or some runs without one) are refused.
    """
    paths = [latest_checkpoint(checkpoint_dir(r, c)) for r, c in zip(roots, cfgs, strict=True)]
    if all(p is None for p in paths):
        return None
    loaded = [
        read_checkpoint(p, c) if p is not None else None for p, c in zip(paths, cfgs, strict=True)
    ]
    steps = {int(x[1]["step"]) if x else 0 for x in loaded}
    if len(steps) > 1:
        where = ", ".join(
            f"seed {c.train.seed}: {p or 'none'}" for c, p in zip(cfgs, paths, strict=True)
        )
        raise CheckpointError(
            f"runs batched together have checkpoints at different steps ({where}); "
            "delete the newer ones or train these runs one at a time"
        )
    return loaded


def run_optimizer_state(
    params: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, k: int, cfg: ModelConfig
) -> dict:
    """Run ``k``'s AdamW state: ``step`` and the moments under TransformerLens parameter names.

    ``params`` are the stacked weights ``optimizer`` updates; before its first step the state
    is ``{"step": 0}``.
    """
    state = [optimizer.state.get(p, {}) for p in params.values()]
    if not state[0]:
        return {"step": 0}
    out = {"step": int(state[0]["step"])}
    for moment in MOMENTS:
        out[moment] = unstack_state_dict(
            {n: s[moment] for n, s in zip(params, state, strict=True)}, k, cfg
        )
    return out


def load_optimizer_states(
    params: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    states: list[dict],
    cfg: ModelConfig,
) -> None:
    """Set the stacked AdamW state from every run's :func:`run_optimizer_state` (same step).

    The state's tensors are new ones, so a CUDA graph recorded before no longer updates them.
    """
    step = states[0]["step"]
    if not step:
        return
    moments = {m: stack_state_dicts([s[m] for s in states], cfg) for m in MOMENTS}
    for name, p in params.items():
        optimizer.state[p] = {
            "step": torch.tensor(float(step), dtype=torch.float32, device=p.device),
            **{m: moments[m][name].to(p.device) for m in moments},
        }
