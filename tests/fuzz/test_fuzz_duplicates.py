"""Duplicate tracker against a Python set (issue 11 item 9): random batches of ids, the hash cut to a few values
so that distinct ids collide often — only an exactly equal earlier id is a duplicate."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import grouper.batch
from tests.fuzz.profile import COUNTS, FUZZ
from tests.reliability.test_duplicates import _reference, _run

ids = st.lists(
    st.lists(st.one_of(st.none(), st.text(alphabet="ab1é ", max_size=4)), max_size=40), min_size=1, max_size=6
)


@FUZZ
@given(batches=ids, buckets=st.sampled_from([1, 2, 16, 0]))
def test_the_tracker_is_a_set_of_the_ids_seen_whatever_the_hash(batches, buckets):
    """Against a Python set, with the hash cut to ``buckets`` values (1: every id collides; 0: the real hash)."""
    real = grouper.batch._fnv1a
    if buckets:
        grouper.batch._fnv1a = lambda o, d: real(o, d) % np.uint64(buckets)
    try:
        assert _run(batches) == _reference(batches)
    finally:
        grouper.batch._fnv1a = real
    COUNTS["duplicate examples"] += 1
    COUNTS["duplicate ids"] += sum(map(len, batches))
