"""Study manifests: many sources of different formats (raw wells and response tables) in one run."""

from __future__ import annotations

import hashlib
import json
import string
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from doseatlas import schemas as S
from doseatlas.cli import app
from doseatlas.errors import ConfigError, InputFileError
from doseatlas.ingest.manifest import apply_source_settings, load_manifest, read_manifest
from doseatlas.io import read_metadata
from doseatlas.normalize import NormalizationOptions, normalize
from doseatlas.pipeline import run_pipeline
from doseatlas.validate import validate_wells
from study import DOSES_UM, THREE_SOURCES, canonical, write_study

from wells import plate

runner = CliRunner()


@pytest.fixture
def study(tmp_path) -> Path:
    return write_study(tmp_path)


def test_three_formats_wells_and_a_response_table_in_one_run(study, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(study), "--out", str(out)])
    assert result.exit_code == 0, result.output
    responses = pd.read_parquet(out / "responses.parquet")
    assert set(responses[S.DATASET]) == {"lab_a", "GDSC1", "GDSCsmall"}
    gdsc = responses[responses[S.DATASET] == "GDSC1"]
    assert (gdsc[S.TIME_H] == 72).all() and gdsc[S.GR].isna().all()  # the default duration; no time zero
    pgx = responses[responses[S.DATASET] == "GDSCsmall"]
    assert (pgx[S.READOUT] == "atp").all() and pgx[S.RELATIVE_VIABILITY].notna().all()
    assert (pgx[S.reason_column(S.GR)] == S.RefusalReason.NOT_PROVIDED).all()
    assert responses[responses[S.DATASET] == "lab_a"][S.GR].notna().all()
    assert responses[S.ROW_ID].is_unique
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert set(metrics[S.DATASET]) == {"lab_a", "GDSC1", "GDSCsmall"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_read"] == summary["rows_used"] + summary["rows_in_ledger"]
    assert summary["rows_read"] == 2 * 15 + 2 * (6 + 16) + 16  # canonical + GDSC raw + PharmacoGx rows
    meta = read_metadata(out / "metrics.parquet")
    files = {Path(i["path"]).name: i["checksum"] for i in meta["inputs"]}
    assert set(files) == {"sources.toml", "lab_a.csv", "gdsc_raw.csv", "raw_long.csv", "sensitivity_info.csv"}
    recorded = meta["parameters"]["manifest"]
    assert recorded["checksum"] == "sha256:" + hashlib.sha256(study.read_bytes()).hexdigest()
    assert recorded["content"] == tomllib.loads(THREE_SOURCES)
    assert [s["dataset"] for s in recorded["sources"]] == [None, "GDSC1", None]
    assert set(responses[S.SOURCE_FILE].map(lambda p: Path(p).name)) == {
        "lab_a.csv",
        "gdsc_raw.csv",
        "raw_long.csv",
    }


def test_a_mixed_list_gives_each_kind_the_tables_it_gets_alone(study):
    tables = read_manifest(load_manifest(study))
    mixed = run_pipeline(tables)
    wells_only = run_pipeline(tables[:2])
    for name in ("responses", "metrics"):
        ours = getattr(mixed, name)
        theirs = getattr(wells_only, name)
        ours = ours[ours[S.DATASET] != "GDSCsmall"].reset_index(drop=True)
        pd.testing.assert_frame_equal(ours[theirs.columns], theirs, check_dtype=False, obj=name)
    assert mixed.summary["rows_read"] == wells_only.summary["rows_read"] + 16
    assert len(mixed.plates) == len(wells_only.plates)  # response-table rows have no plate


def test_doubling_times_of_a_source_apply_to_its_data_set_only(tmp_path):
    for name in ("lab_a", "lab_b"):
        rows = plate(treated={c: 20 + 80 / (1 + c) for c in DOSES_UM}, dataset=name)  # no time-zero reads
        pd.DataFrame(rows).to_csv(tmp_path / f"{name}.csv", index=False)
    (tmp_path / "td.csv").write_text("cell_line,doubling_time_h\nA,24\n")
    (tmp_path / "sources.toml").write_text(
        '[[source]]\npath = "lab_a.csv"\ndataset = "lab_a"\ndoubling_times = "td.csv"\n'
        '[[source]]\npath = "lab_b.csv"\n'
    )
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(tmp_path / "sources.toml"), "--out", str(out)]).exit_code == 0
    responses = pd.read_parquet(out / "responses.parquet").set_index(S.DATASET)
    assert responses.loc["lab_a", S.GR].notna().all()
    assert (responses.loc["lab_a", S.DOUBLING_TIME_H] == 24).all()
    assert (responses.loc["lab_a", S.DOUBLING_TIME_SOURCE] == "lab_a.csv").all()
    assert (responses.loc["lab_b", S.reason_column(S.GR)] == S.RefusalReason.NO_TIME_ZERO).all()


def test_per_data_set_doubling_times_take_precedence_over_the_run_wide_ones():
    rows = plate(dataset="one") + plate(dataset="two")
    clean = validate_wells(pd.DataFrame(rows).assign(source_file="x", source_line=range(len(rows)))).clean
    options = NormalizationOptions(
        doubling_times={"A": 30.0},
        doubling_time_source="lab notes",
        dataset_doubling_times={"one": {"A": 20.0}},
        dataset_doubling_time_sources={"one": "one.csv"},
    )
    out = normalize(clean, options=options).groupby(S.DATASET)
    assert out[S.DOUBLING_TIME_H].unique().to_dict() == {"one": [20.0], "two": [30.0]}
    assert out[S.DOUBLING_TIME_SOURCE].unique().to_dict() == {"one": ["one.csv"], "two": ["lab notes"]}
    with pytest.raises(ConfigError, match="positive"):
        NormalizationOptions(dataset_doubling_times={"one": {"A": -1.0}})


def test_defaults_fill_only_empty_values_and_never_time_zero_reads(tmp_path):
    table = pd.DataFrame(plate(time_zero=[30]))
    table[S.READOUT] = ["", "unknown", *["atp"] * (len(table) - 2)]
    table[S.TIME_H] = ""
    table[S.SEEDING_DENSITY] = "2000"
    table.to_csv(tmp_path / "w.csv", index=False)
    (tmp_path / "m.toml").write_text(
        '[[source]]\npath = "w.csv"\nreadout = "atp"\ntime_h = 72\nseeding_density = 2000.0\n'
    )
    (part,) = load_manifest(tmp_path / "m.toml").parts
    from doseatlas.ingest.manifest import read_source_part

    read = read_source_part(part)
    assert (read[S.READOUT] == "atp").all()
    t0 = read[S.ROLE] == "time_zero"
    assert (read.loc[~t0, S.TIME_H] == "72").all() and (read.loc[t0, S.TIME_H] == "").all()
    assert read.attrs["manifest_defaults"] == {"readout": "atp", "time_h": "72", "seeding_density": "2000"}
    assert apply_source_settings(read, source=part.source).equals(read)  # idempotent


# --------------------------------------------------------------------------- bad input: exit 2, naming the source


def _bad(tmp_path, text: str, *files: str) -> tuple[str, Path]:
    canonical(tmp_path / "lab_a.csv")
    for name in files:
        canonical(tmp_path / name, dataset="lab_a")
    manifest = tmp_path / "sources.toml"
    manifest.write_text(text)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(manifest), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert not out.exists()  # nothing written
    assert "Traceback" not in result.output
    return " ".join(result.output.split()), manifest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[source]]\npath = "lab_a.csv"\nredout = "atp"\n',
            "source 1 (path = 'lab_a.csv'): redout: unknown key",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\n[[source]]\npath = "nope.csv"\n',
            "source 2 (path = 'nope.csv'): file not found",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\nformat = "plate-matrix"\n',
            "source 1 (path = 'lab_a.csv'): format 'plate-matrix' needs plate_map",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\nplate_map = "lab_a.csv"\n',
            "format 'canonical' takes no plate_map",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\nformat = "gdsc-raw"\nmapping = "lab_a.csv"\n',
            "mapping applies to the canonical format",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\nformat = "excel"\n',
            "source 1 (path = 'lab_a.csv'): unknown format 'excel'",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\ndataset = "x"\n[[source]]\npath = "b.csv"\ndataset = "x"\n',
            "source 2 (path = 'b.csv'): dataset 'x' is also the data set of source 1 (path = 'lab_a.csv')",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\n[[source]]\npath = "b.csv"\n',
            "source 2 (path = 'b.csv'): its rows have dataset 'lab_a', as the rows of source 1",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\ndataset = "x"\n[[source]]\npath = "./lab_a.csv"\ndataset = "y"\n',
            "is already read by source 1 (path = 'lab_a.csv')",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\nreadout = "srb"\n',
            "source 1 (path = 'lab_a.csv'): readout = 'srb' conflicts with the source's own readout 'atp'",
        ),
        ('[[source]]\npath = "lab_a.csv"\ntime_h = 96\n', "time_h = '96' conflicts"),
        (
            '[[source]]\npath = "lab_a.csv"\nconcentration_unit = "nM"\n',
            "concentration_unit = 'nM' conflicts",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\ndoubling_times = "lab_a.csv"\n',
            "doubling_times apply to the source's data set",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\noptions = { sep = ";" }\n',
            "options.sep: not an option of the 'canonical' reader",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\nformat = "gdsc-raw"\noptions = { dataset = "x" }\n',
            "options.dataset: not an option",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\ntime_h = -1\n',
            "source 1 (path = 'lab_a.csv'): time_h: Input should be greater than or equal to 0",
        ),
        (
            '[[source]]\npath = "lab_a.csv"\nreadout = "luminescence"\n',
            "readout: 'luminescence' is not one of",
        ),
        ("[[source]]\npath = 3\n", "source 1: path: Input should be a valid string"),
        ("source = []\n", "source: List should have at least 1 item"),
        (
            'identities = "ids.csv"\n[[source]]\npath = "lab_a.csv"\n',
            "identities = 'ids.csv': file not found",
        ),
        ('[[source]\npath = "lab_a.csv"\n', "not a valid TOML file"),
    ],
)
def test_bad_manifest_exits_2_with_one_message_naming_manifest_and_source(tmp_path, text, expected):
    message, manifest = _bad(tmp_path, text, "b.csv")
    assert expected in message
    assert str(manifest) in message.replace(" ", "") or manifest.name in message


def test_a_source_that_fails_to_read_exits_2_naming_file_and_source_and_writes_nothing(tmp_path):
    canonical(tmp_path / "broken.csv", dataset="other", drop=(S.SIGNAL,))
    message, _ = _bad(tmp_path, '[[source]]\npath = "lab_a.csv"\n[[source]]\npath = "broken.csv"\n')
    assert (
        "broken.csv" in message
        and "column 'signal'" in message
        and "source 2 (path = 'broken.csv')" in message
    )


def test_a_manifest_is_the_only_input_and_takes_no_single_file_options(study, tmp_path):
    for extra in (["--format", "gdsc-raw"], [str(tmp_path / "lab_a.csv")]):
        result = runner.invoke(app, ["run", str(study), *extra, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2, result.output
        assert "manifest" in result.output and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the parser never crashes

_KEYS = st.sampled_from(
    [
        "path",
        "format",
        "dataset",
        "readout",
        "time_h",
        "seeding_density",
        "mapping",
        "plate_map",
        "options",
        "concentration_unit",
        "perturbation_type",
        "doubling_times",
        "glob",
        "identities",
        "cellosaurus",
        "source",
        "redout",
    ]
)
_SCALARS = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "._-/ µ", max_size=12),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["lab_a.csv", "atp", "gdsc-raw", "plate-matrix", "uM", "drug", ".", ""]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=6,
)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else ("inf" if value > 0 else "-inf")
            if abs(value) == float("inf")
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    top=st.dictionaries(_KEYS, _VALUES, max_size=2),
    sources=st.lists(st.dictionaries(_KEYS, _VALUES, max_size=5), max_size=3),
)
def test_any_manifest_document_loads_or_fails_with_one_doseatlas_error(tmp_path, top, sources):
    canonical(tmp_path / "lab_a.csv") if not (tmp_path / "lab_a.csv").exists() else None
    top = {k: v for k, v in top.items() if k != "source"}
    text = "".join(f"{k} = {_toml_value(v)}\n" for k, v in top.items())
    for source in sources:
        text += "[[source]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in source.items())
    manifest = tmp_path / "m.toml"
    manifest.write_text(text, encoding="utf-8")
    try:
        loaded = load_manifest(manifest)
    except (InputFileError, ConfigError) as exc:
        assert str(exc)
        return
    assert loaded.sources and all(p.path.is_file() for p in loaded.parts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=200))
def test_arbitrary_bytes_as_a_manifest_fail_cleanly(tmp_path, blob):
    manifest = tmp_path / "m.toml"
    manifest.write_bytes(blob)
    with pytest.raises((InputFileError, ConfigError)):
        load_manifest(manifest)


def test_row_ids_number_every_row_of_every_source_in_manifest_order(study):
    tables = read_manifest(load_manifest(study))
    result = run_pipeline(tables)
    ids = np.sort(np.concatenate([result.responses[S.ROW_ID].to_numpy()]))
    assert ids.max() < sum(map(len, tables)) and len(np.unique(ids)) == len(ids)


def test_directory_sources_a_parquet_data_set_and_a_folder_of_files(tmp_path):
    from study import gdsc_raw

    folder = tmp_path / "lab" / "dataset=lab_x"
    folder.mkdir(parents=True)
    table = pd.read_csv(canonical(tmp_path / "x.csv"), dtype=str, keep_default_na=False)
    table.drop(columns=[S.DATASET]).to_parquet(folder / "part0.parquet")
    (tmp_path / "gdsc").mkdir()
    gdsc_raw(tmp_path / "gdsc" / "screen1.csv")
    gdsc_raw(tmp_path / "gdsc" / "screen2.csv")
    (tmp_path / "gdsc" / "notes.md").write_text("not a screen")
    (tmp_path / "m.toml").write_text(
        '[[source]]\npath = "lab"\n'
        '[[source]]\npath = "gdsc"\nformat = "gdsc-raw"\nglob = "*.csv"\ntime_h = 72\n'
    )
    manifest = load_manifest(tmp_path / "m.toml")
    assert [p.path.name for p in manifest.parts] == ["part0.parquet", "screen1.csv", "screen2.csv"]
    tables = read_manifest(manifest)
    assert (tables[0][S.DATASET] == "lab_x").all() and (tables[1][S.DATASET] == "GDSC").all()


def test_a_bad_doubling_time_table_names_its_line_and_the_source(tmp_path):
    canonical(tmp_path / "lab_a.csv")
    manifest = tmp_path / "m.toml"
    manifest.write_text('[[source]]\npath = "lab_a.csv"\ndataset = "a"\ndoubling_times = "td.csv"\n')
    for text, expected in (
        (
            "cell_line,doubling_time_h\nA,24\nB,-3\n",
            "line 3, column 'doubling_time_h': doubling time '-3' is not",
        ),
        (
            "cell_line,doubling_time_h\nA,24\nA,30\n",
            "line 2, column 'doubling_time_h': doubling time '24' contra",
        ),
        ("cell_line,hours\nA,24\n", "column 'doubling_time_h': needs columns"),
    ):
        (tmp_path / "td.csv").write_text(text)
        with pytest.raises(InputFileError, match="source 1") as err:
            load_manifest(manifest)
        assert expected in str(err.value) and "td.csv" in str(err.value)


@pytest.mark.external
@pytest.mark.slow  # 30 s on 2 shared cores
def test_real_sources_gdsc_raw_plates_pharmacogx_and_the_example_in_one_run(tmp_path):
    """Real data: 12 GDSC raw plates (gdsc-raw, wells), GDSCsmall (pharmacogx, responses) and the bundled
    example (canonical wells), in one manifest."""
    from doseatlas.cli import example_path

    from conftest import external_dir

    gdsc = pd.read_parquet(external_dir("gdsc_example_gdscIC50") / "gdsc_example_raw.parquet")
    gdsc[gdsc["BARCODE"].isin(sorted(gdsc["BARCODE"].unique())[:12])].to_parquet(tmp_path / "gdsc12.parquet")
    pgx = external_dir("pharmacogx_small_psets") / "GDSCsmall"
    (tmp_path / "sources.toml").write_text(
        f'[[source]]\npath = "{example_path()}"\n'
        '[[source]]\npath = "gdsc12.parquet"\nformat = "gdsc-raw"\ndataset = "GDSC1"\n'
        f'[[source]]\npath = "{pgx / "raw_long.csv"}"\nformat = "pharmacogx"\n'
        f'options = {{ info = "{pgx / "sensitivity_info.csv"}" }}\n'
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(tmp_path / "sources.toml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["datasets"] == ["GDSC1", "GDSCsmall", "crispr_ko", "lab_a", "lab_b"]
    assert (
        summary["rows_read"]
        == 4122 + int(gdsc["BARCODE"].isin(sorted(gdsc["BARCODE"].unique())[:12]).sum()) + 8748
    )
    assert summary["rows_read"] == summary["rows_used"] + summary["rows_in_ledger"]
    metrics = pd.read_parquet(out / "metrics.parquet")
    estimated = metrics[metrics[S.STATUS] == "estimated"].groupby(S.DATASET).size()
    assert set(estimated.index) == set(summary["datasets"])
