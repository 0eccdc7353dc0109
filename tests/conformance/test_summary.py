"""The conformance run's counts, from ginkgo's JUnit report (the shapes ginkgo v2 writes)."""

from __future__ import annotations

import json

from tests.conformance.summary import summarize

PASSED = '<testcase name="[It] [sig-apps] Job runs [Conformance]" status="passed"></testcase>'
FAILED = (
    '<testcase name="[It] [sig-network] DNS resolves [Conformance]" status="failed">'
    '<failure message="[FAILED] lookup failed&#xA;more detail" type="failed">trace</failure>'
    "</testcase>"
)
SKIPPED_BY_SPEC = (
    '<testcase name="[It] [sig-node] needs two nodes [Conformance]" status="skipped">'
    '<skipped message="skipped - Requires at least 3 nodes (not 2)"></skipped></testcase>'
)
NOT_SELECTED = (
    '<testcase name="[It] [sig-apps] Daemon set [Serial] [Conformance]" status="skipped">'
    '<skipped message="skipped"></skipped></testcase>'
)
NOT_CONFORMANCE = '<testcase name="[It] [sig-storage] CSI works" status="failed"></testcase>'


def report(*cases: str) -> str:
    suite = f'<testsuite name="Kubernetes e2e suite">{"".join(cases)}</testsuite>'
    return f"<testsuites>{suite}</testsuites>"


def test_each_outcome_is_counted_and_only_conformance_specs() -> None:
    summary = summarize([report(PASSED, FAILED, SKIPPED_BY_SPEC, NOT_SELECTED, NOT_CONFORMANCE)])

    assert summary.passed == 1
    assert summary.failed == [
        ("[It] [sig-network] DNS resolves [Conformance]", "[FAILED] lookup failed")
    ]
    assert summary.skipped == [
        ("[It] [sig-node] needs two nodes [Conformance]", "Requires at least 3 nodes (not 2)")
    ]
    assert summary.not_selected == 1


def test_a_spec_run_in_a_later_report_counts_as_run_not_as_left_out() -> None:
    serial_passed = NOT_SELECTED.replace('status="skipped">', 'status="passed">').replace(
        '<skipped message="skipped"></skipped>', ""
    )
    parallel, serial = (
        report(PASSED, NOT_SELECTED),
        report(NOT_SELECTED.replace("Daemon", "x"), serial_passed),
    )
    # The parallel run left the serial spec out; the serial run ran it and
    # left the parallel run's spec out: both passed, each counted once.
    summary = summarize([parallel, report(PASSED.replace("passed", "skipped")), serial])

    assert summary.passed == 2
    assert summary.not_selected == 1  # the "x" spec nobody ran


def test_the_lines_are_json_with_the_metrics_first() -> None:
    lines = list(summarize([report(PASSED, FAILED)]).lines())

    assert [line.get("metric") for line in lines[:4]] == [
        "conformance.passed",
        "conformance.failed",
        "conformance.skipped",
        "conformance.not_selected",
    ]
    assert lines[1]["value"] == 1 and str(lines[4]["failed"]).endswith("[Conformance]")
    assert all(json.loads(json.dumps(line)) == line for line in lines)
