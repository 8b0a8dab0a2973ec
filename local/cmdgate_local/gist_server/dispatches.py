"""GitHub Actions dispatch endpoints: the bodies GitHub accepts, its 422 answers, and what was dispatched.

- POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches (`actions/create-workflow-dispatch`):
  `ref` (string, required), `inputs` (object, at most 25 properties), `return_run_details` (boolean);
  204 with no body (200 with run details is not modelled: this stand-in has no runs).
- POST /repos/{owner}/{repo}/dispatches (`repos/create-dispatch-event`): `event_type` (1-100
  characters, required), `client_payload` (object, at most 10 top-level properties, under 64 KB);
  204 with no body.

Both are content-creating requests: they count against the token's secondary limit like gist
writes. The shapes come from GitHub's description vendored in local/cmdgate_local/reference/.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from cmdgate_local.gist_server.responses import DOCS
from cmdgate_local.gist_server.validation import BadRequest

DOC_WORKFLOW_DISPATCH = f"{DOCS}/actions/workflows#create-a-workflow-dispatch-event"
DOC_REPOSITORY_DISPATCH = f"{DOCS}/repos/repos#create-a-repository-dispatch-event"
MAX_INPUTS = 25
MAX_PAYLOAD_PROPERTIES = 10
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_EVENT_TYPE_CHARS = 100


@dataclass(frozen=True)
class Dispatch:
    """One accepted dispatch, as the stand-in records it (never the token)."""

    kind: str  # "workflow_dispatch" or "repository_dispatch"
    owner: str
    repo: str
    ts: float
    workflow_id: str | None = None
    ref: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    event_type: str | None = None
    client_payload: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _invalid(doc: str, detail: str) -> BadRequest:
    return BadRequest(422, {"message": f"Invalid request.\n\n{detail}", "documentation_url": doc, "status": "422"})


def _object(body: object, doc: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _invalid(doc, "Invalid input: the body is not an object.")
    return body


def parse_workflow_dispatch(body: object, owner: str, repo: str, workflow_id: str, now: float) -> Dispatch:
    """The dispatch a POST .../dispatches body asks for; BadRequest (422) as GitHub answers otherwise."""
    doc = DOC_WORKFLOW_DISPATCH
    fields = _object(body, doc)
    if "ref" not in fields:
        raise _invalid(doc, '"ref" wasn\'t supplied.')
    ref = fields["ref"]
    if not isinstance(ref, str):
        raise _invalid(doc, f"For 'properties/ref', {json.dumps(ref)} is not a string.")
    inputs = fields.get("inputs", {})
    if not isinstance(inputs, dict):
        raise _invalid(doc, f"For 'properties/inputs', {json.dumps(inputs)} is not an object.")
    if len(inputs) > MAX_INPUTS:
        raise _invalid(doc, f"For 'properties/inputs', the maximum number of properties is {MAX_INPUTS}.")
    details = fields.get("return_run_details", False)
    if not isinstance(details, bool):
        raise _invalid(doc, f"For 'properties/return_run_details', {json.dumps(details)} is not a boolean.")
    return Dispatch("workflow_dispatch", owner, repo, now, workflow_id=workflow_id, ref=ref, inputs=inputs)


def parse_repository_dispatch(body: object, owner: str, repo: str, now: float) -> Dispatch:
    """The event a POST /repos/{owner}/{repo}/dispatches body asks for; BadRequest (422) otherwise."""
    doc = DOC_REPOSITORY_DISPATCH
    fields = _object(body, doc)
    event_type = fields.get("event_type")
    if event_type is None:
        raise _invalid(doc, '"event_type" wasn\'t supplied.')
    if not isinstance(event_type, str) or not 1 <= len(event_type) <= MAX_EVENT_TYPE_CHARS:
        raise _invalid(doc, f"For 'properties/event_type', {json.dumps(event_type)} is not a string of 1-100.")
    payload = fields.get("client_payload", {})
    if not isinstance(payload, dict):
        raise _invalid(doc, f"For 'properties/client_payload', {json.dumps(payload)} is not an object.")
    if len(payload) > MAX_PAYLOAD_PROPERTIES:
        raise BadRequest(
            422,
            {
                "message": f"No more than {MAX_PAYLOAD_PROPERTIES} properties are allowed;"
                f" {len(payload)} were supplied.",
                "documentation_url": doc,
            },
        )
    if len(json.dumps(payload).encode("utf-8")) >= MAX_PAYLOAD_BYTES:
        raise BadRequest(422, {"message": "client_payload is too large", "documentation_url": doc})
    return Dispatch("repository_dispatch", owner, repo, now, event_type=event_type, client_payload=payload)
