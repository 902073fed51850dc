"""The analysis population: fixed-length sequences drawn from the evaluation population."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from jaxtyping import Float
from torch import Tensor

from ..data import batches_from_table
from ..model import Sequences


@dataclass
class Population:
    """``inputs``/``targets`` ``[N, L, d_vocab]``, ``c`` ``[N]``, ``sample`` global ids ``[N]``."""

    inputs: Sequences
    targets: Sequences
    c: Float[Tensor, " batch"]
    sample: np.ndarray

    def __len__(self) -> int:
        return self.inputs.shape[0]


def analysis_population(table: pa.Table, length: int, size: int) -> Population:
    """The first ``size`` sequences of ``length`` inputs from a population table.

    Length 14 (the longest the paper trains on) gives every position to analyse.
    """
    lengths = table.column("length").to_numpy()
    rows = np.flatnonzero(lengths == length)
    if len(rows) < size:
        raise ValueError(
            f"the evaluation population has {len(rows)} sequences of length {length}; "
            f"analysis.population_size asks for {size}"
        )
    rows = rows[:size]
    sub = table.take(pa.array(rows))
    batch = batches_from_table(sub)[length]
    return Population(
        batch.inputs.contiguous(),
        batch.targets.contiguous(),
        batch.c,
        sub.column("sample").to_numpy(),
    )


def pick_by_sign_of_c(pop: Population, threshold: float) -> dict[str, int]:
    """Indices of one alternating (c < -threshold) and one non-alternating (c > threshold) sequence.

    The first such sequence in population order is taken, so the choice is reproducible.
    """
    c = pop.c.numpy()
    picks = {}
    for name, mask in (("alternating", c < -threshold), ("non-alternating", c > threshold)):
        found = np.flatnonzero(mask)
        if not len(found):
            raise ValueError(f"no {name} sequence with |c| > {threshold} in the population")
        picks[name] = int(found[0])
    return picks
