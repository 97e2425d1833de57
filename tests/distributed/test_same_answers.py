"""--engine dask gives what the local engine gives (issue 15): the same rows in the same order, the same values,
the same money to the fen, the same Parquet bytes — on the demo region cut into hive partitions, on the
conformance files, and with duplicate case ids spread across partitions.

One LocalCluster of 2 worker processes on loopback serves the module (so everything the workers get is pickled,
as on a real cluster).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import grouper.batch
from grouper.distributed import Engine
from grouper.errors import InputError
from grouper.fitting import catalogue_to_file, weights_to_file
from grouper.pipeline import group_to_file
from grouper.resources import data_path
from grouper.synth import generate
from payment.cli import app
from payment.cli.demo import DEMO_MIN_CASES
from payment.pipeline import settle_files
from tests.grouper.test_history_headers import write_histories

distributed = pytest.importorskip("distributed")

DRG = Path(__file__).resolve().parents[1] / "grouper" / "drg"
CONFORMANCE_20 = [DRG / "data20" / n for n in ("conformance_examples.csv", "conformance_published.csv",
                                               "conformance_visible.csv")]  # fmt: skip
CONFORMANCE_11 = [DRG / "data" / n for n in ("conformance_opendrg_input.csv", "conformance_visible.csv")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """`drgdip demo` at its smallest size; its 2025 discharges also cut into hive partitions by hospital."""
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--cases", str(DEMO_MIN_CASES), "--quiet"])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out / "region" / "discharges-2025.parquet")
    hospitals = sorted(set(table.column("hospital_id").to_pylist()))
    for i, h in enumerate(hospitals[:6]):  # six partitions of one hospital each, the rest in a seventh
        part = out / "parts" / "year=2025" / f"hospital={i}" / "part-0.parquet"
        part.parent.mkdir(parents=True)
        pq.write_table(table.filter(pc.equal(table.column("hospital_id"), h)), part)
    rest = table.filter(pc.invert(pc.is_in(table.column("hospital_id"), pa.array(hospitals[:6]))))
    (out / "parts" / "year=2025" / "hospital=rest").mkdir()
    pq.write_table(rest, out / "parts" / "year=2025" / "hospital=rest" / "part-0.parquet")
    return out


def _both(tmp_path: Path, dask: Engine, inputs, **settings) -> tuple[Path, Path]:
    local, remote = tmp_path / "local.parquet", tmp_path / "dask.parquet"
    a = group_to_file(inputs, local, **settings)
    b = group_to_file(inputs, remote, engine=dask, **settings)
    assert (a.rows, a.counts, a.metadata) == (b.rows, b.counts, b.metadata)
    return local, remote


def test_demo_region_groups_to_the_same_bytes(demo, dask, tmp_path):
    local, remote = _both(tmp_path, dask, [demo / "parts"], scheme="dip", catalogue=demo / "catalogue.csv")
    assert local.read_bytes() == remote.read_bytes()
    one_file = group_to_file(
        [demo / "region" / "discharges-2025.parquet"],
        tmp_path / "one.parquet",
        scheme="dip",
        catalogue=demo / "catalogue.csv",
    )
    assert pq.read_metadata(remote).num_rows == one_file.rows


def test_conformance_files_group_to_the_same_bytes(dask, tmp_path):
    for scheme, files in (("chs-drg-2.0", CONFORMANCE_20), ("chs-drg-1.1", CONFORMANCE_11)):
        local, remote = _both(tmp_path / scheme, dask, files, scheme=scheme, explain=True)
        assert local.read_bytes() == remote.read_bytes(), scheme


def _parts_with_repeats(folder: Path) -> Path:
    """Three partitions of 1,000 cases whose case ids repeat within and across partitions."""
    ids = np.array([f"C{i:05d}" for i in range(3000)], dtype=object)
    ids[1500] = ids[10]  # partition 1 repeats an id of partition 0
    ids[2999] = ids[10]  # partition 2 too: both flagged, the first kept
    ids[2500] = ids[2400]  # a repeat inside partition 2
    ids[1200] = ids[2600]  # the later one (partition 2) is the duplicate
    folder.mkdir()
    for k in range(3):
        sl = slice(1000 * k, 1000 * (k + 1))
        pq.write_table(
            pa.table(
                {"case_id": ids[sl].tolist(), "principal_dx": ["J18.900"] * 1000, "age_years": [40] * 1000}
            ),
            folder / f"part-{k}.parquet",
        )
    return folder


REPEATS = [1500, 2500, 2600, 2999]  # the rows _parts_with_repeats flags as DUPLICATE_CASE


def test_duplicate_ids_across_partitions_are_flagged_once_as_locally(dask, tmp_path):
    local, remote = _both(tmp_path, dask, [_parts_with_repeats(tmp_path / "parts")], scheme="chs-drg-1.1")
    assert local.read_bytes() == remote.read_bytes()
    status = pq.read_table(remote).column("drg_status").to_pylist()
    assert [i for i, s in enumerate(status) if s == "DUPLICATE_CASE"] == REPEATS


def test_ids_whose_hashes_collide_across_partitions_are_not_duplicates(tmp_path, monkeypatch):
    """The hash cut to 3 values, so that most ids of different partitions collide: only the true repeats are
    flagged (the ids are compared exactly), as locally. Workers in this process, so that they hash alike."""
    real = grouper.batch._fnv1a
    monkeypatch.setattr(grouper.batch, "_fnv1a", lambda o, d: real(o, d) % np.uint64(3))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as c,
        distributed.Client(c, set_as_default=False) as client,
    ):
        engine = Engine("dask", client=client)
        local, remote = _both(
            tmp_path, engine, [_parts_with_repeats(tmp_path / "parts")], scheme="chs-drg-1.1"
        )
    assert local.read_bytes() == remote.read_bytes()
    status = pq.read_table(remote).column("drg_status").to_pylist()
    assert [i for i, s in enumerate(status) if s == "DUPLICATE_CASE"] == REPEATS


def test_a_partition_mended_after_an_error_is_read_anew_on_the_same_cluster(dask, tmp_path):
    """A partition without principal_dx stops the search for repeated ids with its error; mended in place, it is
    read anew by the next run on the same cluster (a run's own task keys: not the earlier run's error), and the
    id it repeats is found."""
    from grouper.distributed import repeated_ids

    files = [tmp_path / "part-0.parquet", tmp_path / "part-1.parquet"]
    pq.write_table(pa.table({"case_id": ["a", "b"], "principal_dx": ["J18.900"] * 2}), files[0])
    pq.write_table(pa.table({"case_id": ["a", "c"]}), files[1])
    with pytest.raises(InputError, match="principal_dx"):
        repeated_ids(dask.client, files)
    pq.write_table(pa.table({"case_id": ["a", "c"], "principal_dx": ["J18.900"] * 2}), files[1])
    seen = repeated_ids(dask.client, files)
    assert seen[0] is None and seen[1].to_pylist() == ["a"]


def test_a_folder_of_parts_is_the_same_on_both_engines(demo, dask, tmp_path):
    """Grouped into a folder (one part per input file, written by the workers): the same bytes, part for part,
    and the same rows as grouping into one file."""
    settings = {"scheme": "dip", "catalogue": demo / "catalogue.csv"}
    a = group_to_file([demo / "parts"], tmp_path / "local", **settings)
    b = group_to_file([demo / "parts"], tmp_path / "dask", engine=dask, **settings)
    assert (a.rows, a.counts) == (b.rows, b.counts)
    names = sorted(str(p.relative_to(tmp_path / "local")) for p in (tmp_path / "local").rglob("*.parquet"))
    assert names == sorted(str(p.relative_to(demo / "parts")) for p in (demo / "parts").rglob("*.parquet"))
    for name in names:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes(), name
    one = group_to_file([demo / "parts"], tmp_path / "one.parquet", **settings)
    assert pq.read_table(one_file := tmp_path / "one.parquet").equals(
        pa.concat_tables(pq.read_table(tmp_path / "dask" / n) for n in names)
    ), one_file
    assert one.counts == b.counts


def test_demo_region_settles_to_the_same_folder(demo, dask, tmp_path):
    catalogue, hospitals = demo / "catalogue.csv", demo / "region" / "hospitals.csv"
    policy = data_path("policies", "demo-2025.toml")
    grouped = tmp_path / "grouped"  # the grouped results cut as the discharges are, part for part
    group_to_file([demo / "parts"], grouped, scheme="dip", catalogue=catalogue, engine=dask)
    settle_files(
        demo / "grouped.parquet",
        hospitals,
        policy,
        tmp_path / "local",
        discharges=demo / "region" / "discharges-2025.parquet",
        catalogue=catalogue,
    )
    settle_files(
        grouped,
        hospitals,
        policy,
        tmp_path / "dask",
        discharges=demo / "parts",
        catalogue=catalogue,
        engine=dask,
    )
    settle_files(
        grouped, hospitals, policy, tmp_path / "parts", discharges=demo / "parts", catalogue=catalogue
    )
    # the partitions hold the cases in another order: the money is the same, the case rows are permuted
    for name in ("hospitals.csv", "region.json"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes(), name
    # cases.parquet of a settlement of parts: a folder of one file per part, written by the workers, read whole
    parts = sorted(p.name for p in (tmp_path / "dask" / "cases.parquet").iterdir())
    assert parts == [f"part-{k:05d}.parquet" for k in range(7)]
    a, b = (pq.read_table(tmp_path / d / "cases.parquet") for d in ("local", "dask"))
    order = pc.sort_indices(a, [("case_id", "ascending")])
    assert a.take(order).equals(b.take(pc.sort_indices(b, [("case_id", "ascending")])))
    assert b.column("case_id").to_pylist() == pq.read_table(grouped).column("case_id").to_pylist()
    for name in ("hospitals.csv", "region.json", *(f"cases.parquet/{p}" for p in parts)):
        # the same parts on one machine: the same bytes
        assert (tmp_path / "parts" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes(), name
    # settled again over the one-file settlement: cases.parquet is replaced whole (a folder for a file)
    settle_files(
        grouped,
        hospitals,
        policy,
        tmp_path / "local",
        discharges=demo / "parts",
        catalogue=catalogue,
        engine=dask,
        if_exists="replace",
    )
    assert sorted(p.name for p in (tmp_path / "local" / "cases.parquet").iterdir()) == parts
    assert [p.name for p in (tmp_path / "local").iterdir() if p.name.startswith(".")] == []


def test_weights_fitted_on_the_cluster_are_the_same_file(dask, tmp_path):
    """A history without `drg` in 4 parts, case ids repeated across them: the workers read and group the parts,
    the caller fits; the weights file is the local engine's, byte for byte (and the command takes --engine)."""
    table, _ = generate(1600, [2023, 2024, 2025], 6, seed=8)
    ids = table.column("case_id").to_pylist()
    ids[500], ids[1300] = ids[10], ids[499]  # repeats in later parts: duplicates, left out of the fit
    table = table.set_column(table.schema.get_field_index("case_id"), "case_id", pa.array(ids))
    (tmp_path / "h" / "year=all").mkdir(parents=True)
    for k in range(4):
        pq.write_table(table.slice(400 * k, 400), tmp_path / "h" / "year=all" / f"part-{k}.parquet")
    local = weights_to_file([tmp_path / "h"], tmp_path / "local.parquet", scheme="chs-drg-1.1")
    remote = weights_to_file([tmp_path / "h"], tmp_path / "dask.parquet", scheme="chs-drg-1.1", engine=dask)
    assert remote.grouped_with == local.grouped_with == "chs-drg-1.1"
    assert local.weights.n_cases_ == remote.weights.n_cases_ > 0
    assert (tmp_path / "local.parquet").read_bytes() == (tmp_path / "dask.parquet").read_bytes()
    command = ["weights", "--history", str(tmp_path / "h"), "--scheme", "chs-drg-1.1", "--quiet", "--out"]
    address = dask.client.scheduler.address  # the command connects to the module's cluster
    for out, options in (
        ("cli-local.csv", []),
        ("cli-dask.csv", ["--engine", "dask", "--scheduler", address]),
    ):
        result = CliRunner().invoke(app, [*command, str(tmp_path / out), *options])
        assert result.exit_code == 0, result.output
    for suffix in (".csv", ".params.toml"):
        local, remote = (tmp_path / f"cli-{e}{suffix}" for e in ("local", "dask"))
        assert local.read_bytes() == remote.read_bytes(), suffix


def test_weights_on_the_cluster_take_an_empty_part_as_here(dask, tmp_path):
    """A history without `drg` in 3 parts, the middle one without cases: its worker holds an empty part, as a
    catalogue's does (it read the file as a history of its own and stopped: no cases), and the weights are the
    local engine's file."""
    table, _ = generate(800, [2023, 2024], 4, seed=5)
    (tmp_path / "h").mkdir()
    for k, (a, b) in enumerate([(0, 400), (400, 400), (400, 800)]):  # part-1 is empty
        pq.write_table(table.slice(a, b - a), tmp_path / "h" / f"part-{k}.parquet")
    local = weights_to_file([tmp_path / "h"], tmp_path / "local.parquet", scheme="chs-drg-1.1")
    remote = weights_to_file([tmp_path / "h"], tmp_path / "dask.parquet", scheme="chs-drg-1.1", engine=dask)
    assert local.weights.n_cases_ == remote.weights.n_cases_ > 0
    assert (tmp_path / "local.parquet").read_bytes() == (tmp_path / "dask.parquet").read_bytes()


def test_catalogue_built_on_the_cluster_is_the_same_file(demo, dask, tmp_path):
    """The demo's history in 4 parts (one of them empty): the workers read the parts and group them into the
    draft catalogue and into the catalogue (for auxiliary typing), the caller computes the statistics; the
    catalogue and its auxiliary typing are the local engine's files, byte for byte (and the command takes
    --engine)."""
    table = pq.read_table(demo / "region" / "history-2022-2024.parquet")
    (tmp_path / "h").mkdir()
    n = table.num_rows
    for k, (a, b) in enumerate([(0, 700), (700, 700), (700, n // 2), (n // 2, n)]):
        pq.write_table(table.slice(a, b - a), tmp_path / "h" / f"part-{k}.parquet")  # part-1 is empty
    settings = {"years": (2022, 2023, 2024), "name": "demo-2025"}
    local = catalogue_to_file([tmp_path / "h"], tmp_path / "local.csv", **settings)
    remote = catalogue_to_file([tmp_path / "h"], tmp_path / "dask.csv", engine=dask, **settings)
    assert local.catalogue.n_cases_ == remote.catalogue.n_cases_ > 0
    assert local.aux.n_cases_ == remote.aux.n_cases_ > 0
    for suffix in (".csv", ".toml", ".aux.csv", ".aux.params.toml"):
        assert (tmp_path / f"local{suffix}").read_bytes() == (tmp_path / f"dask{suffix}").read_bytes(), suffix
    command = ["catalog", "--history", str(tmp_path / "h"), "--years", "2022,2023,2024", "--quiet", "--out"]
    address = dask.client.scheduler.address  # the command connects to the module's cluster
    for out, options in (("cli-local", []), ("cli-dask", ["--engine", "dask", "--scheduler", address])):
        result = CliRunner().invoke(app, [*command, str(tmp_path / f"{out}.parquet"), *options])
        assert result.exit_code == 0, result.output
    for suffix in (".parquet", ".aux.csv", ".aux.params.toml"):
        local, remote = (tmp_path / f"cli-{e}{suffix}" for e in ("local", "dask"))
        assert local.read_bytes() == remote.read_bytes(), suffix


def test_an_export_header_history_fits_on_the_cluster_as_here(dask, tmp_path):
    """A Parquet history with an export's headers (病案号, 总费用, 其他诊断编码1…n) in 3 parts, the middle one
    without cases: each worker maps its part's headers as the local reader does, the empty part's too (its
    worker took its headers as they are: no `total_cost`, and the cluster stopped); the catalogue and the weights
    are the local engine's files."""
    table = pq.read_table(write_histories(tmp_path) / "export.parquet")
    (tmp_path / "h").mkdir()
    for k, (a, b) in enumerate([(0, 600), (600, 600), (600, 1200)]):  # part-1 is empty
        pq.write_table(table.slice(a, b - a), tmp_path / "h" / f"part-{k}.parquet")
    for fit, out in ((catalogue_to_file, "c"), (weights_to_file, "w")):
        fit([tmp_path / "h"], tmp_path / f"{out}-local.csv")
        fit([tmp_path / "h"], tmp_path / f"{out}-dask.csv", engine=dask)
        local, remote = (tmp_path / f"{out}-{e}.csv" for e in ("local", "dask"))
        assert local.read_bytes() == remote.read_bytes(), out
    assert (tmp_path / "c-local.aux.csv").read_bytes() == (tmp_path / "c-dask.aux.csv").read_bytes()


def test_a_csv_history_with_an_empty_file_fits_on_the_cluster_as_here(dask, tmp_path):
    """An export's CSV history in 3 files, the middle one a header without rows: its worker holds an empty part
    (it stopped: no cases in the history), and the catalogue is the local engine's file."""
    table = pacsv.read_csv(write_histories(tmp_path) / "export.csv")
    (tmp_path / "h").mkdir()
    for k, (a, b) in enumerate([(0, 600), (600, 600), (600, 1200)]):  # part-1 is empty
        pacsv.write_csv(table.slice(a, b - a), tmp_path / "h" / f"part-{k}.csv")
    files = sorted((tmp_path / "h").iterdir())
    for engine, out in ((None, "local"), (dask, "dask")):
        catalogue_to_file(files, tmp_path / f"{out}.csv", aux=False, engine=engine)
    assert (tmp_path / "local.csv").read_bytes() == (tmp_path / "dask.csv").read_bytes()


def test_an_implausible_cost_in_a_part_stops_both_engines_alike(dask, tmp_path):
    """A cost of 1e15 in the second part of a history: the catalogue build stops with the local engine's one
    error (the file, row and column; the worker reads the part as the local reader does), and writes nothing."""
    table, _ = generate(800, [2023, 2024], 4, seed=5)
    costs = table.column("total_cost").to_pylist()
    costs[600] = 1e15
    table = table.set_column(table.schema.get_field_index("total_cost"), "total_cost", pa.array(costs))
    (tmp_path / "h").mkdir()
    for k in range(2):
        pq.write_table(table.slice(400 * k, 400), tmp_path / "h" / f"part-{k}.parquet")
    errors = []
    for engine in (None, dask):
        with pytest.raises(InputError) as caught:
            catalogue_to_file([tmp_path / "h"], tmp_path / "out" / "c.csv", engine=engine)
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "part-1.parquet" in errors[0] and "total_cost" in errors[0], errors
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("rows", [400, 0])
@pytest.mark.parametrize(
    ("fit", "column"),
    [(catalogue_to_file, "principal_dx"), (weights_to_file, "total_cost"), (weights_to_file, "principal_dx")],
)
def test_a_part_missing_a_column_is_named_by_both_engines_alike(dask, tmp_path, fit, column, rows):
    """The second part of a history lacks a column the fit needs (a catalogue's principal_dx, the weights'
    total_cost, and their principal_dx when they group the history, which has no drg), with cases or without:
    both engines stop with the local reader's one error, naming the file and the column (a worker reads its part
    as the local reader does; an empty part's worker took the file as it was, and the fit's pass stopped on it
    without naming it; the weights here grouped the part's cases as ungroupable and left them out), and write
    nothing."""
    table, _ = generate(800, [2023, 2024], 4, seed=5)
    (tmp_path / "h").mkdir()
    pq.write_table(table.slice(0, 400), tmp_path / "h" / "part-0.parquet")
    pq.write_table(table.slice(400, rows).drop_columns([column]), tmp_path / "h" / "part-1.parquet")
    errors = []
    for engine in (None, dask):
        with pytest.raises(InputError) as caught:
            fit([tmp_path / "h"], tmp_path / "out" / "f.csv", engine=engine)
        errors.append((str(caught.value), caught.value.column))
    assert errors[0] == errors[1] and "part-1.parquet" in errors[0][0] and errors[0][1] == column, errors
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_weights_fit_on_the_cluster_brings_back_only_per_group_aggregates(dask, tmp_path, monkeypatch):
    """Grouped histories of 20,000 and 160,000 cases in 4 parts: everything the caller receives from the cluster
    (each future's result) is per part or per group — no table, no column of cases — and hardly grows with the
    cases (8× the cases, under 2× the bytes: under a byte a case); the weights are the local engine's."""
    from dask.sizeof import sizeof

    received: list = []
    real = distributed.Future.result

    def spy(future, *args, **kwargs):
        value = real(future, *args, **kwargs)
        received.append(value)
        return value

    def arrays(value):
        if isinstance(value, dict):
            return [a for v in value.values() for a in arrays(v)]
        if isinstance(value, tuple | list):
            return [a for v in value for a in arrays(v)]
        return [value] if isinstance(value, pa.Table | pa.Array | pa.ChunkedArray | np.ndarray) else []

    sizes = {}
    for n in (20_000, 160_000):
        rng = np.random.default_rng(11)
        drg = rng.choice(["GB19", "GB29", "ES31", "ES35", "FR29", "FR23"], n)
        table = pa.table(
            {
                "year": pa.array(rng.choice([2023, 2024, 2025], n), pa.int32()),
                "drg": drg,
                "total_cost": np.round(rng.lognormal(9, 0.6, n), 2),
                "los_days": pa.array(rng.integers(1, 30, n), pa.int32()),
            }
        )
        (tmp_path / f"h{n}").mkdir()
        for k in range(4):
            pq.write_table(table.slice(n // 4 * k, n // 4), tmp_path / f"h{n}" / f"part-{k}.parquet")
        received.clear()
        with monkeypatch.context() as m:
            m.setattr(distributed.Future, "result", spy)
            remote = weights_to_file([tmp_path / f"h{n}"], tmp_path / f"d{n}.parquet", engine=dask)
        weights_to_file([tmp_path / f"h{n}"], tmp_path / f"l{n}.parquet")
        assert (tmp_path / f"d{n}.parquet").read_bytes() == (tmp_path / f"l{n}.parquet").read_bytes()
        assert remote.weights.n_cases_ == n and received
        got = [a for v in received for a in arrays(v)]
        assert not any(isinstance(a, pa.Table | pa.Array | pa.ChunkedArray) for a in got)
        sizes[n] = sum(sizeof(v) for v in received)
    assert sizes[160_000] < min(2 * sizes[20_000], 160_000), sizes  # a gather: 24–40 bytes a case


def test_the_catalogue_built_on_the_cluster_brings_back_no_case(demo, dask, tmp_path, monkeypatch):
    """The demo's history in 3 parts: what the caller receives from the cluster is per part, per exact key or
    per group (the key table has fewer rows than the history has cases; no other table; no array of a case
    each): the history's columns and its groupings stay on the workers."""
    table = pq.read_table(demo / "region" / "history-2022-2024.parquet")
    (tmp_path / "h").mkdir()
    n = table.num_rows
    for k in range(3):
        pq.write_table(table.slice(n // 3 * k, n // 3 if k < 2 else n), tmp_path / "h" / f"part-{k}.parquet")
    received = []
    real = distributed.Future.result

    def spy(future, *args, **kwargs):
        value = real(future, *args, **kwargs)
        received.append(value)
        return value

    monkeypatch.setattr(distributed.Future, "result", spy)
    settings = {"years": (2022, 2023, 2024), "name": "demo-2025"}
    catalogue_to_file([tmp_path / "h"], tmp_path / "dask.csv", engine=dask, **settings)
    monkeypatch.undo()
    catalogue_to_file([tmp_path / "h"], tmp_path / "local.csv", **settings)
    for suffix in (".csv", ".toml", ".aux.csv", ".aux.params.toml"):
        assert (tmp_path / f"local{suffix}").read_bytes() == (tmp_path / f"dask{suffix}").read_bytes(), suffix

    def items(value):
        if isinstance(value, dict):
            return [a for v in value.values() for a in items(v)]
        if isinstance(value, tuple | list):
            return [a for v in value for a in items(v)]
        return [value] if isinstance(value, pa.Table | pa.Array | pa.ChunkedArray | np.ndarray) else []

    got = [a for v in received for a in items(v)]
    tables = [a for a in got if isinstance(a, pa.Table)]
    assert all(t.column_names == ["key", "count", "hi", "lo"] and t.num_rows < n / 2 for t in tables), tables
    assert not any(isinstance(a, pa.Array | pa.ChunkedArray) for a in got)
    assert max(len(a) for a in got) < n / 2
