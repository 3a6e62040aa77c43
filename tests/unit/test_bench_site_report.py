"""bench/site_report.py: the per-node figures and the RESULTS.md section it replaces."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import site_report


def _doc() -> dict[str, object]:
    cpu = {"edge/kamailio": 0.2, "edge/supervisor": 0.1, "media-a/worker": 4.0,
           "media-b/worker": 6.0, "acd/supervisor": 0.5, "broker/mosquitto": 0.1}
    step = {"calls": 100, "successful": 100, "failed": 0, "cpu_s": cpu, "wall_s": 20.0,
            "uac_cpu_s": 1.0, "hold_s": 8.0, "load_before": [1.0], "load_after": [2.0],
            "invite_200_ms": {"p50": 3.0, "p99": 9.0}, "calls_per_node": {"media-a": 40, "media-b": 60}}
    base = {**step, "cpu_s": {"uas/sipp": 2.0}}
    return {"date": "2026-12-01T02:00:00", "site": [step], "baseline": [base]}


def test_cpu_is_summed_per_node_and_divided_by_the_calls() -> None:
    assert site_report.by_node({"edge/kamailio": 0.25, "edge/supervisor": 0.5})["edge"] == 0.75
    text = site_report.markdown(_doc())
    row = next(line for line in text.splitlines() if line.startswith("| 100 |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    # edge 3.0 ms; media-a 4 s over its 40 calls, media-b 6 s over its 60; both over all 100
    # calls 100 ms; acd 5, broker 1, UAS 20 ms per call
    assert cells[3:10] == ["3.0", "100.0", "100.0", "100.0", "5.0", "1.0", "20.0"]
    assert cells[10:12] == ["5x", "5x"]  # media 100/20; the site 109/20 rounds to 5


def test_splice_replaces_only_its_own_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# R\n\n## Before\nkeep\n\n## Several nodes (old)\nold figures\n\n"
                       "## After\nkeep too\n")
    site_report.splice(results, "## Several nodes (issue 15)\nnew figures\n")
    text = results.read_text()
    assert "old figures" not in text and "new figures" in text
    assert text.index("## Before") < text.index("new figures") < text.index("## After")
    assert text.count("keep") == 2


def test_splice_appends_when_there_is_no_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# R\n\n## Before\nkeep\n")
    site_report.splice(results, "## Several nodes\nnew\n")
    assert results.read_text().endswith("## Several nodes\nnew\n")
    assert "keep" in results.read_text()
