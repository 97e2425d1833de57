"""Benchmark: the self-audit, report included (issue 12 §8): one large hospital's year (100,000 cases, target
< 10 s) and a whole region (1,000,000 cases, 40 hospitals, target < 60 s), DIP under the demo policy.

Cases are generated in memory (grouper.synth, with the fee breakdown); the measured run is ``payment.audit``
plus ``write_audit`` (Parquet tables, audit.xlsx, report.html) into a temporary folder. Run with
``pytest benchmarks/test_bench_audit.py --benchmark-enable -s``; ``DRGDIP_BENCH_AUDIT_SCALE`` (default 1.0) scales
both sizes.
"""

from __future__ import annotations

import os
import resource

from grouper.resources import data_path
from grouper.synth import generate
from payment.audit import audit
from payment.audit.files import write_audit
from payment.policy import Policy

SCALE = float(os.environ.get("DRGDIP_BENCH_AUDIT_SCALE", 1.0))


def _run(benchmark, cases: int, hospitals: int, tmp_path, hospital_focus: bool):
    discharges, hosp = generate(int(cases * SCALE), [2025], hospitals, seed=2025, fees=True)
    discharges = discharges.drop(["synthetic_defect"])
    policy = Policy.load(data_path("policies", "demo-2025.toml"))
    options = {"scheme": "dip", "catalogue": "pingdingshan-2025", "policy": policy, "hospitals": hosp}
    audit(discharges.slice(0, 2000), **options)  # load the numba cache outside the measurement
    focus = discharges.column("hospital_id")[0].as_py() if hospital_focus else None

    def run():
        result = audit(discharges, hospital=focus, **options)
        write_audit(result, tmp_path / "out", if_exists="replace")
        return result

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result["summary"].num_rows > 0
    stats = getattr(benchmark, "stats", None)
    seconds = stats.stats.max if stats else None
    benchmark.extra_info["cases"] = discharges.num_rows
    benchmark.extra_info["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if seconds:
        benchmark.extra_info["cases_per_second"] = discharges.num_rows / seconds
        print(f"\naudit of {discharges.num_rows:,} cases, report included: {seconds:.1f} s")


def test_bench_audit_hospital_100k(benchmark, tmp_path):
    # one large hospital's year: every case belongs to the one hospital audited
    _run(benchmark, 100_000, 1, tmp_path, hospital_focus=True)


def test_bench_audit_region_1m(benchmark, tmp_path):
    _run(benchmark, 1_000_000, 40, tmp_path, hospital_focus=False)
