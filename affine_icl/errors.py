"""Errors about the files a rule reads, shared by every layer of the library.

A rule whose input is missing, truncated or holds non-finite numbers must say which file, what
is wrong with it and how to rebuild it, in one line, and must write nothing on the way.
"""

from __future__ import annotations

from pathlib import Path


class UnreadableInput(ValueError):
    """An input file is unreadable or unusable; the message names it and how to rebuild it."""


def unreadable(what: str, path: Path | str, problem: object) -> UnreadableInput:
    """``cannot read <what> <path> (<problem>); rebuild it: snakemake --force <path>``."""
    problem = str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem)
    return UnreadableInput(
        f"cannot read {what} {path} ({problem}); rebuild it: snakemake --force {path}"
    )


class Stopped(RuntimeError):
    """A job stopped on request (a signal), with its work saved: the rule reports it in one
    line, in the terminal and its log, without a traceback (:func:`affine_icl.rules.rule_log`)."""
