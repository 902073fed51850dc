"""Glue for the thin scripts that Snakemake runs: logging into the rule's ``log:`` file."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def rule_log(path: str | Path) -> Iterator[logging.Logger]:
    """Send stdout, stderr (progress bars included) and a logger to the rule's log file.

    Exceptions are logged with their traceback and re-raised, so the job fails visibly and
    Snakemake prints the log's path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh, contextlib.redirect_stdout(fh), \
            contextlib.redirect_stderr(fh):
        logger = logging.getLogger("affine_icl")
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield logger
        except Exception as exc:
            logger.exception("%s: %s", type(exc).__name__, exc)
            print(f"ERROR: {type(exc).__name__}: {exc}", file=sys.__stderr__)
            raise
        finally:
            logger.removeHandler(handler)
