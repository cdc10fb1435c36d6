"""A well-sized output table that stays on disk: the responses of a partitioned run (``doseatlas run --engine
dask``), written to ``responses.parquet`` row group by row group instead of being assembled in memory.

Each bucket of the run keeps its rows in pieces of at most :data:`PIECE_ROWS` rows, each bucket's pieces in the
order of the output table (:data:`doseatlas.pipeline.TABLE_ORDER`). :meth:`StreamedTable.frames` merges the
buckets' pieces (a k-way merge that holds at most one piece per bucket), applies the run's identities to each
merged chunk (a row-by-row lookup) and gives every chunk the column types the whole table would have had, so
that the file written equals the in-memory run's row for row, with the same schema.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from doseatlas import schemas as S
from doseatlas.io import read_piece, write_piece

#: rows of one spilled piece (the merge holds at most one piece per bucket at a time)
PIECE_ROWS = 50_000
#: rows the merge holds at most over all buckets: with many buckets, pieces are smaller (:func:`piece_rows`), so
#: that writing the table takes memory bounded by this, not by the number of buckets
MERGE_ROWS = 400_000
#: rows of a piece at the least, however many buckets
MIN_PIECE_ROWS = 1_000
#: the columns that order the rows of the streamed table (its key in ``TABLE_ORDER``)
ORDER = (S.SOURCE_FILE, S.SOURCE_LINE, S.ROW_ID)


def piece_rows(n_buckets: int) -> int:
    """Rows of a piece when a table is kept in ``n_buckets`` buckets: :data:`PIECE_ROWS`, fewer when the buckets'
    pieces together would exceed :data:`MERGE_ROWS` (not fewer than :data:`MIN_PIECE_ROWS`)."""
    return min(PIECE_ROWS, max(MIN_PIECE_ROWS, MERGE_ROWS // max(n_buckets, 1)))


def write_pieces(
    table: pd.DataFrame, directory: Path, bucket: int, *, n_buckets: int = 1, name: str = "stream"
) -> list[Path]:
    """Spill ``table`` (already in output order) in pieces of at most :func:`piece_rows` rows (``n_buckets``:
    the buckets the table is kept in; ``name``: the table's, in the file names)."""
    paths, rows = [], piece_rows(n_buckets)
    for i, start in enumerate(range(0, max(len(table), 1), rows)):
        path = directory / f"{name}-{bucket:05d}-{i:06d}.pkl"
        write_piece(table.iloc[start : start + rows], path)
        paths.append(path)
    return paths


@dataclass
class StreamedTable:
    """A table kept on disk in sorted pieces per bucket; ``prepare`` turns a merged chunk into output rows;
    ``files``: the source files of its rows; ``distinct_on``: the columns that decide what ``prepare`` makes of
    a row (it changes only these and adds columns: one row per distinct combination shows the types); ``counts`` (optional):
    rows per data set, response scale and outcome
    (:func:`doseatlas.report_data.response_counts` of the whole table, the report's). ``order``: the columns
    that order the rows (the table's key in ``TABLE_ORDER``); ``ranks``: the rank of every value of its text
    columns among the run's (:func:`value_ranks`; default: the responses' order, source files ranked by
    ``files``)."""

    buckets: list[list[Path]]
    n_rows: int
    prepare: Callable[[pd.DataFrame], pd.DataFrame]
    files: list[str] = field(default_factory=list)
    distinct_on: tuple[str, ...] = ()
    counts: pd.DataFrame | None = None
    order: tuple[str, ...] = ORDER
    ranks: dict[str, pd.Index] | None = None
    report_parts: list | None = None  # report_data.ReportData of each bucket (the metrics of a streamed run)
    _keep: Any = field(default=None, repr=False)  # the temporary directory holding the pieces
    _found_types: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.n_rows

    @property
    def empty(self) -> bool:
        return self.n_rows == 0

    def _pieces(self) -> Iterator[pd.DataFrame]:
        for paths in self.buckets:
            for path in paths:
                yield read_piece(path)

    def frames(self) -> Iterator[pd.DataFrame]:
        """The output rows in order, chunk by chunk, with the column types of the whole table."""
        dtypes, text = self._types()
        for chunk in _merged(self.buckets, self._key_of):
            out = self.prepare(chunk)
            yield _typed(out, dtypes, text)

    def _key_of(self, table: pd.DataFrame) -> list[np.ndarray]:
        if self.ranks is None:
            return list(_keys(table, {name: r for r, name in enumerate(sorted(set(self.files)))}))
        return rank_keys(table, self.order, self.ranks)

    def _types(self) -> tuple[pd.Series, set[str]]:
        """The column types of the whole table: those of concatenating every piece, and the object columns
        holding text anywhere (made pandas' string type, as :func:`doseatlas.pipeline.text_dtypes` does);
        found in one pass over the pieces, the first time they are asked for."""
        if self._found_types is None:
            self._found_types = self._scan_types()
        return self._found_types

    def _scan_types(self) -> tuple[pd.Series, set[str]]:
        heads, first, text = [], None, set()
        for piece in self._pieces():
            by = [c for c in self.distinct_on if c in piece]
            out = self.prepare(piece.drop_duplicates(by) if by else piece)
            first = out.iloc[:0] if first is None else first
            if len(out):  # as the in-memory run concatenates: empty pieces left out (all empty: the first)
                heads.append(out.iloc[:0])
            for column in out.columns[out.dtypes.eq(object)]:
                kept = column in piece and column not in by  # unchanged by prepare: read on every row
                values = piece[column] if kept else out[column]
                if values.notna().any() and pd.api.types.infer_dtype(values, skipna=True) == "string":
                    text.add(column)
        return pd.concat(heads or [first], ignore_index=True).dtypes, text

    def to_frame(self) -> pd.DataFrame:
        """The whole table in memory."""
        frames = list(self.frames())
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def rows_where(self, keep: Callable[[pd.DataFrame], pd.Series]) -> pd.DataFrame:
        """The output rows for which ``keep`` is true (e.g. those of the curves a report draws)."""
        dtypes, text = self._types()
        found = [_typed(out[keep(out)], dtypes, text) for out in map(self.prepare, self._pieces())]
        return pd.concat(found, ignore_index=True).sort_values(
            list(self.order), kind="stable", ignore_index=True
        )


def _typed(table: pd.DataFrame, dtypes: pd.Series, text: set[str]) -> pd.DataFrame:
    string = pd.StringDtype(na_value=np.nan)
    wanted = {c: string if c in text else dtypes[c] for c in table.columns if c in dtypes.index}
    changed = {c: t for c, t in wanted.items() if table[c].dtype != t}
    return table.astype(changed) if changed else table.reset_index(drop=True)


def _keys(table: pd.DataFrame, files: dict[str, int]) -> tuple[np.ndarray, ...]:
    """The order of ``table``'s rows as three numeric arrays (file rank, line, row id; missing ones last)."""
    rank = table[S.SOURCE_FILE].map(files).astype(float).fillna(np.inf).to_numpy(float)
    line = pd.to_numeric(table[S.SOURCE_LINE], errors="coerce").astype(float).fillna(np.inf).to_numpy(float)
    return rank, line, table[S.ROW_ID].to_numpy(float)


def value_ranks(values: list[Any]) -> pd.Index:
    """The distinct non-missing values of a text column among ``values`` (every bucket's) in the order of
    ``pd.factorize(sort=True)``, as :func:`doseatlas.pipeline.sort_table` sorts (missing: last): a value's
    position is its rank."""
    distinct = pd.unique(pd.Series(values, dtype=object).dropna())
    _, uniques = pd.factorize(distinct, sort=True)
    return pd.Index(np.asarray(uniques, dtype=object), dtype=object)


def rank_keys(table: pd.DataFrame, order: tuple[str, ...], ranks: dict[str, pd.Index]) -> list[np.ndarray]:
    """The order of ``table``'s rows as numeric arrays: per text column (in ``ranks``) its values' ranks
    (missing last), per number column (missing last) whether it is missing, then its value."""
    keys = []
    for column in order:
        if column not in table:
            continue
        if column in ranks:
            rank = ranks[column].get_indexer(table[column].to_numpy(dtype=object)).astype(float)
            keys.append(np.where(rank < 0, np.inf, rank))
            continue
        values = table[column].to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(values)
        keys += [missing.astype(float), np.where(missing, 0.0, values)]
    return keys


def _at_most(keys: list[np.ndarray], bound: list[float]) -> np.ndarray:
    """Rows whose keys are, in lexicographic order, at most ``bound``."""
    out = np.ones(len(keys[0]), dtype=bool) if keys else np.ones(0, dtype=bool)
    for key, limit in zip(keys[::-1], bound[::-1], strict=True):
        out = (key < limit) | ((key == limit) & out)
    return out


def _merged(
    buckets: list[list[Path]], key_of: Callable[[pd.DataFrame], list[np.ndarray]]
) -> Iterator[pd.DataFrame]:
    """The rows of every bucket in the output order, one piece per bucket held at a time (``key_of``: the
    order of a table's rows as numeric arrays, computed once per piece). A chunk holds every buffered row up to
    the smallest last key among the buckets that have pieces left."""
    queues = [list(paths) for paths in buckets]
    buffers: list[tuple[pd.DataFrame, np.ndarray] | None] = [None] * len(buckets)
    first, yielded = None, False
    while True:
        for i, queue in enumerate(queues):
            while (buffers[i] is None or not len(buffers[i][0])) and queue:
                piece = read_piece(queue.pop(0))
                first = piece.iloc[:0] if first is None else first
                keys = key_of(piece)
                buffers[i] = (piece, np.array(keys, dtype=float).reshape(len(keys), len(piece)))
        live = [i for i, b in enumerate(buffers) if b is not None and len(b[0])]
        if not live:
            if not yielded and first is not None:  # an empty table: one empty chunk (the first piece's)
                yield first.reset_index(drop=True)
            return
        pending = [i for i in live if queues[i]]
        bound = min((tuple(buffers[i][1][:, -1]) for i in pending), default=None)
        frames, keys = [], []
        for i in live:
            table, key = buffers[i]
            mask = np.ones(len(table), bool) if bound is None else _at_most(list(key), list(bound))
            frames.append(table[mask])
            keys.append(key[:, mask])
            buffers[i] = (table[~mask], key[:, ~mask])
        chunk = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
        key = np.concatenate(keys, axis=1)
        yielded = True
        yield chunk.take(np.lexsort(key[::-1]) if len(key) else np.arange(len(chunk))).reset_index(drop=True)


def keep_directory(parent: str | Path | None) -> tempfile.TemporaryDirectory:
    """A temporary directory for the pieces of streamed tables (removed with the run result that holds it)."""
    return tempfile.TemporaryDirectory(prefix="doseatlas-stream-", dir=parent)


def write_streamed(
    table: StreamedTable, path: Path, *, meta: dict[str, Any], with_units: Callable, key: bytes
) -> None:
    """Write a streamed table as one Parquet file, a row group per merged chunk, with the schema and metadata
    :func:`doseatlas.io.write_table` gives the whole table."""
    from doseatlas.io import dictionary_columns

    document = json.dumps({**meta, "table": path.stem, "n_rows": table.n_rows}, default=str).encode()
    writer, schema = None, None
    try:
        for chunk in table.frames():
            arrow = pa.Table.from_pandas(chunk, preserve_index=False, schema=schema)
            if writer is None:
                arrow = with_units(arrow, chunk.columns)
                schema = arrow.schema.with_metadata({**(arrow.schema.metadata or {}), key: document})
                writer = pq.ParquetWriter(path, schema, use_dictionary=dictionary_columns(schema))
            writer.write_table(pa.Table.from_arrays(arrow.columns, schema=schema))
    finally:
        if writer is not None:
            writer.close()
