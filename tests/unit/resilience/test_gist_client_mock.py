"""The Gist client against httpx.MockTransport: what it sends, and answers the loopback server cannot give."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from cmdgate.breaker import BreakerConfig, CircuitBreaker, CircuitOpen, InMemoryBreakerStore
from cmdgate.gist import (
    API_VERSION,
    Gist,
    GistClient,
    GistClientConfig,
    GistError,
    GistRateLimited,
    GistRequestRejected,
    GistUnavailable,
    GistWriteUnconfirmed,
)
from cmdgate.gist.limits import classify_limit, retry_after_s

BASE = "https://api.github.test"
START = 1_700_000_000.0
Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def token() -> str:
    return f"ghp_mock_{uuid.uuid4().hex}"


class Recorder:
    """A MockTransport handler: answers from a script (the last entry repeats), records every request."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)


@pytest.fixture
def make(fake: FakeTime, token: str) -> Iterator[Callable[..., GistClient]]:
    clients: list[httpx.Client] = []

    def build(recorder: Recorder, *, headers: dict[str, str] | None = None, **kwargs: Any) -> GistClient:
        http = httpx.Client(transport=httpx.MockTransport(recorder), headers=headers)
        clients.append(http)
        kwargs.setdefault("base_url", BASE)
        kwargs.setdefault("clock", fake)
        kwargs.setdefault("wall_clock", fake)
        kwargs.setdefault("sleep", fake.sleep)
        return GistClient(http, lambda: token, **kwargs)

    yield build
    for http in clients:
        http.close()


def gist_json(gist_id: str = "g1", content: str = "v1", *, truncated: bool = False, size: int | None = None) -> Any:
    return {
        "id": gist_id,
        "description": "d",
        "public": False,
        "updated_at": "2023-11-14T22:13:20Z",
        "files": {
            "state.json": {
                "filename": "state.json",
                "size": len(content.encode()) if size is None else size,
                "truncated": truncated,
                "content": content,
                "raw_url": f"{BASE}/raw/{gist_id}/{'a' * 40}/state.json",
            }
        },
        "history": [{"version": "a" * 40, "committed_at": "2023-11-14T22:13:20Z", "change_status": {"total": 1}}],
    }


def ok(body: Any = None, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=gist_json() if body is None else body, headers=headers)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"message": message, "documentation_url": "https://docs"}, headers=headers)


# -- what goes on the wire ----------------------------------------------------------


def test_every_call_carries_auth_media_type_version_and_user_agent(make: Any, token: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return ok([]) if request.url.path.endswith("/commits") else ok(status=201 if request.method == "POST" else 200)

    recorder = Recorder(answer)
    client = make(recorder)
    client.create_gist({"state.json": "v1"}, "d")
    client.get_gist("g1")
    client.update_file("g1", "state.json", "v2")
    client.list_commits("g1")
    client.get_revision("g1", "a" * 40)
    assert len(recorder.requests) == 5
    for request in recorder.requests:
        assert request.headers["Authorization"] == f"Bearer {token}"
        assert request.headers["Accept"] == "application/vnd.github+json"
        assert request.headers["X-GitHub-Api-Version"] == API_VERSION == "2022-11-28"
        assert request.headers["User-Agent"].startswith("cmdgate-gist-client/")


def test_patch_never_carries_conditional_headers_but_get_revalidates(make: Any) -> None:
    recorder = Recorder(ok(headers={"ETag": '"e1"'}))
    client = make(recorder, headers={"If-Match": '"from-client-defaults"'})
    client.get_gist("g1")
    client.get_gist("g1")
    client.update_file("g1", "state.json", "v2", description="new")

    first_get, second_get, patch = recorder.requests
    assert "If-None-Match" not in first_get.headers
    assert second_get.headers["If-None-Match"] == '"e1"'
    assert patch.method == "PATCH"
    for name in ("If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"):
        assert name not in patch.headers
    assert json.loads(patch.content) == {"files": {"state.json": {"content": "v2"}}, "description": "new"}


def test_an_update_forgets_the_cached_etag(make: Any) -> None:
    recorder = Recorder(ok(headers={"ETag": '"e1"'}))
    client = make(recorder)
    client.get_gist("g1")
    client.update_file("g1", "state.json", "v2")
    client.get_gist("g1")
    assert "If-None-Match" not in recorder.requests[-1].headers


def test_list_commits_sends_paging(make: Any) -> None:
    commits = [{"version": "b" * 40, "committed_at": "2023-11-14T22:13:20Z", "change_status": {"additions": 2}}]
    recorder = Recorder(ok(commits))
    client = make(recorder)
    result = client.list_commits("g1", per_page=50, page=2)
    assert result[0].version == "b" * 40
    assert result[0].change_status.additions == 2
    assert recorder.requests[0].url.params["per_page"] == "50"
    assert recorder.requests[0].url.params["page"] == "2"


def test_empty_content_is_refused_before_sending(make: Any) -> None:
    recorder = Recorder(ok())
    client = make(recorder)
    with pytest.raises(ValueError, match="empty"):
        client.update_file("g1", "state.json", "")  # GitHub would delete the file
    assert recorder.requests == []


def test_read_timeout_is_bounded_by_the_callers_remaining_time(make: Any) -> None:
    recorder = Recorder(ok())
    client = make(recorder, remaining_s=lambda: 4.0)
    client.get_gist("g1")
    timeout = recorder.requests[0].extensions["timeout"]
    assert timeout["read"] == pytest.approx(3.5)  # 4 s left minus the 0.5 s safety margin
    assert timeout["connect"] == pytest.approx(3.0)


def test_register_lambda_context_sets_the_deadline(make: Any) -> None:
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 400  # under the safety margin: nothing may be sent

    recorder = Recorder(ok())
    client = make(recorder)
    client.register_lambda_context(Context())
    with pytest.raises(GistUnavailable, match="deadline"):
        client.get_gist("g1")
    assert recorder.requests == []


# -- retries ----------------------------------------------------------------------


def test_read_timeouts_are_retried_then_raise_gist_unavailable(make: Any, fake: FakeTime, token: str) -> None:
    recorder = Recorder(httpx.ReadTimeout("timed out"))
    client = make(recorder, config=GistClientConfig(max_attempts=4, base_backoff_s=0.5, max_backoff_s=8))
    with pytest.raises(GistUnavailable) as info:
        client.get_gist("g1")
    assert len(recorder.requests) == 4
    assert len(fake.sleeps) == 3
    assert all(0 <= s < min(8, 0.5 * 2**n) for n, s in enumerate(fake.sleeps))
    assert info.value.status_code is None
    assert "ReadTimeout" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # the request is not attached
    assert token not in str(info.value)


def test_connect_errors_are_retried_then_succeed(make: Any, fake: FakeTime) -> None:
    recorder = Recorder(httpx.ConnectError("refused"), ok())
    client = make(recorder)
    assert client.get_gist("g1").id == "g1"
    assert len(recorder.requests) == 2
    assert len(fake.sleeps) == 1


def test_gist_cannot_be_updated_422_is_retried(make: Any, fake: FakeTime) -> None:
    recorder = Recorder(error(422, "Gist cannot be updated."), ok())
    client = make(recorder)
    assert client.update_file("g1", "state.json", "v2").id == "g1"
    assert [r.method for r in recorder.requests] == ["PATCH", "PATCH"]
    # The retried PATCH still waits out the 1 s write spacing after the jittered backoff.
    assert fake.sleeps[-1] == pytest.approx(1.0 - fake.sleeps[0])


def test_other_4xx_are_not_retried(make: Any) -> None:
    for status, message in [(400, "Problems parsing JSON"), (403, "Resource not accessible"), (422, "Invalid")]:
        recorder = Recorder(error(status, message))
        client = make(recorder)
        with pytest.raises(GistRequestRejected) as info:
            client.get_gist("g1")
        assert info.value.status_code == status
        assert info.value.github_message == message
        assert len(recorder.requests) == 1


def test_retry_budget_stops_retries(make: Any) -> None:
    from cmdgate.retry import RetryBudget

    recorder = Recorder(error(503, "busy"))
    budget = RetryBudget(ratio=0, min_per_s=0, max_tokens=1, initial_tokens=1)
    client = make(recorder, retry_budget=budget)
    with pytest.raises(GistUnavailable, match="budget"):
        client.get_gist("g1")
    assert len(recorder.requests) == 2  # one retry, then the budget is empty


# -- many files in one PATCH ---------------------------------------------------------


def test_update_files_sends_every_file_in_one_patch_and_null_deletes(make: Any) -> None:
    recorder = Recorder(ok(headers={"ETag": '"e1"'}))
    client = make(recorder)
    client.get_gist("g1")
    gist = client.update_files("g1", {"a.json": "1", "b.json": "2", "old.json": None}, description="shard 3")
    assert gist.id == "g1"
    _, patch = recorder.requests
    assert patch.method == "PATCH" and patch.url.path == "/gists/g1"
    assert json.loads(patch.content) == {
        "files": {"a.json": {"content": "1"}, "b.json": {"content": "2"}, "old.json": None},
        "description": "shard 3",
    }
    client.get_gist("g1")
    assert "If-None-Match" not in recorder.requests[-1].headers  # the update dropped the cached ETag


def test_update_files_checks_every_file_before_sending(make: Any) -> None:
    recorder = Recorder(ok())
    client = make(recorder)
    with pytest.raises(ValueError, match="empty"):
        client.update_files("g1", {"a.json": "1", "b.json": ""})  # GitHub would delete b.json
    with pytest.raises(ValueError, match="/"):
        client.update_files("g1", {"a.json": "1", "dir/b.json": None})
    with pytest.raises(ValueError, match="at least one file"):
        client.update_files("g1", {})
    assert recorder.requests == []


def test_update_file_is_update_files_of_one_file(make: Any) -> None:
    recorder = Recorder(ok())
    client = make(recorder)
    client.update_file("g1", "state.json", "v2")
    assert json.loads(recorder.requests[0].content) == {"files": {"state.json": {"content": "v2"}}}


# -- writes without blind retries ----------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        lambda _: error(502, "Server Error"),
        lambda _: error(500, "Internal Server Error"),
        httpx.ReadTimeout("timed out"),
        httpx.WriteTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx.ReadError("connection reset"),
    ],
    ids=["502", "500", "ReadTimeout", "WriteTimeout", "RemoteProtocolError", "ReadError"],
)
def test_a_write_that_may_have_landed_is_not_retried_without_blind_retry(
    make: Any, fake: FakeTime, token: str, outcome: Handler | Exception
) -> None:
    for write in ("update", "create"):
        recorder = Recorder(outcome, ok(status=201 if write == "create" else 200))
        client = make(recorder)
        with pytest.raises(GistWriteUnconfirmed) as info:
            if write == "update":
                client.update_files("g1", {"a.json": "1"}, blind_retry=False)
            else:
                client.create_gist({"a.json": "1"}, "shard", blind_retry=False)
        assert len(recorder.requests) == 1, write
        assert isinstance(info.value, GistUnavailable)  # callers catching GistUnavailable still do
        assert "may or may not have landed" in str(info.value)
        assert token not in str(info.value)
        if isinstance(outcome, Exception):
            assert info.value.__cause__ is None and info.value.__suppress_context__  # the request is not attached
        else:
            assert info.value.status_code == outcome(recorder.requests[0]).status_code


def test_the_same_failures_are_still_retried_with_blind_retry(make: Any) -> None:
    recorder = Recorder(error(502, "Server Error"), httpx.ReadTimeout("timed out"), ok())
    client = make(recorder)
    assert client.update_files("g1", {"a.json": "1"}).id == "g1"
    assert len(recorder.requests) == 3


@pytest.mark.parametrize(
    "outcome",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("timed out"),
        httpx.PoolTimeout("no connection"),
        error(422, "Gist cannot be updated."),
        error(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."),
        error(429, "slow down", {"Retry-After": "1"}),
    ],
    ids=["ConnectError", "ConnectTimeout", "PoolTimeout", "422-cannot-be-updated", "secondary-403", "429"],
)
def test_a_write_known_not_applied_is_retried_without_blind_retry(
    make: Any, outcome: httpx.Response | Exception
) -> None:
    recorder = Recorder(outcome, ok(status=201))
    client = make(recorder, config=GistClientConfig(max_rate_limit_wait_s=300))
    assert client.create_gist({"a.json": "1"}, "shard", blind_retry=False).id == "g1"
    assert len(recorder.requests) == 2


def test_connect_errors_then_a_502_is_unconfirmed_and_reads_keep_retrying(make: Any) -> None:
    recorder = Recorder(httpx.ConnectError("refused"), error(502, "Server Error"), ok())
    client = make(recorder)
    with pytest.raises(GistWriteUnconfirmed, match="attempt 2"):
        client.update_files("g1", {"a.json": "1"}, blind_retry=False)
    assert len(recorder.requests) == 2
    # Connect errors only, until attempts run out: nothing was sent, a plain GistUnavailable.
    recorder = Recorder(httpx.ConnectError("refused"))
    client = make(recorder, config=GistClientConfig(max_attempts=3))
    with pytest.raises(GistUnavailable) as info:
        client.update_files("g1", {"a.json": "1"}, blind_retry=False)
    assert not isinstance(info.value, GistWriteUnconfirmed)
    assert len(recorder.requests) == 3


def test_an_unconfirmed_write_still_counts_as_a_breaker_failure(make: Any, fake: FakeTime) -> None:
    breaker = CircuitBreaker(
        "gists", InMemoryBreakerStore(), BreakerConfig(min_calls=2, refresh_s=0, open_s=30), clock=fake
    )
    recorder = Recorder(error(502, "Server Error"), httpx.ReadTimeout("timed out"), ok())
    client = make(recorder, breaker=breaker)
    for _ in range(2):
        with pytest.raises(GistWriteUnconfirmed):
            client.update_files("g1", {"a.json": "1"}, blind_retry=False)
    with pytest.raises(CircuitOpen):
        client.get_gist("g1")
    assert len(recorder.requests) == 2


# -- listing the token's gists -------------------------------------------------------


def listed_gist(gist_id: str, description: str | None, files: dict[str, int]) -> Any:
    """One item of GitHub's GET /gists answer (base-gist): no content, no history."""
    return {
        "url": f"{BASE}/gists/{gist_id}",
        "id": gist_id,
        "node_id": "G_x",
        "files": {
            name: {"filename": name, "type": "application/json", "language": "JSON", "raw_url": f"{BASE}/r/{name}",
                   "size": size}
            for name, size in files.items()
        },
        "public": False,
        "created_at": "2023-11-14T22:13:20Z",
        "updated_at": "2023-11-14T22:15:00Z",
        "description": description,
        "comments": 0,
        "user": None,
        "owner": {"login": "octocat", "id": 1},
        "truncated": False,
    }  # fmt: skip


def test_list_gists_parses_summaries_and_sends_paging_and_since(make: Any) -> None:
    body = [listed_gist("s1", "cmdgate shard 1", {"manifest.json": 40, "k1.json": 12}), listed_gist("s2", None, {})]
    recorder = Recorder(ok(body))
    client = make(recorder)
    since = datetime(2023, 11, 14, 23, 13, 20, 900_000, tzinfo=timezone(timedelta(hours=1)))
    gists = client.list_gists(per_page=50, page=3, since=since)

    request = recorder.requests[0]
    assert request.method == "GET" and request.url.path == "/gists"
    # 23:13:20.9 at UTC+1, rounded down, one second earlier: GitHub's "after" misses nothing from since on.
    assert dict(request.url.params) == {"per_page": "50", "page": "3", "since": "2023-11-14T22:13:19Z"}
    assert [g.id for g in gists] == ["s1", "s2"]
    first = gists[0]
    assert first.description == "cmdgate shard 1"
    assert {name: f.size for name, f in first.files.items()} == {"manifest.json": 40, "k1.json": 12}
    assert first.files["k1.json"].raw_url == f"{BASE}/r/k1.json"
    assert first.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert first.updated_at == datetime(2023, 11, 14, 22, 15, tzinfo=UTC)
    assert gists[1].description is None and gists[1].files == {}


def test_list_gists_refuses_bad_arguments_and_bad_answers(make: Any) -> None:
    recorder = Recorder(ok({"not": "a list"}))
    client = make(recorder)
    for kwargs in ({"per_page": 0}, {"per_page": 101}, {"page": 0}, {"since": datetime(2023, 1, 1)}):
        with pytest.raises(ValueError):
            client.list_gists(**kwargs)
    assert recorder.requests == []
    with pytest.raises(GistError, match="unexpected answer"):
        client.list_gists()


# -- rate limits ------------------------------------------------------------------


def secondary_403() -> httpx.Response:
    return error(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.")


def test_secondary_limit_without_retry_after_waits_the_floor_then_doubles(make: Any, fake: FakeTime) -> None:
    recorder = Recorder(secondary_403(), secondary_403(), ok())
    client = make(recorder, config=GistClientConfig(max_rate_limit_wait_s=300))
    assert client.update_file("g1", "state.json", "v2").id == "g1"
    assert fake.sleeps == [pytest.approx(60.0), pytest.approx(120.0)]


def test_secondary_limit_past_the_max_wait_raises_instead_of_sleeping(make: Any, fake: FakeTime) -> None:
    recorder = Recorder(secondary_403(), secondary_403(), ok())
    client = make(recorder)  # max_rate_limit_wait_s = 60
    with pytest.raises(GistRateLimited) as info:
        client.update_file("g1", "state.json", "v2")
    assert info.value.retry_after_s == pytest.approx(120.0)
    assert fake.sleeps == [pytest.approx(60.0)]
    assert info.value.status_code == 403
    assert "secondary rate limit" in (info.value.github_message or "")


def test_secondary_limit_on_a_write_does_not_block_reads(make: Any) -> None:
    recorder = Recorder(secondary_403(), ok())
    client = make(recorder, remaining_s=lambda: 10.0)
    with pytest.raises(GistRateLimited):
        client.update_file("g1", "state.json", "v2")
    assert client.get_gist("g1").id == "g1"
    with pytest.raises(GistRateLimited):
        client.update_file("g1", "state.json", "v2")  # still blocked: no request
    assert [r.method for r in recorder.requests] == ["PATCH", "GET"]


def test_429_with_an_http_date_retry_after(make: Any, fake: FakeTime) -> None:
    date = "Tue, 14 Nov 2023 22:13:30 GMT"  # START + 10 s
    recorder = Recorder(error(429, "slow down", {"Retry-After": date}), ok())
    client = make(recorder)
    client.get_gist("g1")
    assert fake.sleeps == [pytest.approx(10.0)]


def test_rate_limit_headers_are_exposed_for_health(make: Any) -> None:
    headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4321",
        "x-ratelimit-used": "679",
        "x-ratelimit-reset": str(int(START) + 1800),
        "x-ratelimit-resource": "core",
    }
    client = make(Recorder(ok(headers=headers)))
    assert client.rate_limit is None
    client.get_gist("g1")
    assert client.rate_limit is not None
    assert (client.rate_limit.remaining, client.rate_limit.limit, client.rate_limit.reset_at) == (
        4321,
        5000,
        START + 1800,
    )


def test_limit_classification_follows_githubs_order() -> None:
    def classify(status: int, headers: dict[str, str], message: str | None = None, strikes: int = 0) -> Any:
        return classify_limit(status, headers, message, wall_now=START, secondary_strikes=strikes, secondary_floor_s=60)

    reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(START) + 300)}
    assert classify(403, reset).wait_s == 300 and classify(403, reset).kind == "primary"
    assert classify(429, {**reset, "retry-after": "30"}).wait_s == 300  # both: the longer wait
    assert classify(403, {"retry-after": "30"}).wait_s == 30
    assert classify(429, {}).wait_s == 60
    assert classify(403, {}, "You have exceeded a secondary rate limit", strikes=2).wait_s == 240
    assert classify(403, {"x-ratelimit-remaining": "10"}, "Must have admin rights") is None
    assert classify(404, reset) is None
    assert retry_after_s("soon", START) is None


# -- truncated files ----------------------------------------------------------------


def truncated_gist(size: int, raw_url: str | None = None) -> Gist:
    body = gist_json(content="x" * 10, truncated=True, size=size)
    if raw_url is not None:
        body["files"]["state.json"]["raw_url"] = raw_url
    return Gist.model_validate(body)


def test_raw_read_sends_the_same_auth(make: Any, token: str) -> None:
    recorder = Recorder(httpx.Response(200, text="y" * 20))
    client = make(recorder)
    assert client.read_file(truncated_gist(20), "state.json") == "y" * 20
    assert recorder.requests[0].headers["Authorization"] == f"Bearer {token}"


def test_raw_content_of_the_wrong_size_is_refused(make: Any) -> None:
    for body in ("y" * 19, "y" * 5000):
        client = make(Recorder(httpx.Response(200, text=body)))
        with pytest.raises(GistError, match="bytes"):
            client.read_file(truncated_gist(20), "state.json")


def test_raw_url_on_a_foreign_host_is_not_fetched(make: Any) -> None:
    recorder = Recorder(httpx.Response(200, text="y" * 20))
    client = make(recorder)
    with pytest.raises(GistError, match="outside"):
        client.read_file(truncated_gist(20, "https://attacker.example/raw/state.json"), "state.json")
    assert recorder.requests == []
    assert client.read_file(truncated_gist(20, "https://gist.githubusercontent.com/u/g/raw/a/f"), "state.json")


# -- circuit breaker ----------------------------------------------------------------


def test_timeouts_open_the_breaker(make: Any, fake: FakeTime) -> None:
    breaker = CircuitBreaker(
        "gists", InMemoryBreakerStore(), BreakerConfig(min_calls=3, refresh_s=0, open_s=30), clock=fake
    )
    recorder = Recorder(httpx.ReadTimeout("timed out"))
    client = make(recorder, breaker=breaker, config=GistClientConfig(max_attempts=5))
    with pytest.raises(CircuitOpen):
        client.get_gist("g1")
    assert len(recorder.requests) == 3  # the third failure tripped it; the fourth attempt was refused
    with pytest.raises(CircuitOpen):
        client.get_gist("g1")
    assert len(recorder.requests) == 3


# -- secrets and serial writes ------------------------------------------------------


def test_a_message_echoing_the_token_is_scrubbed(make: Any, token: str) -> None:
    client = make(Recorder(error(401, f"Bad credentials for {token}")))
    with pytest.raises(GistRequestRejected) as info:
        client.get_gist("g1")
    assert token not in str(info.value)
    assert info.value.github_message == "Bad credentials for ***"
    assert token not in json.dumps(info.value.to_problem())


def test_writes_of_one_token_are_serial_across_threads(make: Any) -> None:
    entered, release = threading.Event(), threading.Event()
    in_flight: list[int] = []
    peak = [0]
    lock = threading.Lock()

    def slow(request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight.append(1)
            peak[0] = max(peak[0], len(in_flight))
        entered.set()
        release.wait(5)
        with lock:
            in_flight.pop()
        return ok()

    recorder = Recorder(slow)
    first, second = make(recorder), make(recorder)
    threads = [
        threading.Thread(target=first.update_file, args=("g1", "state.json", "a")),
        threading.Thread(target=second.update_file, args=("g1", "state.json", "b")),
    ]
    threads[0].start()
    assert entered.wait(5)
    threads[1].start()
    threads[1].join(0.2)
    assert len(recorder.requests) == 1  # the second write waits for the token's lock
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(recorder.requests) == 2
    assert peak[0] == 1
