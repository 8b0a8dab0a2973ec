"""The chaos drill's table (bench/chaos.py render): one row per fault, with what it could not finish."""

from __future__ import annotations

from bench.chaos import Row, render


def test_a_row_names_the_requests_its_clients_gave_up_on_and_their_last_answer() -> None:
    row = Row("dynamodb-throughput", "throttling", requests=9, errors=4, attempted=4, writes=2, recover_s=1.5)
    row.statuses = {"503 STATE_THROTTLED": 4}
    row.gave_up = {"503 STATE_THROTTLED": 2}
    meta = {"date": "2026-12-01", "load": (1.0, 2.0), "args": "", "size": 2}
    table = render([row], meta)
    assert "| 4 (4x 503 STATE_THROTTLED) | 0 | 2/4 |" in table
    assert "unanswered after 60 s of retries, last answer 2x 503 STATE_THROTTLED" in table
    assert "unanswered" not in render([Row("gist-5xx", "502", recover_s=1.0)], meta)
