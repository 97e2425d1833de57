"""Streaming settlement (payment.settle.settle_batches): the results do not depend on how cases are batched."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from grouper.errors import InputError
from payment import casefile
from payment.pipeline import settle_files
from payment.policy import Policy
from payment.settle import settle, settle_batches
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO_PATH = ROOT / "codebooks/policies/demo-2025.toml"
DEMO = Policy.load(DEMO_PATH)
EXACT = DEMO.replace({"point_value.decimals": None})


@pytest.fixture(scope="module")
def region() -> tuple[pa.Table, pa.Table, list[str]]:
    """6,000 cases with per-case and bed-day routes, re-admissions (admission dates) and declared 特例单议."""
    cases, hospitals = synth.region(6_000, 7, seed=4, codes=True)
    admit = pc.subtract(cases.column("discharge_date").cast(pa.int32()), cases.column("los_days"))
    cases = cases.append_column("admission_date", admit.cast(pa.date32()))
    cost, avg = cases.column("total_cost").to_numpy(), cases.column("dip_avg_cost").to_numpy()
    declared = [f"C{i}" for i in np.flatnonzero(cost > 4 * avg * 1.07)][::-1]
    return cases, hospitals, [*declared, "nope", *declared[:2]]


def _same(a, b) -> None:
    assert a.cases.to_pylist() == b.cases.to_pylist()
    assert a.hospitals.equals(b.hospitals)
    assert a.region == b.region


@pytest.mark.parametrize(
    "policy",
    [
        DEMO,
        EXACT.replace({"budget.design": "unified"}),  # bed-day points enter the pools: sums taken again
        EXACT.replace({"point_value.form": "subtraction", "special_case.cap_rate": 0.001}),  # the cap binds
    ],
    ids=["demo", "unified", "subtraction-capped"],
)
def test_small_batches_give_the_same_settlement(region, policy):
    cases, hospitals, declared = region
    whole = settle(cases, hospitals, policy, special_cases=declared, batch_size=cases.num_rows)
    assert whole.region["special_cases"]["approved"] > 0
    assert whole.region["routes"]["BED_DAY"] > 0
    _same(settle(cases, hospitals, policy, special_cases=declared, batch_size=613), whole)


def test_one_case_per_batch():
    cases, hospitals = synth.region(60, 3, seed=1, codes=True)
    _same(settle(cases, hospitals, DEMO, batch_size=1), settle(cases, hospitals, DEMO, batch_size=60))


def test_drg_settlement_streams_too():
    policy = Policy.load(ROOT / "codebooks/policies/example-drg-2025.toml")
    cases, hospitals = synth.region(3_000, 4, seed=2)
    cases = cases.append_column("drg", pa.array(np.where(np.arange(3_000) % 3, "GB11", "ES23")))
    weights = pa.table({"drg": ["GB11", "ES23"], "rw": [1.8, 0.6]})
    _same(
        settle(cases, hospitals, policy, weights=weights, batch_size=250),
        settle(cases, hospitals, policy, weights=weights, batch_size=3_000),
    )


def test_no_cases_still_settles():
    cases, hospitals = synth.region(0, 2)
    result = settle(cases, hospitals, DEMO)
    assert result.cases.num_rows == 0 and result.region["cases"] == 0
    assert result.hospitals.column("cases").to_pylist() == [0, 0]


@pytest.mark.parametrize(
    "policy", [DEMO, EXACT.replace({"budget.design": "unified"})], ids=["demo", "unified"]
)
def test_batches_are_read_once_and_written_once_in_order(region, policy):
    """Pass 2 (and pass 1b: special cases approved, bed-day points in the pools) start from the spill of pass 1:
    the input is read once."""
    cases, hospitals, declared = region
    reads: list[int] = []
    written: list[pa.Table] = []

    def batches():
        reads.append(1)
        return (cases.slice(i, 1_000) for i in range(0, cases.num_rows, 1_000))

    hosp, info = settle_batches(batches, hospitals, policy, write=written.append, special_cases=declared)
    whole = settle(cases, hospitals, policy, special_cases=declared, batch_size=cases.num_rows)
    assert info["special_cases"]["approved"] > 0
    assert len(reads) == 1 and len(written) == 6
    assert pa.concat_tables(written).to_pylist() == whole.cases.to_pylist()
    assert hosp.equals(whole.hospitals) and info == whole.region


@pytest.fixture(scope="module")
def files(tmp_path_factory, region) -> Path:
    d = tmp_path_factory.mktemp("stream")
    cases, hospitals, declared = region
    pq.write_table(cases, d / "cases.parquet", row_group_size=1_500)
    plain = pa.table([c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns],
                     names=cases.column_names)  # fmt: skip
    grouping = ["case_id", "dip_group", "dip_kind", "dip_score", "aux_coef", "dip_avg_cost"]
    pacsv.write_csv(plain.select(grouping), d / "grouped.csv")
    pacsv.write_csv(plain.drop_columns(grouping[1:]), d / "discharges.csv")
    pacsv.write_csv(hospitals, d / "hospitals.csv")
    pacsv.write_csv(pa.table({"case_id": declared}), d / "special.csv")
    return d


@pytest.mark.parametrize("source", ["parquet", "csv"])
def test_outputs_are_byte_identical_whatever_the_batch_size(files, source):
    if source == "parquet":
        given = {"cases": files / "cases.parquet"}
    else:
        given = {"cases": files / "grouped.csv", "discharges": files / "discharges.csv"}
    common = {
        **given,
        "hospitals": files / "hospitals.csv",
        "policy": DEMO_PATH,
        "special_cases": files / "special.csv",
    }
    for size in (100000, 457):
        settle_files(**common, out=files / f"{source}-{size}", batch_size=size)
    for name in ("cases.parquet", "hospitals.csv", "region.json"):
        assert (files / f"{source}-100000" / name).read_bytes() == (
            files / f"{source}-457" / name
        ).read_bytes()
    out = pq.read_table(files / f"{source}-457" / "cases.parquet")
    assert out.column("case_id").to_pylist() == [f"C{i}" for i in range(6_000)]
    assert not list((files / f"{source}-457").glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("declared", [True, False], ids=["one-step", "two-steps"])
def test_cases_parquet_does_not_follow_the_batches_where_the_writer_gives_up_a_dictionary(
    files, monkeypatch, declared
):
    """A text column almost all distinct (case_id) outgrows the writer's dictionary page and is written plain
    from a point that followed the batches' cuts (on 1M cases, another batch size gave other bytes): a small
    dictionary page makes that happen on 6,000 cases; each row group is one chunk a column when encoded."""
    monkeypatch.setitem(casefile._OPTIONS, "dictionary_pagesize_limit", 4096)
    special = {"special_cases": files / "special.csv"} if declared else {}
    common = {
        "cases": files / "cases.parquet",
        "hospitals": files / "hospitals.csv",
        "policy": DEMO_PATH,
        **special,
    }
    out = {size: files / f"fallback-{declared}-{size}" for size in (100000, 457)}
    for size, folder in out.items():
        settle_files(**common, out=folder, batch_size=size)
    assert (out[100000] / "cases.parquet").read_bytes() == (out[457] / "cases.parquet").read_bytes()


@pytest.mark.parametrize("declared", [True, False], ids=["one-step", "two-steps"])
def test_cases_parquet_keeps_range_statistics_for_numbers_and_no_dictionary_for_the_ids(
    files, tmp_path, declared
):
    """cases.parquet encodes its columns as a results file does (grouper.io.writer.column_options), whether its
    leading columns are written in pass 1 or with the others: no statistics on text and dictionary columns, the
    all-distinct case_id not dictionary-encoded."""
    special = {"special_cases": files / "special.csv"} if declared else {}
    settle_files(files / "cases.parquet", files / "hospitals.csv", DEMO_PATH, tmp_path, **special)
    chunks = pq.ParquetFile(tmp_path / "cases.parquet").metadata.row_group(0)
    columns = {chunks.column(i).path_in_schema: chunks.column(i) for i in range(chunks.num_columns)}
    assert [p for p, c in columns.items() if c.is_stats_set] == [
        "base_points", "hospital_coef", "aux_coef", "points", "point_value", "standard_payment", "fund_payment",
    ]  # fmt: skip
    plain = [
        p for p, c in columns.items() if "RLE_DICTIONARY" not in c.encodings and c.physical_type != "BOOLEAN"
    ]
    assert plain == ["case_id"]  # (Parquet has no dictionary encoding for booleans)


def test_a_dictionary_column_is_written_with_its_values_in_order_of_first_appearance():
    """cases.parquet's copied dictionary columns (casefile._first_seen): chunks with dictionaries of their own, in
    other orders, and nulls give one dictionary listing the values as they first appear, the same values row by
    row and the same type."""
    first = pa.DictionaryArray.from_arrays(
        pa.array([None, 3, 1, None, 3], pa.int32()), pa.array(["w", "x", "y", "z"])
    )
    second = pa.DictionaryArray.from_arrays(pa.array([2, None, 0, 1], pa.int32()), pa.array(["z", "v", "y"]))
    column = pa.chunked_array([first, second])
    out = casefile._first_seen(column)
    assert out.dictionary.to_pylist() == ["z", "x", "y", "v"]
    assert out.to_pylist() == column.to_pylist()
    assert out.type == column.type


def test_csv_and_parquet_inputs_settle_alike(files, tmp_path):
    common = {"hospitals": files / "hospitals.csv", "policy": DEMO_PATH}
    settle_files(files / "cases.parquet", **common, out=tmp_path / "p")
    settle_files(files / "grouped.csv", discharges=files / "discharges.csv", **common, out=tmp_path / "c",
                 batch_size=1000)  # fmt: skip
    for name in ("hospitals.csv", "region.json"):
        assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()


def test_discharges_that_run_out_are_an_error(files, tmp_path):
    short = tmp_path / "short.csv"
    lines = (files / "discharges.csv").read_text(encoding="utf-8").splitlines()
    short.write_text("\n".join(lines[:-10]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="rows do not line up"):
        settle_files(files / "grouped.csv", files / "hospitals.csv", DEMO_PATH, tmp_path / "o", discharges=short,
                     batch_size=500)  # fmt: skip
    assert not (tmp_path / "o" / "cases.parquet").exists()
    assert not list(tmp_path.glob(".*")) and not (tmp_path / "o").exists()


def _peak_bytes(n_batches: int) -> int:
    """Peak traced memory (numpy and Python) of settling ``n_batches`` generated batches of 2,000 cases."""
    hospitals = synth.region(1, 20, seed=0)[1]

    def batches():
        for k in range(n_batches):
            cases = synth.region(2_000, 20, seed=k, codes=True)[0]
            ids = pc.binary_join_element_wise(
                "C", pc.cast(pa.array(range(k * 2_000, (k + 1) * 2_000)), pa.string()), ""
            )
            yield cases.set_column(0, "case_id", ids)

    settle_batches(batches, hospitals, DEMO, write=lambda t: None)  # warm-up: numba, caches
    tracemalloc.start()
    try:
        settle_batches(batches, hospitals, DEMO, write=lambda t: None)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_cases():
    small, large = _peak_bytes(2), _peak_bytes(20)
    assert large < 1.5 * small


def _chunked(table: pa.Table, sizes: dict[str, int]) -> pa.Table:
    """The table with each column cut into chunks of its own size (900 rows unless given)."""

    def cut(col: pa.ChunkedArray, size: int) -> pa.ChunkedArray:
        whole = col.combine_chunks()
        return pa.chunked_array([whole.slice(i, size) for i in range(0, len(whole), size)], col.type)

    return pa.table(
        [cut(table.column(n), sizes.get(n, 900)) for n in table.column_names], names=table.column_names
    )


@pytest.mark.parametrize(
    "policy", [DEMO, EXACT.replace({"budget.design": "unified"})], ids=["demo", "unified"]
)
def test_leading_columns_written_in_pass_1_give_the_same_file(region, policy, tmp_path, monkeypatch):
    """Without declared special cases the leading columns of cases.parquet are encoded in pass 1
    (CaseWriter.early) and joined to the others in pass 2: the file is byte for byte the one written in one step,
    also where the Parquet writer's dictionary fills up and it falls back to plain encoding (a small dictionary
    page here), which depends on how a column is cut into chunks (here differently for each column)."""
    monkeypatch.setattr(casefile, "_OPTIONS", {**casefile._OPTIONS, "dictionary_pagesize_limit": 2048})
    monkeypatch.setattr(casefile, "ROW_GROUP", 1_000)
    cases, hospitals, _ = region
    cases = _chunked(cases, {"case_id": 700, "hospital_id": 500})

    def batches():
        return (cases.slice(i, 1_800) for i in range(0, cases.num_rows, 1_800))

    files, early_rows = [], []
    for steps in (1, 2):
        writer = casefile.CaseWriter(tmp_path / f"{steps}.parquet", {"drgdip.version": "test"})

        def early(t: pa.Table, writer=writer) -> None:
            early_rows.append(t.num_rows)
            writer.early(t)

        settle_batches(batches, hospitals, policy, write=writer, early=early if steps == 2 else None)
        writer.close()
        files.append((tmp_path / f"{steps}.parquet").read_bytes())
    assert sum(early_rows) == cases.num_rows
    assert files[0] == files[1]
    assert pq.ParquetFile(tmp_path / "2.parquet").metadata.num_row_groups == 6


def test_declared_special_cases_write_the_columns_in_one_step(region):
    """An approved special case changes its route and points after pass 1: nothing is written early."""
    cases, hospitals, declared = region
    written, early = [], []
    settle_batches(
        lambda: [cases], hospitals, DEMO, write=written.append, special_cases=declared, early=early.append
    )
    assert not early and written[0].column_names[0] == "case_id"


def test_no_cases_written_in_two_steps(region, tmp_path):
    cases, hospitals, _ = region
    for steps in (1, 2):
        writer = casefile.CaseWriter(tmp_path / f"{steps}.parquet", {"drgdip.version": "test"})
        settle_batches(
            lambda: [cases.slice(0, 0)],
            hospitals,
            DEMO,
            write=writer,
            early=writer.early if steps == 2 else None,
        )
        writer.close()
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()
    assert pq.read_table(tmp_path / "2.parquet").num_rows == 0
