"""Command line: ``doseatlas run``, ``doseatlas simulate`` and ``doseatlas export``."""

from __future__ import annotations

import csv
import functools
import inspect
import json
import math
from importlib import resources
from io import StringIO
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from doseatlas import pipeline
from doseatlas import schemas as S
from doseatlas._text import names, plain
from doseatlas.durations import DurationOptions
from doseatlas.errors import ConfigError, DoseatlasError, InputFileError
from doseatlas.fit.compiled import kernel_ready
from doseatlas.harmonize import HarmonizeOptions
from doseatlas.ingest import READERS, read_any
from doseatlas.metrics import MetricOptions
from doseatlas.metrics.convert import ConversionOptions
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


_DOUBLING_COLUMNS = (S.CELL_LINE, S.DOUBLING_TIME_H)


def _doubling_times(path: Path | None) -> dict[str, float] | None:
    """``{cell_line: hours}`` from a CSV/TSV with columns ``cell_line`` and ``doubling_time_h``.

    Raises
    ------
    InputFileError
        Naming the file (and line and column) when it cannot be read or decoded, has no header or no rows,
        lacks a column, or a row has an empty cell line, a doubling time that is not a positive finite number
        of hours, or repeats a cell line with another doubling time (the same value twice is accepted).
    """
    if path is None:
        return None
    rows = _doubling_rows(path)
    times: dict[str, float] = {}
    lines: dict[str, int] = {}
    for line, line_name, text in rows:
        hours = _doubling_time(path, line, text)
        if line_name in times and times[line_name] != hours:
            raise InputFileError(
                str(path),
                f"cell line {line_name!r} has doubling time {times[line_name]:g} h on line {lines[line_name]} "
                f"and {hours:g} h here",
                column=S.DOUBLING_TIME_H,
                line=line,
            )
        times.setdefault(line_name, hours)
        lines.setdefault(line_name, line)
    return times


def _doubling_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line, cell line, doubling-time text) of every non-blank row; InputFileError for an unusable file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    try:
        table = list(_csv_rows(data.decode("utf-8-sig")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(str(path), f"is not a UTF-8 CSV/TSV text file ({exc})") from None
    need = f"needs columns {' and '.join(_DOUBLING_COLUMNS)}"
    if not table:
        raise InputFileError(str(path), f"is empty: {need}")
    header = [name.strip() for name in table[0][1]]
    for column in _DOUBLING_COLUMNS:
        if column not in header:
            raise InputFileError(str(path), need, column=column, line=1)
    at = [header.index(c) for c in _DOUBLING_COLUMNS]
    rows = [(line, *(cells[i].strip() if i < len(cells) else "" for i in at)) for line, cells in table[1:]]
    if not rows:
        raise InputFileError(str(path), "has a header but no rows")
    for line, name, _ in rows:
        if not name:
            raise InputFileError(str(path), "the cell line is empty", column=S.CELL_LINE, line=line)
    return rows


def _csv_rows(text: str):
    """(line number, cells) of the non-blank rows; the delimiter (tab, semicolon or comma) from the header."""
    header = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in header else ";" if ";" in header and "," not in header else ","
    reader = csv.reader(StringIO(text, newline=""), delimiter=delimiter)
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield reader.line_num, cells


def _doubling_time(path: Path, line: int, text: str) -> float:
    """A doubling time in hours: a positive finite number, else InputFileError naming line and column."""
    try:
        hours = float(text)
    except ValueError:
        hours = None
    if hours is None or not (math.isfinite(hours) and hours > 0):
        raise InputFileError(
            str(path),
            f"doubling time {text!r} is not a positive finite number of hours",
            column=S.DOUBLING_TIME_H,
            line=line,
        )
    return hours


#: reader keyword -> the command-line option that gives it
def _load_manifest(paths: list[Path], *, single_file_options: dict):
    """The study manifest when the one input is a ``.toml`` file (None otherwise); ConfigError when a manifest
    is mixed with other inputs or with the single-file reading options (those go in the manifest's sources)."""
    from doseatlas.ingest.manifest import is_manifest, load_manifest

    if not any(is_manifest(p) for p in paths):
        return None
    if len(paths) > 1:
        raise ConfigError("a study manifest (.toml) is the only input of its run: list every source in it")
    given = [name for name, value in single_file_options.items() if value]
    if given:
        raise ConfigError(
            f"{', '.join(given)} apply to single-file runs: set them per [[source]] in the manifest"
        )
    return load_manifest(paths[0])


def _identity_files(
    identities: Path | None, cellosaurus: Path | None, manifest
) -> tuple[Path | None, Path | None]:
    """The identity evidence files: ``--identities`` / ``--cellosaurus`` or the manifest's top-level
    ``identities`` / ``cellosaurus``; naming one in both places is refused (which should win is not obvious)."""
    given = {"identities": identities, "cellosaurus": cellosaurus}
    if manifest is not None:
        for key, path in (("identities", manifest.identities), ("cellosaurus", manifest.cellosaurus)):
            if path and given[key] is not None and Path(given[key]).resolve() != Path(path).resolve():
                raise ConfigError(f"--{key} and the manifest's {key!r} name different files: give one")
            given[key] = given[key] or (Path(path) if path else None)
    return given["identities"], given["cellosaurus"]


def _harmonize_options(identities: Path | None, cellosaurus: Path | None) -> HarmonizeOptions:
    """The identity evidence the user gives (``--identities``, ``--cellosaurus``), read and checked."""
    from doseatlas.ingest.identities import read_cellosaurus, read_identity_table

    return HarmonizeOptions(
        identities=read_identity_table(identities) if identities is not None else (),
        cellosaurus=read_cellosaurus(cellosaurus) if cellosaurus is not None else (),
        files=tuple(str(p) for p in (identities, cellosaurus) if p is not None),
    )


_READER_FILE_OPTIONS = {"plate_map": "--plate-map", "mapping": "--mapping"}


def _check_reader_options(input_format: str, **given: Path | None) -> None:
    """ConfigError unless the reader file options (``plate_map``, ``mapping``) suit ``--format``: a reader
    that needs one (a keyword without default) gets it, and none is given to a reader that does not use it.
    ``--mapping`` with the default format means ``--format mapping``, as :func:`doseatlas.ingest.read_any`."""
    if input_format not in READERS:
        raise ConfigError(f"unknown --format {input_format!r}; use one of {', '.join(READERS)}")
    reader = "mapping" if input_format == "canonical" and given.get("mapping") is not None else input_format
    for name, option in _READER_FILE_OPTIONS.items():
        parameter = inspect.signature(READERS[reader]).parameters.get(name)
        if given.get(name) is None and parameter is not None and parameter.default is inspect.Parameter.empty:
            raise ConfigError(f"--format {reader} needs {option} FILE")
        if given.get(name) is not None and parameter is None:
            users = [f for f in READERS if name in inspect.signature(READERS[f]).parameters]
            if name == "mapping":
                users.insert(0, "canonical")
            raise ConfigError(
                f"{option} applies to --format {' or '.join(users)}, not to --format {input_format}"
            )


def _models(pairs: list[str] | None) -> dict[str, str]:
    """``SCALE=MODEL`` options as a dict; ConfigError naming a malformed one."""
    models: dict[str, str] = {}
    for pair in pairs or []:
        scale, sep, name = pair.partition("=")
        if not sep or not scale.strip() or not name.strip():
            raise ConfigError(f"--model takes SCALE=MODEL (e.g. relative_viability=ll3), got {pair!r}")
        models[scale.strip()] = name.strip()
    return models


COMPILING = "compiling the fit kernel: first run only, about 20 s"


def _run_in_memory(raw, options: pipeline.RunOptions, *, bar: Progress) -> pipeline.RunResult:
    task = bar.add_task("run", total=len(pipeline.STEPS) + 1)

    def tick(step: str) -> None:
        if step == "fit" and not kernel_ready():
            console.print(f"note: {COMPILING}")
            step = f"fit ({COMPILING})"
        bar.update(task, description=step, advance=0 if step == pipeline.STEPS[0] else 1)

    result = pipeline.run_pipeline(raw, options=options, progress=tick)
    bar.update(task, description="write", completed=len(pipeline.STEPS))
    return result


def _run_dask(
    paths: list[Path], options, reading: dict, *, bar: Progress, workers: int, partitions: int, manifest=None
):
    """The partitioned run (:mod:`doseatlas.scale`) with a progress bar over Dask's tasks. Canonical inputs may
    be Parquet data set directories (each file a part); any other format is read file by file, as the
    in-memory engine reads it; a manifest's parts are its sources' files, each read with its source's
    options."""
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

    check = None
    if manifest is not None:
        from doseatlas.ingest.manifest import check_part_datasets, read_source_part

        parts, read, files = list(manifest.parts), read_source_part, manifest.files()
        check = functools.partial(check_part_datasets, manifest)
    elif reading["format"] == "canonical" and reading["mapping"] is None:
        parts, read = list_parts(paths), read_part
        files = [p.path for p in parts]
    else:
        from doseatlas.ingest import distinct_inputs, files_of_inputs

        parts, read = distinct_inputs(paths, format=reading["format"]), functools.partial(read_one, **reading)
        files = files_of_inputs(paths, format=reading["format"])
    if not kernel_ready():  # compiled in the worker that fits first
        console.print(f"note: {COMPILING}")
    result = run_partitioned(parts, read=read, options=options, n_partitions=partitions, workers=workers,
                             callbacks=[_Bar()], check_datasets=check)  # fmt: skip
    return result, files


def _review_store(path: Path | None):
    if path is None:
        return None
    from doseatlas.review.store import open_existing

    return open_existing(path)


def _applied_reviews(result: pipeline.RunResult, store, path: Path) -> tuple[pipeline.RunResult, dict]:
    """``result`` with the decisions of the review database applied to its metrics, and their record."""
    import dataclasses

    from doseatlas.review.apply import apply_reviews, review_record

    decisions = store.decisions()
    metrics = apply_reviews(result.metrics, decisions)
    summary = {**result.summary, "metric_status": metrics[S.STATUS].value_counts().to_dict()}
    record = review_record(result.metrics, decisions, database=str(path))
    return dataclasses.replace(result, metrics=metrics, summary=summary), record


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


@app.command()
def run(
    inputs: Annotated[
        list[Path] | None, typer.Argument(help="Well tables (CSV/TSV/Parquet); none = bundled example")
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output directory: new, empty, or a previous doseatlas output (replaced atomically); a directory with other files is refused",
        ),
    ] = Path("results"),
    control_summary: Annotated[str, typer.Option(help="trimmed_mean, median or mean")] = "trimmed_mean",
    doubling_times: Annotated[
        Path | None, typer.Option(help="CSV with cell_line,doubling_time_h for GR without time-zero reads")
    ] = None,
    doubling_time_source: Annotated[str, typer.Option(help="Where the doubling times come from")] = "user",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress display")] = False,
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
    pool_series: Annotated[
        bool,
        typer.Option(
            "--pool-series",
            help="Pool a source's separate dose series (the series column: e.g. a GDSC drug at two top "
            "concentrations, PharmacoGx experiments) into one curve per cell line and perturbagen",
        ),
    ] = False,
    pool_seeding: Annotated[
        bool,
        typer.Option(
            "--pool-seeding",
            help="Pool the seeding densities of a curve after normalization (each well normalized by its own "
            "density's controls), as GDSC's own fits do; default: each density is its own curve",
        ),
    ] = False,
    intervals: Annotated[str, typer.Option(help="Parameter intervals: wald or bootstrap")] = "wald",
    n_boot: Annotated[
        int, typer.Option(help="Bootstrap refits per curve (with --intervals bootstrap)")
    ] = 200,
    target_duration: Annotated[
        list[float] | None,
        typer.Option(
            help="Also convert ic50, gi50, tgi, lc50 and gr50 to this duration in hours under the exponential "
            "growth model (repeatable; converted.parquet; see docs/time.md)"
        ),
    ] = None,
    time_tolerance_h: Annotated[
        float,
        typer.Option(help="Read times within max(this, --time-tolerance-rel x t) hours are one duration"),
    ] = 0.5,
    time_tolerance_rel: Annotated[
        float, typer.Option(help="Relative part of the read-time tolerance")
    ] = 0.02,
    engine: Annotated[
        str,
        typer.Option(
            help="memory (one table) or dask (partitioned, file by file; canonical inputs may be Parquet data "
            "set directories; needs the 'scale' extra)"
        ),
    ] = "memory",
    workers: Annotated[int, typer.Option(help="Dask worker processes (--engine dask)")] = 1,
    partitions: Annotated[int, typer.Option(help="Buckets of each Dask shuffle (--engine dask)")] = 8,
    identities: Annotated[
        Path | None,
        typer.Option(help="CSV kind,name,canonical[,id]: your identities of cell lines and perturbagens"),
    ] = None,
    cellosaurus: Annotated[
        Path | None, typer.Option(help="Cellosaurus flat file (cellosaurus.txt): names, synonyms, accessions")
    ] = None,
    reviews: Annotated[
        Path | None,
        typer.Option(
            help="Review database of doseatlas review: rejected curves refused, accepted ones marked"
        ),
    ] = None,
) -> None:
    """Validate, normalize, fit and compute metrics; write the output contract to OUT."""
    from doseatlas import io, report

    paths = list(inputs) if inputs else [example_path()]
    try:
        single_file = {
            "--format": input_format != "canonical",
            "--mapping": mapping,
            "--plate-map": plate_map,
        }
        manifest = _load_manifest(paths, single_file_options=single_file)
        if manifest is None:
            _check_reader_options(input_format, plate_map=plate_map, mapping=mapping)
        per_dataset = manifest.dataset_doubling_times() if manifest is not None else ({}, {})
        options = pipeline.RunOptions(
            normalization=NormalizationOptions(
                control_summary=control_summary,
                doubling_times=_doubling_times(doubling_times),
                doubling_time_source=doubling_time_source,
                dataset_doubling_times=per_dataset[0] or None,
                dataset_doubling_time_sources=per_dataset[1] or None,
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
            conversion=ConversionOptions(targets=tuple(target_duration or ())),
            durations=DurationOptions(abs_h=time_tolerance_h, rel=time_tolerance_rel),
            pool_series=pool_series,
            pool_seeding=pool_seeding,
            harmonize=_harmonize_options(*_identity_files(identities, cellosaurus, manifest)),
        )
        if engine not in ("memory", "dask"):
            raise ConfigError(f"--engine must be memory or dask, not {engine!r}")
        evidence = [p for p in _identity_files(identities, cellosaurus, manifest) if p is not None]
        inputs = paths if manifest is None else manifest.files()
        review_store = _review_store(reviews)
        target, recovered = io.prepare_output(out, inputs=[*inputs, *evidence])
    except DoseatlasError as exc:
        _fail(exc)
    for note in recovered:
        console.print(f"note: {_show(note)}")
    try:
        with _progress(quiet=quiet) as bar:
            if engine == "dask":
                reading = {"format": input_format, "mapping": mapping}
                if plate_map is not None:
                    reading["plate_map"] = plate_map
                result, files = _run_dask(
                    paths,
                    options,
                    reading,
                    bar=bar,
                    workers=workers,
                    partitions=partitions,
                    manifest=manifest,
                )
                parameters = {**result.options.as_record(), "engine": {"name": "dask", "workers": workers,
                                                                "partitions": partitions}}  # fmt: skip
            elif manifest is not None:
                from doseatlas.ingest.manifest import read_manifest

                result = _run_in_memory(read_manifest(manifest), options, bar=bar)
                files, parameters = (
                    manifest.files(),
                    {**result.options.as_record(), "engine": {"name": "memory"}},
                )
            else:
                reader_options = {"plate_map": plate_map} if plate_map is not None else {}
                raw = read_any(paths, format=input_format, mapping=mapping, **reader_options)
                result, files = _run_in_memory(raw, options, bar=bar), _files_read(paths, raw.attrs)
                parameters = {**result.options.as_record(), "engine": {"name": "memory"}}
            if manifest is not None:
                parameters["manifest"] = manifest.record()
            if review_store is not None:
                result, parameters["reviews"] = _applied_reviews(result, review_store, reviews)
            meta = io.provenance(
                inputs=[*files, *[e for e in evidence if e not in files]], parameters=parameters
            )
            report.write_report(result, target.scratch / "report.html", meta=meta)  # first: adds its warnings
            io.write_run(result, target.scratch, meta=meta)
        io.commit_output(target)
    except DoseatlasError as exc:
        io.abandon_output(target)
        _fail(exc)
    except BaseException:
        io.abandon_output(target)
        raise
    _print_summary(result.summary, out)


def _files_read(paths: list[Path], attrs: dict) -> list[Path]:
    """The named input files and every other file the readers read (a Thunor export's companions), each once:
    every one is checksummed in the provenance."""
    named = {str(p) for p in paths}
    return [*paths, *(Path(f) for f in dict.fromkeys(attrs.get(S.FILES_READ, [])) if f not in named)]


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
    from doseatlas import io
    from doseatlas.simulate import DatasetConfig, SimulationConfig, example_config
    from doseatlas.simulate import simulate as run_simulation

    try:
        if out.resolve() == truth.resolve():
            raise ConfigError("--out and --truth name the same file")
        io.check_new_file(out)
        io.check_new_file(truth)
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
    """ML-ready labels: source labels, censoring-aware consensus, matrices and drevalpy data sets (docs/export.md)."""
    from doseatlas.harmonize.export import ExportOptions
    from doseatlas.io.export import export_run

    try:
        options = ExportOptions(
            metrics=tuple(metric or ()),
            perturbation_type=perturbation_type,
            duration_h=duration,
            exclude_flags=tuple(exclude_flag or ()),
        )
        result = export_run(run_dir, out, options=options)
    except DoseatlasError as exc:
        _fail(exc)
    summary = result.summary
    absent = [m for m in options.metrics if m not in summary["metrics"]]
    if summary["source_rows"] == 0:
        console.print(f"note: the run has no {options.perturbation_type} labels to export")
    elif absent:
        console.print(f"note: the run has no rows of {', '.join(absent)}")
    console.print(
        f"{summary['source_rows']} source labels and {summary['consensus_rows']} consensus labels "
        f"({options.perturbation_type}); consensus status: {summary['consensus_status']}"
    )
    console.print(
        f"wrote {out}/ (labels.parquet, {len(summary['matrices'])} matrices x 4, "
        f"{len(summary['drevalpy_datasets'])} drevalpy data sets, export.json)"
    )


@app.command()
def review(
    run_dir: Annotated[Path, typer.Argument(help="Output directory of doseatlas run")],
    db: Annotated[
        Path, typer.Option(help="SQLite database of the review decisions (created when missing)")
    ] = Path("reviews.sqlite"),
    host: Annotated[str, typer.Option(help="Address to listen on (localhost only by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8765,
) -> None:
    """Serve the curve review app of RUN_DIR: inspect any curve, accept or reject it (doseatlas run --reviews)."""
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
