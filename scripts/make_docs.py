"""Regenerate docs/metrics.md from the metric registry (a test checks that it is in sync)."""

from __future__ import annotations

from pathlib import Path

from doseatlas.metrics import render_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    (DOCS / "metrics.md").write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {DOCS / 'metrics.md'}")


if __name__ == "__main__":
    main()
