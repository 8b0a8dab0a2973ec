"""The Gist client against the real loopback Gist server: caches, retries, limits, spacing, truncation, breaker."""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from cmdgate.breaker import BreakerConfig, CircuitBreaker, CircuitOpen, InMemoryBreakerStore
from cmdgate.gist import (
    GistClient,
    GistClientConfig,
    GistError,
    GistNotFound,
    GistRateLimited,
    GistRequestRejected,
    GistUnavailable,
    GistWriteUnconfirmed,
)
from cmdgate.gist import client as client_module
from cmdgate_local.gist_server import GistServer

START = 1_700_000_000.0


class FakeTime:
    """One clock for the server, the client's monotonic and wall clocks; only sleeps move it."""

    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Env:
    server: GistServer
    time: FakeTime
    token: str
    http: httpx.Client
    clients: list[GistClient] = field(default_factory=list)

    def client(self, **kwargs: Any) -> GistClient:
        kwargs.setdefault("base_url", self.server.url)
        kwargs.setdefault("clock", self.time)
        kwargs.setdefault("wall_clock", self.time)
        kwargs.setdefault("sleep", self.time.sleep)
        token = kwargs.pop("token", self.token)
        http = kwargs.pop("http", self.http)
        client = GistClient(http, lambda: token, **kwargs)
        self.clients.append(client)
        return client

    def stats(self) -> dict[str, Any]:
        return self.server.app.stats()

    def requests(self, method: str | None = None) -> int:
        stats = self.stats()
        if method is None:
            return int(stats["requests_total"])
        return int(stats["requests_by_method"].get(method, 0))


@pytest.fixture
def env() -> Iterator[Env]:
    fake = FakeTime()
    # A token per test: write spacing and rate-limit blocks are shared per token in the process.
    token = f"ghp_test_{uuid.uuid4().hex}"
    server = GistServer(port=0, clock=fake, valid_tokens=[token]).start()
    http = httpx.Client()
    try:
        yield Env(server, fake, token, http)
    finally:
        http.close()
        server.stop()


def state(version: int) -> str:
    return f'{{"key": "k", "version": {version}}}'


# -- the happy path and the caches ---------------------------------------------


def test_create_get_update_history_and_cached_revision(env: Env) -> None:
    client = env.client()
    created = client.create_gist({"state.json": state(1)}, "cmdgate state: k")
    assert created.public is False
    assert created.files["state.json"].content == state(1)
    first_sha = created.version
    assert first_sha is not None and len(first_sha) == 40

    fetched = client.get_gist(created.id)
    assert fetched.files["state.json"].content == state(1)

    updated = client.update_file(created.id, "state.json", state(2))
    assert updated.files["state.json"].content == state(2)
    assert updated.version != first_sha

    commits = client.list_commits(created.id)
    assert [c.version for c in commits] == [updated.version, first_sha]  # newest first
    assert client.get_gist(created.id).history[0].version == updated.version

    before = env.requests("GET")
    old = client.get_revision(created.id, first_sha)
    assert client.read_file(old, "state.json") == state(1)
    assert env.requests("GET") == before + 1
    again = client.get_revision(created.id, first_sha)
    assert again is old
    assert env.requests("GET") == before + 1  # immutable: served from the cache


def test_second_get_is_a_free_304_returning_the_cached_object(env: Env) -> None:
    client = env.client()
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    first = client.get_gist(gist_id)
    assert client.rate_limit is not None
    remaining = client.rate_limit.remaining

    second = client.get_gist(gist_id)

    assert second is first
    assert env.stats()["not_modified"] == 1
    assert client.rate_limit.remaining == remaining  # a 304 costs no rate limit


def test_get_after_update_sees_the_new_content(env: Env) -> None:
    client = env.client()
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    client.get_gist(gist_id)
    client.update_file(gist_id, "state.json", state(2))
    assert client.get_gist(gist_id).files["state.json"].content == state(2)


def test_patch_succeeds_even_when_the_callers_client_has_an_if_match_default(env: Env) -> None:
    # The loopback server answers 400 to any conditional header on PATCH, as GitHub does.
    http = httpx.Client(headers={"If-Match": '"stale"'})
    try:
        client = env.client(http=http)
        gist_id = env.client().create_gist({"state.json": state(1)}, "d").id
        assert client.update_file(gist_id, "state.json", state(2)).files["state.json"].content == state(2)
    finally:
        http.close()
    assert env.stats()["rejected"] == {}


def test_missing_gist_raises_gist_not_found_without_retrying(env: Env) -> None:
    client = env.client()
    with pytest.raises(GistNotFound) as info:
        client.get_gist("0" * 32)
    assert info.value.status_code == 404
    assert info.value.github_message == "Not Found"
    assert env.requests() == 1
    assert env.time.sleeps == []


def test_bad_credentials_are_rejected_without_retrying(env: Env) -> None:
    client = env.client(token="ghp_not_a_valid_token")
    with pytest.raises(GistRequestRejected) as info:
        client.get_gist("abc")
    assert info.value.status_code == 401
    assert info.value.github_message == "Bad credentials"
    assert env.requests() == 1


def test_validation_422_is_not_retried(env: Env) -> None:
    client = env.client()
    with pytest.raises(GistRequestRejected) as info:
        client.create_gist({"..": "x"}, "d")  # GitHub's "Validation Failed", not "Gist cannot be updated."
    assert info.value.status_code == 422
    assert info.value.github_message == "Validation Failed"
    assert env.requests("POST") == 1
    assert env.time.sleeps == []


def test_token_provider_is_asked_on_every_call(env: Env) -> None:
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return env.token + "\n"  # secrets often end with a newline: it is stripped

    client = GistClient(
        env.http, provider, base_url=env.server.url, clock=env.time, wall_clock=env.time, sleep=env.time.sleep
    )
    gist_id = client.create_gist({"a.txt": "a"}, "d").id
    client.get_gist(gist_id)
    client.list_commits(gist_id)
    assert len(calls) == 3


# -- retries -------------------------------------------------------------------


def test_502_twice_then_success_is_retried_with_full_jitter(env: Env) -> None:
    config = GistClientConfig(base_backoff_s=0.5, max_backoff_s=8)
    client = env.client(config=config)
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    env.time.sleeps.clear()
    gets = env.requests("GET")
    env.server.app.set_fault("502", count=2)

    assert client.get_gist(gist_id).files["state.json"].content == state(1)

    assert env.requests("GET") == gets + 3
    assert len(env.time.sleeps) == 2
    for n, slept in enumerate(env.time.sleeps):
        assert 0 <= slept < min(8, 0.5 * 2**n)


def test_502_sleeps_are_scaled_by_the_random_draw(env: Env) -> None:
    client = env.client(config=GistClientConfig(base_backoff_s=0.5, max_backoff_s=0.75), random=lambda: 0.5)
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    env.time.sleeps.clear()
    env.server.app.set_fault("502", count=3)
    client.get_gist(gist_id)
    assert env.time.sleeps == pytest.approx([0.25, 0.375, 0.375])  # 0.5 * min(cap, base * 2**n)


def test_502_until_attempts_run_out_raises_gist_unavailable(env: Env) -> None:
    client = env.client(config=GistClientConfig(max_attempts=3))
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    gets = env.requests("GET")
    env.server.app.set_fault("502")
    with pytest.raises(GistUnavailable) as info:
        client.get_gist(gist_id)
    assert info.value.status_code == 502
    assert env.requests("GET") == gets + 3
    assert "max_attempts" in str(info.value)


def test_retries_stop_at_the_callers_deadline(env: Env) -> None:
    left = {"s": 30.0}
    client = env.client(remaining_s=lambda: left["s"] - (env.time.now - START))
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    left["s"] = 1.2  # less than min_attempt_s + safety_margin_s: no retry may start
    env.server.app.set_fault("502")
    gets = env.requests("GET")
    with pytest.raises(GistUnavailable) as info:
        client.get_gist(gist_id)
    assert "deadline" in str(info.value)
    assert env.requests("GET") == gets + 1


# -- shards: many files per PATCH, lost answers, the recovery scan -------------------


def test_update_files_writes_a_shard_in_one_revision(env: Env) -> None:
    client = env.client()
    shard = client.create_gist({"manifest.json": "[]", "k1.json": state(1), "k2.json": state(1)}, "shard 1")
    updated = client.update_files(
        shard.id, {"manifest.json": '["k1", "k3"]', "k1.json": state(2), "k2.json": None, "k3.json": state(1)}
    )
    assert {name: f.content for name, f in updated.files.items()} == {
        "manifest.json": '["k1", "k3"]',
        "k1.json": state(2),
        "k3.json": state(1),
    }
    assert len(updated.history) == 2
    assert client.get_gist(shard.id).version == updated.version


def test_a_lost_patch_answer_without_blind_retry_is_unconfirmed_and_the_write_landed(env: Env) -> None:
    client = env.client()
    shard = client.create_gist({"manifest.json": "[]"}, "shard 1")
    env.server.app.set_fault("lost", count=1, methods=["PATCH"])
    patches = env.requests("PATCH")
    with pytest.raises(GistWriteUnconfirmed) as info:
        client.update_files(shard.id, {"manifest.json": '["k1"]', "k1.json": state(1)}, blind_retry=False)
    assert info.value.status_code == 502
    assert env.requests("PATCH") == patches + 1  # not retried
    read_back = client.get_gist(shard.id)
    assert read_back.files["k1.json"].content == state(1)  # it had landed
    assert len(read_back.history) == 2


def test_a_lost_patch_answer_with_blind_retry_writes_twice(env: Env) -> None:
    client = env.client()
    shard = client.create_gist({"manifest.json": "[]"}, "shard 1")
    env.server.app.set_fault("lost", count=1, methods=["PATCH"])
    updated = client.update_files(shard.id, {"manifest.json": '["k1"]'})
    assert len(updated.history) == 3  # the lost write and its blind repeat


def test_a_timed_out_create_is_unconfirmed_and_found_by_listing(env: Env) -> None:
    client = env.client(config=GistClientConfig(read_timeout_s=0.3))
    client.create_gist({"manifest.json": "[]"}, "shard 1")
    env.server.app.set_fault("lost_timeout", count=1, delay_s=5.0, methods=["POST"])
    with pytest.raises(GistWriteUnconfirmed, match="ReadTimeout"):
        client.create_gist({"manifest.json": "[]"}, "shard 2", blind_retry=False)
    assert env.requests("POST") == 2
    listed = client.list_gists()
    assert [g.description for g in listed] == ["shard 2", "shard 1"]
    assert set(listed[0].files) == {"manifest.json"}
    assert listed[0].files["manifest.json"].size == 2


def test_list_gists_pages_and_since_against_the_server(env: Env) -> None:
    client = env.client()
    ids = [client.create_gist({"m.json": str(n)}, f"shard {n}").id for n in range(3)]
    env.time.now += 120
    client.update_file(ids[0], "m.json", "renewed")
    renewed_at = client.get_gist(ids[0]).updated_at
    assert [g.id for g in client.list_gists(per_page=2)] == [ids[0], ids[2]]
    assert [g.id for g in client.list_gists(per_page=2, page=2)] == [ids[1]]
    assert [g.id for g in client.list_gists(since=renewed_at)] == [ids[0]]


# -- rate limits -----------------------------------------------------------------


def test_429_with_retry_after_waits_exactly_that(env: Env) -> None:
    client = env.client()
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    env.time.sleeps.clear()
    env.server.app.set_fault("429", count=1, retry_after=7)

    assert client.get_gist(gist_id).id == gist_id
    assert env.time.sleeps == [7.0]


def test_429_with_retry_after_beyond_the_budget_raises_instead_of_sleeping(env: Env) -> None:
    client = env.client(remaining_s=lambda: 5.0)
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    env.time.sleeps.clear()
    env.server.app.set_fault("429", count=1, retry_after=7)

    with pytest.raises(GistRateLimited) as info:
        client.get_gist(gist_id)
    assert info.value.retry_after_s == pytest.approx(7.0)
    assert info.value.status_code == 429
    assert info.value.headers["Retry-After"] == "7"
    assert env.time.sleeps == []

    # The token stays blocked: the next call raises without sending anything.
    before = env.requests()
    with pytest.raises(GistRateLimited):
        client.get_gist(gist_id)
    assert env.requests() == before


def test_429_beyond_the_configured_max_wait_raises(env: Env) -> None:
    client = env.client(config=GistClientConfig(max_rate_limit_wait_s=30))
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    env.server.app.set_fault("429", count=1, retry_after=45)
    with pytest.raises(GistRateLimited) as info:
        client.get_gist(gist_id)
    assert info.value.retry_after_s == pytest.approx(45.0)


def test_primary_limit_exhausted_raises_with_the_wait_until_reset(env: Env) -> None:
    client = env.client()
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    client.list_commits(gist_id)
    # Another process spends the rest of the window: this client learns it from GitHub's 403.
    env.server.app.set_limits(primary_per_hour=2)
    env.time.now += 100
    before = env.requests()

    with pytest.raises(GistRateLimited) as info:
        client.list_commits(gist_id)
    assert env.requests() == before + 1
    assert info.value.status_code == 403
    assert info.value.github_message is not None and "rate limit" in info.value.github_message
    assert client.rate_limit is not None and client.rate_limit.remaining == 0
    assert info.value.retry_after_s == pytest.approx(client.rate_limit.reset_at - env.time.now)
    assert info.value.retry_after_s > 3000
    assert env.time.sleeps == []  # raised, not slept

    with pytest.raises(GistRateLimited):
        client.get_gist(gist_id)  # blocked in the process: no request
    assert env.requests() == before + 1


def test_the_windows_last_request_blocks_the_next_without_a_request(env: Env) -> None:
    env.server.app.set_limits(primary_per_hour=3)
    client = env.client()
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    client.list_commits(gist_id)
    client.list_commits(gist_id)  # remaining: 0
    assert client.rate_limit is not None and client.rate_limit.remaining == 0
    before = env.requests()

    with pytest.raises(GistRateLimited) as info:
        client.list_commits(gist_id)
    assert env.requests() == before
    assert info.value.retry_after_s == pytest.approx(client.rate_limit.reset_at - env.time.now)
    assert env.stats()["rejected"] == {}


def test_primary_limit_close_to_its_reset_is_waited_out(env: Env) -> None:
    env.server.app.set_limits(primary_per_hour=2)
    client = env.client()
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    client.list_commits(gist_id)
    assert client.rate_limit is not None
    reset_at = client.rate_limit.reset_at
    env.time.now = reset_at - 10
    env.time.sleeps.clear()

    before = env.requests()
    assert [c.version for c in client.list_commits(gist_id)]  # waits 10 s for the reset, then one request
    assert env.requests() == before + 1
    assert env.time.sleeps == [pytest.approx(10.0)]


def test_secondary_limit_of_the_server_is_waited_out_with_its_retry_after(env: Env) -> None:
    env.server.app.set_limits(secondary_per_minute=2)
    client = env.client()
    gist_id = client.create_gist({"state.json": state(1)}, "d").id  # t0
    client.update_file(gist_id, "state.json", state(2))  # t0 + 1 (spacing)
    env.time.sleeps.clear()

    # At t0 + 2: 403 with Retry-After 58 (the minute's oldest write leaves at t0 + 60), then accepted.
    client.update_file(gist_id, "state.json", state(3))

    assert env.time.sleeps == [pytest.approx(1.0), pytest.approx(58.0)]  # spacing, then the Retry-After
    assert env.stats()["rejected"] == {"secondary_rate_limit": 1}
    assert [e["ts"] for e in env.server.app.write_log()] == [START, START + 1, START + 60]


# -- write spacing ---------------------------------------------------------------


def test_back_to_back_writes_are_spaced_one_second_apart(env: Env) -> None:
    client = env.client()
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    env.time.sleeps.clear()

    client.update_file(gist_id, "state.json", state(2))
    client.update_file(gist_id, "state.json", state(3))

    assert env.time.sleeps == [pytest.approx(1.0), pytest.approx(1.0)]
    stamps = [float(str(entry["ts"])) for entry in env.server.app.write_log()]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(stamps))


def test_reads_are_not_spaced(env: Env) -> None:
    client = env.client()
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    client.list_commits(gist_id)
    client.list_commits(gist_id)
    assert env.time.sleeps == []


def test_write_spacing_is_shared_by_clients_of_one_token(env: Env) -> None:
    first, second = env.client(), env.client()
    gist_id = first.create_gist({"state.json": state(1)}, "d").id
    env.time.sleeps.clear()
    second.update_file(gist_id, "state.json", state(2))
    assert env.time.sleeps == [pytest.approx(1.0)]


def test_writes_of_different_tokens_are_not_spaced(env: Env) -> None:
    other_token = f"ghp_test_{uuid.uuid4().hex}"
    server = GistServer(port=0, clock=env.time).start()
    try:
        a = env.client(base_url=server.url, token=env.token)
        b = env.client(base_url=server.url, token=other_token)
        a.create_gist({"a.txt": "a"}, "d")
        b.create_gist({"b.txt": "b"}, "d")
    finally:
        server.stop()
    assert env.time.sleeps == []


# -- truncated files -------------------------------------------------------------


def test_file_over_one_mib_is_read_whole_through_raw_url(env: Env) -> None:
    client = env.client()
    line = "état " + "x" * 60 + "\n"  # a non-ASCII character: sizes are bytes, not characters
    content = line * (1024 * 1024 // len(line.encode()) + 2000)
    assert len(content.encode()) > 1024 * 1024
    gist_id = client.create_gist({"big.txt": content}, "d").id
    gist = client.get_gist(gist_id)
    big = gist.files["big.txt"]
    assert big.truncated is True
    assert big.content is not None and len(big.content.encode()) <= 1024 * 1024
    gets = env.requests("GET")

    assert client.read_file(gist, "big.txt") == content
    assert env.requests("GET") == gets + 1


def test_read_file_of_an_unknown_name_raises_not_found(env: Env) -> None:
    client = env.client()
    gist = client.create_gist({"a.txt": "a"}, "d")
    with pytest.raises(GistNotFound):
        client.read_file(gist, "b.txt")


# -- circuit breaker -------------------------------------------------------------


def breaker(env: Env, **overrides: Any) -> CircuitBreaker:
    values: dict[str, Any] = {"min_calls": 4, "failure_rate_threshold": 0.5, "open_s": 30, "refresh_s": 0}
    values.update(overrides)
    return CircuitBreaker("github-gists", InMemoryBreakerStore(), BreakerConfig(**values), clock=env.time)


def test_breaker_opens_after_repeated_502_then_refuses_without_a_request(env: Env) -> None:
    the_breaker = breaker(env)
    client = env.client(config=GistClientConfig(max_attempts=2), breaker=the_breaker)
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    env.server.app.set_fault("502")

    with pytest.raises(GistUnavailable):
        client.get_gist(gist_id)  # 2 attempts, both 502: 2 failures in 3 calls (with the create)
    before = env.requests()
    with pytest.raises(CircuitOpen):
        client.get_gist(gist_id)  # 3 failures in 4 calls trips it: the retry is refused
    assert env.requests() == before + 1
    assert the_breaker.state() == "open"
    before = env.requests()

    with pytest.raises(CircuitOpen) as info:
        client.get_gist(gist_id)
    assert env.requests() == before
    assert info.value.retry_after_s >= 1


def test_breaker_ignores_4xx_and_rate_limits(env: Env) -> None:
    the_breaker = breaker(env)
    client = env.client(breaker=the_breaker)
    gist_id = client.create_gist({"state.json": state(1)}, "d").id
    for _ in range(6):
        with pytest.raises(GistNotFound):
            client.get_gist("f" * 32)
    env.server.app.set_fault("429", count=3, retry_after=1)
    client.get_gist(gist_id)
    assert the_breaker.state() == "closed"


# -- secrets ---------------------------------------------------------------------


def test_the_token_never_appears_in_exceptions_or_logs(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    module_logger = logging.getLogger(client_module.logger.name)
    module_logger.addHandler(caplog.handler)
    errors: list[GistError] = []
    try:
        client = env.client(config=GistClientConfig(max_attempts=2), remaining_s=lambda: 20.0)
        gist_id = client.create_gist({"state.json": state(1)}, "d").id
        for fault in ("502", "429"):
            env.server.app.set_fault(fault, count=2, retry_after=30)
            with pytest.raises(GistError) as info:
                client.get_gist(gist_id)
            errors.append(info.value)
            env.server.app.clear_fault()
            env.time.now += 60
        with pytest.raises(GistNotFound) as not_found:
            client.get_gist("nope")
        errors.append(not_found.value)
        bad = env.client(token=env.token + "x")  # refused: "Bad credentials"
        with pytest.raises(GistRequestRejected) as rejected:
            bad.get_gist(gist_id)
        errors.append(rejected.value)
    finally:
        module_logger.removeHandler(caplog.handler)

    assert len(errors) == 4
    assert any(r.name == client_module.logger.name for r in caplog.records)  # the client did log
    for error in errors:
        texts = [str(error), repr(error), str(error.to_problem()), str(error.__cause__), str(error.__context__)]
        assert not any(env.token in text for text in texts)
    for record in caplog.records:
        assert env.token not in record.getMessage()
        assert env.token not in str(record.__dict__)
