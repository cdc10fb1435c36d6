"""Readers: one per source format, each returning the canonical well table.

Every reader returns a :class:`pandas.DataFrame` with the canonical well columns of
:mod:`doseatlas.schemas` (values as read, not yet validated) plus ``source_file`` and
``source_line`` so that every row can be traced back to where it came from.
"""

from doseatlas.ingest.canonical import canonical_columns, read_canonical, read_inputs

__all__ = ["canonical_columns", "read_canonical", "read_inputs"]
