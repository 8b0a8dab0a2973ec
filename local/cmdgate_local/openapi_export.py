"""`make openapi`: write the API's OpenAPI description to docs/openapi.json (a test keeps it in sync)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "openapi.json"


@lru_cache(maxsize=1)
def load_app() -> ModuleType:
    """functions/api/app.py, imported once as Lambda imports it (its code folder on the path).

    Once: the routers live in the `routes` package, imported once, and follow the last app that included them.
    """
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "cmdgate-local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    code = ROOT / "functions" / "api"
    if str(code) not in sys.path:  # Lambda runs app.py from its code folder: its `routes` package sits beside it
        sys.path.insert(0, str(code))
    spec = importlib.util.spec_from_file_location("cmdgate_api_app", code / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate() -> dict[str, Any]:
    """The description the api function serves, generated from its routes."""
    document: dict[str, Any] = json.loads(load_app()._openapi_document())
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
