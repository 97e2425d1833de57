"""The one writer module: atomic files and folders, if_exists, exclusive temporary files, environment failures as
OutputError (issue 8 item 2, issue 11 items 5–7)."""

from __future__ import annotations

import json
import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grouper.errors import OutputError
from grouper.io.writer import atomic_file, atomic_folder, write_json, write_results, write_text

TABLE = pa.table({"case_id": ["1", "2"], "drg": ["GZ15", "GZ13"]})


def test_if_exists_error_refuses_and_replace_replaces(tmp_path):
    out = tmp_path / "a.json"
    write_json({"x": 1}, out)
    with pytest.raises(OutputError, match="already exists") as info:
        write_json({"x": 2}, out)
    assert info.value.path == str(out)
    write_json({"x": 2}, out, if_exists="replace")
    assert json.loads(out.read_text(encoding="utf-8")) == {"x": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".xlsx", ".json"])
def test_every_format_is_written_and_rerun_byte_identical(tmp_path, suffix):
    a, b = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    for out in (a, b):
        assert write_results(TABLE, out, metadata={"drgdip.scheme": "x"}) == 2
    assert a.read_bytes() == b.read_bytes()


def test_parquet_carries_page_checksums(tmp_path):
    out = tmp_path / "a.parquet"
    write_results(TABLE, out)
    assert pq.ParquetFile(out, page_checksum_verification=True).read().equals(TABLE)


def test_a_results_file_keeps_range_statistics_for_numbers_and_no_dictionary_for_the_ids(tmp_path):
    """Statistics of text and dictionary columns (half of a grouping's writing time) are not written; the all-
    distinct case_id is not dictionary-encoded; the values read back are the table's."""
    out = tmp_path / "a.parquet"
    table = pa.table(
        {
            "case_id": ["1", "2", "3"],
            "drg": pa.array(["GZ15", "GZ13", "GZ15"]).dictionary_encode(),
            "other_dx": [["A"], [], ["B", "A"]],
            "total_cost": [1.5, 2.0, None],
        }
    )
    write_results(table, out)
    chunks = pq.ParquetFile(out).metadata.row_group(0)
    columns = {chunks.column(i).path_in_schema: chunks.column(i) for i in range(chunks.num_columns)}
    assert [p for p, c in columns.items() if c.is_stats_set] == ["total_cost"]
    assert [p for p, c in columns.items() if "RLE_DICTIONARY" not in c.encodings] == ["case_id"]
    assert pq.read_table(out).equals(table)


def test_a_failure_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "x.csv") as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_a_planted_link_at_a_temporary_name_is_never_followed(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    monkeypatch.setattr("grouper.io.writer.secrets.token_hex", lambda n: "deadbeef")
    planted = tmp_path / f".out.txt.{os.getpid()}-deadbeef.drgdip-tmp"
    planted.symlink_to(victim)
    with pytest.raises(OutputError, match="cannot create a temporary file"):
        write_text("new", tmp_path / "out.txt")
    assert victim.read_text() == "keep"


def test_temporary_files_of_a_killed_run_are_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".out.txt.999999999-0123abcd.drgdip-tmp"  # no such process
    stale.write_text("left by a killed run")
    mine = tmp_path / f".out.txt.{os.getpid()}-0123abcd.drgdip-tmp"  # a live process: kept
    mine.write_text("in use")
    write_text("new", tmp_path / "out.txt")
    assert not stale.exists() and mine.exists()


def test_environment_failures_are_output_errors(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(OutputError, match="cannot write here"):
        write_text("x", afile / "out.txt")
    with pytest.raises(OutputError, match="is a folder"):
        write_text("x", tmp_path)
    with pytest.raises(OutputError):
        write_text("x", tmp_path / ("n" * 300 + ".txt"))
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        with pytest.raises(OutputError, match="cannot write here"):
            write_text("x", ro / "out.txt")


def test_a_folder_is_written_all_or_nothing(tmp_path):
    out = tmp_path / "settlement"
    with pytest.raises(RuntimeError), atomic_folder(out, ["a.txt", "b.txt"]) as tmp:
        (tmp / "a.txt").write_text("a")
        raise RuntimeError("crash before b")
    assert list(tmp_path.iterdir()) == []
    with atomic_folder(out, ["a.txt", "b.txt"]) as tmp:
        (tmp / "a.txt").write_text("a")
        (tmp / "b.txt").write_text("b")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]
    # into an existing folder: old files stay until everything new is written
    with pytest.raises(RuntimeError), atomic_folder(out, ["a.txt", "b.txt"], if_exists="replace") as tmp:
        (tmp / "a.txt").write_text("new a")
        raise RuntimeError("crash")
    assert (out / "a.txt").read_text() == "a" and sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]
    with pytest.raises(OutputError, match="already exists"), atomic_folder(out, ["a.txt"]):
        pass


def test_a_folder_in_a_folder_is_replaced_whole(tmp_path):
    """A folder of parts (a settlement's cases.parquet/ of parts) replaces a file or an older folder of that name
    as a whole: no part of the older one is left beside the new parts."""
    out = tmp_path / "settlement"
    out.mkdir()
    (out / "cases").write_text("one file")
    for parts in (["p0", "p1", "p2"], ["p0"]):
        with atomic_folder(out, ["cases", "region.json"], if_exists="replace", folders=["cases"]) as tmp:
            (tmp / "cases").mkdir()
            for p in parts:
                (tmp / "cases" / p).write_text(p)
            (tmp / "region.json").write_text("{}")
        assert sorted(p.name for p in (out / "cases").iterdir()) == parts
        assert sorted(p.name for p in out.iterdir()) == ["cases", "region.json"]
    with pytest.raises(OutputError, match="already exists"), atomic_folder(out, ["cases"], folders=["cases"]):
        pass
    with (
        pytest.raises(RuntimeError, match="cases not written"),
        atomic_folder(tmp_path / "new", ["cases"], folders=["cases"]) as tmp,
    ):
        (tmp / "cases").write_text("a file, not a folder")
