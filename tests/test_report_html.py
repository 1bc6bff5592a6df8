"""report.html and compare --html, opened in a real headless browser (Debian's chromium)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e)));
window.addEventListener('load', () => {
  const svgs = [...document.querySelectorAll('svg')];
  document.body.setAttribute('data-check', JSON.stringify({
    errors: window.__errors,
    svgs: svgs.length,
    drawn: svgs.filter(s => { const r = s.getBoundingClientRect(); return r.width > 50 && r.height > 50; }).length,
    broken_images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length,
    tables: document.querySelectorAll('table').length,
  }));
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is missing; .ci/run installs it (apt-get install chromium)")
    pytest.skip("no chromium on this machine (apt-get install chromium to run this test)")


def open_in_browser(page: Path, tmp_path: Path) -> dict:
    """Load ``page`` (with the probe injected) headless; the probe's findings."""
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    out = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chrome-profile'}", "--virtual-time-budget=5000",
         "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120)
    m = re.search(r'data-check="([^"]*)"', out.stdout)
    assert m, f"the probe did not run:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return json.loads(m.group(1).replace("&quot;", '"'))


def test_report_html_renders_plots_and_tables_in_a_browser(zmqtrade_stack, tmp_path):
    run = zmqtrade_stack(ROOT / "topology.yaml", duration=2, set={"report.html": True})  # a passing test's page
    assert run.exit_code == 0
    page = run.run_dir / "report.html"
    text = page.read_text()
    assert not re.findall(r'(?:src|href)\s*=\s*"(?:https?:|//)', text)  # self-contained: nothing to fetch
    assert "<script" not in text and "<img" not in text
    check = open_in_browser(page, tmp_path)
    assert check["errors"] == [] and check["broken_images"] == 0
    assert check["svgs"] == check["drawn"] == 6  # cpu, rss, rates, latency CDF, per-hop, PnL over time
    assert check["tables"] == 5  # results, processes, counters, latency, what ran
    assert "<h2>Results</h2>" in text and "net PnL" in text and "trend" in text
    assert "<h2>What ran</h2>" in text and "gateway.rate" in text and "libzmq" in text


def test_compare_html_overlays_the_runs(zmqtrade_stack, tmp_path):
    runs = [zmqtrade_stack(ROOT / "topology.yaml", duration=1.5, set={"gateway.rate": r}) for r in (500, 1500)]
    assert all(r.exit_code == 0 for r in runs)
    out = tmp_path / "cmp.html"
    subprocess.run([sys.executable, "-m", "zmqtrade", "compare", *(str(r.run_dir) for r in runs), "--html", str(out)],
                   check=True, capture_output=True, timeout=60)
    text = out.read_text()
    assert text.count("<svg") == 1 and all(f"gateway.rate={r}" in text for r in (500, 1500))  # labelled by what differs
    check = open_in_browser(out, tmp_path)
    assert check["errors"] == [] and check["drawn"] == 1
