"""The built resilience layer: no second boto3/botocore beside the runtime's, and within its size budget."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
LAYER = Path(__file__).resolve().parents[2] / ".aws-sam" / "build" / "ResilienceLayer" / "python"
BUDGET_BYTES = 35 * 1024 * 1024  # unzipped


def test_the_layer_ships_no_runtime_packages_and_fits_its_budget() -> None:
    if not LAYER.is_dir():
        pytest.fail(f"{LAYER} is missing: `make test` builds it before the integration tests")
    names = {path.name.split("-")[0].lower() for path in LAYER.iterdir()}
    assert not names & {"boto3", "botocore", "s3transfer", "bin"}, sorted(names)
    assert {"cmdgate", "aws_lambda_powertools", "aws_xray_sdk", "cryptography"} <= names
    size = sum(path.stat().st_size for path in LAYER.rglob("*") if path.is_file())
    packages = sorted(
        ((sum(f.stat().st_size for f in p.rglob("*") if f.is_file()), p.name) for p in LAYER.iterdir() if p.is_dir()),
        reverse=True,
    )[:5]
    print(
        f"resilience layer: {size / 2**20:.1f} MiB unzipped; largest: "
        + ", ".join(f"{name} {bytes_ / 2**20:.1f} MiB" for bytes_, name in packages)
    )
    assert size <= BUDGET_BYTES
