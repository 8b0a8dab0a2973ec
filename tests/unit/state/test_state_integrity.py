"""StateIntegrity against the loopback Gist server: corrupt gist files rewritten from the register, corrupt
registers restored from the gist, and each check bounded by items and gists."""

from __future__ import annotations

import json
from typing import Any

import boto3

from cmdgate.crypto import codec_for
from cmdgate.state import layout
from cmdgate.state.integrity import IntegrityLimits, IntegrityReport, StateIntegrity
from cmdgate.state.model import digest_of
from tests.unit.state.test_gist_sync import Env, env, value_of

__all__ = ["env"]


class Repairs:
    """The sync queue as the healer sees it, and the alerts it sends."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[str, int, str | None]] = []
        self.alerts: list[tuple[str, str]] = []

    def schedule(self, key: str, version: int, *, repair: str | None = None) -> None:
        self.scheduled.append((key, version, repair))

    def alert(self, key: str, cause: str) -> None:
        self.alerts.append((key, cause))


def integrity(env: Env, repairs: Repairs, **limits: int) -> StateIntegrity:
    return StateIntegrity(env.store, env.gist, codec_for("plaintext"), repairs, limits=IntegrityLimits(**limits))


def check_all(checker: StateIntegrity, repairs: Repairs) -> IntegrityReport:
    """Checks from the start of the table to its end, merged."""
    merged = IntegrityReport()
    start: dict[str, Any] | None = None
    for _ in range(50):
        report = checker.check(start, "pass-1", repairs.alert, lambda: False)
        merged.actions += report.actions
        merged.registers += report.registers
        merged.gists += report.gists
        if report.next_start is None:
            return merged
        start = report.next_start
    raise AssertionError("the checks never reached the end of the table")


def synced(env: Env, values: dict[str, Any]) -> None:
    sync = env.sync()
    for key, value in values.items():
        env.write(key, value)
    for key in values:
        sync.sync(key)
    for key in values:
        register = env.store.register(key)
        assert register is not None and register.synced_version == register.version


def test_intact_files_and_registers_need_no_repair(env: Env) -> None:
    synced(env, {"a.one": {"n": 1}, "a.two": [1, 2], "b.one": "x"})
    repairs = Repairs()
    report = check_all(integrity(env, repairs), repairs)
    assert report.registers == 3 and report.actions == [] and repairs.alerts == []


def corrupt_file(env: Env, key: str, content: str) -> None:
    register = env.store.register(key)
    assert register is not None and register.gist_id and register.gist_file
    env.patch_gist(register.gist_id, register.gist_file, content)


def test_a_file_that_is_not_json_or_fails_its_digest_is_rewritten_from_the_register(env: Env) -> None:
    synced(env, {"a.junk": {"n": 1}, "a.edited": {"n": 2}, "a.fine": {"n": 3}})
    corrupt_file(env, "a.junk", "{not json")
    forged = layout.encode(
        codec_for("plaintext"),
        "a.edited",
        1,
        json.dumps({"n": 99}),
        deleted=False,
        updated_at="x",
        digest="d",
        plaintext=True,
    )  # a well-formed document of the right key and version, with another value
    corrupt_file(env, "a.edited", forged)
    repairs = Repairs()
    report = check_all(integrity(env, repairs), repairs)
    faults = {fields["key"]: fields["fault"] for action, fields in report.actions if action == "gist_file_rewritten"}
    assert faults == {"a.junk": "not a valid JSON state document", "a.edited": "fails its digest"}
    assert sorted(repairs.scheduled) == [("a.edited", 1, "pass-1"), ("a.junk", 1, "pass-1")]
    assert len(repairs.alerts) == 2
    # Marked unsynced: one sync writes both files again (one gist, one write).
    assert env.sync().sync("a.junk").files_written == 2
    assert value_of(env, "a.junk") == {"n": 1} and value_of(env, "a.edited") == {"n": 2}
    again = Repairs()
    assert check_all(integrity(env, again), again).actions == []


def test_another_keys_file_copied_over_a_keys_file_is_rewritten(env: Env) -> None:
    synced(env, {"a.x": {"n": 1}, "a.y": {"n": 2}})
    x, y = env.store.register("a.x"), env.store.register("a.y")
    assert x and y and y.gist_id and x.gist_file
    other = env.gist.read_file(env.gist.get_gist(y.gist_id), str(y.gist_file))
    corrupt_file(env, "a.x", other)  # a.y's file copied over a.x's: bound to a.y, it does not open as a.x
    repairs = Repairs()
    report = check_all(integrity(env, repairs), repairs)
    assert [(a, f["key"]) for a, f in report.actions] == [("gist_file_rewritten", "a.x")]
    # Encrypted, it does not open (the envelope is bound to a.y); in plain text its value fails a.x's digest.
    assert report.actions[0][1]["fault"] in ("fails its digest", "does not open (decrypt) as this key's document")


def test_a_register_that_fails_its_digest_is_restored_from_the_newest_matching_revision(env: Env) -> None:
    synced(env, {"r.k": {"n": 1}})
    env.write("r.k", {"n": 2})
    env.sync().sync("r.k")
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.update_item(  # the register's value changed behind the store's back, its digest not
        TableName="unit-StateTable",
        Key={"pk": {"S": "key#r.k"}, "sk": {"S": "register"}},
        UpdateExpression="SET value_json = :v",
        ExpressionAttributeValues={":v": {"S": '{"n": 666}'}},
    )
    repairs = Repairs()
    report = check_all(integrity(env, repairs), repairs)
    assert report.actions == [("register_restored", {"key": "r.k", "from_version": 2, "version": 3})]
    restored = env.store.register("r.k")
    assert restored is not None and json.loads(restored.value_json) == {"n": 2}
    assert restored.digest == digest_of({"n": 2})
    assert repairs.scheduled == [("r.k", 3, "pass-1")] and len(repairs.alerts) == 1
    again = Repairs()
    assert check_all(integrity(env, again), again).actions == []


def test_a_corrupt_register_without_a_gist_is_alerted_not_guessed_at(env: Env) -> None:
    env.write("u.k", {"n": 1})  # never synced
    boto3.client("dynamodb", region_name="us-east-1").update_item(
        TableName="unit-StateTable",
        Key={"pk": {"S": "key#u.k"}, "sk": {"S": "register"}},
        UpdateExpression="SET value_json = :v",
        ExpressionAttributeValues={":v": {"S": "[broken"}},
    )
    repairs = Repairs()
    report = check_all(integrity(env, repairs), repairs)
    assert report.actions == [("register_unrestorable", {"key": "u.k"})] and len(repairs.alerts) == 1
    register = env.store.register("u.k")
    assert register is not None and register.version == 1  # left as it is for an operator


def test_each_check_fetches_at_most_its_gists_and_the_next_resumes_where_it_stopped(env: Env) -> None:
    synced(env, {"p.k": 1, "q.k": 2, "s.k": 3})  # three namespaces: three gists
    repairs = Repairs()
    checker = integrity(env, repairs, gists=1)
    first = checker.check(None, "pass-1", repairs.alert, lambda: False)
    assert first.gists == 1 and first.registers == 1 and first.next_start is not None
    report = check_all(checker, repairs)
    assert report.registers == 3 and report.gists == 3
    corrupt_file(env, "s.k", "junk")
    assert [f["key"] for _, f in check_all(checker, repairs).actions] == ["s.k"]


def test_a_check_out_of_time_stops_before_its_first_register(env: Env) -> None:
    synced(env, {"t.k": 1})
    repairs = Repairs()
    report = integrity(env, repairs).check(None, "pass-1", repairs.alert, lambda: True)
    assert report.registers == 0 and report.actions == [] and report.next_start is None


class GistDown:
    """A Gist client whose every read fails (an outage)."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("gist API down")

        return fail


def test_a_gist_outage_stops_the_check_where_it_is_instead_of_failing_it(env: Env) -> None:
    synced(env, {"o.k": {"n": 1}})
    repairs = Repairs()
    down = StateIntegrity(env.store, GistDown(), codec_for("plaintext"), repairs)  # type: ignore[arg-type]
    report = down.check(None, "pass-1", repairs.alert, lambda: False)
    assert report.actions == [("integrity_gist_unavailable", {"key": "o.k"})]
    assert report.next_start is None and repairs.scheduled == [] and repairs.alerts == []  # resumes at the start
