"""A text file is read on three threads (grouper.io.formats.read_ahead, worked_ahead): the parse on one, each
batch's values on two more. Results come in order, an error comes where it would have come read by read, and
the header is mapped on the caller's thread."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from grouper.errors import InputError
from grouper.io import read_discharges
from grouper.io.formats import read_ahead, worked_ahead


def _slow_square(x: int) -> int:
    time.sleep(0.002 * (5 - x % 5))  # later items finish first
    return x * x


def test_work_done_side_by_side_comes_back_in_order():
    assert list(worked_ahead(_slow_square, iter(range(20)), 3)) == [x * x for x in range(20)]
    assert list(worked_ahead(_slow_square, iter([]), 2)) == []


def test_a_failed_item_raises_after_the_results_before_it():
    def work(x):
        if x == 4:
            raise ValueError("item 4")
        return x

    got = []
    with pytest.raises(ValueError, match="item 4"):
        for x in worked_ahead(work, iter(range(10)), 2):
            got.append(x)
    assert got == [0, 1, 2, 3]


def test_a_failed_draw_raises_after_the_results_of_the_items_drawn_before_it():
    def items():
        yield from range(3)
        raise OSError("the disk")

    got = []
    with pytest.raises(OSError, match="the disk"):
        for x in worked_ahead(_slow_square, items(), 2):
            got.append(x)
    assert got == [0, 1, 4]


def test_stopping_early_leaves_no_thread_behind():
    before = threading.active_count()
    results = worked_ahead(_slow_square, iter(range(100)), 2)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()
    assert threading.active_count() == before


def test_the_first_item_is_read_on_the_callers_thread():
    threads = []

    def items():
        for x in range(3):
            threads.append(threading.get_ident())
            yield x

    assert list(read_ahead(items(), first_here=True)) == [0, 1, 2]
    assert threads[0] == threading.get_ident() and threading.get_ident() not in threads[1:]


def _csv(path, rows: int, bad_dates: tuple[int, ...] = (), note: bool = False):
    dates = ["2025-03-01"] * rows
    for i in bad_dates:
        dates[i] = "07/05/2025"
    columns = {
        "case_id": [f"C{i}" for i in range(rows)],
        "principal_dx": ["K35.800"] * rows,
        "other_dx": ["E11.900|I10.x00"] * rows,
        "discharge_date": dates,
    }
    table = pa.table({**columns, "note": ["x"] * rows} if note else columns)
    pacsv.write_csv(table, path)
    return path


def test_a_csv_file_read_ahead_comes_in_order_with_its_header_mapped_here(tmp_path):
    path = _csv(tmp_path / "d.csv", 1000, note=True)
    mapped_on = []
    with pytest.warns(UserWarning, match="not recognised"):  # 'note': said on the caller's thread
        batches = list(
            read_discharges(path, batch_size=64, on_mapping=lambda _: mapped_on.append(threading.get_ident()))
        )
    assert mapped_on == [threading.get_ident()]
    assert [t.num_rows for t in batches] == [64] * 15 + [40]
    ids = pa.concat_tables(batches).column("case_id").to_pylist()
    assert ids == [f"C{i}" for i in range(1000)]


def test_an_unreadable_date_in_a_later_batch_names_its_row_and_counts_the_rest(tmp_path):
    path = _csv(tmp_path / "d.csv", 1000, bad_dates=(700, 701, 990))
    with pytest.raises(InputError, match=r"row 702, column discharge_date.*; 2 more row\(s\) like it"):
        list(read_discharges(path, batch_size=64, strict_dates=["discharge_date"]))


def test_items_read_further_ahead_come_in_order_and_no_more_are_drawn_than_asked():
    drawn = []

    def items():
        for x in range(10):
            drawn.append(x)
            yield x

    ahead = read_ahead(items(), ahead=3)
    assert next(ahead) == 0
    time.sleep(0.05)
    assert drawn == [0, 1, 2, 3]  # the item taken and three ahead of it
    assert list(ahead) == list(range(1, 10))


def test_an_error_read_ahead_comes_after_the_items_before_it():
    def items():
        yield from range(5)
        raise OSError("the disk")

    got = []
    with pytest.raises(OSError, match="the disk"):
        for x in read_ahead(items(), ahead=3):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
