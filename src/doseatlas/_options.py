"""The one definition of the options of a run: ``doseatlas.run(**options)`` and ``doseatlas run --OPTION``.

:class:`RunSettings` lists every user-facing option of a run, flat, with its default and its help text (field
``metadata``). The API's :func:`doseatlas.run` takes them as keywords (its signature is made from these
fields) and the command line makes one ``--option`` per field (``cli.py`` builds the typer signature from
them), so both have the same options, defaults and help. Defaults of options that land in a step's options
(:class:`doseatlas.pipeline.FitOptions`, ...) are read from that dataclass: one default, never two.
Validation happens once, here and in those dataclasses, raising :class:`~doseatlas.errors.ConfigError` or
:class:`~doseatlas.errors.InputFileError` with one message.

Adding an option is one field here (plus the step's own field it feeds): give it a default (``_default(...)``
of the step's dataclass field when it feeds one), ``metadata=_help("...")`` and, when it feeds a step option,
map it in :meth:`RunSettings.run_options`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from doseatlas._spelling import spell
from doseatlas.durations import DurationOptions
from doseatlas.errors import ConfigError
from doseatlas.ingest import READERS
from doseatlas.interference import InterferenceOptions
from doseatlas.metrics import MetricOptions
from doseatlas.metrics.convert import ConversionOptions
from doseatlas.metrics.flags import FlagOptions
from doseatlas.normalize import NormalizationOptions


def _default(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls``: the one place that default is written."""
    found = {f.name: f for f in fields(cls)}[name]
    return found.default if found.default is not MISSING else found.default_factory()


def _help(text: str, *, flag: str | None = None, multiple: bool = False, cli_type: Any = None) -> dict:
    return {"help": text, "flag": flag, "multiple": multiple, "cli_type": cli_type}


def _fit_default(name: str) -> Any:
    from doseatlas.pipeline import FitOptions

    return _default(FitOptions, name)


def _run_default(name: str) -> Any:
    from doseatlas.pipeline import RunOptions

    return _default(RunOptions, name)


_READERS = ", ".join(READERS)


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Every option of a run with its default: the keywords of :func:`run` (listed there with their help), and
    the options of ``doseatlas run``. ``RunSettings(**options).run_options()`` gives the pipeline's options."""

    format: str = field(default="canonical", metadata=_help("Input format: " + _READERS))
    mapping: str | Path | None = field(
        default=None, metadata=_help("TOML mapping of another layout onto the canonical table", cli_type=Path)
    )
    plate_map: str | Path | None = field(
        default=None, metadata=_help("Plate map CSV (for --format plate-matrix and incucyte)", cli_type=Path)
    )
    control_summary: str = field(
        default=_default(NormalizationOptions, "control_summary"),
        metadata=_help("trimmed_mean, median or mean"),
    )
    doubling_times: str | Path | Mapping[str, float] | None = field(
        default=None,
        metadata=_help(
            "CSV with cell_line,doubling_time_h for GR without time-zero reads (API: also a dict)",
            cli_type=Path,
        ),
    )
    doubling_time_source: str = field(
        default=_default(NormalizationOptions, "doubling_time_source"),
        metadata=_help("Where the doubling times come from"),
    )
    selection: str = field(
        default=_fit_default("selection"), metadata=_help("Flat vs sigmoid model selection: ftest or aic")
    )
    alpha: float = field(
        default=_fit_default("alpha"), metadata=_help("F-test level for keeping the sigmoid")
    )
    ftest_df: str = field(
        default=_fit_default("ftest_df"),
        metadata=_help("F-test denominator df: standard (n - p) or grmetrics (n - p + 1)"),
    )
    robust: str | None = field(
        default=_fit_default("robust"),
        metadata=_help("Loss: none (least squares, the default), soft_l1 or huber"),
    )
    model: Sequence[str] | Mapping[str, str] | None = field(
        default=None,
        metadata=_help(
            "SCALE=MODEL replacing a default model, e.g. relative_viability=ll3 (repeatable; scales: "
            "relative_viability, percent_growth, gr; models: ll4, ll3, ll2, gr_sigmoid; API: also a dict)",
            multiple=True,
            cli_type=list[str],
        ),
    )
    min_r2: float = field(
        default=_default(MetricOptions, "min_r2"),
        metadata=_help("Refuse fitted metrics of sigmoid fits with a lower R^2"),
    )
    policy: str = field(
        default=_fit_default("policy"),
        metadata=_help(
            "Fit policy: refuse (each curve on its own; flat and poor fits refused) or shrink (a value for every "
            "curve, pooled across the cell lines of each drug; see docs/fitting.md)"
        ),
    )
    min_curves: int = field(
        default=_fit_default("min_curves"),
        metadata=_help("Fewest curves of a drug for --policy shrink to pool them"),
    )
    pool_series: bool = field(
        default=_run_default("pool_series"),
        metadata=_help(
            "Pool a source's separate dose series (the series column: e.g. a GDSC drug at two top "
            "concentrations, PharmacoGx experiments) into one curve per cell line and perturbagen",
            flag="--pool-series",
        ),
    )
    pool_seeding: bool = field(
        default=_run_default("pool_seeding"),
        metadata=_help(
            "Pool the seeding densities of a curve after normalization (each well normalized by its own "
            "density's controls), as GDSC's own fits do; default: each density is its own curve",
            flag="--pool-seeding",
        ),
    )
    interference_correction: str = field(
        default=_default(InterferenceOptions, "correction"),
        metadata=_help(
            "none (compound-only wells give interference.parquet and the readout_interference flag) or "
            "subtract (also subtract each compound's own signal in cell-free medium from its treated wells "
            "before normalization; see docs/plates.md)"
        ),
    )
    interference_threshold: float = field(
        default=_default(InterferenceOptions, "threshold"),
        metadata=_help(
            "Flag readout_interference when a compound alone reads above this fraction of the vehicle signal"
        ),
    )
    position_correction: str = field(
        default=_run_default("position_correction"),
        metadata=_help(
            "Plate position correction before normalization: none, bscore (divide by the plate's row and column "
            "effects, median polish of each well's deviation from its condition) or drop-edge (edge wells to "
            "the ledger); the edge estimate and flag are always computed (docs/plates.md)"
        ),
    )
    min_z_factor: float = field(
        default=_default(FlagOptions, "min_z_factor"),
        metadata=_help(
            "Flag low_z_factor on the metrics of plates with a lower Z'-factor (vehicle vs strongest positive control)"
        ),
    )
    min_edge_effect: float = field(
        default=_default(FlagOptions, "min_edge_effect"),
        metadata=_help(
            "Flag edge_effect on plates whose edge over interior signal is below this ratio (and --edge-z)"
        ),
    )
    edge_z: float = field(
        default=_default(FlagOptions, "edge_z"),
        metadata=_help(
            "Flag edge_effect only where the log edge effect is this many standard errors below 0"
        ),
    )
    reviews: str | Path | None = field(
        default=None,
        metadata=_help(
            "Review database of doseatlas review: rejected curves refused (rejected_in_review), accepted ones "
            "marked in the reviewed column",
            cli_type=Path,
        ),
    )
    quiet: bool = field(default=False, metadata=_help("No live progress display", flag="--quiet"))
    intervals: str = field(
        default=_fit_default("intervals"), metadata=_help("Parameter intervals: wald or bootstrap")
    )
    n_boot: int = field(
        default=_fit_default("n_boot"),
        metadata=_help("Bootstrap refits per curve (with --intervals bootstrap)"),
    )
    target_duration: Sequence[float] | float | None = field(
        default=None,
        metadata=_help(
            "Also convert ic50, gi50, tgi, lc50 and gr50 to this duration in hours under the exponential growth "
            "model (repeatable; converted.parquet; see docs/time.md)",
            multiple=True,
            cli_type=list[float],
        ),
    )
    time_tolerance_h: float = field(
        default=_default(DurationOptions, "abs_h"),
        metadata=_help("Read times within max(this, --time-tolerance-rel x t) hours are one duration"),
    )
    time_tolerance_rel: float = field(
        default=_default(DurationOptions, "rel"), metadata=_help("Relative part of the read-time tolerance")
    )
    engine: str = field(
        default="memory",
        metadata=_help(
            "memory (one table) or dask (partitioned, file by file; canonical inputs may be Parquet data set "
            "directories; needs the 'scale' extra)"
        ),
    )
    workers: int = field(default=1, metadata=_help("Dask worker processes (--engine dask)"))
    partitions: int = field(default=8, metadata=_help("Buckets of each Dask shuffle (--engine dask)"))
    scheduler: str | None = field(
        default=None,
        metadata=_help(
            "Address of a Dask distributed scheduler (e.g. tcp://10.0.0.5:8786) to run --engine dask on; its "
            "workers must reach the inputs and --spill-dir at the same paths (a shared file system)"
        ),
    )
    spill_dir: str | Path | None = field(
        default=None,
        metadata=_help(
            "Directory for the pieces --engine dask shuffles (a temporary directory inside it, removed "
            "afterwards); default the system's temporary directory",
            cli_type=Path,
        ),
    )
    identities: str | Path | None = field(
        default=None,
        metadata=_help(
            "CSV kind,name,canonical[,id]: your identities of cell lines and perturbagens", cli_type=Path
        ),
    )
    cellosaurus: str | Path | None = field(
        default=None,
        metadata=_help("Cellosaurus flat file (cellosaurus.txt): names, synonyms, accessions", cli_type=Path),
    )

    def __post_init__(self) -> None:
        if self.engine not in ("memory", "dask"):
            raise ConfigError(f"{spell('engine')} must be memory or dask, not {self.engine!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"{spell('workers')} must be an integer >= 1, not {self.workers!r}")
        if isinstance(self.partitions, bool) or not isinstance(self.partitions, int) or self.partitions < 1:
            raise ConfigError(f"{spell('partitions')} must be an integer >= 1, not {self.partitions!r}")
        if self.scheduler is not None and self.engine != "dask":
            raise ConfigError(f"{spell('scheduler')} runs {spell('engine', 'dask')}: give both")

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any], *, caller: str = "run") -> RunSettings:
        """The settings from keyword options; an unknown keyword is one ConfigError naming the close ones."""
        import difflib

        known = [f.name for f in fields(cls)]
        for name in options:
            if name not in known:
                near = difflib.get_close_matches(name, known, n=3)
                hint = f"; did you mean {', '.join(near)}?" if near else f"; options: {', '.join(known)}"
                raise ConfigError(f"{caller}() got an unknown option {name!r}{hint}")
        return cls(**options)

    def given(self) -> dict[str, Any]:
        """The options that differ from their default."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    def reading(self) -> dict[str, Any]:
        """Keyword options of :func:`doseatlas.ingest.read_any` (``plate_map`` only when given)."""
        out: dict[str, Any] = {"format": self.format, "mapping": self.mapping}
        if self.plate_map is not None:
            out["plate_map"] = self.plate_map
        return out

    def run_options(self, *, manifest: Any = None) -> Any:
        """The :class:`doseatlas.pipeline.RunOptions` of these settings (files read and checked here)."""
        from doseatlas.pipeline import FitOptions, RunOptions

        per_dataset = manifest.dataset_doubling_times() if manifest is not None else ({}, {})
        return RunOptions(
            normalization=NormalizationOptions(
                control_summary=self.control_summary,
                doubling_times=doubling_time_table(self.doubling_times),
                doubling_time_source=self.doubling_time_source,
                dataset_doubling_times=per_dataset[0] or None,
                dataset_doubling_time_sources=per_dataset[1] or None,
            ),
            fit=FitOptions(
                selection=self.selection,
                alpha=self.alpha,
                ftest_df=self.ftest_df,
                robust=None if self.robust in (None, "none") else self.robust,
                models=models(self.model),
                intervals=self.intervals,
                n_boot=self.n_boot,
                policy=self.policy,
                min_curves=self.min_curves,
            ),
            metrics=MetricOptions(min_r2=self.min_r2),
            conversion=ConversionOptions(targets=_durations(self.target_duration)),
            durations=DurationOptions(abs_h=self.time_tolerance_h, rel=self.time_tolerance_rel),
            pool_series=bool(self.pool_series),
            pool_seeding=bool(self.pool_seeding),
            position_correction=self.position_correction,
            flags=FlagOptions(
                min_z_factor=self.min_z_factor, min_edge_effect=self.min_edge_effect, edge_z=self.edge_z
            ),
            harmonize=harmonize_options(*self.identity_files(manifest)),
            interference=InterferenceOptions(
                correction=self.interference_correction, threshold=self.interference_threshold
            ),
        )

    def identity_files(self, manifest: Any = None) -> tuple[Path | None, Path | None]:
        """The identity evidence files: these settings' or the manifest's top-level ``identities`` /
        ``cellosaurus``; naming one in both places is refused (which should win is not obvious)."""
        given = {k: Path(v) if v is not None else None for k, v in
                 (("identities", self.identities), ("cellosaurus", self.cellosaurus))}  # fmt: skip
        if manifest is not None:
            for key, path in (("identities", manifest.identities), ("cellosaurus", manifest.cellosaurus)):
                if path and given[key] is not None and given[key].resolve() != Path(path).resolve():
                    raise ConfigError(
                        f"{spell(key)} and the manifest's {key!r} name different files: give one"
                    )
                given[key] = given[key] or (Path(path) if path else None)
        return given["identities"], given["cellosaurus"]

    def check_reader_options(self) -> None:
        """ConfigError unless the reader file options (``plate_map``, ``mapping``) suit ``format``: a reader that
        needs one (a keyword without default) gets it, and none is given to a reader that does not use it.
        ``mapping`` with the default format means format ``mapping``, as :func:`doseatlas.ingest.read_any`."""
        if self.format not in READERS:
            raise ConfigError(f"unknown {spell('format')} {self.format!r}; use one of {', '.join(READERS)}")
        reader = "mapping" if self.format == "canonical" and self.mapping is not None else self.format
        for name in ("plate_map", "mapping"):
            value = getattr(self, name)
            parameter = inspect.signature(READERS[reader]).parameters.get(name)
            if value is None and parameter is not None and parameter.default is inspect.Parameter.empty:
                raise ConfigError(f"{spell('format', reader)} needs {spell(name, 'FILE')}")
            if value is not None and parameter is None:
                users = [f for f in READERS if name in inspect.signature(READERS[f]).parameters]
                if name == "mapping":
                    users.insert(0, "canonical")
                formats = " or ".join(users)
                raise ConfigError(
                    f"{spell(name)} applies to {spell('format', formats)}, not to {spell('format', self.format)}"
                )

    def single_file_options(self) -> list[str]:
        """The reading options given, which a study manifest does not take (they go in its sources)."""
        given = {"format": self.format != "canonical", "mapping": self.mapping, "plate_map": self.plate_map}
        return [spell(name) for name, value in given.items() if value]


def _durations(value: Sequence[float] | float | None) -> tuple[float, ...]:
    if value is None:
        return ()
    return (float(value),) if isinstance(value, int | float) else tuple(float(v) for v in value)


def models(value: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``SCALE=MODEL`` texts (or a dict) as a dict; ConfigError naming a malformed one."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    out: dict[str, str] = {}
    for pair in [value] if isinstance(value, str) else value or []:
        scale, sep, name = pair.partition("=")
        if not sep or not scale.strip() or not name.strip():
            raise ConfigError(
                f"{spell('model')} takes SCALE=MODEL (e.g. relative_viability=ll3), got {pair!r}"
            )
        out[scale.strip()] = name.strip()
    return out


def doubling_time_table(value: str | Path | Mapping[str, float] | None) -> dict[str, float] | None:
    """``{cell_line: hours}`` from a dict or a ``cell_line,doubling_time_h`` file (the strict reader)."""
    if value is None or isinstance(value, Mapping):
        return dict(value) if value is not None else None
    from doseatlas.ingest.doubling_times import read_doubling_time_table

    return read_doubling_time_table(Path(value))


def harmonize_options(identities: Path | None, cellosaurus: Path | None) -> Any:
    """The identity evidence (``identities``, ``cellosaurus`` files), read and checked."""
    from doseatlas.harmonize import HarmonizeOptions
    from doseatlas.ingest.identities import read_cellosaurus, read_identity_table

    return HarmonizeOptions(
        identities=read_identity_table(identities) if identities is not None else (),
        cellosaurus=read_cellosaurus(cellosaurus) if cellosaurus is not None else (),
        files=tuple(str(p) for p in (identities, cellosaurus) if p is not None),
    )


def keyword_parameters(cls: type = RunSettings) -> list[inspect.Parameter]:
    """The fields of ``cls`` as keyword-only parameters (for the signature of :func:`doseatlas.run`)."""
    return [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for f in fields(cls)
    ]


def option_help(cls: type = RunSettings) -> list[tuple[str, Any, str]]:
    """(name, default, help) of every field, in order (for docstrings)."""
    return [(f.name, f.default, f.metadata["help"]) for f in fields(cls)]
