"""Reports render in a real browser: headless Chromium loads them and the page checks itself.

Chromium comes from Debian's ``chromium`` package; without it these tests are
skipped, unless ``DECIDE_REQUIRE_CHROMIUM=1`` (as in CI), where its absence fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from decide.evaluation.offline import compare
from decide.evaluation.report import loop_report, simulation_report
from simulations.runner import run

PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const result = {
    title: document.title,
    images: images.length,
    decoded: images.filter((image) => image.complete && image.naturalWidth > 0).length,
    tables: document.querySelectorAll("table").length,
    rows: document.querySelectorAll("table.estimates tbody tr, table.summary tbody tr").length,
    headings: Array.from(document.querySelectorAll("h2")).map((h) => h.textContent),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("DECIDE_REQUIRE_CHROMIUM") == "1":
        pytest.fail("DECIDE_REQUIRE_CHROMIUM=1 but no chromium: apt-get install -y chromium")
    pytest.skip("no chromium (apt-get install -y chromium)")


def rendered(page: str, tmp_path) -> dict:
    """What the page reports about itself once Chromium has loaded it and decoded its images."""
    browser = chromium()
    path = tmp_path / "page.html"
    path.write_text(page.replace("</body>", PROBE + "</body>"))
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", f"file://{path}",
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert match, f"the page did not finish loading in Chromium: {dom[-500:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_a_loop_report_renders_in_chromium(small, uniform_log, tmp_path):
    evaluation = compare(uniform_log.log, small.policies[0].config, ["linucb:alpha=0.5"])
    versions = [{"version": v, "createdAt": uniform_log.log[0].decision.timestamp + 3 * v, "examplesLearned": 40 * v, "note": "learned"}
                for v in range(1, 6)]
    page = loop_report("small", uniform_log.log, evaluation, versions)
    assert "http://" not in page and "https://" not in page, "a report fetches nothing"
    result = rendered(page, tmp_path)
    assert result["title"] == "decide report: loop small"
    assert result["images"] == 5 and result["decoded"] == 5
    assert result["rows"] == 4, "one estimator row per policy"
    assert result["headings"] == ["Reward over time", "Estimated value of each policy", "Actions", "Propensity diagnostics", "Policy versions"]


def test_a_simulation_report_renders_in_chromium(small, tmp_path):
    from simulations.check import check_estimators

    result = run(small, keep_log=True)
    document = result.to_json()
    document["offline"] = check_estimators(result, "uniform")
    page = rendered(simulation_report(document), tmp_path)
    assert page["title"] == "decide simulation: small"
    assert page["images"] == page["decoded"] == 6
    assert "Regret" in page["headings"] and "Off-policy estimates against the truth" in page["headings"]
    assert page["rows"] == 2 + 2, "two policies in the summary, two in the estimator table"
