"""The public Python API (re-exported by :mod:`doseatlas`); the command line is a thin layer over it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from doseatlas._options import RunSettings, keyword_parameters, option_help
from doseatlas._spelling import spell
from doseatlas.errors import ConfigError, DoseatlasError

EXAMPLE = "example_wells.parquet"
#: the tables of a run result, in the order they are written (``<name>.parquet``)
TABLES = ("responses", "curves", "metrics", "ledger", "plates", "identities", "consistency", "growth",
          "converted", "time_dependence", "dip", "interference")  # fmt: skip


def example_path() -> Path:
    """Path of the bundled example well table (made with the simulator)."""
    return Path(str(resources.files("doseatlas") / "data" / EXAMPLE))


def read(
    path: str | Path | Sequence[str | Path],
    *,
    format: str = "canonical",
    mapping: str | Path | None = None,
    plate_map: str | Path | None = None,
    **reader_options: Any,
) -> pd.DataFrame:
    """Read one or several files of one format into the canonical table (not yet validated).

    Parameters
    ----------
    path
        A file or a list of files (CSV, TSV, Parquet, or the format's own files).
    format
        A reader: canonical, gdsc-raw, grmetrics, pharmacogx, curvecurator, thunor-hts, gdr, plate-matrix,
        incucyte or mapping (``docs/formats.md``).
    mapping
        A mapping TOML of another layout onto the canonical table (format canonical or mapping).
    plate_map
        The plate map of plate-matrix and incucyte files.
    **reader_options
        Further keyword options of the format's reader (e.g. ``time_h=`` for thunor-hts).

    Returns
    -------
    pandas.DataFrame
        The canonical well table (or a response table for sources that publish normalized responses), with
        ``source_file`` and ``source_line`` on every row; pass it to :func:`run`.

    Raises
    ------
    ConfigError
        A reader option that does not suit the format (one message).
    InputFileError
        A file that cannot be used, naming file, line and column.
    """
    from doseatlas.ingest import read_any

    settings = RunSettings(format=format, mapping=mapping, plate_map=plate_map)
    settings.check_reader_options()
    return read_any(path, **settings.reading(), **reader_options)


@dataclass
class Result:
    """A run: its tables (DataFrames, as written to ``<name>.parquet``), ``summary`` and ``provenance``.

    Attributes
    ----------
    responses, curves, metrics, ledger, plates
        Treated wells with their responses; fitted curves; metrics with status and bounds; rejected input rows
        with their reasons; per-plate QC.
    identities, consistency, growth, converted, time_dependence, dip, interference
        Resolved names; agreement of data sets; control growth; metrics converted to target durations;
        time-dependent drugs; DIP rates; compounds' own signal in compound-only wells (empty tables when the
        run has none).
    summary
        Counts (rows read = rows used + rows in the ledger), warnings and notes (``summary.json``).
    provenance
        Package and schema version, command, parameters and input checksums (stored in every written table).
    """

    responses: pd.DataFrame
    curves: pd.DataFrame
    metrics: pd.DataFrame
    ledger: pd.DataFrame
    plates: pd.DataFrame
    identities: pd.DataFrame
    consistency: pd.DataFrame
    growth: pd.DataFrame
    converted: pd.DataFrame
    time_dependence: pd.DataFrame
    dip: pd.DataFrame
    interference: pd.DataFrame
    summary: dict[str, Any]
    provenance: dict[str, Any]
    _inputs: list[Path] = field(default_factory=list, repr=False, init=False)

    def __repr__(self) -> str:
        rows = ", ".join(f"{name}={len(getattr(self, name)):,}" for name in TABLES)
        return f"doseatlas.Result({rows})"

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by name, in the order they are written."""
        return {name: getattr(self, name) for name in TABLES}

    def write(self, out: str | Path) -> Path:
        """Write every table, ``summary.json`` and ``report.html`` to directory ``out``, as ``doseatlas run``.

        The rules of the command line hold: ``out`` may be new, empty or a previous doseatlas output (replaced
        atomically); anything else (a directory with other files, a file, the working directory, a directory
        holding an input) is refused with :class:`~doseatlas.errors.OutputDirectoryError` before anything is
        written. Returns the path written.
        """
        from doseatlas import io

        target, _notes = io.prepare_output(out, inputs=self._inputs)
        try:
            self._write_into(target.scratch)
            io.commit_output(target)
        except BaseException:
            io.abandon_output(target)
            raise
        return Path(out)

    def _write_into(self, directory: Path) -> None:
        from doseatlas import io, report

        report.write_report(self, directory / "report.html", meta=self.provenance)  # first: adds its warnings
        io.write_run(self, directory, meta=self.provenance)


def _as_result(run: Any, provenance: dict[str, Any], inputs: list[Path]) -> Result:
    tables = {name: getattr(run, name) for name in TABLES}
    result = Result(**tables, summary=run.summary, provenance=provenance)
    result._inputs = list(inputs)
    return result


def _sources(data: Any, settings: RunSettings) -> tuple[list[Path], Any, list[pd.DataFrame] | None]:
    """(paths, manifest, frames) of the run's input: paths (None: the bundled example), a manifest, DataFrames."""
    from doseatlas.ingest.manifest import is_manifest, load_manifest

    if isinstance(data, pd.DataFrame):
        data = [data]
    if isinstance(data, list | tuple) and data and all(isinstance(d, pd.DataFrame) for d in data):
        return [], None, [_canonical_frame(d, i) for i, d in enumerate(data, start=1)]
    paths = [Path(data)] if isinstance(data, str | Path) else [Path(p) for p in (data or [example_path()])]
    if not any(is_manifest(p) for p in paths):
        settings.check_reader_options()
        return paths, None, None
    if len(paths) > 1:
        raise ConfigError("a study manifest (.toml) is the only input of its run: list every source in it")
    given = settings.single_file_options()
    if given:
        raise ConfigError(
            f"{', '.join(given)} apply to single-file runs: set them per [[source]] in the manifest"
        )
    return paths, load_manifest(paths[0]), None


def _canonical_frame(frame: pd.DataFrame, index: int) -> pd.DataFrame:
    """A DataFrame given to :func:`run`: a reader's output as it is; any other checked for the canonical columns
    (InputFileError naming ``<DataFrame i>``), its rows numbered from 1 (``source_line``) as a Parquet file's."""
    from doseatlas import schemas as S
    from doseatlas.ingest import canonical_columns

    if S.SOURCE_FILE in frame:
        return frame
    numbered = frame if S.SOURCE_LINE in frame else frame.assign(**{S.SOURCE_LINE: range(1, len(frame) + 1)})
    out = canonical_columns(numbered, source=f"<DataFrame {index}>")
    out.attrs = dict(frame.attrs)
    return out


@dataclass
class _Plan:
    """A checked run: its settings, step options, inputs and the files it reads."""

    settings: RunSettings
    options: Any
    paths: list[Path]
    manifest: Any
    frames: list[pd.DataFrame] | None
    evidence: list[Path]

    @property
    def files(self) -> list[Path]:
        return self.paths if self.manifest is None else self.manifest.files()


def _plan(data: Any, options: dict[str, Any], *, caller: str = "run") -> _Plan:
    """Every check of a run before any work: options, input kinds, reader options, option files."""
    settings = RunSettings.from_keywords(options, caller=caller)
    paths, manifest, frames = _sources(data, settings)
    run_options = settings.run_options(manifest=manifest)
    if settings.reviews is not None:  # a missing database is an error before any work
        from doseatlas.review.store import open_existing

        open_existing(settings.reviews)
    evidence = [p for p in settings.identity_files(manifest) if p is not None]
    return _Plan(settings, run_options, paths, manifest, frames, evidence)


def _execute(
    plan: _Plan,
    *,
    progress: Callable[[str], None] | None,
    dask_callbacks: Sequence[Any] = (),
    stream: bool = False,
):
    """The run of a plan: (pipeline result, files read, parameters). ``stream``: the dask engine keeps the
    responses on disk (:class:`doseatlas.io.streamed.StreamedTable`), for a run that is written, not returned."""
    from doseatlas import pipeline

    s = plan.settings
    if s.engine == "dask":
        result, files = _run_dask(plan, callbacks=dask_callbacks, stream=stream)
        engine = {"name": "dask", "workers": s.workers, "partitions": s.partitions}
        if s.scheduler is not None:
            engine["scheduler"] = s.scheduler
    else:
        if plan.frames is not None:
            raw = plan.frames if len(plan.frames) > 1 else plan.frames[0]
        elif plan.manifest is not None:
            from doseatlas.ingest.manifest import read_manifest

            raw = read_manifest(plan.manifest)
        else:
            from doseatlas.ingest import read_any

            raw = read_any(plan.paths, **s.reading())
        result = pipeline.run_pipeline(raw, options=plan.options, progress=progress)
        files, engine = _files_read(plan.files, getattr(raw, "attrs", {})), {"name": "memory"}
    parameters = {**result.options.as_record(), "engine": engine}
    if plan.manifest is not None:
        parameters["manifest"] = plan.manifest.record()
    if s.reviews is not None:
        result, parameters["reviews"] = _applied_reviews(result, Path(s.reviews))
    return result, files, parameters


def _files_read(paths: list[Path], attrs: dict) -> list[Path]:
    """The named input files and every other file the readers read (a Thunor export's companions), each once:
    every one is checksummed in the provenance."""
    from doseatlas import schemas as S

    named = {str(p) for p in paths}
    return [*paths, *(Path(f) for f in dict.fromkeys(attrs.get(S.FILES_READ, [])) if f not in named)]


def _applied_reviews(result: Any, path: Path) -> tuple[Any, dict]:
    """``result`` with the decisions of the review database applied to its metrics, and their record."""
    import dataclasses

    from doseatlas import schemas as S
    from doseatlas.review.apply import apply_reviews, review_record
    from doseatlas.review.store import open_existing

    decisions = open_existing(path).decisions()
    metrics = apply_reviews(result.metrics, decisions)
    summary = {**result.summary, "metric_status": metrics[S.STATUS].value_counts().to_dict()}
    record = review_record(result.metrics, decisions, database=str(path))
    return dataclasses.replace(result, metrics=metrics, summary=summary), record


def _frame_part(frame: pd.DataFrame) -> pd.DataFrame:
    """A DataFrame part of a partitioned run (a copy: the run numbers its rows in place)."""
    return frame.copy()


def _run_dask(plan: _Plan, *, callbacks: Sequence[Any] = (), stream: bool = False):
    """The partitioned run (:mod:`doseatlas.scale`). Canonical inputs may be Parquet data set directories (each
    file a part); any other format is read file by file, as the in-memory engine reads it; a manifest's parts
    are its sources' files, each read with its source's options; DataFrames are one part each."""
    try:
        import dask  # noqa: F401
    except ImportError:
        raise ConfigError(f"{spell('engine', 'dask')} needs Dask: pip install -e '.[scale]'") from None
    from doseatlas.ingest import read_one
    from doseatlas.ingest.partitioned import list_parts, read_part
    from doseatlas.scale import run_partitioned

    s, check = plan.settings, None
    if plan.frames is not None:
        parts, read, files = plan.frames, _frame_part, []
    elif plan.manifest is not None:
        from doseatlas.ingest.manifest import check_part_datasets, read_source_part

        parts, read, files = list(plan.manifest.parts), read_source_part, plan.manifest.files()
        check = functools.partial(check_part_datasets, plan.manifest)
    elif s.format == "canonical" and s.mapping is None:
        parts, read = list_parts(plan.paths), read_part
        files = [p.path for p in parts]
    else:
        from doseatlas.ingest import distinct_inputs, files_of_inputs

        parts, read = distinct_inputs(plan.paths, format=s.format), functools.partial(read_one, **s.reading())
        files = files_of_inputs(plan.paths, format=s.format)
    result = run_partitioned(parts, read=read, options=plan.options, n_partitions=s.partitions, workers=s.workers,
                             callbacks=list(callbacks), check_datasets=check, scheduler=s.scheduler,
                             spill_dir=s.spill_dir, stream=stream,
                             stream_curves=s.reviews is None)  # fmt: skip
    return result, files


def _provenance(plan: _Plan, files: list[Path], parameters: dict[str, Any], command: str | None) -> dict:
    from doseatlas import io

    inputs = [*files, *[e for e in plan.evidence if e not in files]]
    return io.provenance(inputs=inputs, parameters=parameters, command=command)


def _api_command(data: Any, given: dict[str, Any]) -> str:
    shown = "<DataFrame>" if isinstance(data, pd.DataFrame) else repr(data) if data is not None else ""
    args = [a for a in (shown, *(f"{k}={v!r}" for k, v in given.items())) if a]
    return f"doseatlas.run({', '.join(args)})"


def run(
    data: Any = None,
    *,
    out: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> Result:
    """Validate, normalize, fit and compute metrics: what ``doseatlas run`` does, as a :class:`Result`."""
    plan = _plan(data, options)
    target = None
    if out is not None:
        from doseatlas import io

        target, _notes = io.prepare_output(out, inputs=[*plan.files, *plan.evidence])
    try:
        result, files, parameters = _execute(plan, progress=progress)
        command = _api_command(data, plan.settings.given())
        done = _as_result(result, _provenance(plan, files, parameters, command), [*files, *plan.evidence])
        if target is not None:
            from doseatlas import io

            done._write_into(target.scratch)
            io.commit_output(target)
    except BaseException:
        if target is not None:
            from doseatlas import io

            io.abandon_output(target)
        raise
    return done


def _run_doc() -> str:
    lines = [
        "Validate, normalize, fit and compute metrics: what ``doseatlas run`` does, as a :class:`Result`.",
        "",
        "Parameters",
        "----------",
        "data",
        "    The input: a path or a list of paths (well tables in ``format``; none: the bundled example), a study",
        "    manifest (``.toml``, the only input), or one or several DataFrames from :func:`read`.",
        "out",
        "    Optional output directory, checked before any work and written as :meth:`Result.write` writes it.",
        "progress",
        "    Called with each step's name as it starts (in-memory engine).",
    ]
    for name, default, text in option_help():
        lines += [f"{name} : default {default!r}", f"    {text}"]
    lines += [
        "",
        "Returns",
        "-------",
        "Result",
        "    The tables, ``summary`` and ``provenance``.",
        "",
        "Raises",
        "------",
        "ConfigError",
        "    An unknown or invalid option, one message (before any work).",
        "InputFileError",
        "    An input or option file that cannot be used, naming file, line and column.",
        "OutputDirectoryError",
        "    ``out`` may not be used.",
    ]
    return "\n".join(lines)


run.__doc__ = _run_doc()
run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=None),
        *keyword_parameters(),
    ],
    return_annotation="Result",
)


def export(
    run: Result | str | Path,
    *,
    out: str | Path | None = None,
    metrics: Sequence[str] | str | None = None,
    perturbation_type: str = "drug",
    duration: float | None = None,
    exclude_flags: Sequence[str] | str | None = None,
):
    """ML-ready labels of a run: source labels, censoring-aware consensus, matrices, drevalpy data sets.

    Parameters
    ----------
    run
        A :class:`Result` or the output directory of a run.
    out
        Optional export directory (new, empty or a previous doseatlas output; replaced atomically).
    metrics
        Metric names to export; default every metric of the perturbation type.
    perturbation_type
        The one perturbation type exported: drug, knockout, knockdown or overexpression.
    duration
        Export labels at this duration (hours) only: measured there, or converted to it by a run with
        ``target_duration`` (``docs/time.md``); default every duration.
    exclude_flags
        Leave out source rows carrying any of these flags (codes in ``docs/metrics.md``, e.g. ``edge_effect``).

    Returns
    -------
    Export
        ``labels``, ``matrices`` (by name), ``drevalpy`` (tables by relative path) and ``summary``.
    """
    from doseatlas.harmonize.export import ExportOptions, export_tables, seeding_by_curve
    from doseatlas.io.export import export_run, with_converted

    names = (metrics,) if isinstance(metrics, str) else tuple(metrics or ())
    flags = (exclude_flags,) if isinstance(exclude_flags, str) else tuple(exclude_flags or ())
    options = ExportOptions(
        metrics=names, perturbation_type=perturbation_type, duration_h=duration, exclude_flags=flags
    )
    if not isinstance(run, Result):
        if out is None:
            from doseatlas.io.export import read_run

            inputs = read_run(run, duration_h=options.duration_h)
            return export_tables(inputs.metrics, options=options, seeding=inputs.seeding)
        return export_run(run, out, options=options)
    table = run.metrics
    if options.duration_h is not None and len(run.converted):
        table = with_converted(table, run.converted, duration_h=options.duration_h)
    seeding = seeding_by_curve(run.responses) if "seeding_density" in run.responses else None
    done = export_tables(table, options=options, seeding=seeding)
    if out is not None:
        from doseatlas import io
        from doseatlas.io.export import write_export

        meta = {**io.provenance(inputs=[], parameters={"export": options.as_record()}, command="doseatlas.export()"),
                "run": run.provenance}  # fmt: skip
        with io.output_directory(out, inputs=run._inputs) as scratch:
            write_export(done, scratch, meta=meta)
    return done


def simulate(
    config: Any = None,
    *,
    seed: int = 0,
    n_cell_lines: int | None = None,
    n_drugs: int | None = None,
    n_genetic: int = 0,
    **dataset: Any,
):
    """Plates simulated from a known cell-population model, and the exact truth of every metric.

    Parameters
    ----------
    config
        A :class:`doseatlas.simulate.SimulationConfig`; default the bundled two-lab example (as the command line
        without ``--no-example``), unless ``n_cell_lines``/``n_drugs`` or dataset options are given.
    seed
        Random seed (the output is deterministic by seed).
    n_cell_lines, n_drugs, n_genetic
        A random study of this size (cell lines and drugs drawn from the seed; defaults 4 and 4).
    **dataset
        Options of its one data set (:class:`doseatlas.simulate.DatasetConfig`: ``readout``, ``read_times_h``,
        ``plate_format``, ``replicates``, ``time_zero``, ``edge_loss``, ``cv``, ``concentration_unit``).

    Returns
    -------
    SimulationResult
        ``wells`` (the canonical well table: pass it to :func:`run`) and ``truth``.
    """
    from doseatlas.simulate import simulate as _simulate

    return _simulate(simulation_config(config, n_cell_lines=n_cell_lines, n_drugs=n_drugs, n_genetic=n_genetic,
                                       **dataset), seed=seed)  # fmt: skip


def simulation_config(config: Any = None, *, n_cell_lines=None, n_drugs=None, n_genetic=0, **dataset: Any):
    """The simulator configuration of :func:`simulate`'s options (the CLI's too)."""
    from doseatlas.errors import SimulationError
    from doseatlas.simulate import DatasetConfig, SimulationConfig, example_config

    if config is not None:
        return config
    if n_cell_lines is None and n_drugs is None and not dataset and not n_genetic:
        return example_config()
    try:
        return SimulationConfig(
            n_cell_lines=4 if n_cell_lines is None else n_cell_lines,
            n_drugs=4 if n_drugs is None else n_drugs,
            n_genetic=n_genetic,
            datasets=[DatasetConfig(name="sim", **dataset)],
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DoseatlasError):
            raise
        raise SimulationError(str(exc)) from None


def metric_registry() -> pd.DataFrame:
    """Every metric doseatlas computes, one row each: name, definition, formula, scale, unit, citation...

    The declarations themselves (:class:`doseatlas.metrics.Metric`) are in ``attrs["metrics"]`` by name.
    """
    from dataclasses import asdict

    from doseatlas.metrics import METRICS

    rows = [{k: v for k, v in asdict(m).items()} for m in METRICS]
    table = pd.DataFrame(rows)
    table.attrs["metrics"] = {m.name: m for m in METRICS}
    return table


def plot_curve(result: Result, curve_id: str, *, metric: str | None = None):
    """A matplotlib figure of one curve: the responses, the fitted curve and its metrics drawn on it.

    Parameters
    ----------
    result
        A :class:`Result`.
    curve_id
        A value of ``result.curves["curve_id"]`` (or of ``result.metrics["curve_id"]``).
    metric
        The metric named in the title; default the headline metric of the curve's scale.
    """
    from doseatlas import plotting
    from doseatlas import schemas as S

    curves = result.curves
    found = curves[curves[S.CURVE_ID] == curve_id] if len(curves) else curves
    if not len(found):
        raise ConfigError(
            f"curve_id {curve_id!r} is not a curve of this result (see result.curves['curve_id'])"
        )
    curve = found.iloc[0]
    scale = curve[S.SCALE] if curve[S.SCALE] in plotting.PANEL_METRICS else S.RELATIVE_VIABILITY
    name = metric or plotting.PANEL_METRICS[scale][0]
    pick = pd.DataFrame([{**{k: curve[k] for k in S.CURVE_KEY}, S.SCALE: scale, S.METRIC: name}])
    pick["title"] = f"{curve[S.DATASET]} · {curve[S.CELL_LINE]} · {curve[S.PERTURBAGEN]} ({scale})"
    return plotting.curve_grid(pick, result.responses, curves, result.metrics, ncols=1)
