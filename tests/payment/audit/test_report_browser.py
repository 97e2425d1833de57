"""report.html in a real browser (headless Chromium): the headline numbers equal the tables, every chart is
drawn with a non-zero size, the tables sort and filter, and the console stays clean.

Chromium is installed with apt-get where it is missing (root, a timeout); the test is skipped, saying why, where
that cannot be done. The page is probed through a copy with a small script added; no screenshot is kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest

from payment.audit.report import HEADLINE, format_value

_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message)); });
var _err = console.error;
console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, ' ')); _err.apply(console, arguments); };
window.addEventListener('load', function () {
  var out = {kpi: {}, charts: [], errors: window.__errors};
  document.querySelectorAll('.kpi').forEach(function (k) { out.kpi[k.dataset.item] = k.querySelector('.v').textContent; });
  document.querySelectorAll('figure.chart').forEach(function (f) {
    var svg = f.querySelector('svg'); var r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    out.charts.push({chart: f.dataset.chart, width: r.width, height: r.height, texts: svg ? svg.querySelectorAll('text').length : 0});
  });
  var t = document.getElementById('flagged'); var th = t.querySelectorAll('th')[0];
  var first = function () { return t.tBodies[0].rows[0].cells[0].dataset.v; };
  th.click(); var asc = first(); th.click(); var desc = first();
  out.sorted = [asc, desc];
  var f = document.querySelector('input.filter[data-table="flagged"]'); f.value = asc;
  f.dispatchEvent(new Event('input'));
  out.visible = Array.prototype.filter.call(t.tBodies[0].rows, function (r) { return r.style.display !== 'none'; }).length;
  var pre = document.createElement('pre'); pre.id = '__probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and apt-get cannot be run here (needs root)")
    try:
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=300, check=True)
        subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=600, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"Chromium could not be installed: {exc}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get install chromium did not provide a chromium binary")
    return found


def test_report_in_a_browser(audited, tmp_path):
    browser = _chromium()
    out, _, _ = audited
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']https?:""", page)  # nothing fetched at view time
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    run = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--window-size=1280,2000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = re.search(r'<pre id="__probe">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stderr[-2000:]
    probe = json.loads(
        found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )
    assert probe["errors"] == []
    summary = {r["item"]: r for r in pq.read_table(out / "summary.parquet").to_pylist()}
    for item in HEADLINE:
        assert probe["kpi"][item] == format_value(summary[item]["value"], summary[item]["unit"]), item
    assert probe["kpi"]["cases"] == f"{pq.read_table(out / 'cases.parquet').num_rows:,}"
    charts = {c["chart"]: c for c in probe["charts"]}
    assert set(charts) == {"gain-loss", "index", "volume", "flags"}
    for c in charts.values():
        assert c["width"] > 100 and c["height"] > 100 and c["texts"] > 5, c
    asc, desc = probe["sorted"]
    assert asc <= desc and probe["visible"] >= 1
