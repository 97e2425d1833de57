"""Grouping on a Dask cluster (分布式分组): the results of :func:`grouper.pipeline.group_to_file`, computed by the
workers of a ``distributed`` cluster (``--engine dask``).

A dataset is a list of files (a folder: its Parquet files, hive partitions included, sorted by path;
:func:`grouper.io.dataset_files`), one partition per file, in the order the local engine reads them.

1. Duplicate case ids across partitions: the distinct case_id hashes of each partition form a Dask dataframe; a
   groupby keeps the hashes held by more than one partition (a small table: duplicates are rare); the partitions
   then send back their ids of those hashes, compared exactly (a hash collision is not a repeat).
2. Each partition is grouped by :func:`grouper.batch.group_files`, the local engine's own batch loop and grouping
   function, with its duplicate tracker seeded by the ids it shares with earlier partitions, so a repeated id is
   flagged once, on the same row as locally.

A weights fit (:func:`weights_parts`) or a catalogue build (:func:`history_parts`) reads (and groups) each file
of the history on a worker, where it stays (a future); the fit's passes are reductions over those parts
(:class:`ClusterParts`, :mod:`grouper._reduction`), the catalogue's two groupings of the history included: only
per-key and per-group figures come back.

The result tables come back in partition order, a few partitions ahead of the writer (memory on this machine is
bounded), and go through the local engine's writer: the output file is byte-identical. The grouping settings
(codebook, catalogue, tiers…) are loaded once per worker process and kept there. Paths must be readable by the
workers under the same names (a shared file system).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import logging
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from grouper._reduction import Parts
from grouper.batch import DuplicateTracker, _distinct, _hashes, case_hashes, group_files
from grouper.errors import ClusterError, DrgdipError, InputError
from grouper.io import BATCH_SIZE, read_discharges
from grouper.io.formats import one_line

__all__ = [
    "ENGINES",
    "ClusterParts",
    "Engine",
    "connect",
    "group_part_file",
    "group_partitions",
    "group_to_parts",
    "held",
    "history_parts",
    "ordered_results",
    "repeated_ids",
    "weights_parts",
]

#: The engines a command can run on.
ENGINES = ("local", "dask")
#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT = 10
#: Worker processes of a LocalCluster started when no scheduler is named.
DEFAULT_WORKERS = 2
#: Results combined by one task of a reduction's tree.
FAN_IN = 8


@dataclass(frozen=True)
class Engine:
    """Where a run computes (计算引擎): ``"local"`` (this process, streamed) or ``"dask"`` (a Dask cluster).

    ``scheduler``: address of a running scheduler (``tcp://host:8786``); without one, a ``LocalCluster`` of
    ``workers`` worker processes on this machine. ``client``: an existing ``distributed.Client`` to use instead.
    """

    kind: str = "local"
    scheduler: str | None = None
    workers: int | None = None
    client: object | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ClusterError(f"unknown engine {self.kind!r} (use {' or '.join(ENGINES)})", key="engine")

    @property
    def local(self) -> bool:
        return self.kind == "local"


@contextlib.contextmanager
def connect(engine: Engine) -> Iterator:
    """A ``distributed.Client`` for ``engine``: its own client, the named scheduler, or a LocalCluster on loopback
    (closed on exit). A scheduler that cannot be reached is a :class:`ClusterError`."""
    if engine.client is not None:
        yield engine.client
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError(
            "the Dask engine needs the dask and distributed packages: pip install 'drgdip[dask]'",
            key="engine",
        ) from None

    if engine.scheduler:
        try:
            client = Client(engine.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {engine.scheduler} ({one_line(exc)})", key="scheduler"
            ) from None
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=engine.workers or DEFAULT_WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def ordered_results(client, fn: Callable, calls: Iterable[tuple], *, ahead: int | None = None) -> Iterator:
    """``fn(*args)`` for each ``args`` of ``calls`` on the cluster, results in the order of ``calls``, at most
    ``ahead`` tasks (default: two per worker thread) submitted ahead of the one being read.

    A task whose worker dies is rerun by Dask; a task that cannot complete (its workers keep dying, the
    scheduler is lost) is a :class:`ClusterError`; a drgdip error raised by a task is raised as it is.
    """
    ahead = ahead or max(2, 2 * sum(client.nthreads().values()))
    calls = iter(calls)
    pending: collections.deque = collections.deque()

    def submit(k: int) -> None:
        for args in itertools.islice(calls, k):
            pending.append(client.submit(fn, *args, pure=False))

    submit(ahead)
    try:
        while pending:
            future = pending.popleft()
            submit(1)
            try:
                result = future.result()
            except DrgdipError:
                raise
            except Exception as exc:
                raise ClusterError(f"the Dask cluster could not finish the run ({one_line(exc)})") from exc
            future.release()
            yield result
    finally:
        for future in pending:
            future.cancel()


def _value(obj):
    return obj


def held(client, obj):
    """``obj`` made available to the tasks of ``client``'s cluster, sent once, as the result of a task that
    returns it: when a worker holding it dies, the scheduler reruns that task, where scattered data would be
    lost (and the tasks needing it with it)."""
    with warnings.catch_warnings():  # the object in the task graph is meant: it makes it recomputable
        warnings.filterwarnings("ignore", "Large object", UserWarning)
        warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
        return client.submit(_value, obj, pure=False)


# ---------------------------------------------------------------------------------------------------------
# duplicate case ids across partitions


def _partition_hashes(part: int, path: str, encoding: str | None) -> pd.DataFrame:
    """The distinct case_id hashes of one partition, with the partition's number."""
    found = [
        case_hashes(t.column("case_id").combine_chunks())
        for t in read_discharges(path, encoding=encoding, columns=("case_id",))
    ]
    h = _distinct(np.concatenate(found)) if found else np.zeros(0, np.uint64)
    return pd.DataFrame({"h": h, "part": np.full(len(h), part, np.int32)})


def _candidate_ids(path: str, encoding: str | None, shared: np.ndarray) -> pa.Array:
    """The distinct case_ids of one partition whose hash is one of ``shared`` (sorted): the ids that may repeat
    an id of another partition."""
    found = []
    for t in read_discharges(path, encoding=encoding, columns=("case_id",)):
        ids = t.column("case_id").combine_chunks().cast(pa.large_string())
        h, valid = _hashes(ids)
        at = np.minimum(np.searchsorted(shared, h), len(shared) - 1)
        found.append(ids.filter(pa.array(valid & (shared[at] == h))))
    return pc.unique(pa.concat_arrays(found)) if found else pa.array([], pa.large_string())


def repeated_ids(client, files: list[Path], *, encoding: str | None = None) -> list[pa.Array | None]:
    """Per partition, its case_ids that an earlier partition already holds (None: none).

    A reduction over the partitions' distinct case_id hashes (a Dask dataframe groupby) finds the hashes held by
    more than one partition; only when there are some, the partitions send back their ids of those hashes, and the
    ids are compared exactly, so two distinct ids whose hashes collide are never taken for a repeat (as the local
    duplicate tracker compares them)."""
    import dask.dataframe as dd

    meta = pd.DataFrame({"h": np.zeros(0, np.uint64), "part": np.zeros(0, np.int32)})
    frame = dd.from_map(
        _partition_hashes,
        list(range(len(files))),
        [str(f) for f in files],
        encoding=encoding,
        meta=meta,
        enforce_metadata=False,
        label=f"partition-hashes-{uuid.uuid4().hex}",  # this run's own keys, not an earlier run's (its error)
    )
    agg = frame.groupby("h")["part"].agg(["min", "count"], split_out=max(1, len(files) // 16))
    shared = np.sort(client.compute(agg[agg["count"] > 1]).result().index.to_numpy(np.uint64))
    seen: list[pa.Array | None] = [None] * len(files)
    if not len(shared):
        return seen
    calls = ((str(f), encoding, shared) for f in files)
    found = list(ordered_results(client, _candidate_ids, calls))
    held = pd.DataFrame(
        {
            "id": pa.concat_arrays(found).to_numpy(zero_copy_only=False),
            "part": np.repeat(np.arange(len(files)), [len(a) for a in found]),
        }
    )
    held["first"] = held.groupby("id")["part"].transform("min")
    for part, ids in held[held["part"] > held["first"]].groupby("part")["id"]:
        seen[part] = pa.array(ids.to_numpy(), pa.large_string())
    return seen


# ---------------------------------------------------------------------------------------------------------
# grouping


@functools.lru_cache(maxsize=4)
def _grouping_on_worker(settings: tuple):
    """The grouping of ``settings``, loaded once per worker process (codebook, catalogue, tiers, exclusions)."""
    from grouper.pipeline import grouping

    return grouping(**dict(settings))


def _group_partition(
    path: str, settings: tuple, seen: pa.Array | None, encoding: str | None, batch_size: int
) -> tuple[list[pa.Table], dict[str, str]]:
    g = _grouping_on_worker(settings)
    tables = list(
        group_files(
            [path],
            g.run,
            encoding=encoding,
            batch_size=batch_size,
            columns=g.columns,
            codes=g.codes,
            tracker=DuplicateTracker(seen),
        )
    )
    return tables, g.metadata


def group_partitions(
    engine: Engine,
    files: list[Path],
    settings: dict,
    metadata: dict[str, str],
    *,
    encoding: str | None = None,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[pa.Table]:
    """The result tables of grouping ``files`` on the cluster, in input order: what
    :func:`grouper.batch.group_files` yields locally, batch for batch.

    ``settings``: the keyword arguments of :func:`grouper.pipeline.grouping`; ``metadata``: the output metadata
    this machine computed for them (a worker that loads another codebook or catalogue is a
    :class:`ClusterError`).
    """
    frozen = _frozen(settings)
    with connect(engine) as client:
        seen = repeated_ids(client, files, encoding=encoding)
        calls = ((str(f), frozen, s, encoding, batch_size) for f, s in zip(files, seen, strict=True))
        for tables, theirs in ordered_results(client, _group_partition, calls):
            _same_metadata(metadata, theirs)
            for t in tables:
                if on_batch is not None:
                    on_batch(t.num_rows)
                yield t


def group_to_parts(
    engine: Engine,
    files: list[Path],
    targets: list[Path],
    settings: dict,
    metadata: dict[str, str],
    *,
    encoding: str | None = None,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, dict[str, int]]]:
    """Group each file of ``files`` into the Parquet file of the same rank of ``targets`` (a folder of parts:
    on a cluster the workers write them, in parallel; locally one after the other). Yields (rows, cases per
    status) per part, in order. Duplicate case ids are flagged as when grouping into one file."""
    frozen = _frozen(settings)
    if engine.local:
        tracker = DuplicateTracker()  # one tracker over the parts, as over the files of one output
        results = (
            group_part_file(str(f), str(t), frozen, None, encoding, batch_size, tracker)
            for f, t in zip(files, targets, strict=True)
        )
        yield from _part_results(results, metadata, on_batch)
        return
    with connect(engine) as client:
        seen = repeated_ids(client, files, encoding=encoding)
        calls = (
            (str(f), str(t), frozen, s, encoding, batch_size)
            for f, t, s in zip(files, targets, seen, strict=True)
        )
        yield from _part_results(ordered_results(client, group_part_file, calls), metadata, on_batch)


def group_part_file(
    path: str,
    target: str,
    settings: tuple,
    seen: pa.Array | None,
    encoding: str | None,
    batch_size: int,
    tracker: DuplicateTracker | None = None,
) -> tuple[int, dict[str, int], dict[str, str]]:
    """Group one partition into its own Parquet file, streamed (memory bounded by the batch size); returns the
    rows, cases per status and the metadata written."""
    from grouper.io import write_results
    from grouper.pipeline import status_counts

    g = _grouping_on_worker(settings)
    counts: collections.Counter[str] = collections.Counter()

    def tally(tables):
        for t in tables:
            counts.update(status_counts(t, g.status_column))
            yield t

    results = group_files(
        [path],
        g.run,
        encoding=encoding,
        batch_size=batch_size,
        columns=g.columns,
        codes=g.codes,
        tracker=tracker if tracker is not None else DuplicateTracker(seen),
    )
    rows = write_results(tally(results), target, metadata=g.metadata)
    return rows, dict(counts), g.metadata


def _part_results(results, metadata, on_batch) -> Iterator[tuple[int, dict[str, int]]]:
    for rows, counts, theirs in results:
        _same_metadata(metadata, theirs)
        if on_batch is not None:
            on_batch(rows)
        yield rows, counts


# ---------------------------------------------------------------------------------------------------------
# the history of a weights fit


@functools.lru_cache(maxsize=2)
def _codebook_on_worker(scheme: str):
    from grouper.codebook import Codebook

    return Codebook.load(scheme)


def _history_part(
    path: str, columns: tuple[str, ...] | None, encoding: str | None, required: tuple[str, ...]
) -> pa.Table:
    """One file of a history, read as :func:`grouper.io.read_cases` reads it, of ``columns`` (None: all) those it
    has (export headers mapped; a ``required`` column missing is named with the file, with cases or not; a file
    without cases: an empty part)."""
    from grouper.io import read_cases

    return read_cases([path], columns=columns, encoding=encoding, required=required, allow_empty=True)


def _weights_part(
    path: str, scheme: str, seen: pa.Array | None, encoding: str | None, required: tuple[str, ...]
) -> pa.Table:
    """One file of a history (:func:`_history_part`), grouped under ``scheme`` when it has no ``drg``, cut to
    the columns the weights fit reads, with the fingerprint of the codebook that grouped it in its metadata
    (none: not grouped)."""
    from grouper.drg.weights import HISTORY_COLUMNS
    from grouper.fitting import with_drg

    table = _history_part(path, None, encoding, required)
    meta = {}
    if "drg" not in table.column_names:
        codebook = _codebook_on_worker(scheme)
        table, meta = with_drg(table, codebook, None, seen), {_CODEBOOK_KEY: codebook.fingerprint}
    return table.select([c for c in HISTORY_COLUMNS if c in table.column_names]).replace_schema_metadata(meta)


_CODEBOOK_KEY = b"drgdip.codebook"


def _part_info(table: pa.Table) -> tuple[int, str | None]:
    """The rows of a part held by a worker and the codebook that grouped it."""
    used = (table.schema.metadata or {}).get(_CODEBOOK_KEY)
    return table.num_rows, None if used is None else used.decode()


def weights_parts(
    client,
    files: list[Path],
    scheme: str,
    *,
    encoding: str | None = None,
    on_batch: Callable[[int], None] | None = None,
    required: tuple[str, ...] = (),
):
    """The history of a weights fit (:func:`grouper.fitting.weights_to_file`) held by the workers, one part per
    file: each read (a file that lacks a column of ``required`` is an error naming it and the column, as the
    local reader's), and grouped under ``scheme`` when it has no ``drg`` (duplicate case ids flagged across the
    files, exactly, as when the local engine groups them in one table), cut to the columns the fit reads. Returns
    the :class:`ClusterParts` the fit reduces and the codebook when the cases were grouped (else None); only
    each part's row count comes back here."""
    import pyarrow.parquet as pq

    from grouper.codebook import Codebook

    codebook = Codebook.load(scheme)
    names = set(pq.read_schema(files[0]).names) if files[0].suffix.lower() == ".parquet" else {"case_id"}
    seen = [None] * len(files)
    if "drg" not in names and "case_id" in names:
        seen = repeated_ids(client, files, encoding=encoding)
    parts = [
        client.submit(_weights_part, str(f), scheme, s, encoding, required, pure=False)
        for f, s in zip(files, seen, strict=True)
    ]
    grouped = False
    for rows, used in ordered_results(client, _part_info, ((p,) for p in parts)):
        if used is not None:
            grouped = True
            _same_metadata({"codebook": codebook.fingerprint}, {"codebook": used})
        if on_batch is not None:
            on_batch(rows)
    return ClusterParts(client, parts), codebook if grouped else None


def _apply(fn: Callable, part, args: tuple):
    return fn(part, *args)


def _combine(combine: Callable, *results):
    return combine(list(results))


class ClusterParts(Parts):
    """Parts of a history held by the workers of a cluster (futures): :meth:`reduce` runs ``fn`` where each part
    is, and combines the results there, in a tree of :data:`FAN_IN` results a task; only the combined result
    comes back (per-group aggregates, never a case)."""

    def __init__(self, client, parts: list) -> None:
        self.client, self.parts = client, parts

    def map(self, fn, *args) -> ClusterParts:
        """``fn(part, *args)`` on each part, where it is; ``args`` are sent once (:func:`held`) and left to the
        scheduler, which keeps them while a part computed from them is held (to compute it again)."""
        shared = held(self.client, args)
        return ClusterParts(
            self.client, [self.client.submit(_apply, fn, p, shared, pure=False) for p in self.parts]
        )

    def release(self) -> None:
        for future in self.parts:
            future.release()

    def reduce(self, fn, combine, *args):
        mapped = self.map(fn, *args)
        level = mapped.parts
        while len(level) > 1:
            level = [
                self.client.submit(_combine, combine, *level[k : k + FAN_IN], pure=False)
                for k in range(0, len(level), FAN_IN)
            ]
        try:
            return level[0].result()
        except DrgdipError:
            raise
        except Exception as exc:
            raise ClusterError(f"the Dask cluster could not finish the run ({one_line(exc)})") from exc
        finally:
            mapped.release()
            for future in level:
                future.release()


# ---------------------------------------------------------------------------------------------------------
# the history of a catalogue


def _rows(table: pa.Table) -> int:
    return table.num_rows


def history_parts(
    client,
    files: list[Path],
    columns: tuple[str, ...],
    encoding: str | None,
    on_batch: Callable[[int], None] | None = None,
    required: tuple[str, ...] = (),
) -> tuple[ClusterParts, int]:
    """The history of a catalogue build (:func:`grouper.fitting.catalogue_to_file`) held by the workers, one
    part per file, read as :func:`grouper.io.read_cases` reads it (the columns a file lacks left out, but a
    file that lacks a column of ``required``, with cases or without, is an error naming it and the column, as the
    local reader's; a file without cases is an empty part), for the fit's reductions; and its rows (only the
    count comes back)."""
    parts = [client.submit(_history_part, str(f), columns, encoding, required, pure=False) for f in files]
    rows = 0
    for n in ordered_results(client, _rows, ((p,) for p in parts)):
        rows += n
        if on_batch is not None:
            on_batch(n)
    if not rows:
        raise InputError(f"{', '.join(map(str, files))}: no cases in the history", path=files[0])
    return ClusterParts(client, parts), rows


def _frozen(settings: dict) -> tuple:
    """Grouping settings as a hashable key (the worker's cache of loaded groupings)."""
    return tuple(sorted((k, str(v) if isinstance(v, Path) else v) for k, v in settings.items()))


def _same_metadata(ours: dict[str, str], theirs: dict[str, str]) -> None:
    if theirs != ours:
        differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        raise ClusterError(
            f"the workers group with other data or code than this machine ({', '.join(differ)} differ)"
        )
