"""Command line: ``doseatlas run`` and ``doseatlas simulate``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from doseatlas import pipeline
from doseatlas.errors import DoseatlasError, InputFileError
from doseatlas.ingest import read_inputs
from doseatlas.normalize import NormalizationOptions

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """doseatlas: harmonized, correctly labelled cell-line drug-response data."""


EXAMPLE = "example_wells.parquet"


def example_path() -> Path:
    """Path of the bundled example well table (made with the simulator)."""
    return Path(str(resources.files("doseatlas") / "data" / EXAMPLE))


def _doubling_times(path: Path | None) -> dict[str, float] | None:
    if path is None:
        return None
    import pandas as pd

    table = pd.read_csv(path, sep=None, engine="python")
    missing = {"cell_line", "doubling_time_h"} - set(table.columns)
    if missing:
        raise InputFileError(
            str(path), "needs columns cell_line and doubling_time_h", column=sorted(missing)[0]
        )
    return dict(zip(table["cell_line"].astype(str), table["doubling_time_h"].astype(float), strict=True))


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@app.command()
def run(
    inputs: Annotated[
        list[Path] | None, typer.Argument(help="Well tables (CSV/TSV/Parquet); none = bundled example")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (replaced atomically)")] = Path(
        "results"
    ),
    control_summary: Annotated[str, typer.Option(help="trimmed_mean, median or mean")] = "trimmed_mean",
    doubling_times: Annotated[
        Path | None, typer.Option(help="CSV with cell_line,doubling_time_h for GR without time-zero reads")
    ] = None,
    doubling_time_source: Annotated[str, typer.Option(help="Where the doubling times come from")] = "user",
) -> None:
    """Validate, normalize, fit and compute metrics; write the output contract to OUT."""
    from doseatlas import io, report

    paths = list(inputs) if inputs else [example_path()]
    try:
        options = pipeline.RunOptions(
            normalization=NormalizationOptions(
                control_summary=control_summary,
                doubling_times=_doubling_times(doubling_times),
                doubling_time_source=doubling_time_source,
            )
        )
        raw = read_inputs(paths)
        with _progress() as bar:
            task = bar.add_task("run", total=len(pipeline.STEPS))

            def tick(step: str) -> None:
                bar.update(task, description=step, advance=0 if step == pipeline.STEPS[0] else 1)

            result = pipeline.run_pipeline(raw, options=options, progress=tick)
            bar.update(task, description="write", completed=len(pipeline.STEPS))
            meta = io.provenance(inputs=paths, parameters=options.as_record())
            with io.atomic_directory(out) as scratch:
                io.write_run(result, scratch, meta=meta)
                report.write_report(result, scratch / "report.html", meta=meta)
    except DoseatlasError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None
    _print_summary(result.summary, out)


def _print_summary(summary: dict, out: Path) -> None:
    console.print(
        f"rows read {summary['rows_read']} = rows used {summary['rows_used']}"
        f" + rows in the ledger {summary['rows_in_ledger']}"
    )
    console.print(f"datasets: {', '.join(summary['datasets'])}; treated wells: {summary['treated_wells']}")
    console.print(f"curves: {summary['curves']}; metric rows: {summary['metric_rows']}")
    for note in summary.get("notes", []):
        console.print(f"note: {note}")
    console.print(f"wrote {out}/ (responses, curves, metrics, ledger, plates .parquet; report.html)")
    typer.echo(json.dumps({k: summary[k] for k in ("rows_read", "rows_used", "rows_in_ledger")}))


def main() -> None:  # pragma: no cover - console entry point
    app()
