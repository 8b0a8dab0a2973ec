"""The disaster-recovery drill, small: keys synced, their state wiped, `cmdgate state recover`, verified.

`make dr-drill` runs the same steps (bench/dr_drill.py) with 1,000 keys and the whole state table wiped
on a stack of its own; here the drill's namespaces alone are wiped, on the shared stack.
"""

from __future__ import annotations

import httpx
import pytest

from bench.dr_drill import Drill
from cmdgate.crypto import codec_for
from cmdgate.state import layout
from cmdgate.state.model import digest_of
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def test_wiped_state_is_recovered_from_the_gists_with_history_tombstones_and_format_1(stack: Stack) -> None:
    token = stack.aws("secretsmanager").get_secret_value(
        SecretId=stack.state["functions"]["ApiFunction"]["GITHUB_TOKEN_SECRET_ARN"]
    )["SecretString"]
    drill = Drill(
        api=stack.admin,
        api_url=stack.url,
        admin_key=stack.admin_key,
        dynamodb=stack.aws("dynamodb"),
        kms=stack.aws("kms"),
        table=stack.resource("StateTable"),
        kms_key=stack.resource("StateKey"),
        gist_url=stack.state["gist_url"],
        gist_token=token,
        namespaces_only=True,
    )
    # Another deployment's shard gist in one of the drill's namespaces, under the same token.
    namespace = drill.namespaces(1)[0]
    foreign, codec = layout.ShardRef(namespace, 0), codec_for("kms", stack.aws("kms"), stack.resource("StateKey"))
    theirs = layout.encode(
        codec, f"{namespace}.foreign", 9, "1", deleted=False, updated_at="t", digest=digest_of(1), plaintext=False
    )
    httpx.post(
        f"{stack.state['gist_url']}/gists",
        json={
            "description": layout.description("another-stack", foreign),
            "files": {
                layout.MANIFEST_FILE: {"content": layout.manifest("another-stack", foreign)},
                "theirs.json": {"content": theirs},
            },
        },
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()

    drill.seed(keys=30, namespaces=3, legacy=2, sync_bound_s=60)
    written = drill.summary()
    assert (written["keys_synced"], written["legacy_keys"]) == (32, 2)
    assert written["tombstones"] >= 2 and written["multi_version_keys"] >= 4
    drill.tail(updates=3, creates=2, queued=False)  # writes whose sync had not run when the table went
    point = drill.wipe()
    assert (point["writes_lost"], point["keys_lost"]) == (5, 2)
    assert drill.registers() == {}

    scope = sorted({layout.namespace_of(key) for key in drill.written})
    report = drill.recover(scope)

    counts = report["counts"]
    assert counts["keys_recovered"] == written["keys_synced"], counts
    assert counts["tombstones_recovered"] == written["tombstones"], counts
    assert drill.verify(api_sample=10) == []
    assert stack.admin.get(f"/v1/state/{namespace}.foreign").status_code == 404  # the other stack's key
    again = drill.recover(scope)  # a second run changes nothing
    assert again["counts"].get("keys_recovered", 0) == 0 and again["counts"]["keys_present"] == 32, again
