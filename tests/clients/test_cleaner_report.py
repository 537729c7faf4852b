"""The arithmetic of the cleaner-cost report (tests/clients/cleaner_impact.py, run by
`bench/suite --cleaner`): which windows it compares and how, on made-up latencies."""

from cleaner_impact import WINDOWS, compare_round, render_report


def stats(p99, p999):
    one = {"n": 100, "p50": 1.0, "p99": p99, "p999": p999}
    return {"produce": dict(one), "e2e": {**one, "p99": p99 + 1, "p999": p999 + 1}}


def test_the_excess_is_measured_against_both_off_windows_and_the_aa_pair_is_theirs():
    windows = {"off-before": stats(2.0, 5.0), "on": stats(4.0, 9.0), "off-after": stats(3.0, 4.0)}
    c = compare_round(windows)
    assert c["produce_p99_excess"] == 4.0 - 2.5
    assert c["produce_p99_aa"] == 1.0
    assert c["produce_p999_excess"] == 9.0 - 4.5
    assert c["produce_p999_aa"] == -1.0
    assert c["e2e_p99_excess"] == 5.0 - 3.5


def test_the_report_has_every_window_and_the_medians_over_rounds():
    rounds = []
    for on in (3.0, 5.0, 10.0):
        windows = {"off-before": stats(2.0, 5.0), "on": stats(on, 9.0),
                   "off-after": stats(2.0 + on / 10, 5.0)}
        rounds.append({"windows": windows, "cleans": 4, "read_mb": 120.0,
                       "backlog_mb": (400.0, 12.0), "compare": compare_round(windows)})
    meta = {"broker": "millrace", "tool": "closed", "seconds": 20, "rate": 0, "churn_mb": 400,
            "keys": 1000}
    text = render_report(rounds, meta)
    assert [name for name, _ in WINDOWS] == ["off-before", "on", "off-after"]
    assert text.count("| off-before |") == 3 and text.count("| on |") == 3
    assert "| 4 (120) | 400 → 12 |" in text
    # Produce p99 excesses are 3-2.15, 5-2.25, 10-2.5: median 2.75; A/A sizes 0.3, 0.5, 1.0.
    median_row = next(line for line in text.splitlines() if line.startswith("| median"))
    assert median_row.split("|")[2].strip() == "+2.75 / 0.50"
