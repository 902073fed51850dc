"""A trained run as a shareable model directory, and loading one back in one call.

:func:`export_model` writes ``results/models/{run}/``:

* ``model.safetensors``: the trained (unfolded) weights under TransformerLens parameter names,
  with the model config, run config, config hash and step in its metadata (nothing pickled);
* ``config.json``: the model, data and training settings, the steps trained, the final
  held-out MSE and the library versions that trained and exported it;
* ``README.md``: a model card (YAML front matter as a model hub reads it; the protocol, the
  held-out MSE, the run's claim verdicts, and the lines that load it).

:func:`load_pretrained` takes a run directory (``results/runs/{run}``), an export directory
or a ``.safetensors`` file and returns the hooked model (``run_with_cache``,
``ActivationCache``, ``FactoredMatrix`` and weight folding work on it).
"""

from __future__ import annotations

import json
import platform
import shutil
from importlib import metadata as importlib_metadata
from pathlib import Path

import pandas as pd
import torch

from .config import data_config
from .model import VectorTransformer, load_model, read_metadata
from .provenance import code_version
from .render import verdict_notes
from .tasks import task_of

#: Libraries whose versions an export records.
LIBRARIES = ("affine-icl", "torch", "transformer_lens", "safetensors", "numpy")

#: How an export loads: the model card and the README show these lines.
LOAD_LINES = (
    "from affine_icl import load_pretrained",
    'model = load_pretrained("{path}")',
    "output, cache = model.run_with_cache(vectors)  # vectors: [batch, pos, {d_vocab}]",
)


def library_versions() -> dict[str, str]:
    """Installed versions of :data:`LIBRARIES` and Python."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def export_config(weights: Path | str, train_log: pd.DataFrame, run: str) -> dict:
    """``config.json`` of an export: the run's settings from the weights' metadata, the steps
    trained, the final held-out MSE and the library versions."""
    meta = read_metadata(weights)
    settings = json.loads(meta["run_config"])
    mse = train_log["heldout_mse"].dropna()
    return {
        "run": run,
        "architecture": "VectorTransformer (TransformerLens 4 HookedRootModule)",
        "format": "safetensors, TransformerLens parameter names, unfolded LayerNorm",
        "model": json.loads(meta["model_config"]),
        "data": settings["data"],
        "train": settings["train"],
        "steps_trained": int(meta["step"]),
        "config_hash": meta["config_hash"],
        "final_heldout_mse": float(mse.iloc[-1]) if len(mse) else None,
        "library_versions": library_versions(),
        # which code trained the weights (from their metadata; "not recorded" before it was)
        # and which exported them (affine_icl.provenance)
        "code": {
            "trained_by": {k: meta.get(k, "not recorded") for k in ("code_commit", "code_hash")},
            "exported_by": code_version(),
        },
    }


def model_card(config: dict, claims: pd.DataFrame, export_dir: str) -> str:
    """The export's ``README.md``: YAML front matter, protocol, held-out MSE, claim verdicts
    and the lines that load it."""
    train, data, model = config["train"], config["data"], config["model"]
    family = task_of(data_config({"data": data}))
    task = family.describe
    counts = claims["verdict"].value_counts()
    notes = verdict_notes(claims)  # the margin, and where chance would pass too
    verdicts = "\n".join(
        f"| {r.claim_id} | {r.paper} | {r.measured:.4g} | {r.verdict} | {note or '-'} |"
        for r, note in zip(claims.itertuples(), notes, strict=True)
    )
    load = "\n".join(LOAD_LINES).format(path=export_dir, d_vocab=model["d_vocab"])
    mse = config["final_heldout_mse"]
    return f"""---
library_name: affine-icl
license: mit
tags:
  - transformer_lens
  - mechanistic-interpretability
  - in-context-learning
  - affine-recurrence
  - safetensors
---

# {task.capitalize()}-recurrence transformer, run {config["run"]}

A {model["n_layers"]}-layer, {model["d_model"]}-wide GPT-style transformer on vector inputs,
trained to predict the next term of {task} recurrences `{family.recurrence}`
in context, {"as in" if family.paper else "a family from the future work of"}
Bhargav & Gu (2024), "Interpreting Affine Recurrence Learning in GPT-style Transformers".
Trained with the `affine-icl` pipeline (config hash `{config["config_hash"]}`).

## Training

- {config["steps_trained"]:,} AdamW steps (the paper: 100,000), batch {train["batch_size"]},
  lr {train["lr"]:g}, weight decay {train["weight_decay"]:g}, seed {train["seed"]}
- sequences of {data["length_range"][0]}-{data["length_range"][1]} vectors of dimension
  {data["vector_dim"]} (input width {model["d_vocab"]}), coefficients in {data["c_range"]}, largest input
  norm in {data["norm_range"]}
- final held-out MSE: {"n/a" if mse is None else f"{mse:.3g}"} (the paper: 1e-4)
- everything else in `config.json`; library versions there too

## The paper's claims on this model

{", ".join(f"{v}: {n}" for v, n in counts.items())}.

| claim | paper | this model | verdict | margin, and whether chance passes too |
|---|---|---|---|---|
{verdicts}

## Load it

```python
{load}
```

`model` is a TransformerLens `HookedRootModule` with TransformerLens' parameter and hook names;
`affine_icl.model.fold_weights(model)` folds LayerNorm and value biases as the analyses do.
The weights are safetensors (nothing pickled).
"""


def export_model(
    weights: Path | str,
    train_log: pd.DataFrame,
    claims: pd.DataFrame,
    out_dir: Path | str,
    run: str,
) -> dict[str, Path]:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("model.safetensors", "config.json", "README.md")}
    load_model(weights)  # refuse an unreadable or non-finite file before exporting it
    shutil.copyfile(weights, paths["model.safetensors"])
    config = export_config(weights, train_log, run)
    paths["config.json"].write_text(json.dumps(config, indent=2) + "\n")
    paths["README.md"].write_text(model_card(config, claims, str(out_dir)))
    return paths


def load_pretrained(path: Path | str, device: torch.device | str = "cpu") -> VectorTransformer:
    """The hooked model from a run directory (``results/runs/{run}``), an export directory
    (``results/models/{run}``) or a ``model.safetensors`` file; a clear error names the path
    and what is missing otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: pass a run directory (results/runs/<run>), an export "
            "directory (results/models/<run>) or a .safetensors file"
        )
    if path.is_dir():
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(
                f"{path} holds no model.safetensors: a run directory gets one from the train "
                "rule, an export directory from export_model"
            )
        return load_model(weights, device)
    if path.suffix != ".safetensors":
        raise ValueError(
            f"{path} is not a .safetensors file: trained weights are stored as safetensors "
            "(pickled checkpoints such as .pt files are never loaded)"
        )
    return load_model(path, device)
