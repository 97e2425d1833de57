"""Random discharge tables (issue 11 item 8): rows drawn from the conformance cases with cells replaced by random
text, numbers, dates and ids; `drgdip group` either writes exactly one row per input row, in input order, or stops
with one error line — never a traceback, a lost row or a duplicated one."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from grouper.io import read_discharges
from payment.cli import app
from tests.fuzz.profile import COUNTS, FUZZ

ROOT = Path(__file__).resolve().parents[2]
SOURCE = list(
    csv.reader(io.StringIO((ROOT / "tests/grouper/drg/data/conformance_visible.csv").read_text("utf-8")))
)
HEADER, ROWS = SOURCE[0], SOURCE[1:]
runner = CliRunner()

cells = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", " ", "NULL", "-1", "0", "1e15", "inf", "NaN", "２０", "2025/05/07", "07/05/2025", "[/b]"]
    ),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from([r[HEADER.index("principal_dx")] for r in ROWS[:50]]),
)


@st.composite
def tables(draw):
    n = draw(st.integers(1, 30))
    picks = draw(st.lists(st.integers(0, len(ROWS) - 1), min_size=n, max_size=n))
    rows = [list(ROWS[i]) for i in picks]
    for _ in range(draw(st.integers(0, 3 * n))):
        r, c = draw(st.integers(0, n - 1)), draw(st.integers(0, len(HEADER) - 1))
        rows[r][c] = draw(cells)
    return rows


@FUZZ
@given(rows=tables(), scheme=st.sampled_from(["chs-drg-2.0", "chs-drg-1.1"]))
def test_every_row_comes_out_once_in_order_or_one_error_line(tmp_path_factory, rows, scheme):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "d.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    out = folder / "o.parquet"
    result = runner.invoke(app, ["group", str(path), "-o", str(out), "--scheme", scheme, "-q"])
    COUNTS["discharge tables"] += 1
    COUNTS["discharge rows"] += len(rows)
    if result.exit_code != 0:
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert result.output.startswith("error: ") and "internal error" not in result.output, result.output
        assert not out.exists()
        COUNTS["discharge tables refused"] += 1
        return
    grouped = pq.read_table(out)
    assert grouped.num_rows == len(rows)
    read = [i for t in read_discharges(path) for i in t.column("case_id").to_pylist()]
    assert grouped.column("case_id").to_pylist() == read  # the rows as read, none lost, none reordered
