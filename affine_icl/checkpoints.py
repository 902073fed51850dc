"""Per-run checkpoints on disk, and the layout-independent AdamW state they and the outputs hold.

A run's checkpoints live in ``<root>/<trajectory hash>/`` (:func:`checkpoint_dir`; the
weights settings less ``train.steps``, :meth:`~affine_icl.config.RunConfig.trajectory_hash`),
outside the rule's declared outputs, so Snakemake never deletes them, a changed config never
resumes from a stale one, and a longer ``train.steps`` continues from a shorter run's end.
Each is a directory ``step-<n>`` holding

* ``model.safetensors``: the run's weights under the model's TransformerLens parameter names,
  with metadata ``trajectory_hash`` and ``step``;
* ``state.pt``: ``trajectory_hash``, ``step``, ``optimizer`` (:func:`run_optimizer_state`),
  ``stream`` (the training stream's generators), ``log`` (the log rows so far, JSON) and
  ``pending`` (the losses since the last log row, JSON), written by the trainer;
* ``checksums.json``: the SHA-256 of both files, checked before a resume reads them.

:func:`write_checkpoint` writes a temporary directory, syncs it and renames it into place, then
drops older checkpoints, so a crash or kill at any moment leaves at least one complete
checkpoint; a write that fails (a full disk) removes its temporary directory and says why.
:func:`read_checkpoint` refuses a checkpoint of another trajectory, one whose files do not
match their checksums, and one with a missing or non-finite weight or AdamW moment, naming the
file. Everything is stored per run and in the hooked model's layout, so a run resumes the
same however it is batched with others; :func:`run_optimizer_state` and
:func:`load_optimizer_states` convert AdamW's moments between that form and the stacked
training layout (exactly: AdamW is elementwise).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
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
    """Where checkpoints of this training trajectory live: ``root/<trajectory hash>``."""
    return Path(root) / cfg.trajectory_hash()


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint directory ``step-<n>``."""
    return int(path.name.removeprefix("step-"))


def latest_checkpoint(directory: Path, max_step: int | None = None) -> Path | None:
    """The newest checkpoint in ``directory`` (at or before ``max_step`` when given); None
    when there is none."""
    found = sorted(directory.glob("step-*")) if directory.is_dir() else []
    if max_step is not None:
        found = [f for f in found if checkpoint_step(f) <= max_step]
    return found[-1] if found else None


#: The file that marks a checkpoint as the end of a run (:func:`write_checkpoint`).
END_MARK = "end"
#: The files of a checkpoint whose checksums ``checksums.json`` holds.
CHECKPOINT_FILES = ("model.safetensors", "state.pt")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint(
    directory: Path, cfg: RunConfig, step: int, weights: dict, extra: dict, end: bool = False
) -> Path:
    """Write ``directory/step-<n>`` atomically (temp dir + rename), then drop the older ones
    but the ends of runs. ``end``: this is a run's last step (``train.steps``); it is marked and
    kept when a longer run continues from it, so a run of that length finds it again.

    A failed write (a full disk, a read-only mount) removes its temporary directory and raises
    :class:`CheckpointError` saying what failed and how much space is left; the checkpoint
    before it stays."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:09d}"
    tmp = directory / f".tmp-step-{step:09d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    key = cfg.trajectory_hash()
    try:
        tmp.mkdir()
        meta = {"trajectory_hash": key, "step": str(step)}
        tensors = {k: v.cpu().contiguous() for k, v in weights.items()}
        save_tensors(tensors, tmp / "model.safetensors", meta)
        torch.save({"trajectory_hash": key, "step": step, **extra}, tmp / "state.pt")
        sums = {name: _sha256(tmp / name) for name in CHECKPOINT_FILES}
        (tmp / "checksums.json").write_text(json.dumps(sums))
        if end:
            (tmp / END_MARK).write_text(f"the end of a run of {step} steps\n")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(_write_failure(directory, step, exc)) from exc
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in directory.glob("step-*"):
        if checkpoint_step(old) < step and not (old / END_MARK).exists():
            shutil.rmtree(old, ignore_errors=True)
    return final


def _write_failure(directory: Path, step: int, exc: BaseException, what: str = "checkpoint") -> str:
    """Why a checkpoint (or snapshot) write failed, in words: the disk's free space, and the
    error."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        free = None
    full = getattr(exc, "errno", None) == errno.ENOSPC or (free is not None and free < 1 << 20)
    cause = "no space left on the device" if full else f"{type(exc).__name__}: {exc}"
    space = f" ({free / 1e6:.1f} MB free)" if free is not None else ""
    return (
        f"could not write the {what} of step {step} under {directory}: {cause}{space}; "
        f"the previous {what} is kept and the partial one removed; free space and rerun"
    )


#: The lock file a trainer holds in each of its runs' checkpoint directories.
LOCK_NAME = ".lock"


@contextlib.contextmanager
def locked(directories: list[Path]):
    """Hold an exclusive lock on each checkpoint directory while training writes it, so a second
    trainer (a rerun after ``kill -9`` of Snakemake left the first one running) stops at once
    instead of writing the same checkpoints. The lock is the kernel's (``flock``): it goes with
    the process, so no stale lock outlives a crash. Leftover temporary files of a killed write
    are removed once the lock is held."""
    import fcntl

    handles = []
    try:
        for directory in directories:
            directory.mkdir(parents=True, exist_ok=True)
            handle = open(directory / LOCK_NAME, "a+")  # held until training ends
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise CheckpointError(
                    f"checkpoint directory {directory} is in use by {holder}: another trainer of "
                    "this run is still running (an orphan of a killed Snakemake, or a second "
                    "Snakemake); wait for it to end or end it, then rerun"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"training process {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            handles.append(handle)
            for leftover in directory.glob(".tmp-*"):  # a checkpoint's directory
                shutil.rmtree(leftover, ignore_errors=True)
            snapshots = directory / "snapshots"
            for leftover in snapshots.glob(".tmp-*") if snapshots.is_dir() else []:
                leftover.unlink(missing_ok=True)
        yield
    finally:
        for handle in handles:
            handle.close()


def snapshot_dir(root: Path | str, cfg: RunConfig) -> Path:
    """Where the weights snapshots of this trajectory live: ``root/<trajectory hash>/snapshots``
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
    try:
        save_tensors(tensors, tmp, {**metadata, "step": str(step)})
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(_write_failure(directory, step, exc, "weights snapshot")) from exc
    os.replace(tmp, final)
    return final


def read_checkpoint(path: Path, cfg: RunConfig) -> tuple[dict, dict]:
    """Weights and extra state of one run's checkpoint, refusing one of another trajectory,
    one whose files do not match their checksums, and one with missing or non-finite tensors."""
    older = f"delete {path} to resume from the checkpoint before it, if any"
    hint = f"{older}, or {path.parent} to restart this run from step 0"
    try:
        sums = json.loads((path / "checksums.json").read_text())
        for name in CHECKPOINT_FILES:
            if _sha256(path / name) != sums[name]:
                raise ValueError(f"{name} does not match its checksum: the file is damaged")
        extra = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        weights = load_file(str(path / "model.safetensors"))
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({exc}); {hint}") from exc
    if extra.get("trajectory_hash") != cfg.trajectory_hash():
        raise CheckpointError(
            f"checkpoint {path} was written by config {extra.get('trajectory_hash')}, "
            f"not this run's {cfg.trajectory_hash()}; {hint}"
        )
    _check_tensors(path, weights, extra.get("optimizer", {}), hint)
    extra["end"] = (path / END_MARK).exists()
    return weights, extra


def _check_tensors(path: Path, weights: dict, optimizer: dict, hint: str) -> None:
    """Every AdamW moment present for every weight, and all of them finite."""
    tensors = {f"weight {k}": v for k, v in weights.items()}
    if optimizer.get("step"):
        for moment in MOMENTS:
            found = optimizer.get(moment, {})
            missing = sorted(set(weights) - set(found))
            if missing:
                raise CheckpointError(
                    f"checkpoint {path} has no AdamW {moment} for {missing[0]}"
                    + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                    + f"; {hint}"
                )
            tensors.update({f"AdamW {moment} of {k}": v for k, v in found.items()})
    for name, tensor in tensors.items():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad or (name.startswith("AdamW exp_avg_sq") and bool((tensor < 0).any())):
            what = f"{bad} non-finite entries" if bad else "negative entries"
            raise CheckpointError(f"checkpoint {path}: {name} has {what}; {hint}")


def read_latest(roots: list[Path], cfgs: list[RunConfig]) -> list[tuple[dict, dict]] | None:
    """Weights and extra state of every run's newest checkpoint at or before ``train.steps``;
    None when no run has one.

    Runs that train batched must resume from the same step, so checkpoints at different steps
    (or some runs without one) are refused.
    """
    paths = [
        latest_checkpoint(checkpoint_dir(r, c), c.train.steps)
        for r, c in zip(roots, cfgs, strict=True)
    ]
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
