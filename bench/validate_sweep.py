"""Time config validation of sweeps of growing size (issue: 12 s for 100 runs, 60 s for 400,
564 s for 1,600; target: 1,000 runs in under 10 s). Prints runs and seconds per size.

    python bench/validate_sweep.py
"""

import copy
import time
from pathlib import Path

import yaml

from affine_icl.validation import validate_config

BASE = yaml.safe_load((Path(__file__).resolve().parent.parent / "config.yaml").read_text())

for widths in (2, 8, 20, 32):
    config = copy.deepcopy(BASE)
    grid = {
        "model.d_model": list(range(32, 32 + 8 * widths, 8)),
        "train.lr": [1e-4, 2e-4, 3e-4, 4e-4, 5e-4],
    }
    config["sweep"] = {"grid": grid, "seeds": list(range(10))}
    start = time.perf_counter()
    validate_config(config)
    print(f"{len(config['runs']):5d} runs: {time.perf_counter() - start:6.2f} s", flush=True)
