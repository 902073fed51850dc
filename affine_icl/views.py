"""Interactive attention views: HTML pages drawn with circuitsvis, the TransformerLens
ecosystem's viewer, self-contained (its JavaScript inlined, so they open offline and inside
``snakemake --report``)."""

from __future__ import annotations

import html
from collections.abc import Mapping

import torch
from jaxtyping import Float
from torch import Tensor


def position_labels(n: int) -> list[str]:
    """``a_0 ... a_(n-1)``: position p holds the input vector a_p (its output predicts a_(p+1))."""
    return [f"a_{p}" for p in range(n)]


def attention_page(
    views: Mapping[str, Float[Tensor, "n_heads query_pos key_pos"]],
    layer: int,
    title: str,
    intro: str = "",
) -> str:
    """One HTML page showing every head of ``layer`` in each of ``views`` (label -> patterns)
    as circuitsvis ``attention_heads``, heads named "<view>: L<layer>H<h>", weights on the
    colour scale 0 to 1."""
    import circuitsvis as cv

    heads = torch.cat([v.detach().float().cpu() for v in views.values()])
    names = [f"{label}: L{layer}H{h}" for label, v in views.items() for h in range(v.shape[0])]
    rendered = cv.attention.attention_heads(
        attention=heads,
        tokens=position_labels(heads.shape[-1]),
        attention_head_names=names,
        max_value=1.0,
        min_value=0.0,
    )
    return _page(title, intro, rendered.local_src)


def index_page(title: str, intro: str, links: Mapping[str, str]) -> str:
    """A page linking to the per-layer pages (``links``: text -> relative path)."""
    items = "".join(
        f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>'
        for text, href in links.items()
    )
    return _page(title, intro, f"<ul>{items}</ul>")


def _page(title: str, intro: str, body: str) -> str:
    esc = html.escape
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:70em}</style></head><body>"
        f"<h1>{esc(title)}</h1><p>{esc(intro)}</p>\n{body}\n</body></html>\n"
    )
