"""kfp.local's console output, filtered: executor-input dumps and GX registration noise go, the
tasks' own lines and errors stay."""

from __future__ import annotations

import io

from pipelines.run import QuietExecutorLogs

TRANSCRIPT = """\
17:59:54.818 - INFO - Executing task 'collect-node-metrics'
17:59:54.818 - INFO - Streamed logs:

    [KFP Executor 2026-11-25 17:59:54,908 INFO]: Loading KFP component "collect_node_metrics"
    [KFP Executor 2026-11-25 17:59:54,909 INFO]: Got executor_input:
    {
        "inputs": {
            "parameterValues": {
                "step_seconds": 30
            }
        },
        "outputs": {
            "outputFile": "/runs/collect-node-metrics/executor_output.json"
        }
    }
    /runs/collect-node-metrics/node_metrics: 481,914 rows added
    [KFP Executor 2026-11-25 18:00:06,468 INFO]: Skipping registering function get_context because
    Traceback (most recent call last):
    ValueError: bad input
    [KFP Executor 2026-11-25 18:00:01,258 INFO]: Wrote executor output file to /runs/x.json.
18:00:01.497 - INFO - Task 'collect-node-metrics' finished with status SUCCESS
"""


def test_executor_input_dumps_and_registration_noise_are_dropped():
    out = io.StringIO()
    quiet = QuietExecutorLogs(out)
    for i in range(0, len(TRANSCRIPT), 37):  # arbitrary write boundaries, as print makes them
        quiet.write(TRANSCRIPT[i : i + 37])
    quiet.flush()
    kept = out.getvalue()
    assert "parameterValues" not in kept and "outputFile" not in kept
    assert "Got executor_input" not in kept and "Skipping registering" not in kept
    for line in (
        "Executing task 'collect-node-metrics'",
        'Loading KFP component "collect_node_metrics"',
        "481,914 rows added",
        "Traceback (most recent call last):",
        "ValueError: bad input",
        "Wrote executor output file",
        "finished with status SUCCESS",
    ):
        assert line in kept
    assert kept.endswith("finished with status SUCCESS\n")


def test_a_dump_cut_short_hides_nothing_after_it():
    out = io.StringIO()
    quiet = QuietExecutorLogs(out)
    quiet.write('    [KFP Executor 2026 INFO]: Got executor_input:\n    {\n        "inputs": {\n')
    quiet.write("Traceback (most recent call last):\nRuntimeError: task failed\n")
    assert out.getvalue() == "Traceback (most recent call last):\nRuntimeError: task failed\n"


def test_an_unfinished_last_line_is_written_on_flush():
    out = io.StringIO()
    quiet = QuietExecutorLogs(out)
    quiet.write("first\nsecond without newline")
    assert out.getvalue() == "first\n"
    quiet.flush()
    assert out.getvalue() == "first\nsecond without newline"
