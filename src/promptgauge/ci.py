"""What a pipeline keeps from a run: JUnit XML of the gate, the markdown summary, the reports, in one folder.

:func:`promptgauge.api.ci` runs a suite and calls :func:`publish`; the exit code
comes from the gate. The folder holds ``junit.xml`` (one test case per gate rule
and variant, for the CI's test view), ``report.md`` (for a pull-request comment or
a job summary), ``summary.json``, ``results.jsonl``, and every other report the
run wrote (the HTML report among them, when the run writes one).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


def gate_junit(summary: dict[str, Any]) -> str:
    """JUnit XML of a gated run: a test case per gate rule and variant; a failed rule is a failure."""
    gate = summary.get("gate") or {"passed": True, "rules": []}
    rules = gate["rules"]
    suite = ET.Element("testsuite", name=f"promptgauge.{summary['suite']}", tests=str(max(1, len(rules))),
                       failures=str(sum(not r["passed"] for r in rules)), errors="0", skipped="0")
    props = ET.SubElement(suite, "properties")
    manifest = summary.get("manifest", {})
    for name, value in (("run_id", summary["run_id"]), ("status", summary["status"]),
                        ("suite_sha256", manifest.get("suite", {}).get("sha256")),
                        ("dataset_sha256", manifest.get("dataset", {}).get("sha256"))):
        if value:
            ET.SubElement(props, "property", name=name, value=str(value))
    for r in rules:
        case = ET.SubElement(suite, "testcase", classname=f"promptgauge.{summary['suite']}.{r['variant']}",
                             name=r["rule"])
        if not r["passed"]:
            ET.SubElement(case, "failure", message=f"[{r['variant']}] {r['reason']}").text = (
                f"gate rule '{r['rule']}' failed for variant {r['variant']}: {r['reason']}")
    if not rules:
        ET.SubElement(suite, "testcase", classname=f"promptgauge.{summary['suite']}", name="gate (no rules)")
    root = ET.Element("testsuites", name="promptgauge")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def publish(summary: dict[str, Any], reports: dict[str, Path], out: Path) -> dict[str, Path]:
    """Copy the run's reports into *out* and add ``junit.xml``; return format -> path in *out*."""
    out.mkdir(parents=True, exist_ok=True)
    published = {}
    for fmt, path in reports.items():
        if path.resolve() != (out / path.name).resolve():
            shutil.copy2(path, out / path.name)
        published[fmt] = out / path.name
    published["junit"] = out / "junit.xml"
    tmp = out / "junit.xml.tmp"
    tmp.write_text(gate_junit(summary), encoding="utf-8")
    tmp.replace(published["junit"])
    return published
