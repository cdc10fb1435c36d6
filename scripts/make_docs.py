"""Regenerate docs/metrics.md (and its figure), docs/reasons.md and docs/readouts.md from the registries; tests check that they are in sync."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from doseatlas.metrics import render_markdown
from doseatlas.metrics.compute import sigmoid
from doseatlas.readouts import render_markdown as render_readouts
from doseatlas.reasons import render_markdown as render_reasons

DOCS = Path(__file__).resolve().parents[1] / "docs"


def ic50_vs_ec50_figure(path: Path) -> None:
    """The curve of the 'IC50 is not EC50' section."""
    x = np.linspace(-9, -3, 300)
    fig = Figure(figsize=(5.2, 3.2))
    ax = fig.subplots()
    ax.plot(x, sigmoid(x, 1.0, 0.3, -6.0, 1.0), lw=2, color="#2b6cb0")
    ax.axhline(0.5, color="#a0aec0", ls=":", lw=1)
    ax.axhline(0.65, color="#a0aec0", ls=":", lw=1)
    ax.axvline(-6.0, color="#2f855a", ls="--", lw=1.2, label="relative EC50 = 1 µM (f = 0.65)")
    ax.axvline(np.log10(2.5e-6), color="#c53030", lw=1.2, label="absolute IC50 = 2.5 µM (f = 0.5)")
    ax.set_xlabel("log10 concentration (M)")
    ax.set_ylabel("relative viability")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    (DOCS / "img").mkdir(exist_ok=True)
    ic50_vs_ec50_figure(DOCS / "img" / "ic50_vs_ec50.png")
    (DOCS / "metrics.md").write_text(render_markdown(), encoding="utf-8")
    (DOCS / "reasons.md").write_text(render_reasons(), encoding="utf-8")
    (DOCS / "readouts.md").write_text(render_readouts(), encoding="utf-8")
    print(
        f"wrote {DOCS / 'metrics.md'}, {DOCS / 'reasons.md'}, {DOCS / 'readouts.md'} and docs/img/ic50_vs_ec50.png"
    )


if __name__ == "__main__":
    main()
