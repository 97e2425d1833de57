"""Parquet code columns read dictionary-encoded (``encoded=True``, the grouping path) hold what the plain read
holds, batch for batch, and group to the same results."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import grouper
from grouper.batch import group_files
from grouper.io import formats
from grouper.io.discharges import CODE, CODE_LIST, read_discharges_keeping
from grouper.pipeline import group_to_file, grouping

CONFORMANCE = "tests/grouper/drg/data/conformance_visible.csv"


def _cases() -> pa.Table:
    """The conformance cases with spellings a cleaner must handle: spaces, lower case, empty codes and lists."""
    raw = pacsv.read_csv(CONFORMANCE, convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    table = grouper.canonicalise(raw.drop_columns([c for c in raw.column_names if c.startswith("expected")]))

    def replaced(table, name, values, typ=pa.string()):
        return table.set_column(table.schema.get_field_index(name), name, pa.array(values, typ))

    pdx = table.column("principal_dx").to_pylist()
    pdx[0], pdx[1], pdx[2] = f" {pdx[0].lower()} ", "", None
    procs = table.column("principal_proc").to_pylist()
    procs[3] = "  "
    odx = table.column("other_dx").to_pylist()
    odx[4], odx[5] = None, ["", " E11.900", "e11.900"]
    table = replaced(replaced(table, "principal_dx", pdx), "principal_proc", procs)
    return replaced(table, "other_dx", odx, pa.list_(pa.string()))


@pytest.fixture()
def cases_file(tmp_path):
    path = tmp_path / "cases.parquet"
    pq.write_table(_cases(), path, row_group_size=37)  # batches of 100 cross the row groups
    return path


def _batches(path, encoded, **kw):
    return [t for t, _ in read_discharges_keeping(path, batch_size=100, encoded=encoded, **kw)]


def _plain(table: pa.Table) -> pa.Table:
    cols = [c.cast(pa.string()) if c.type == CODE else c for c in table.columns]
    cols = [c.cast(pa.list_(pa.string())) if c.type == CODE_LIST else c for c in cols]
    return pa.table(cols, names=table.column_names)


@pytest.mark.parametrize("codes", ["clean", "verbatim"])
def test_encoded_codes_hold_what_the_plain_read_holds(cases_file, codes):
    plain, encoded = _batches(cases_file, False, codes=codes), _batches(cases_file, True, codes=codes)
    assert [t.num_rows for t in encoded] == [t.num_rows for t in plain]
    first = encoded[0]
    assert first.schema.field("principal_dx").type == CODE
    assert first.schema.field("other_dx").type == CODE_LIST
    for e, p in zip(encoded, plain, strict=True):
        assert _plain(e).equals(p)
    # a spelling read as empty is a null row, not an index to a null spelling
    pdx = encoded[0].column("principal_dx").combine_chunks()
    assert not pdx.is_valid()[1].as_py() and not pdx.is_valid()[2].as_py()


def _as_csv(table: pa.Table, path):
    lists = [pa.types.is_list(f.type) for f in table.schema]
    cols = [
        pa.compute.binary_join(c.cast(pa.list_(pa.string())), "|") if is_list else c
        for c, is_list in zip(table.columns, lists, strict=True)
    ]
    pacsv.write_csv(pa.table(cols, names=table.column_names), path)
    return path


@pytest.mark.parametrize("codes", ["clean", "verbatim"])
def test_a_csv_file_read_encoded_holds_what_the_plain_read_holds(cases_file, tmp_path, codes):
    csv = _as_csv(pq.read_table(cases_file), tmp_path / "cases.csv")
    plain, encoded = _batches(csv, False, codes=codes), _batches(csv, True, codes=codes)
    assert encoded[0].schema.field("principal_dx").type == CODE
    assert encoded[0].schema.field("other_dx").type == CODE_LIST
    assert [t.num_rows for t in encoded] == [t.num_rows for t in plain]
    for e, p in zip(encoded, plain, strict=True):
        assert _plain(e).equals(p)


def test_a_file_of_one_huge_row_group_is_read_spelt_out(cases_file, monkeypatch):
    monkeypatch.setattr(formats, "_LARGEST_ROW_GROUP", 10)
    batches = _batches(cases_file, True)
    assert batches[0].schema.field("principal_dx").type == pa.string()
    assert pa.concat_tables(batches).equals(pa.concat_tables(_batches(cases_file, False)))


@pytest.mark.parametrize(
    "settings",
    [
        {"scheme": "chs-drg-2.0"},
        {"scheme": "chs-drg-1.1", "explain": True},
        {"scheme": "chs-drg-1.1", "codes": "verbatim"},
        {"scheme": "chs-drg-2.0", "compare_with": "chs-drg-1.1"},
        {"scheme": "dip", "catalogue": "pingdingshan-2025", "explain": True},
    ],
)
def test_encoded_batches_group_as_plain_ones(cases_file, settings):
    g = grouping(**settings)

    def results(encoded):
        return pa.concat_tables(
            group_files(
                [cases_file], g.run, batch_size=100, columns=g.columns, codes=g.codes, encoded=encoded
            )
        )

    assert results(True).equals(results(False))


def test_kept_code_columns_are_text_and_outputs_match_the_csv_read(cases_file, tmp_path):
    csv = _as_csv(pq.read_table(cases_file), tmp_path / "cases.csv")
    outs = []
    for source in (cases_file, csv):
        out = tmp_path / f"{source.suffix[1:]}.parquet"
        group_to_file([source], out, scheme="chs-drg-2.0", keep=["principal_dx"])
        outs.append(pq.read_table(out))
    assert outs[0].schema.field("principal_dx").type == pa.string()
    assert outs[0].equals(outs[1])


@pytest.mark.parametrize("scheme", ["chs-drg-2.0", "dip"])
def test_batches_grouped_while_the_next_is_read_come_back_in_order(cases_file, scheme):
    settings = {"scheme": scheme, "catalogue": "pingdingshan-2025"} if scheme == "dip" else {"scheme": scheme}
    g = grouping(**settings)
    seen: list[int] = []
    streamed = pa.concat_tables(
        group_files(
            [cases_file, cases_file],  # the second file's ids are all duplicates of the first's
            g.run,
            batch_size=30,
            columns=g.columns,
            encoded=True,
            on_batch=seen.append,
        )
    )
    whole = pq.read_table(cases_file)
    alone = g.run(whole, None)  # one batch, its own duplicates
    assert streamed.slice(0, whole.num_rows).equals(alone)
    assert sum(seen) == streamed.num_rows == 2 * whole.num_rows and len(seen) > 6
    again = streamed.column(g.status_column).to_pylist()[
        whole.num_rows :
    ]  # but a more severe stop (SEX_INVALID)
    assert again.count("DUPLICATE_CASE") > whole.num_rows // 2
