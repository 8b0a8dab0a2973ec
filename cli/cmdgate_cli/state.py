"""`cmdgate state get|put|patch|delete|history|restore|diff`: versioned JSON values."""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cmdgate_cli.catalogue import read_json_file
from cmdgate_cli.client import segment
from cmdgate_cli.problems import usage_error
from cmdgate_cli.session import Session, session

app = typer.Typer(help="State keys: read, write, merge-patch, history, restore, diff.", no_args_is_help=True)
Key = Annotated[str, typer.Argument(help="The state key, e.g. team-a.config.")]
ValueFile = Annotated[str | None, typer.Option("--json", help="A file holding the JSON value (`-` for stdin).")]
Value = Annotated[str | None, typer.Option("--value", help="The JSON value itself, e.g. '{\"a\": 1}'.")]
IfMatch = Annotated[int | None, typer.Option("--if-match", min=1, help="Only if the key is at this version.")]
MERGE_PATCH = "application/merge-patch+json"


def _path(key: str, tail: str = "") -> str:
    return f"/v1/state/{segment(key)}{tail}"


def _value(json_file: str | None, value: str | None) -> Any:
    if (json_file is None) == (value is None):
        raise usage_error("One value", "Give the value with exactly one of --json FILE or --value JSON.")
    if json_file is not None:
        return read_json_file(json_file, "value file")
    try:
        return json.loads(str(value))
    except json.JSONDecodeError as error:
        raise usage_error("--value is not JSON", error.msg) from None


def _metadata(key: str, response: httpx.Response) -> dict[str, Any]:
    headers = response.headers
    version = headers.get("State-Version")
    synced = headers.get("Gist-Synced-Version")
    return {
        "key": key,
        "version": int(version) if version and version.isdigit() else None,
        "etag": headers.get("ETag"),
        "gist_synced_version": int(synced) if synced and synced.isdigit() else None,
        "last_modified": headers.get("Last-Modified"),
    }


def _show_written(current: Session, key: str, response: httpx.Response, what: str) -> None:
    meta = _metadata(key, response)
    has_value = response.status_code != 204 and bool(response.content)
    if current.out.json:
        current.out.data({**meta, **({"value": response.json()} if has_value else {})})
        return
    current.out.note(f"{what} {escape(key)}: version {meta['version']}")
    if has_value:
        current.out.data(response.json())


@app.command("get")
def get(
    ctx: typer.Context,
    key: Key,
    version: Annotated[int | None, typer.Option("--version", min=1, help="A retained older version.")] = None,
) -> None:
    """A key's value (stdout) and its version (stderr)."""
    current = session(ctx)
    response = current.api.request("GET", _path(key), params={"version": version} if version else None)
    meta = _metadata(key, response)
    if current.out.json:
        current.out.data({**meta, "value": response.json()})
        return
    synced = meta["gist_synced_version"]
    current.out.note(f"{escape(key)}: version {meta['version']}" + (f", gist synced {synced}" if synced else ""))
    current.out.data(response.json())


@app.command("put")
def put(
    ctx: typer.Context,
    key: Key,
    json_file: ValueFile = None,
    value: Value = None,
    create: Annotated[
        bool, typer.Option("--create", help="Only if the key does not exist (If-None-Match: *).")
    ] = False,
    if_match: IfMatch = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace whatever version is there (If-Match: *).")] = (
        False
    ),
) -> None:
    """Create or replace a value; say which with --create, --if-match N or --replace."""
    if sum((create, if_match is not None, replace)) != 1:
        raise usage_error("One precondition", "Give exactly one of --create, --if-match VERSION or --replace.")
    headers = {"If-None-Match": "*"} if create else {"If-Match": f'"{if_match}"' if if_match else "*"}
    current = session(ctx)
    response = current.api.request("PUT", _path(key), json=_value(json_file, value), headers=headers)
    _show_written(current, key, response, "created" if response.status_code == 201 else "replaced")


@app.command("patch")
def patch(
    ctx: typer.Context, key: Key, json_file: ValueFile = None, value: Value = None, if_match: IfMatch = None
) -> None:
    """Apply an RFC 7396 JSON merge patch (null removes a member)."""
    headers = {"Content-Type": MERGE_PATCH, **({"If-Match": f'"{if_match}"'} if if_match else {})}
    body = json.dumps(_value(json_file, value)).encode()
    current = session(ctx)
    response = current.api.request("PATCH", _path(key), content=body, headers=headers)
    _show_written(current, key, response, "patched")


@app.command("delete")
def delete(
    ctx: typer.Context,
    key: Key,
    if_match: Annotated[int, typer.Option("--if-match", min=1, help="The version you mean to delete.")],
) -> None:
    """Delete a key at a known version (its gist keeps the history)."""
    current = session(ctx)
    response = current.api.request("DELETE", _path(key), headers={"If-Match": f'"{if_match}"'})
    if current.out.json:
        current.out.data(_metadata(key, response))
    else:
        current.out.note(f"deleted {escape(key)}: version {response.headers.get('State-Version')}")


@app.command("history")
def history(ctx: typer.Context, key: Key) -> None:
    """Retained versions, newest first, with the gist revision each reached."""
    current = session(ctx)
    versions = list(current.api.pages(_path(key, "/history"), "versions"))
    if current.out.json:
        current.out.data({"key": key, "versions": versions})
        return
    table = Table("version", "updated_at", "gist revision")
    for entry in versions:
        revision = entry.get("revision")
        table.add_row(
            str(entry.get("version")), escape(str(entry.get("updated_at", ""))), escape(revision or "[not synced]")
        )
    current.out.table(table)


@app.command("restore")
def restore(
    ctx: typer.Context, key: Key, version: Annotated[int, typer.Argument(min=1, help="The version to write again.")]
) -> None:
    """Write an older version's value as a new version."""
    current = session(ctx)
    response = current.api.request("POST", _path(key, "/restore"), json={"version": version})
    _show_written(current, key, response, f"restored version {version} of")


def _pretty(value: Any) -> list[str]:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").splitlines(keepends=True)


def unified_diff(key: str, old_version: int | str, old: Any, new_version: int | str, new: Any) -> str:
    """A unified diff of two values' pretty, key-sorted JSON."""
    return "".join(
        difflib.unified_diff(_pretty(old), _pretty(new), fromfile=f"{key}@{old_version}", tofile=f"{key}@{new_version}")
    )


@app.command("diff")
def diff(
    ctx: typer.Context,
    key: Key,
    old: Annotated[int, typer.Argument(min=1, help="The older version.")],
    new: Annotated[int | None, typer.Argument(min=1, help="The newer version (default: the current one).")] = None,
) -> None:
    """A unified diff between two versions' JSON (exit 0 whether or not they differ)."""
    current = session(ctx)
    old_value = current.api.get_json(_path(key), params={"version": old})
    if new is None:
        response = current.api.request("GET", _path(key))
        new_label: int | str = response.headers.get("State-Version") or "current"
        new_value = response.json()
    else:
        new_label, new_value = new, current.api.get_json(_path(key), params={"version": new})
    text = unified_diff(key, old, old_value, new_label, new_value)
    if current.out.json:
        current.out.data({"key": key, "from": old, "to": new_label, "identical": not text, "diff": text})
        return
    if not text:
        current.out.note(f"{escape(key)}@{old} and @{new_label} hold the same value")
        return
    current.out.out.print(_coloured(text), end="")


def _coloured(text: str) -> Text:
    styled = Text()
    for line in text.splitlines(keepends=True):
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        styled.append(line, style=style)
    return styled


@app.command("recover")
def recover(
    ctx: typer.Context,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", help="Only this namespace's gists (repeatable; default: all).")
    ] = None,
    max_revisions: Annotated[
        int, typer.Option("--max-revisions", min=1, max=1000, help="Revisions walked per gist, newest first.")
    ] = 100,
) -> None:
    """Rebuild lost registers and version history from this deployment's gists (admin; see the DR runbook).

    Calls POST /v1/admin/state/recover until it is done (each call is bounded), then prints what it
    recovered and how long it took. Keys written since the loss are left as they are.
    """
    import time

    current = session(ctx)
    body: dict[str, Any] = {"max_revisions": max_revisions}
    if namespace:
        body["namespaces"] = namespace
    totals: dict[str, int] = {}
    started = time.monotonic()
    calls = 0
    while True:
        answer = current.api.request("POST", "/v1/admin/state/recover", json=body).json()
        calls += 1
        for name, count in (answer.get("counts") or {}).items():
            totals[name] = totals.get(name, 0) + int(count)
        following = answer.get("next")
        if answer.get("done") or not following:
            break
        body = {**body, "gists": following["gists"], "skip": following["skip"]}
        if not current.out.json:
            current.out.note(
                f"recovering: {len(following['gists'])} gists left, {totals.get('keys_recovered', 0)} keys"
            )
    elapsed = round(time.monotonic() - started, 1)
    if current.out.json:
        current.out.data({"elapsed_s": elapsed, "calls": calls, "counts": dict(sorted(totals.items()))})
        return
    table = Table("recovered", "count", title=f"state recovery: {elapsed} s, {calls} calls")
    for name, count in sorted(totals.items()):
        table.add_row(escape(name), str(count))
    current.out.table(table)
