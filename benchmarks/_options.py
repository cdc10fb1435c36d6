"""Command-line options shared by the benchmark scripts: whole-number sizes and a seed."""

from __future__ import annotations

import argparse


def size_options(doc: str, **defaults: int) -> argparse.Namespace:
    """Parse ``--name N`` options, one per keyword (``cell_lines=40`` is ``--cell-lines``), plus ``--seed``.

    Parameters
    ----------
    doc
        The script's docstring; its first line is the help text.
    **defaults
        Option names (underscores for dashes) and their default values.

    Returns
    -------
    argparse.Namespace
        The parsed options, attribute names as given (``args.cell_lines``, ``args.seed``).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in {**defaults, "seed": defaults.get("seed", 0)}.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    return parser.parse_args()
