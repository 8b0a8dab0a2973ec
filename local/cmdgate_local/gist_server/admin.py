"""The server's own control surface under /_admin/ (not GitHub's API): stats, reset, faults, limits."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from cmdgate_local.gist_server.faults import FAULT_MODES
from cmdgate_local.gist_server.responses import json_response

if TYPE_CHECKING:
    from cmdgate_local.gist_server.app import GistApp


def admin_response(app: GistApp, endpoint: str, request: Request) -> Response:
    """Answer one admin request; bad input is 400 with {"error": ...}."""
    try:
        body = json.loads(request.get_data() or b"{}") if request.method == "POST" else {}
    except ValueError:
        return json_response(400, {"error": "body is not JSON"})
    if not isinstance(body, dict):
        return json_response(400, {"error": "body must be a JSON object"})
    try:
        if endpoint == "admin_stats":
            return json_response(200, app.stats())
        if endpoint == "admin_reset":
            app.reset()
            return json_response(200, {"reset": True})
        if endpoint == "admin_faults":
            if request.method == "POST":
                methods = body.get("methods")
                mode = FAULT_MODES.get(str(body.get("mode", "none")))
                if mode is None:
                    raise ValueError(f"mode must be one of {sorted(FAULT_MODES)}")
                app.set_fault(
                    mode=mode,
                    count=None if body.get("count") is None else int(body["count"]),
                    retry_after=int(body.get("retry_after", 60)),
                    delay_s=float(body.get("delay_s", 30.0)),
                    methods=[str(m) for m in methods] if isinstance(methods, list) else None,
                    path_prefix=None if body.get("path_prefix") is None else str(body["path_prefix"]),
                )
            return json_response(200, app.fault().as_json())
        limits = app.set_limits(**{k: int(v) for k, v in body.items()}) if body else None
        return json_response(200, (limits or app.limits).as_json())
    except (TypeError, ValueError) as exc:
        return json_response(400, {"error": str(exc)})
