"""A small study of three sources in three formats (raw wells, GDSC raw, a PharmacoGx response table)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wells import plate

DOSES_UM = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def canonical(path: Path, *, dataset: str = "lab_a", drop: tuple[str, ...] = (), **common) -> Path:
    """Two cell lines of hand-made plates (time-zero reads on their own plates) as a canonical CSV."""
    rows = []
    for line, ec50 in (("A", 0.5), ("B", 5.0)):
        treated = {c: 10 + 90 / (1 + c / ec50) for c in DOSES_UM}
        rows += plate(
            treated=treated,
            time_zero=[30, 31],
            plate_id=f"p{line}",
            cell_line=line,
            dataset=dataset,
            **common,
        )
    pd.DataFrame(rows).drop(columns=list(drop)).to_csv(path, index=False)
    return path


def gdsc_raw(path: Path) -> Path:
    """A small file in the GDSC raw layout (one 1536-well plate per cell line, two drugs)."""
    rows = []
    for barcode, line, ec50 in ((101, "C", 0.3), (102, "D", 3.0)):
        position = 0

        def add(tag, signal, drug="", conc="", *, barcode=barcode, line=line):
            nonlocal position
            position += 1
            rows.append(
                {
                    "BARCODE": barcode,
                    "POSITION": position,
                    "TAG": tag,
                    "CELL_LINE_NAME": line,
                    "DRUG_ID": drug,
                    "CONC": conc,
                    "INTENSITY": signal,
                    "ASSAY": "Glo",
                }
            )

        for v in (1000, 1010, 990, 1005):
            add("NC-1", v)
        for v in (50, 52):
            add("B", v)
        for drug, shift in ((1003, 1.0), (1004, 10.0)):
            for i, c in enumerate(DOSES_UM):
                add(f"L1-D{i + 1}-S", 50 + 950 / (1 + c / (ec50 * shift)), drug, c)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def pharmacogx(folder: Path) -> Path:
    """A PharmacoGx export (response table, relative viability in percent) of two experiments."""
    folder.mkdir()
    raw, info = [], []
    for exp, (line, drug, ec50) in enumerate((("E", "dabrafenib", 0.2), ("F", "dabrafenib", 2.0))):
        info.append({"exp_id": f"e{exp}", "sampleid": line, "treatmentid": drug, "duration_h": 72})
        raw += [
            {"exp_id": f"e{exp}", "dose_index": i, "dose_uM": c, "viability_pct": 100 / (1 + c / ec50)}
            for i, c in enumerate(DOSES_UM)
        ]
    pd.DataFrame(raw).to_csv(folder / "raw_long.csv", index=False)
    pd.DataFrame(info).to_csv(folder / "sensitivity_info.csv", index=False)
    return folder / "raw_long.csv"


THREE_SOURCES = """
[[source]]
path = "lab_a.csv"
format = "canonical"

[[source]]
path = "gdsc_raw.csv"
format = "gdsc-raw"
dataset = "GDSC1"
time_h = 72

[[source]]
path = "GDSCsmall/raw_long.csv"
format = "pharmacogx"
readout = "atp"
options = { info = "GDSCsmall/sensitivity_info.csv" }
"""


def write_study(folder: Path) -> Path:
    """The three sources and their manifest in ``folder``; returns the manifest."""
    canonical(folder / "lab_a.csv")
    gdsc_raw(folder / "gdsc_raw.csv")
    pharmacogx(folder / "GDSCsmall")
    manifest = folder / "sources.toml"
    manifest.write_text(THREE_SOURCES)
    return manifest
