"""The console's pure pieces: charts, the quick form, filters and display helpers."""

from __future__ import annotations

import pytest

from aip.console.charts import MAX_POINTS, line_chart
from aip.console.forms import QuickForm, form_errors
from aip.console.queries import JobFilters, QueueLine, resources_summary
from aip.console.web import ago, human_size, number
from aip.errors import InvalidSpec
from aip.spec import JobSpec, validate


def test_a_long_series_is_thinned_but_keeps_its_last_point() -> None:
    chart = line_chart("loss", [(float(s), 1 / (1 + s)) for s in range(10_000)])
    assert chart.count == 10_000
    assert len(chart.points.split()) <= MAX_POINTS + 1
    assert chart.last == f"{1 / 10_000:.3g}"
    last_x = float(chart.points.split()[-1].split(",")[0])
    assert last_x == pytest.approx(chart.right_x)


def test_a_flat_or_empty_series_still_draws() -> None:
    flat = line_chart("qps", [(0, 5.0), (1, 5.0)])
    assert flat.points and all(0 <= float(p.split(",")[1]) <= flat.height
                               for p in flat.points.split())
    assert line_chart("none", []).points == ""
    assert line_chart("nan", [(0, float("nan"))]).count == 0


def test_a_time_window_fixes_the_x_axis_and_the_newest_point_is_marked() -> None:
    chart = line_chart("qps", [(-2.0, 4.0)], x_range=(-60.0, 0.0))
    assert [label for _, label in chart.x_ticks] == ["-60", "-45", "-30", "-15", "0"]
    assert chart.last_point is not None
    x, _ = chart.last_point
    assert chart.left < x < chart.right_x  # two seconds ago: near the right edge, inside
    assert line_chart("qps", [(-90.0, 1.0), (0.0, 2.0)], x_range=(-60.0, 0.0)).x_ticks[0][
        1] == "-90"


def test_a_floor_starts_the_y_axis_at_zero_unless_a_value_is_below() -> None:
    assert line_chart("qps", [(0, 4.0), (1, 8.0)], y_floor=0).y_ticks[0][1] == "0"
    assert line_chart("qps", [(0, 4.0), (1, 8.0)]).y_ticks[0][1] == "4"
    assert line_chart("delta", [(0, -2.0), (1, 8.0)], y_floor=0).y_ticks[0][1] == "-2"


def test_the_quick_form_builds_a_spec_the_server_schema_accepts() -> None:
    form = QuickForm.from_form({"name": "train", "command": "python -c 'print(1)'", "cpu": "2",
                                "memory": "4Gi", "gpu": "0.5", "replicas": "3",
                                "user": "alice", "csrf_token": "ignored"})
    spec = validate(form.to_spec(), JobSpec)
    worker = spec.replicas["worker"]
    assert worker.command == ["python", "-c", "print(1)"] and worker.count == 3
    assert worker.resources.gpu == 0.5 and spec.labels == {"user": "alice"}


def test_schema_errors_land_on_the_form_inputs() -> None:
    form = QuickForm.from_form({"name": "Bad Name", "command": "", "cpu": "-1"})
    with pytest.raises(InvalidSpec) as refused:
        validate(form.to_spec(), JobSpec, source="job spec")
    errors = form_errors(refused.value)
    assert {"name", "command", "cpu"} <= set(errors)


def test_an_unclosed_quote_in_the_command_names_the_command() -> None:
    with pytest.raises(InvalidSpec) as refused:
        QuickForm(command="python -c 'oops").to_spec()
    assert "command" in form_errors(refused.value)


def test_pagination_links_keep_the_filters() -> None:
    filters = JobFilters(state="FAILED", user="a&b", page=2)
    assert filters.query(page=3) == "state=FAILED&user=a%26b&page=3"
    assert filters.query(page=1) == "state=FAILED&user=a%26b"


def test_resources_summary_reads_the_stored_spec() -> None:
    spec = validate({"name": "x", "replicas": {"worker": {"count": 2, "command": ["a"],
                     "resources": {"cpu": 1, "gpu": 0.25, "accelerators": {"tpu": 2}}}}},
                    JobSpec)
    assert resources_summary(spec.model_dump_json()) == "worker 2× cpu 1 gpu 0.25 tpu 2"
    assert resources_summary("not json") == ""


def test_queue_lines_show_borrowing_above_quota() -> None:
    line = QueueLine("gpu", used=6, quota=4, borrowing_limit=4)
    assert line.borrowed == 2 and line.percent == 100
    assert QueueLine("cpu", used=1, quota=None, borrowing_limit=None).borrowed == 0


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (512 * 2**20, "512Mi"), (16 * 2**30, "16Gi"), (1536, "1.5Ki")])
def test_sizes_read_like_the_cli(value: int, text: str) -> None:
    assert human_size(value) == text


def test_numbers_and_ages() -> None:
    assert number(4.0) == "4" and number(0.5) == "0.5" and number(None) == "—"
    assert number(10, 0) == "10" and number(1200.4, 0) == "1200" and number(100) == "100"
    assert number(-0.001) == "0"
    assert ago(100.0, now=190.0) == "1m ago" and ago(None) == "—"
