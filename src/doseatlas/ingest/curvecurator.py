"""Reader of CurveCurator dose-response tables (wide: ``Name``, ``Raw 0`` .. ``Raw n``) + parameters TOML.

The TOML (``[Experiment]``) gives ``experiments`` (ids of the ``Raw <id>`` columns), ``doses``,
``dose_scale`` (e.g. ``'1e-6'``) and ``dose_unit`` (``M``), and ``control_experiment``; ``[Meta]``
gives ``treatment_time`` (``'3 d'``) and ``id``. Values are viability ratios: each is divided by the
mean of the row's control column(s) (``Raw 0`` = 1.0 in the examples, so this changes nothing
there), giving a response table on the ``relative_viability`` scale.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas.errors import InputFileError
from doseatlas.ingest._common import finish, number_text, parse_duration_hours, require, text_table

#: dose_scale -> unit name understood by validation
SCALES = {1.0: "M", 1e-3: "mM", 1e-6: "uM", 1e-9: "nM", 1e-12: "pM"}
#: how ``Name`` is split, tried in order: "cell drug replicate" (Sarcoma), then "cell_drug" (CTRP)
NAME_PATTERNS = (
    r"^(?P<cell_line>\S+) (?P<perturbagen>.+?) (?P<replicate>\d+)$",
    r"^(?P<cell_line>\S+) (?P<perturbagen>.+)$",
    r"^(?P<cell_line>[^_]+)_(?P<perturbagen>.+)$",
)


def read(
    path: str | Path,
    *,
    parameters: str | Path | None = None,
    dataset: str | None = None,
    readout: str = S.Readout.UNKNOWN,
    name_pattern: str | None = None,
) -> pd.DataFrame:
    """Read a CurveCurator input table into a response table (one row per non-control cell).

    Parameters
    ----------
    path
        The tab-separated dose-response table.
    parameters
        The parameters TOML (default: the only ``*.toml`` beside ``path``).
    dataset
        Value of ``dataset`` (default: ``[Meta] id`` of the TOML).
    readout
        The files do not name the assay: ``unknown`` unless given.
    name_pattern
        Regular expression with groups ``cell_line``, ``perturbagen`` and optionally ``replicate``
        to split ``Name`` (default: :data:`NAME_PATTERNS`).

    Returns
    -------
    pandas.DataFrame
        Response table; ``source_line`` is the line of the curve in the table, empty cells give rows
        with an empty response (the ledger says "response is missing").
    """
    path = Path(path)
    params_path = Path(parameters) if parameters is not None else _find_toml(path)
    params = _load_toml(params_path)
    experiment = params.get("Experiment", {})
    ids, doses, controls = _design(experiment, params_path)
    unit, factor = _unit(experiment, params_path)
    table = text_table(path, sep="\t")
    require(table, ["Name", *[f"Raw {i}" for i in ids]], path=path, what="CurveCurator")
    names = _split_names(table["Name"], name_pattern)
    values = table[[f"Raw {i}" for i in ids]].apply(pd.to_numeric, errors="coerce")
    control = values[[f"Raw {i}" for i in controls]].mean(axis=1)
    treated = [(i, d) for i, d in zip(ids, doses, strict=True) if i not in controls]
    meta = params.get("Meta", {})
    hours = parse_duration_hours(meta.get("treatment_time", ""))
    occurrence = pd.Series([d for _, d in treated]).groupby([d for _, d in treated]).cumcount() + 1
    repeated_doses = len({d for _, d in treated}) < len(treated)  # "combined" layout: replicates as columns
    frames = []
    for (i, dose), k in zip(treated, occurrence, strict=True):
        raw = table[f"Raw {i}"].str.strip()
        ratio = values[f"Raw {i}"] / control
        frames.append(
            pd.DataFrame(
                {
                    S.CELL_LINE: names["cell_line"],
                    S.PERTURBAGEN: names["perturbagen"],
                    S.REPLICATE: str(k) if repeated_doses else names["replicate"],
                    S.CONCENTRATION: number_text(pd.Series(dose * factor, index=table.index)),
                    S.RESPONSE: number_text(ratio).where(
                        ratio.notna(), raw.where(raw.str.lower() != "nan", "")
                    ),
                    "_line": table.index.to_numpy() + 2,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True).sort_values("_line", kind="stable")
    out[S.DATASET] = dataset or str(meta.get("id", path.stem))
    out[S.PERTURBATION_TYPE] = S.PerturbationType.DRUG.value
    out[S.CONCENTRATION_UNIT] = unit
    out[S.TIME_H] = "" if np.isnan(hours) else number_text(pd.Series([hours])).iloc[0]
    out[S.READOUT] = str(readout)
    out[S.RESPONSE_SCALE] = S.RELATIVE_VIABILITY
    attrs = {"parameters_file": str(params_path), "treatment_time": meta.get("treatment_time")}
    # every cell of a Raw column is a record: the treated ones are rows, the control ones (each row's responses
    # are divided by them) are references, counted here
    attrs[S.RECORDS_FOLDED] = {"control_values_used_as_reference": len(table) * len(controls)}
    return finish(out.drop(columns="_line"), path=path, lines=out["_line"].to_numpy(), attrs=attrs)


def _find_toml(path: Path) -> Path:
    found = sorted(path.parent.glob("*.toml"))
    if len(found) != 1:
        raise InputFileError(
            str(path),
            f"cannot tell which parameters TOML belongs to it ({len(found)} found): pass parameters=",
        )
    return found[0]


def _load_toml(path: Path) -> dict:
    if not path.is_file():
        raise InputFileError(str(path), "file not found")
    try:
        # CurveCurator files quote section names ['Meta'] and use '+inf': both valid TOML
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(str(path), f"not a valid TOML file: {exc}") from exc


def _design(experiment: dict, path: Path) -> tuple[list, list[float], list]:
    ids, doses = experiment.get("experiments"), experiment.get("doses")
    if not isinstance(ids, list) or not isinstance(doses, list) or len(ids) != len(doses) or not ids:
        raise InputFileError(str(path), "[Experiment] needs lists 'experiments' and 'doses' of equal length")
    controls = experiment.get("control_experiment", [])
    controls = controls if isinstance(controls, list) else [controls]
    if not controls or any(c not in ids for c in controls):
        raise InputFileError(str(path), "[Experiment] control_experiment must name experiment id(s)")
    return ids, [float(d) for d in doses], controls


def _unit(experiment: dict, path: Path) -> tuple[str, float]:
    """(unit name, factor applied to the doses) from dose_scale and dose_unit."""
    try:
        scale = float(experiment.get("dose_scale", 1.0))
    except (TypeError, ValueError) as exc:
        raise InputFileError(
            str(path), f"dose_scale {experiment.get('dose_scale')!r} is not a number"
        ) from exc
    if str(experiment.get("dose_unit", "M")) != "M":
        raise InputFileError(
            str(path), f"dose_unit {experiment.get('dose_unit')!r} is not supported (only M)"
        )
    for known, name in SCALES.items():
        if np.isclose(scale, known, rtol=1e-9, atol=0):
            return name, 1.0
    return "M", scale


def _split_names(names: pd.Series, pattern: str | None) -> pd.DataFrame:
    patterns = [pattern] if pattern else list(NAME_PATTERNS)
    out = pd.DataFrame(
        {"cell_line": names.str.strip(), "perturbagen": "", "replicate": ""}, index=names.index
    )
    todo = pd.Series(True, index=names.index)
    for p in patterns:
        parts = names.str.strip().str.extract(re.compile(p))
        hit = todo & parts["cell_line"].notna()
        for column in ("cell_line", "perturbagen", "replicate"):
            if column in parts:
                out.loc[hit, column] = parts.loc[hit, column]
        todo &= ~hit
    # a name repeated in the file (CurveCurator "aggregated" layout) gets replicate numbers 1, 2, ...
    repeated = names.duplicated(keep=False) & (out["replicate"] == "")
    out.loc[repeated, "replicate"] = (names[repeated].groupby(names[repeated]).cumcount() + 1).astype(str)
    return out.astype(object)
