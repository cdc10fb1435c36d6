"""Command line: ``doseatlas run`` and ``doseatlas simulate``."""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from doseatlas import pipeline
from doseatlas._text import names, plain
from doseatlas.errors import ConfigError, DoseatlasError, InputFileError
from doseatlas.ingest import READERS, read_any
from doseatlas.metrics import MetricOptions
from doseatlas.normalize import NormalizationOptions

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True, emoji=False)  # a name like ":smile:" stays as written


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


def _models(pairs: list[str] | None) -> dict[str, str]:
    """``SCALE=MODEL`` options as a dict; ConfigError naming a malformed one."""
    models: dict[str, str] = {}
    for pair in pairs or []:
        scale, sep, name = pair.partition("=")
        if not sep or not scale.strip() or not name.strip():
            raise ConfigError(f"--model takes SCALE=MODEL (e.g. relative_viability=ll3), got {pair!r}")
        models[scale.strip()] = name.strip()
    return models


def _run_in_memory(raw, options: pipeline.RunOptions, *, bar: Progress) -> pipeline.RunResult:
    task = bar.add_task("run", total=len(pipeline.STEPS) + 1)

    def tick(step: str) -> None:
        bar.update(task, description=step, advance=0 if step == pipeline.STEPS[0] else 1)

    result = pipeline.run_pipeline(raw, options=options, progress=tick)
    bar.update(task, description="write", completed=len(pipeline.STEPS))
    return result


def _run_dask(paths: list[Path], options, reading: dict, *, bar: Progress, workers: int, partitions: int):
    """The partitioned run (:mod:`doseatlas.scale`) with a progress bar over Dask's tasks. Canonical inputs may
    be Parquet data set directories (each file a part); any other format is read file by file, as the
    in-memory engine reads it."""
    try:
        from dask.callbacks import Callback
    except ImportError:
        raise ConfigError("--engine dask needs Dask: pip install -e '.[scale]'") from None
    from doseatlas.ingest import read_one
    from doseatlas.ingest.partitioned import list_parts, read_part
    from doseatlas.scale import run_partitioned

    task = bar.add_task("dask tasks", total=None)

    class _Bar(Callback):
        def _start_state(self, dsk, state):
            total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished") if k in state)
            bar.update(task, total=total, completed=0)

        def _posttask(self, key, result, dsk, state, worker_id):
            bar.advance(task)

    if reading["format"] == "canonical" and reading["mapping"] is None:
        parts, read = list_parts(paths), read_part
        files = [p.path for p in parts]
    else:
        parts, read = list(paths), functools.partial(read_one, **reading)
        files = parts
    result = run_partitioned(
        parts, read=read, options=options, n_partitions=partitions, workers=workers, callbacks=[_Bar()]
    )
    return result, files


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
    input_format: Annotated[
        str, typer.Option("--format", help="Input format: " + ", ".join(READERS))
    ] = "canonical",
    mapping: Annotated[
        Path | None, typer.Option(help="TOML mapping of another layout onto the canonical table")
    ] = None,
    plate_map: Annotated[
        Path | None, typer.Option(help="Plate map CSV (for --format plate-matrix and incucyte)")
    ] = None,
    selection: Annotated[str, typer.Option(help="Flat vs sigmoid model selection: ftest or aic")] = "ftest",
    alpha: Annotated[float, typer.Option(help="F-test level for keeping the sigmoid")] = 0.05,
    ftest_df: Annotated[
        str, typer.Option(help="F-test denominator df: standard (n - p) or grmetrics (n - p + 1)")
    ] = "standard",
    robust: Annotated[str, typer.Option(help="Loss: none (least squares), soft_l1 or huber")] = "none",
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="SCALE=MODEL replacing a default model, e.g. relative_viability=ll3 (repeatable; "
            "scales: relative_viability, percent_growth, gr; models: ll4, ll3, ll2, gr_sigmoid)"
        ),
    ] = None,
    min_r2: Annotated[
        float, typer.Option(help="Refuse fitted metrics of sigmoid fits with a lower R^2")
    ] = 0.5,
    policy: Annotated[
        str,
        typer.Option(
            help="Fit policy: refuse (each curve on its own; flat and poor fits refused) or shrink (a value "
            "for every curve, pooled across the cell lines of each drug; see docs/fitting.md)"
        ),
    ] = "refuse",
    min_curves: Annotated[
        int, typer.Option(help="Fewest curves of a drug for --policy shrink to pool them")
    ] = 5,
    intervals: Annotated[str, typer.Option(help="Parameter intervals: wald or bootstrap")] = "wald",
    n_boot: Annotated[
        int, typer.Option(help="Bootstrap refits per curve (with --intervals bootstrap)")
    ] = 200,
    engine: Annotated[
        str,
        typer.Option(
            help="memory (one table) or dask (partitioned, file by file; canonical inputs may be Parquet data "
            "set directories; needs the 'scale' extra)"
        ),
    ] = "memory",
    workers: Annotated[int, typer.Option(help="Dask worker processes (--engine dask)")] = 1,
    partitions: Annotated[int, typer.Option(help="Buckets of each Dask shuffle (--engine dask)")] = 8,
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
            ),
            fit=pipeline.FitOptions(
                selection=selection,
                alpha=alpha,
                ftest_df=ftest_df,
                robust=None if robust == "none" else robust,
                models=_models(model),
                intervals=intervals,
                n_boot=n_boot,
                policy=policy,
                min_curves=min_curves,
            ),
            metrics=MetricOptions(min_r2=min_r2),
        )
        with _progress() as bar:
            if engine == "dask":
                reading = {"format": input_format, "mapping": mapping}
                if plate_map is not None:
                    reading["plate_map"] = plate_map
                result, files = _run_dask(
                    paths, options, reading, bar=bar, workers=workers, partitions=partitions
                )
                parameters = {**options.as_record(), "engine": {"name": "dask", "workers": workers,
                                                                "partitions": partitions}}  # fmt: skip
            elif engine == "memory":
                reader_options = {"plate_map": plate_map} if plate_map is not None else {}
                raw = read_any(paths, format=input_format, mapping=mapping, **reader_options)
                result, files = _run_in_memory(raw, options, bar=bar), paths
                parameters = {**options.as_record(), "engine": {"name": "memory"}}
            else:
                raise ConfigError(f"--engine must be memory or dask, not {engine!r}")
            meta = io.provenance(inputs=files, parameters=parameters)
            with io.atomic_directory(out) as scratch:
                report.write_report(result, scratch / "report.html", meta=meta)  # first: adds its warnings
                io.write_run(result, scratch, meta=meta)
    except DoseatlasError as exc:
        console.print(f"[red]error:[/red] {_show(exc, limit=2000)}")
        raise typer.Exit(code=2) from None
    _print_summary(result.summary, out)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Well table to write (.parquet or .csv)")] = Path(
        "wells.parquet"
    ),
    truth: Annotated[Path, typer.Option(help="Truth table to write (.parquet or .csv)")] = Path(
        "truth.parquet"
    ),
    seed: Annotated[int, typer.Option(help="Random seed (the output is deterministic by seed)")] = 0,
    example: Annotated[
        bool, typer.Option("--example/--no-example", help="The bundled two-lab example")
    ] = True,
    n_cell_lines: Annotated[int, typer.Option(help="Cell lines drawn from the seed (--no-example)")] = 4,
    n_drugs: Annotated[int, typer.Option(help="Drugs drawn from the seed (--no-example)")] = 4,
    n_genetic: Annotated[int, typer.Option(help="Genetic perturbations (--no-example)")] = 0,
    readout: Annotated[str, typer.Option(help="atp, resazurin, srb, nuclei_count or dna_dye")] = "atp",
    read_times: Annotated[str, typer.Option(help="Comma-separated read times in hours")] = "72",
    plate_format: Annotated[int, typer.Option(help="96 or 384 wells")] = 96,
    replicates: Annotated[int, typer.Option(help="Replicate wells per dose")] = 3,
    time_zero: Annotated[bool, typer.Option("--time-zero/--no-time-zero", help="Time-zero plates")] = True,
    edge_loss: Annotated[float, typer.Option(help="Fraction of signal lost in edge wells")] = 0.0,
    cv: Annotated[float, typer.Option(help="Multiplicative noise (coefficient of variation)")] = 0.05,
    concentration_unit: Annotated[str, typer.Option(help="Unit written in the well table")] = "uM",
) -> None:
    """Simulate plates from a known cell-population model; write the wells and the exact truth."""
    from doseatlas.simulate import DatasetConfig, SimulationConfig, example_config
    from doseatlas.simulate import simulate as run_simulation

    try:
        if example:
            config = example_config()
        else:
            times = [float(t) for t in read_times.split(",") if t.strip()]
            dataset = DatasetConfig(
                name="sim",
                readout=readout,
                read_times_h=times,
                plate_format=plate_format,
                replicates=replicates,
                time_zero=time_zero,
                edge_loss=edge_loss,
                cv=cv,
                concentration_unit=concentration_unit,
            )
            config = SimulationConfig(
                n_cell_lines=n_cell_lines, n_drugs=n_drugs, n_genetic=n_genetic, datasets=[dataset]
            )
        result = run_simulation(config, seed=seed)
    except (DoseatlasError, ValueError) as exc:
        console.print(f"[red]error:[/red] {_show(exc, limit=2000)}")
        raise typer.Exit(code=2) from None
    for table, path in ((result.wells, out), (result.truth, truth)):
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False) if path.suffix == ".csv" else table.to_parquet(path, index=False)
    console.print(
        f"wrote {len(result.wells)} wells to {_show(out)} and {len(result.truth)} truth rows to {_show(truth)}"
    )


def _show(value: object, *, limit: int = 200) -> str:
    """User text for the terminal: clipped, control characters made visible, rich markup escaped."""
    return escape(plain(value, limit=limit))


def _print_summary(summary: dict, out: Path) -> None:
    console.print(
        f"rows read {summary['rows_read']} = rows used {summary['rows_used']}"
        f" + rows in the ledger {summary['rows_in_ledger']}"
    )
    datasets = escape(names(summary["datasets"]))
    console.print(f"datasets: {datasets or '(none)'}; treated wells: {summary['treated_wells']}")
    console.print(f"curves: {summary['curves']}; metric rows: {summary['metric_rows']}")
    for note in summary.get("notes", []):
        console.print(f"note: {_show(note)}")
    for warning in summary.get("warnings", []):
        console.print(f"[bold yellow]warning:[/bold yellow] {_show(warning)}")
    console.print(f"wrote {_show(out)}/ (responses, curves, metrics, ledger, plates .parquet; report.html)")
    typer.echo(json.dumps({k: summary[k] for k in ("rows_read", "rows_used", "rows_in_ledger")}))


def main() -> None:  # pragma: no cover - console entry point
    app()
