"""A column as one Arrow array, copied only when it has several chunks."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["one_array"]


def one_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """``column`` as one array: a chunked array of one chunk gives that chunk (``combine_chunks`` would copy it).

    Examples
    --------
    >>> one_array(pa.chunked_array([[1, 2], [3]])).to_pylist()
    [1, 2, 3]
    """
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
