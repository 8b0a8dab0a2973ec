"""`make openapi`: write the API's OpenAPI description to docs/openapi.json (a test keeps it in sync)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "openapi.json"


def generate() -> dict[str, Any]:
    """The description the api function serves, generated from its routes."""
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    code = ROOT / "functions" / "api"
    if str(code) not in sys.path:  # Lambda runs app.py from its code folder: its `routes` package sits beside it
        sys.path.insert(0, str(code))
    spec = importlib.util.spec_from_file_location("cmdgate_api_app", code / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    document: dict[str, Any] = json.loads(module._openapi_document())
    return document


def render(document: dict[str, Any]) -> str:
    """Stable text form (sorted keys) so diffs stay small."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main() -> int:
    """Write docs/openapi.json."""
    DOCUMENT.write_text(render(generate()))
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
