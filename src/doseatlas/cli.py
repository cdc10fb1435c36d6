"""Command line: doseatlas run, doseatlas simulate, doseatlas export and doseatlas review.

A thin layer over the Python API (import doseatlas; docs/api.md): the options of doseatlas run are the fields
of doseatlas.RunSettings, with the same defaults; this module only parses the command line and prints.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from doseatlas import _api
from doseatlas._api import example_path
from doseatlas._options import RunSettings
from doseatlas._spelling import SPELLING
from doseatlas._text import names, plain
from doseatlas._version import __version__
from doseatlas.errors import ConfigError, DoseatlasError
from doseatlas.fit.compiled import kernel_ready

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
console = Console(stderr=True, emoji=False)  # a name like ":smile:" stays as written

__all__ = ["app", "example_path", "main"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"doseatlas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit"),
    ] = None,
) -> None:
    """doseatlas: harmonized, correctly labelled cell-line drug-response data."""


def _progress(*, quiet: bool = False) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )


def _dask_bar(bar: Progress) -> list[Any]:
    """A Dask callback advancing a progress bar over the partitioned run's tasks."""
    try:
        from dask.callbacks import Callback
    except ImportError:
        return []
    task = bar.add_task("dask tasks", total=None)

    class _Bar(Callback):
        def _start_state(self, dsk, state):
            total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished") if k in state)
            bar.update(task, total=total, completed=0)

        def _posttask(self, key, result, dsk, state, worker_id):
            bar.advance(task)

    return [_Bar()]


COMPILING = "compiling the fit kernel and the plate edge model (numba): first run only, about a minute"


def _memory_bar(bar: Progress):
    from doseatlas import pipeline

    task = bar.add_task("run", total=len(pipeline.STEPS) + 1)

    def tick(step: str) -> None:
        if step == "fit" and not kernel_ready():
            console.print(f"note: {COMPILING}")
            step = f"fit ({COMPILING})"
        bar.update(task, description=step, advance=0 if step == pipeline.STEPS[0] else 1)

    return tick


RUN_OUTPUTS = (
    "Writes to OUT: responses, curves, metrics, ledger, plates, identities, consistency, growth, converted, "
    "time_dependence and dip .parquet, summary.json, report.html and the marker .doseatlas-output.json."
)


def _run(inputs: list[Path] | None, out: Path, **options: Any) -> None:
    """Validate, normalize, fit and compute metrics; write the output contract to OUT."""
    from doseatlas import io

    with _cli_spelling():
        try:
            plan = _api._plan(list(inputs) if inputs else None, options)
            target, recovered = io.prepare_output(out, inputs=[*plan.files, *plan.evidence])
        except DoseatlasError as exc:
            _fail(exc)
        for note in recovered:
            console.print(f"note: {_show(note)}")
        try:
            with _progress(quiet=plan.settings.quiet) as bar:
                callbacks = _dask_bar(bar) if plan.settings.engine == "dask" else []
                if (
                    plan.settings.engine == "dask" and not kernel_ready()
                ):  # compiled in the worker that fits first
                    console.print(f"note: {COMPILING}")
                tick = _memory_bar(bar) if plan.settings.engine == "memory" else None
                raw, files, parameters = _api._execute(
                    plan, progress=tick, dask_callbacks=callbacks, stream=True
                )
                result = _api._as_result(raw, _api._provenance(plan, files, parameters, None), files)
                result._write_into(target.scratch)
            io.commit_output(target)
        except DoseatlasError as exc:
            io.abandon_output(target)
            _fail(exc)
        except BaseException:
            io.abandon_output(target)
            raise
    _print_summary(result.summary, out)


class _cli_spelling:
    """Messages spell options as flags (--plate-map) while the command runs."""

    def __enter__(self):
        self.token = SPELLING.set("cli")

    def __exit__(self, *exc):
        SPELLING.reset(self.token)


def _cli_parameter(f) -> inspect.Parameter:
    """One RunSettings field as a typer option (help, flag, type and default from the field)."""
    meta = f.metadata
    kind = meta.get("cli_type") or (type(f.default) if f.default is not None else str)
    annotation = kind if f.default is not None else kind | None
    decls = [meta["flag"]] if meta.get("flag") else []
    if f.name == "format":
        decls = ["--format"]
    option = typer.Option(*decls, help=meta["help"])
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=Annotated[annotation, option]
    )


def _run_signature() -> inspect.Signature:
    inputs = Annotated[
        list[Path] | None,
        typer.Argument(
            help="Well tables (CSV/TSV/Parquet) or one study manifest (.toml); none = bundled example"
        ),
    ]
    out = Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output directory: new, empty, or a previous doseatlas output (replaced atomically); a directory with other files is refused",
        ),
    ]
    head = [
        inspect.Parameter("inputs", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=inputs),
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=Path("results"), annotation=out),
    ]
    return inspect.Signature([*head, *(_cli_parameter(f) for f in fields(RunSettings))])


def run(**kwargs: Any) -> None:
    _run(kwargs.pop("inputs"), kwargs.pop("out"), **kwargs)


run.__signature__ = _run_signature()  # type: ignore[attr-defined]
run.__annotations__ = {}
run.__doc__ = (
    "Validate, normalize, fit and compute metrics; write the output contract to OUT.\n\n" + RUN_OUTPUTS
)
app.command(name="run")(run)


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
    readout: Annotated[
        str, typer.Option(help="atp, resazurin, srb, nuclei_count, dna_dye or dead_cell_dye")
    ] = "atp",
    read_times: Annotated[str, typer.Option(help="Comma-separated read times in hours")] = "72",
    plate_format: Annotated[int, typer.Option(help="96 or 384 wells")] = 96,
    replicates: Annotated[int, typer.Option(help="Replicate wells per dose")] = 3,
    time_zero: Annotated[bool, typer.Option("--time-zero/--no-time-zero", help="Time-zero plates")] = True,
    edge_loss: Annotated[float, typer.Option(help="Fraction of signal lost in edge wells")] = 0.0,
    cv: Annotated[float, typer.Option(help="Multiplicative noise (coefficient of variation)")] = 0.05,
    concentration_unit: Annotated[str, typer.Option(help="Unit written in the well table")] = "uM",
) -> None:
    """Simulate plates from a known cell-population model; write the wells and the exact truth.

    Writes OUT (the canonical well table, input of doseatlas run) and TRUTH (the exact value of every metric of
    every simulated curve), each a new .parquet or .csv file.
    """
    from doseatlas import io

    try:
        if out.resolve() == truth.resolve():
            raise ConfigError("--out and --truth name the same file")
        io.check_new_file(out)
        io.check_new_file(truth)
        times = [float(t) for t in read_times.split(",") if t.strip()]
        dataset = {"readout": readout, "read_times_h": times, "plate_format": plate_format,
                   "replicates": replicates, "time_zero": time_zero, "edge_loss": edge_loss, "cv": cv,
                   "concentration_unit": concentration_unit}  # fmt: skip
        config = (
            None
            if example
            else _api.simulation_config(
                n_cell_lines=n_cell_lines, n_drugs=n_drugs, n_genetic=n_genetic, **dataset
            )
        )
        result = _api.simulate(config, seed=seed)
    except (DoseatlasError, ValueError) as exc:
        console.print(f"[red]error:[/red] {_show(exc, limit=2000)}")
        raise typer.Exit(code=2) from None
    try:
        for table, path in ((result.wells, out), (result.truth, truth)):
            with io.new_file(path) as scratch:
                table.to_csv(scratch, index=False) if path.suffix == ".csv" else table.to_parquet(
                    scratch, index=False
                )
    except DoseatlasError as exc:
        _fail(exc)
    console.print(
        f"wrote {len(result.wells)} wells to {_show(out)} and {len(result.truth)} truth rows to {_show(truth)}"
    )


def _show(value: object, *, limit: int = 200) -> str:
    """User text for the terminal: clipped, control characters made visible, rich markup escaped."""
    return escape(plain(value, limit=limit))


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="Output directory of `doseatlas run`")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Export directory: new, empty, or a previous doseatlas output (replaced atomically)",
        ),
    ] = Path("export"),
    metric: Annotated[
        list[str] | None,
        typer.Option(help="Metric to export (repeatable; default: every metric of the perturbation type)"),
    ] = None,
    perturbation_type: Annotated[
        str,
        typer.Option(help="The one perturbation type exported: drug, knockout, knockdown or overexpression"),
    ] = "drug",
    duration: Annotated[
        float | None,
        typer.Option(
            help="Export labels at this duration (hours) only: measured there, or converted to it by a run with "
            "--target-duration (docs/time.md); default: every duration"
        ),
    ] = None,
    exclude_flag: Annotated[
        list[str] | None,
        typer.Option(
            help="Leave out source rows carrying this flag (repeatable; codes in docs/metrics.md, e.g. "
            "edge_effect, readout_discordant)"
        ),
    ] = None,
) -> None:
    """ML-ready labels: source labels, censoring-aware consensus, matrices and drevalpy data sets (docs/export.md).

    Writes to OUT: labels.parquet, matrix_METRIC.parquet with _lower, _upper and _status, drevalpy/ data sets,
    export.json and the marker .doseatlas-output.json.
    """

    with _cli_spelling():
        try:
            result = _api.export(run_dir, out=out, metrics=metric, perturbation_type=perturbation_type,
                                 duration=duration, exclude_flags=exclude_flag)  # fmt: skip
        except DoseatlasError as exc:
            _fail(exc)
    summary = result.summary  # the options were checked by the export itself
    absent = [m for m in (metric or ()) if m not in summary["metrics"]]
    if summary["source_rows"] == 0:
        console.print(f"note: the run has no {perturbation_type} labels to export")
    elif absent:
        console.print(f"note: the run has no rows of {', '.join(absent)}")
    console.print(
        f"{summary['source_rows']} source labels and {summary['consensus_rows']} consensus labels "
        f"({perturbation_type}); consensus status: {summary['consensus_status']}"
    )
    console.print(
        f"wrote {out}/ (labels.parquet, {len(summary['matrices'])} matrices x 4, "
        f"{len(summary['drevalpy_datasets'])} drevalpy data sets, export.json)"
    )


#: addresses of this machine only (the review app's safe default)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@app.command()
def review(
    run_dir: Annotated[Path, typer.Argument(help="Output directory of doseatlas run")],
    db: Annotated[
        Path, typer.Option(help="SQLite database of the review decisions (created when missing)")
    ] = Path("reviews.sqlite"),
    host: Annotated[str, typer.Option(help="Address to listen on (localhost only by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8765,
) -> None:
    """Serve the curve review app of RUN_DIR: inspect any curve, accept or reject it (doseatlas run --reviews).

    Writes to DB (SQLite): the decisions and their audit trail; nothing in RUN_DIR.
    """
    try:
        from doseatlas.review.app import make_app

        web = make_app(run_dir, db=db)
    except ImportError as exc:
        _fail(
            ConfigError(f"doseatlas review needs the review extra (pip install 'doseatlas[review]'): {exc}")
        )
    except DoseatlasError as exc:
        _fail(exc)
    import uvicorn

    if host not in LOCAL_HOSTS:
        console.print(
            f"[yellow]warning:[/yellow] listening on {_show(host)}: anyone who can reach this address can read "
            "the run and record decisions (no authentication)"
        )
    console.print(f"doseatlas review: http://{host}:{port}/ (decisions in {_show(db)})")
    uvicorn.run(web, host=host, port=port, log_level="warning")


def _fail(exc: DoseatlasError) -> NoReturn:
    """One message, exit code 2."""
    console.print(f"[red]error:[/red] {_show(exc, limit=2000)}")
    raise typer.Exit(code=2) from None


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
    ids = summary.get("identities", {})
    if ids:
        console.print(
            f"identities: {ids['cell_lines']} cell lines, {ids['perturbagens']} perturbagens; "
            f"{ids['conflicts']} names kept apart, {ids['near_misses']} near misses listed (identities.parquet)"
        )
    for warning in summary.get("warnings", []):
        console.print(f"[bold yellow]warning:[/bold yellow] {_show(warning)}")
    console.print(
        f"wrote {_show(out)}/ (responses, curves, metrics, ledger, plates, identities, consistency .parquet; report.html)"
    )
    typer.echo(json.dumps({k: summary[k] for k in ("rows_read", "rows_used", "rows_in_ledger")}))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover - python -m doseatlas.cli
    main()
