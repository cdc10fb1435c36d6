"""A well-sized output table that stays on disk: the responses of a partitioned run (``doseatlas run --engine
dask``), and with one data set its curves and metrics, written to Parquet chunk by chunk instead of being
assembled in memory.

Each bucket of the run keeps its rows in pieces of at most :data:`PIECE_ROWS` rows, each bucket's pieces in the
order of the output table (:data:`doseatlas.pipeline.TABLE_ORDER`). One pass over the pieces finds the whole
table's column types and merges the buckets on their sort keys alone (:func:`merge_order`: the bucket of every
output row); a second pass (:meth:`StreamedTable.frames`) gathers chunks of :data:`CHUNK_ROWS` rows from every
bucket's next rows, applies the run's identities (a row-by-row lookup) and gives every chunk the column types the
whole table would have had, so that the file written equals the in-memory run's row for row, with the same
schema (docs/scale.md, "Writing a streamed table").
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
#: rows of a chunk of output rows (a row group of the file written)
CHUNK_ROWS = 200_000
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

    def frames(self, *, rows: int | None = None, text_as_is: bool = False) -> Iterator[pd.DataFrame]:
        """The output rows in order, in chunks of ``rows`` rows (default :data:`CHUNK_ROWS`), with the column
        types of the whole table. Each chunk takes from every bucket the rows the merge order
        (:meth:`_scan`) gives it, from that bucket's pieces read one after another (each read once).
        ``text_as_is``: after the first chunk, text columns stay as the pieces hold them (object columns of
        strings; for a Parquet writer that converts them to the first chunk's schema: the same strings, without
        making pandas strings first)."""
        dtypes, text, source, _ = self._scan()
        if not len(source):  # an empty table: one empty chunk (the first piece's), none without pieces
            first = next(self._pieces(), None)
            if first is not None:
                yield _typed(self.prepare(first).iloc[:0], dtypes, text)
            return
        kept = (
            {c for c in text if c not in dtypes.index or dtypes[c] == np.dtype(object)}
            if text_as_is
            else set()
        )

        def load(path: Path) -> pd.DataFrame:
            return _typed(self.prepared(read_piece(path)), dtypes, text - kept)

        readers = [_BucketRows(paths, load) for paths in self.buckets]
        rows = rows or CHUNK_ROWS
        for start in range(0, len(source), rows):
            chunk = _gathered(readers, source[start : start + rows])
            yield _typed(chunk, dtypes, text) if start == 0 else chunk

    def prepared(self, piece: pd.DataFrame) -> pd.DataFrame:
        """``prepare(piece)``, its columns that ``prepare`` changes or adds taken from what it made of the same
        ``distinct_on`` values (the only ones it reads) in the pass over the pieces (:meth:`_scan`), looked up
        once per distinct combination, instead of calling it on every piece again."""
        made = self._scan()[3]
        by = [c for c in self.distinct_on if c in piece]
        if made is None or not by or not len(piece):
            return self.prepare(piece)
        codes = piece.groupby(by, sort=False, dropna=False, observed=True).ngroup().to_numpy()
        firsts = np.unique(codes, return_index=True)[1]
        rows = made.rows(piece[by].iloc[firsts])
        if (rows < 0).any():  # not seen in the pass (cannot happen: every piece is scanned)
            return self.prepare(piece)
        out, taken = piece.copy(deep=False), rows[codes]
        for column in made.table.columns:
            if column in by or column not in piece:
                out[column] = made.table[column].take(taken).set_axis(piece.index)
        return out

    def _key_of(self, table: pd.DataFrame) -> np.ndarray:
        if self.ranks is None:
            keys = _keys(table, pd.Index(sorted(set(self.files)), dtype=object))
        else:
            keys = rank_keys(table, self.order, self.ranks)
        return np.array(keys, dtype=float).reshape(len(keys), len(table))

    def _types(self) -> tuple[pd.Series, set[str]]:
        """The column types of the whole table: those of concatenating every piece, and the object columns
        holding text anywhere (made pandas' string type, as :func:`doseatlas.pipeline.text_dtypes` does)."""
        return self._scan()[:2]

    def _scan(self) -> tuple[pd.Series, set[str], np.ndarray, _Made | None]:
        """The column types of the whole table, the merge order (the bucket of each output row) and what
        ``prepare`` made of each distinct combination of ``distinct_on``, found in one pass over the pieces, the
        first time they are asked for."""
        if self._found_types is None:
            scan = _TypeScan(self.prepare, self.distinct_on)

            def keys(bucket: int, index: int, path: Path) -> np.ndarray:
                piece = read_piece(path)
                scan.add(piece, bucket, index)
                return self._key_of(piece)

            source = merge_order(self.buckets, keys)
            dtypes, text, made = scan.types()
            self._found_types = (dtypes, text, source, made)
        return self._found_types

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


def _keys(table: pd.DataFrame, files: pd.Index) -> tuple[np.ndarray, ...]:
    """The order of ``table``'s rows as three numeric arrays (file rank, line, row id; missing ones last)."""
    rank = _ranks(table[S.SOURCE_FILE], files)
    line = pd.to_numeric(table[S.SOURCE_LINE], errors="coerce").astype(float).fillna(np.inf).to_numpy(float)
    return rank, line, table[S.ROW_ID].to_numpy(float)


def _ranks(values: pd.Series, ranked: pd.Index) -> np.ndarray:
    """The rank of each of ``values`` among ``ranked`` (inf: missing or not there), looked up once per distinct
    value."""
    codes, uniques = pd.factorize(values)
    found = ranked.get_indexer(np.asarray(uniques, dtype=object)).astype(float)
    found = np.append(np.where(found < 0, np.inf, found), np.inf)  # code -1 (missing): the last entry
    return found[codes]


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
            keys.append(_ranks(table[column], ranks[column]))
            continue
        values = table[column].to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(values)
        keys += [missing.astype(float), np.where(missing, 0.0, values)]
    return keys


def _count_at_most(keys: np.ndarray, bound: tuple[float, ...]) -> int:
    """How many rows of ``keys`` (one row per key column, the columns in lexicographic order) are, in that order,
    at most ``bound``: a prefix, found by binary search, column by column, among the rows equal so far."""
    low, high = 0, keys.shape[1]
    for key, limit in zip(keys, bound, strict=True):
        part = key[low:high]
        low, high = low + np.searchsorted(part, limit, "left"), low + np.searchsorted(part, limit, "right")
        if low == high:
            break
    return int(high)


def merge_order(buckets: list[list[Path]], keys_of: Callable[[int, int, Path], np.ndarray]) -> np.ndarray:
    """The bucket of each row of the table in the output order: a k-way merge of the buckets' sorted pieces on
    their keys alone (``keys_of(bucket, index, path)``: the order of a piece's rows as a ``(keys, rows)`` array of
    numbers), holding one piece's keys per bucket at a time; equal keys in bucket order (as a stable sort of the
    buckets' rows concatenated). Each round takes every held row up to the smallest last key among the buckets
    that have pieces left."""
    queues = [list(enumerate(paths))[::-1] for paths in buckets]
    held: list[np.ndarray | None] = [None] * len(buckets)
    order: list[np.ndarray] = []
    while True:
        for i, queue in enumerate(queues):
            while (held[i] is None or not held[i].shape[1]) and queue:
                held[i] = keys_of(i, *queue.pop())
        live = [i for i, keys in enumerate(held) if keys is not None and keys.shape[1]]
        if not live:
            break
        bound = min((tuple(held[i][:, -1]) for i in live if queues[i]), default=None)
        counts = [held[i].shape[1] if bound is None else _count_at_most(held[i], bound) for i in live]
        keys = np.concatenate([held[i][:, :n] for i, n in zip(live, counts, strict=True)], axis=1)
        source = np.repeat(np.array(live, dtype=np.int32), counts)
        order.append(source[np.lexsort(keys[::-1])] if len(keys) else source)
        for i, n in zip(live, counts, strict=True):
            held[i] = held[i][:, n:]
    dtype = np.int16 if len(buckets) < 2**15 else np.int32
    return np.concatenate(order).astype(dtype) if order else np.zeros(0, dtype)


class _TypeScan:
    """The column types of a streamed table, found piece by piece (in any order) as the whole table's: those of
    concatenating every piece in bucket order (empty pieces left out, as the in-memory run concatenates; all
    empty: the first), and the object columns holding text anywhere."""

    def __init__(self, prepare: Callable, distinct_on: tuple[str, ...]) -> None:
        self.prepare, self.distinct_on = prepare, distinct_on
        self.heads: dict[tuple[int, int], pd.DataFrame] = {}
        self.empty: dict[tuple[int, int], pd.DataFrame] = {}
        self.text: set[str] = set()
        self.made: list[tuple[pd.DataFrame, pd.DataFrame]] = []

    def add(self, piece: pd.DataFrame, bucket: int, index: int) -> None:
        by = [c for c in self.distinct_on if c in piece]
        distinct = piece.drop_duplicates(by) if by else piece
        out = self.prepare(distinct)
        # an empty copy: a slice of ``out`` would keep its arrays, and through them the piece, alive to the end
        (self.heads if len(out) else self.empty)[bucket, index] = out.iloc[:0].copy()
        if by and len(out) == len(distinct):  # the values each combination (a row of distinct[by]) is given
            made = out[[c for c in out.columns if c in by or c not in piece]].reset_index(drop=True)
            self.made.append((distinct[by].reset_index(drop=True), made))
        for column in out.columns[out.dtypes.eq(object)]:
            if column in self.text:
                continue
            kept = column in piece and column not in by  # unchanged by prepare: read on every row
            values = piece[column] if kept else out[column]
            if values.notna().any() and pd.api.types.infer_dtype(values, skipna=True) == "string":
                self.text.add(column)

    def types(self) -> tuple[pd.Series, set[str], _Made | None]:
        """The types, the text columns and what ``prepare`` made of every distinct combination."""
        heads = [self.heads[k] for k in sorted(self.heads)] or [self.empty[k] for k in sorted(self.empty)][:1]
        if not heads:  # no piece at all
            return pd.Series(dtype=object), self.text, None
        made = None
        if self.made and len({tuple(keys.columns) for keys, _ in self.made}) == 1:
            keys, values = (pd.concat(parts, ignore_index=True) for parts in zip(*self.made, strict=True))
            first = ~keys.duplicated().to_numpy()
            made = _Made(keys[first], values[first])
        return pd.concat(heads, ignore_index=True).dtypes, self.text, made


class _Made:
    """What ``prepare`` made (``table``) of each distinct combination of its input's ``keys`` columns."""

    def __init__(self, keys: pd.DataFrame, table: pd.DataFrame) -> None:
        self.table, self.by = table.reset_index(drop=True), list(keys.columns)
        self.index = {key: i for i, key in enumerate(_tuples(keys))}

    def rows(self, combinations: pd.DataFrame) -> np.ndarray:
        """The row of each of ``combinations`` (its ``by`` columns, in order), -1 where none."""
        if list(combinations.columns) != self.by:
            return np.full(len(combinations), -1)
        return np.array([self.index.get(key, -1) for key in _tuples(combinations)], dtype=np.int64)


def _tuples(table: pd.DataFrame) -> list[tuple]:
    """The rows of ``table`` as tuples, missing values as None (so that they are equal as dictionary keys)."""
    return list(table.astype(object).where(table.notna(), None).itertuples(index=False, name=None))


class _BucketRows:
    """One bucket's rows in order, taken from the front, its pieces read (by ``load``) as they are reached."""

    def __init__(self, paths: list[Path], load: Callable[[Path], pd.DataFrame]) -> None:
        self.paths, self.load = list(paths)[::-1], load
        self.head: pd.DataFrame | None = None
        self.at = 0

    def take(self, n: int) -> list[pd.DataFrame]:
        """The next ``n`` rows (slices of the pieces read)."""
        parts = []
        while n:
            if self.head is None or self.at == len(self.head):
                self.head, self.at = self.load(self.paths.pop()), 0
                continue
            m = min(n, len(self.head) - self.at)
            parts.append(self.head.iloc[self.at : self.at + m])
            self.at, n = self.at + m, n - m
        return parts


def _gathered(readers: list[_BucketRows], source: np.ndarray) -> pd.DataFrame:
    """The rows whose buckets are ``source`` (in the output order): each bucket's next rows, concatenated in
    bucket order, then put in the output order."""
    counts = np.bincount(source, minlength=len(readers))
    parts = [part for b in np.flatnonzero(counts) for part in readers[b].take(int(counts[b]))]
    chunk = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    position = np.empty(len(source), dtype=np.int64)
    position[np.argsort(source, kind="stable")] = np.arange(len(source))
    return chunk.take(position).reset_index(drop=True)


def keep_directory(parent: str | Path | None) -> tempfile.TemporaryDirectory:
    """A temporary directory for the pieces of streamed tables (removed with the run result that holds it)."""
    return tempfile.TemporaryDirectory(prefix="doseatlas-stream-", dir=parent)


def write_streamed(
    table: StreamedTable, path: Path, *, meta: dict[str, Any], with_units: Callable, key: bytes
) -> None:
    """Write a streamed table as one Parquet file, a row group per merged chunk, with the schema and metadata
    :func:`doseatlas.io.write_table` gives the whole table. A chunk is encoded and written in a second thread
    (pyarrow does not hold the GIL) while the next one is merged."""
    document = json.dumps({**meta, "table": path.stem, "n_rows": table.n_rows}, default=str).encode()
    writer = None
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            schema, pending = None, None
            for chunk in table.frames(text_as_is=True):
                arrow = _arrow(table, chunk, schema)
                if writer is None:
                    writer, schema = _writer(with_units(arrow, chunk.columns), path, key, document)
                del chunk
                if pending is not None:
                    pending.result()
                pending = pool.submit(writer.write_table, pa.Table.from_arrays(arrow.columns, schema=schema))
            if pending is not None:
                pending.result()
    finally:
        if writer is not None:
            writer.close()


def _arrow(table: StreamedTable, chunk: pd.DataFrame, schema: pa.Schema | None) -> pa.Table:
    """``chunk`` as Arrow (with ``schema``: the first chunk's); a text column arrow cannot convert as it is (not
    only strings) is made pandas' string type first, as the whole table's."""
    try:
        return pa.Table.from_pandas(chunk, preserve_index=False, schema=schema)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.Table.from_pandas(_typed(chunk, *table._types()), preserve_index=False, schema=schema)


def _writer(arrow: pa.Table, path: Path, key: bytes, document: bytes) -> tuple[pq.ParquetWriter, pa.Schema]:
    """The Parquet writer of a streamed table and its schema (that of its first chunk, with its metadata)."""
    from doseatlas.io import dictionary_columns

    schema = arrow.schema.with_metadata({**(arrow.schema.metadata or {}), key: document})
    return pq.ParquetWriter(path, schema, use_dictionary=dictionary_columns(schema)), schema
