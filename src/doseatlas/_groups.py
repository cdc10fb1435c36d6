"""The sorted numbering of group codes, now in :mod:`doseatlas._codes` (one module holds both numberings); this
name stays so that the imports of it keep working."""

from doseatlas._codes import (
    first_code_rows,
    key_codes,
    n_distinct,
    ordered_codes,
    pair_codes,
    sorted_key_codes,
)

__all__ = ["first_code_rows", "key_codes", "n_distinct", "ordered_codes", "pair_codes", "sorted_key_codes"]
