"""The readout registry: what each assay chemistry measures and which metrics it supports.

Every readout (:class:`doseatlas.schemas.Readout`) is declared once here (:data:`READOUTS`): its name, the aliases
sources use for it, what its signal measures, what it counts (live cells, metabolic activity, biomass, dead
cells), the response scales it supports, the scales whose values carry a caveat, and a citation.
``docs/readouts.md`` is rendered from these declarations (``python scripts/make_docs.py``; a test checks it).

What the run does with it (pure, vectorized):

* :func:`canonical_readouts` turns the aliases found in sources (``CellTiter-Glo``, ``alamarBlue``, ``Syto60``)
  into readout names (validation; unknown names are left as they are and reach the ledger);
* :func:`refuse_unsupported` refuses the metric rows whose scale the readout does not support
  (``readout_not_supported``: a dead-cell dye read as viability has no IC50);
* :func:`caveat_rows` marks the rows whose scale the readout supports with a caveat (the ``readout_caveat``
  flag: GR and percent growth of a metabolic readout assume a signal proportional to cell number).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from doseatlas import schemas as S

R = S.Readout
#: every response scale a metric is read on (the DIP scale included)
ALL_SCALES: tuple[str, ...] = S.FIT_SCALES
GROWTH_SCALES: tuple[str, ...] = (S.PERCENT_GROWTH, S.GR)
RIQ = (
    "Riss TL, Moravec RA, Niles AL et al. Cell Viability Assays. Assay Guidance Manual, NCBI Bookshelf NBK144065 "
    "(2013, updated 2016)"
)


class Counts(StrEnum):
    """What a readout's signal counts."""

    LIVE_CELLS = "live_cells"  # the number of cells (live cells, or all attached cells of a fixed plate)
    METABOLIC_ACTIVITY = (
        "metabolic_activity"  # activity of live cells: per-cell signal may change under a drug
    )
    BIOMASS = "biomass"  # protein or DNA mass of the cells fixed on the plate (dead attached cells included)
    DEAD_CELLS = "dead_cells"  # cells whose membrane is compromised: rises as cells die
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ReadoutSpec:
    """Declaration of one readout.

    Attributes
    ----------
    name
        The readout value (``readout`` column).
    label
        Short human label.
    measures
        What the signal measures, in words.
    counts
        What it counts (:class:`Counts`).
    aliases
        Names sources use for it (matched case-insensitively, spaces and ``_`` as ``-``).
    supports
        Response scales its signal may be read on (metrics on other scales are refused,
        ``readout_not_supported``).
    caveat_scales, caveat
        Supported scales whose values carry the ``readout_caveat`` flag, and why.
    citation
        Where the chemistry is described.
    """

    name: str
    label: str
    measures: str
    counts: Counts
    citation: str
    aliases: tuple[str, ...] = ()
    supports: tuple[str, ...] = ALL_SCALES
    caveat_scales: tuple[str, ...] = ()
    caveat: str = ""


_METABOLIC_CAVEAT = (
    "GR values and percent growth compare the signal with the time-zero read as if it were a cell count; the "
    "signal per live cell changes with density, cell size and drugs acting on metabolism, so growth-based values "
    "from this readout are approximate (relative viability compares wells read at the same time)"
)

READOUTS: tuple[ReadoutSpec, ...] = (
    ReadoutSpec(
        R.ATP,
        "ATP luminescence",
        "ATP of the cells in the well (luciferase light): metabolically active cells",
        Counts.METABOLIC_ACTIVITY,
        "Crouch SPM et al. J Immunol Methods 160:81-88 (1993); " + RIQ,
        aliases=("celltiter-glo", "ctg", "glo", "celltiter-glo 2.0", "atplite", "viacount-atp"),
        caveat_scales=GROWTH_SCALES,
        caveat=_METABOLIC_CAVEAT + "; drugs that lower ATP per cell without killing read as potent",
    ),
    ReadoutSpec(
        R.RESAZURIN,
        "resazurin reduction",
        "reduction of resazurin to fluorescent resorufin: the reducing capacity of live cells",
        Counts.METABOLIC_ACTIVITY,
        "O'Brien J et al. Eur J Biochem 267:5421-5426 (2000)",
        aliases=("alamarblue", "alamar-blue", "celltiter-blue", "prestoblue", "rez"),
        caveat_scales=GROWTH_SCALES,
        caveat=_METABOLIC_CAVEAT + "; the signal saturates at high cell density",
    ),
    ReadoutSpec(
        R.MTS,
        "tetrazolium reduction",
        "reduction of a tetrazolium salt (MTS, MTT, XTT, WST) to formazan: the reducing capacity of live cells",
        Counts.METABOLIC_ACTIVITY,
        "Cory AH et al. Cancer Commun 3:207-212 (1991); " + RIQ,
        aliases=("mtt", "xtt", "wst-1", "wst-8", "cck-8", "celltiter-96"),
        caveat_scales=GROWTH_SCALES,
        caveat=_METABOLIC_CAVEAT,
    ),
    ReadoutSpec(
        R.SRB,
        "sulforhodamine B",
        "protein of the cells fixed on the plate: biomass (dead cells still attached at fixation count)",
        Counts.BIOMASS,
        "Skehan P et al. J Natl Cancer Inst 82:1107-1112 (1990)",
        aliases=("sulforhodamine-b", "sulforhodamine"),
    ),
    ReadoutSpec(
        R.NUCLEI_COUNT,
        "nuclei count (imaging)",
        "nuclei counted on images (e.g. Hoechst, live-cell imaging): the number of cells",
        Counts.LIVE_CELLS,
        "Hafner M et al. Nat Methods 13:521-527 (2016); Harris LA et al. Nat Methods 13:497-500 (2016)",
        aliases=("nuclei", "cell-count", "cell-number", "hoechst-count", "imaging"),
    ),
    ReadoutSpec(
        R.DNA_DYE,
        "DNA stain of all cells",
        "DNA of the cells in the well stained after fixation or lysis (Syto60, CyQUANT, Hoechst intensity): the "
        "number of cells (DNA content)",
        Counts.BIOMASS,
        "Garnett MJ et al. Nature 483:570-575 (2012) (Syto60 in GDSC); Jones LJ et al. J Immunol Methods "
        "254:85-98 (2001) (CyQUANT)",
        aliases=("syto60", "syto-60", "cyquant", "dna-stain", "hoechst"),
    ),
    ReadoutSpec(
        R.DEAD_CELL_DYE,
        "dead-cell dye",
        "a cell-impermeant DNA dye read on the living culture (CellTox Green, SYTOX Green, propidium iodide, "
        "ethidium homodimer): cells whose membrane is compromised; the signal rises as cells die",
        Counts.DEAD_CELLS,
        RIQ,
        aliases=(
            "celltox-green",
            "celltox",
            "sytox-green",
            "sytox",
            "propidium-iodide",
            "ethidium-homodimer",
        ),
        supports=(),
    ),
    ReadoutSpec(
        R.OTHER,
        "other",
        "a readout outside this list (what it measures is not known to doseatlas)",
        Counts.UNKNOWN,
        "-",
    ),
    ReadoutSpec(
        R.UNKNOWN,
        "not stated",
        "the source does not say which readout it used (recorded, never guessed)",
        Counts.UNKNOWN,
        "-",
    ),
)
REGISTRY: dict[str, ReadoutSpec] = {r.name: r for r in READOUTS}


def _alias_key(text: pd.Series) -> pd.Series:
    return text.astype(str).str.strip().str.lower().str.replace(r"[\s_]+", "-", regex=True)


def alias_map() -> dict[str, str]:
    """Every alias and readout name (as :func:`_alias_key` spells it) -> readout name."""
    out: dict[str, str] = {}
    for spec in READOUTS:
        for name in (spec.name, *spec.aliases):
            out[_alias_key(pd.Series([name])).iloc[0]] = str(spec.name)
    return out


ALIASES: dict[str, str] = alias_map()


def canonical_readouts(text: pd.Series) -> pd.Series:
    """Readout names for the texts sources use (``CellTiter-Glo`` -> ``atp``); texts that are no readout's name
    or alias are returned as they are (validation sends them to the ledger as ``unknown_readout``)."""
    codes, uniques = pd.factorize(text, use_na_sentinel=False)  # looked up once per distinct text
    names = pd.Series(uniques, dtype=object)
    mapped = _alias_key(names).map(ALIASES)
    mapped = mapped.where(mapped.notna() & names.notna() & names.astype(str).str.strip().ne(""), names)
    return pd.Series(mapped.to_numpy(dtype=object)[codes], index=text.index, dtype=object)


def _metric_scale(metrics: pd.DataFrame) -> np.ndarray:
    """The response scale of each metric row (from the metric registry; None for an unknown metric)."""
    from doseatlas.metrics.registry import REGISTRY as METRIC_REGISTRY

    scales = {name: m.scale for name, m in METRIC_REGISTRY.items()}
    return metrics[S.METRIC].map(scales).to_numpy(dtype=object)


def _pairs(attribute: str) -> set[tuple[str, str]]:
    return {(r.name, scale) for r in READOUTS for scale in getattr(r, attribute)}


def _per_row(metrics: pd.DataFrame, rule) -> np.ndarray:
    """``rule(readout, scale)`` (a bool; scale None for a metric the registry does not know) for every row,
    evaluated once per distinct readout and metric name (rows with a missing readout: False)."""
    from doseatlas.metrics.registry import REGISTRY as METRIC_REGISTRY

    readout, readouts = pd.factorize(metrics[S.READOUT])
    metric, names = pd.factorize(metrics[S.METRIC])
    scales = [getattr(METRIC_REGISTRY.get(name), "scale", None) for name in names]
    table = np.array(
        [[bool(rule(r, scale)) for scale in scales] + [False] for r in readouts]
        + [[False] * (len(names) + 1)]
    )
    return table[readout, metric]  # (code -1, a missing value: the last row or column, False)


def _on(metrics: pd.DataFrame, pairs: set[tuple[str, str]]) -> np.ndarray:
    """True for rows whose (readout, scale of the metric) is one of ``pairs``."""
    if not len(metrics) or not pairs:
        return np.zeros(len(metrics), dtype=bool)
    return _per_row(metrics, lambda readout, scale: (readout, scale) in pairs)


def unsupported_rows(metrics: pd.DataFrame) -> np.ndarray:
    """True for metric rows of a declared readout whose metric's scale that readout does not support."""
    if not len(metrics):
        return np.zeros(0, dtype=bool)
    supported = _pairs("supports")
    return _per_row(
        metrics,
        lambda readout, scale: (
            readout in REGISTRY and scale is not None and (readout, scale) not in supported
        ),
    )


def caveat_rows(metrics: pd.DataFrame) -> np.ndarray:
    """True for metric rows whose scale their readout supports with a caveat (``readout_caveat``)."""
    return _on(metrics, _pairs("caveat_scales"))


def refuse_unsupported(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with the rows of :func:`unsupported_rows` refused (``readout_not_supported``: value and bounds
    emptied); other rows unchanged. Works on any table with ``readout``, ``metric``, ``status``, ``value``,
    ``lower``, ``upper`` and ``reason`` (metrics, converted)."""
    bad = unsupported_rows(metrics)
    if not bad.any():
        return metrics
    out = metrics.copy(deep=False)  # the columns changed are replaced, the others shared
    for column in (S.VALUE, S.LOWER, S.UPPER):
        if column in out:
            out[column] = out[column].mask(bad)
    out[S.STATUS] = out[S.STATUS].mask(bad, S.MetricStatus.REFUSED.value)
    reason = S.RefusalReason.READOUT_NOT_SUPPORTED.value
    if S.REASON in out:
        out[S.REASON] = out[S.REASON].mask(bad, reason)
    else:
        out.loc[bad, S.REASON] = reason
    return out


def render_markdown() -> str:
    """``docs/readouts.md``, generated from :data:`READOUTS`."""
    from doseatlas.metrics.registry import METRICS

    lines = [
        "# Readouts",
        "",
        "<!-- generated by `python scripts/make_docs.py` from src/doseatlas/readouts.py; do not edit -->",
        "",
        "What each readout's signal measures and which metrics it supports. A metric on a response scale its "
        "readout does not support is refused with `readout_not_supported`; one on a scale supported with a "
        "caveat carries the `readout_caveat` flag (docs/metrics.md#flags). Aliases are matched without regard "
        "to case, spaces or `_` (a source's `CellTiter-Glo` is `atp`). Interference of a compound with the "
        "readout itself (compound-only wells) and disagreement between readouts are in docs/plates.md.",
        "",
        "| readout | counts | measures | aliases |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{r.name}` | {r.counts.value} | {r.measures} | {', '.join(r.aliases) or '-'} |" for r in READOUTS
    ]
    for r in READOUTS:
        supported = [m.name for m in METRICS if m.scale in r.supports]
        refused = [m.name for m in METRICS if m.scale not in r.supports]
        caveat = [m.name for m in METRICS if m.scale in r.caveat_scales]
        lines += [
            "",
            f"## `{r.name}`: {r.label}",
            "",
            f"- **Measures:** {r.measures}",
            f"- **Counts:** {r.counts.value}",
            f"- **Supports:** {', '.join(f'`{m}`' for m in supported) or 'no metric'}",
        ]
        if refused:
            lines.append(f"- **Refused (`readout_not_supported`):** {', '.join(f'`{m}`' for m in refused)}")
        if caveat:
            lines.append(
                f"- **Caveat (`readout_caveat`) on:** {', '.join(f'`{m}`' for m in caveat)}: {r.caveat}"
            )
        lines.append(f"- **Citation:** {r.citation}")
    return "\n".join(lines) + "\n"
