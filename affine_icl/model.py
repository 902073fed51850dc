"""The vector-input GPT of appendix A.1, built on TransformerLens 4's hooking machinery.

The authors' TransformerLens 2.x fork changed only the embedding (``vecs @ W_E``, no bias) and
kept learned absolute positions, pre-LayerNorm blocks, a ReLU MLP and a linear unembed with bias.
TransformerLens 4 removed ``HookedTransformer``; this module rebuilds that network as a
``HookedRootModule`` whose parameter names, shapes and hook names are TransformerLens' own, so
``run_with_cache``, ``run_with_hooks``, ``ActivationCache``, ``FactoredMatrix`` and
``ProcessWeights`` work on it unchanged.

Shapes follow TransformerLens: ``W_Q/W_K/W_V`` ``[n_heads, d_model, d_head]``, ``W_O``
``[n_heads, d_head, d_model]``, ``W_E`` ``[d_vocab, d_model]``, ``W_U`` ``[d_model, d_vocab]``.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformer_lens import ActivationCache, HookedRootModule
from transformer_lens.hook_points import HookPoint

from .config import ModelConfig
from .errors import UnreadableInput, unreadable
from .provenance import code_version

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}
#: The initialisations of ``model.init`` (:meth:`VectorTransformer.init_weights`).
INITS = ("transformer_lens", "torch")


def torch_fan_in(leaf: str, cfg: ModelConfig) -> int:
    """The inputs of the ``nn.Linear`` a plain PyTorch model would hold parameter ``leaf``
    (``W_Q``, ``b_O``, ...) in: ``d_vocab`` for the embedding, ``n_heads * d_head`` for the
    attention output, ``d_mlp`` for the MLP output, ``d_model`` for the rest."""
    fan_in = {
        "W_E": cfg.d_vocab,
        "W_O": cfg.n_heads * cfg.d_head,
        "b_O": cfg.n_heads * cfg.d_head,
        "W_out": cfg.d_mlp,
        "b_out": cfg.d_mlp,
    }
    if leaf in fan_in:
        return fan_in[leaf]
    if leaf in ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_in", "b_in", "W_U", "b_U"):
        return cfg.d_model
    raise ValueError(f"no nn.Linear fan_in for parameter {leaf!r}")


#: A batch of sequences of d_vocab-dimensional vectors: the model's inputs, targets and outputs.
Sequences = Float[Tensor, "batch pos d_vocab"]


class LayerNorm(nn.Module):
    """TransformerLens ``LayerNorm`` (``normalization_type="LN"``) or ``LNPre`` (no w, b)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.eps = cfg.eps
        self.has_params = cfg.normalization_type == "LN"
        if self.has_params:
            self.w = nn.Parameter(torch.ones(cfg.d_model))
            self.b = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(
        self, x: Float[Tensor, "*batch pos d_model"]
    ) -> Float[Tensor, "*batch pos d_model"]:
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        x = x / scale
        if self.has_params:
            x = x * self.w + self.b
        return self.hook_normalized(x)


class Attention(nn.Module):
    """Causal multi-head attention with TransformerLens weights and hooks (training runs the
    same maths through :mod:`affine_icl.stacked`)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        h, m, d = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q = nn.Parameter(torch.empty(h, m, d))
        self.W_K = nn.Parameter(torch.empty(h, m, d))
        self.W_V = nn.Parameter(torch.empty(h, m, d))
        self.W_O = nn.Parameter(torch.empty(h, d, m))
        self.b_Q = nn.Parameter(torch.zeros(h, d))
        self.b_K = nn.Parameter(torch.zeros(h, d))
        self.b_V = nn.Parameter(torch.zeros(h, d))
        self.b_O = nn.Parameter(torch.zeros(m))
        self.attn_scale = math.sqrt(d)
        self.register_buffer(
            "mask", torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool)), persistent=False
        )
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]
        self.hook_result = HookPoint()  # [batch, pos, head, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        return self.output(self.heads_z(x))

    def heads_z(
        self, x: Float[Tensor, "batch pos d_model"]
    ) -> Float[Tensor, "batch pos n_heads d_head"]:
        """Each head's ``hook_z``: its attention pattern applied to its values."""
        q = self.hook_q(torch.einsum("bpm,hmd->bphd", x, self.W_Q) + self.b_Q)
        k = self.hook_k(torch.einsum("bpm,hmd->bphd", x, self.W_K) + self.b_K)
        v = self.hook_v(torch.einsum("bpm,hmd->bphd", x, self.W_V) + self.b_V)
        n = x.shape[1]
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / self.attn_scale
        scores = scores.masked_fill(~self.mask[:n, :n], float("-inf"))
        pattern = self.hook_pattern(torch.softmax(self.hook_attn_scores(scores), dim=-1))
        return self.hook_z(torch.einsum("bhqk,bkhd->bqhd", pattern, v))

    def output(
        self, z: Float[Tensor, "batch pos n_heads d_head"]
    ) -> Float[Tensor, "batch pos d_model"]:
        """The attention's output from its heads' ``z``: ``sum_h z_h W_O[h] + b_O``."""
        result = self.hook_result(torch.einsum("bphd,hdm->bphm", z, self.W_O))
        return result.sum(dim=-2) + self.b_O


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.act = ACTIVATIONS[cfg.act_fn]
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        return self.hook_post(self.act(pre)) @ self.W_out + self.b_out


class TransformerBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = LayerNorm(cfg)
        self.attn = Attention(cfg)
        self.ln2 = LayerNorm(cfg)
        self.mlp = MLP(cfg)
        self.hook_resid_pre = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(
        self, resid: Float[Tensor, "batch pos d_model"]
    ) -> Float[Tensor, "batch pos d_model"]:
        resid = self.hook_resid_pre(resid)
        return self.from_z(resid, self.attn.heads_z(self.ln1(resid)))

    def from_z(
        self,
        resid: Float[Tensor, "batch pos d_model"],
        z: Float[Tensor, "batch pos n_heads d_head"],
    ) -> Float[Tensor, "batch pos d_model"]:
        """The block's output from the residual entering it and its heads' ``z``: the rest of
        :meth:`forward` (an intervention on ``z`` need not compute the attention again)."""
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn.output(z)))
        return self.hook_resid_post(resid + self.hook_mlp_out(self.mlp(self.ln2(resid))))


class Embed(nn.Module):
    """The fork's embedding: ``vecs @ W_E`` with no bias."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))

    def forward(self, vecs: Sequences) -> Float[Tensor, "batch pos d_model"]:
        return vecs @ self.W_E


class PosEmbed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))

    def forward(self, vecs: Sequences) -> Float[Tensor, "batch pos d_model"]:
        return self.W_pos[: vecs.shape[1]].expand(vecs.shape[0], -1, -1)


class Unembed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab))

    def forward(
        self, x: Float[Tensor, "*batch pos d_model"]
    ) -> Float[Tensor, "*batch pos d_vocab"]:
        return x @ self.W_U + self.b_U


class VectorTransformer(HookedRootModule):
    """GPT-style transformer mapping ``[batch, pos, d_vocab]`` vectors to the same shape."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = Embed(cfg)
        self.hook_embed = HookPoint()
        self.pos_embed = PosEmbed(cfg)
        self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layers))
        self.ln_final = LayerNorm(cfg)
        self.unembed = Unembed(cfg)
        self.setup()

    def init_weights(self, generator: torch.Generator) -> VectorTransformer:
        """Draw every parameter from ``generator``, as ``model.init`` says (schema, README
        "Initialisation"); LayerNorm weights 1 and biases 0 in both.

        ``transformer_lens``: TransformerLens' GPT-2 initialisation, every ``W_*`` ~
        N(0, std 0.8/sqrt(d_model)) and every other bias 0. ``torch``: what a plain PyTorch
        model of section 3.2 gets from ``nn.Linear``'s defaults, each weight and its bias ~
        U(+-1/sqrt(fan_in)) with :func:`torch_fan_in`, and ``W_pos`` ~ N(0, std 0.02).
        """
        init = self.cfg.init
        if init not in INITS:
            raise ValueError(f"model.init: {init!r} is not one of {', '.join(INITS)}")
        std = 0.8 / math.sqrt(self.cfg.d_model)
        with torch.no_grad():
            for name, param in self.named_parameters():
                leaf = name.rpartition(".")[2]
                if leaf in ("w", "b"):  # LayerNorm
                    param.fill_(1.0 if leaf == "w" else 0.0)
                elif init == "transformer_lens":
                    if leaf.startswith("W_"):
                        param.copy_(torch.randn(param.shape, generator=generator) * std)
                    else:
                        param.zero_()
                elif leaf == "W_pos":
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
                else:
                    bound = 1 / math.sqrt(torch_fan_in(leaf, self.cfg))
                    param.copy_((torch.rand(param.shape, generator=generator) * 2 - 1) * bound)
        return self

    def forward(self, vecs: Sequences) -> Sequences:
        if vecs.ndim != 3 or vecs.shape[-1] != self.cfg.d_vocab:
            raise ValueError(
                f"expected input of shape [batch, pos, {self.cfg.d_vocab}], got {tuple(vecs.shape)}"
            )
        if vecs.shape[1] > self.cfg.n_ctx:
            raise ValueError(
                f"sequence of {vecs.shape[1]} positions exceeds the context window n_ctx={self.cfg.n_ctx}"
            )
        resid = self.hook_embed(self.embed(vecs)) + self.hook_pos_embed(self.pos_embed(vecs))
        for block in self.blocks:
            resid = block(resid)
        return self.unembed(self.ln_final(resid))

    def run_with_cache(self, *args, return_cache_object: bool = True, **kwargs):
        """The output and, as TransformerLens' ``HookedTransformer`` gives it, an
        ``ActivationCache`` (``cache["pattern", 0]``, ``cache.accumulated_resid()``,
        ``cache.decompose_resid()``); ``return_cache_object=False``: the plain dict of
        ``HookedRootModule``, which the pipeline's batched caching uses. Arguments as
        ``HookedRootModule.run_with_cache`` (``names_filter``, ``remove_batch_dim``, ...)."""
        out, cache = super().run_with_cache(*args, **kwargs)
        if not return_cache_object:
            return out, cache
        has_batch_dim = not kwargs.get("remove_batch_dim", False)
        return out, ActivationCache(cache, self, has_batch_dim=has_batch_dim)

    # TransformerLens-style accessors used by ActivationCache and circuit analyses.
    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.unembed.W_U

    @property
    def b_U(self) -> Float[Tensor, " d_vocab"]:
        return self.unembed.b_U

    @property
    def W_E(self) -> Float[Tensor, "d_vocab d_model"]:
        return self.embed.W_E

    @property
    def W_pos(self) -> Float[Tensor, "n_ctx d_model"]:
        return self.pos_embed.W_pos

    def _stack(self, name: str) -> torch.Tensor:
        return torch.stack([getattr(b.attn, name) for b in self.blocks])

    @property
    def W_Q(self) -> Float[Tensor, "n_layers n_heads d_model d_head"]:
        return self._stack("W_Q")

    @property
    def W_K(self) -> Float[Tensor, "n_layers n_heads d_model d_head"]:
        return self._stack("W_K")

    @property
    def W_V(self) -> Float[Tensor, "n_layers n_heads d_model d_head"]:
        return self._stack("W_V")

    @property
    def W_O(self) -> Float[Tensor, "n_layers n_heads d_head d_model"]:
        return self._stack("W_O")

    @property
    def device(self) -> torch.device:
        return self.unembed.W_U.device


def fold_weights(model: VectorTransformer) -> VectorTransformer:
    """A copy of ``model`` with LayerNorm weights and value biases folded in.

    Uses TransformerLens' ``ProcessWeights.process_weights`` (``fold_ln``, centred writing
    weights, ``fold_value_biases``; never ``center_unembed``, which assumes a softmax output).
    The copy has parameter-free LayerNorms (``LNPre``), so the trained LN weights are applied
    exactly once. Outputs agree with ``model`` to float precision.
    """
    if model.cfg.normalization_type != "LN":
        raise ValueError("fold_weights expects an unfolded model (normalization_type='LN')")
    # Imported here: it pulls in TransformerLens' model bridge (about 1.4 s), which only the
    # folding rule needs; every analysis rule imports this module.
    from transformer_lens.weight_processing import ProcessWeights

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    processed = ProcessWeights.process_weights(
        state,
        model.cfg,
        fold_ln=True,
        center_writing_weights=True,
        center_unembed=False,
        fold_value_biases=True,
    )
    processed = {k: v for k, v in processed.items() if not re.search(r"ln(1|2|_final)\.(w|b)$", k)}
    folded = VectorTransformer(replace(model.cfg, normalization_type="LNPre")).to(model.device)
    folded.load_state_dict(processed, strict=True)
    return folded.eval()


# --------------------------------------------------------------------------- weights on disk


def save_tensors(tensors: dict[str, torch.Tensor], path: Path | str, metadata: dict[str, str]):
    """``safetensors.save_file``, then the permissions the umask gives any new file (the
    library writes 0600, which collaborators on a shared cluster directory cannot read)."""
    save_file(tensors, str(path), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def save_weights(model: VectorTransformer, path: Path | str, extra: dict[str, str] | None = None):
    """Write the weights as safetensors with the model config (JSON) in the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"model_config": json.dumps(asdict(model.cfg)), **(extra or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_tensors(tensors, path, metadata)


def read_metadata(path: Path | str) -> dict[str, str]:
    """The string metadata of a weights file (config hash, run config, model config)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # SafetensorError, OSError: name the file
        raise unreadable("weights file", path, exc) from exc


def check_finite(state: dict[str, torch.Tensor], path: Path | str) -> None:
    """Refuse weights with NaN or infinite entries, naming the file and the first such tensor."""
    for name, tensor in state.items():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise unreadable(
                "weights file",
                path,
                f"{name} has {bad} non-finite entries: training diverged or the file is damaged",
            )


def check_model_config(cfg: ModelConfig, meta: dict[str, str], path: Path | str) -> None:
    """Refuse a weights file whose ``model_config`` names an activation, initialisation or
    LayerNorm this code does not have, or disagrees with the settings the run was trained with
    (its ``run_config``): either way the file would load as some other network."""
    allowed = {
        "act_fn": tuple(ACTIVATIONS),
        "init": INITS,
        "normalization_type": ("LN", "LNPre"),
    }
    for key, values in allowed.items():
        if getattr(cfg, key) not in values:
            raise unreadable(
                "weights file",
                path,
                f"model_config {key} {getattr(cfg, key)!r} is not one of {values}",
            )
    trained = json.loads(meta.get("run_config", "{}")).get("model", {})
    for key, value in trained.items():
        have = getattr(cfg, key, None)
        if (
            key != "normalization_type"
            and (list(have) if isinstance(have, tuple) else have) != value
        ):
            raise unreadable(
                "weights file",
                path,
                f"its model_config says {key} {have!r} but the run was trained with {value!r} "
                "(run_config): the metadata was edited or mixed with another run's",
            )


def load_model(path: Path | str, device: torch.device | str = "cpu") -> VectorTransformer:
    """Load weights written by :func:`save_weights` (safetensors only, never pickle)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist; run the train rule first")
    try:
        meta = read_metadata(path)
        cfg = ModelConfig(
            **{
                k: tuple(v) if isinstance(v, list) else v
                for k, v in json.loads(meta["model_config"]).items()
            }
        )
        state = load_file(str(path), device=str(device))
    except UnreadableInput:
        raise
    except Exception as exc:  # a truncated file or foreign metadata
        raise unreadable("weights file", path, exc) from exc
    check_model_config(cfg, meta, path)
    check_finite(state, path)
    model = VectorTransformer(cfg).to(device)
    model.load_state_dict(state, strict=True)
    return model.eval()


#: Metadata of the trained weights that the folded weights (and the activation cache) carry on.
PROVENANCE_KEYS = ("config_hash", "run_config")
#: What :func:`fold_weights` does, recorded in the folded file's metadata as ``folded``.
FOLDING = "fold_ln, center_writing_weights, fold_value_biases"


def write_folded(weights: Path | str, out: Path | str) -> tuple[VectorTransformer, dict[str, str]]:
    """Fold the trained weights at ``weights`` (:func:`fold_weights`) and write them to ``out``.

    The folded file keeps the run's provenance (:data:`PROVENANCE_KEYS` of the trained file's
    metadata) and records ``folded`` and the code version that folded it. Returns the folded
    model and that provenance, for the activation cache's metadata.
    """
    provenance = {k: v for k, v in read_metadata(weights).items() if k in PROVENANCE_KEYS}
    provenance.update(code_version())  # the code that folds (and caches), not the trainer's
    folded = fold_weights(load_model(weights))
    save_weights(folded, out, extra={**provenance, "folded": FOLDING})
    return folded, provenance
