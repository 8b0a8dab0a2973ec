"""IAM policy documents for the Lambda authorizer.

API Gateway caches one policy per token and reuses it for every route that
token calls next, so the policy covers all routes the principal may reach,
not just the methodArn of the first call.
"""

from __future__ import annotations

from typing import Any

from cmdgate.auth.permissions import Principal
from cmdgate.auth.routes import reachable_route_families


def api_arn_base(method_arn: str) -> str:
    """`arn:aws:execute-api:region:account:apiId/stage` from a methodArn (paths may contain `:`)."""
    parts = method_arn.split(":", 5)
    if len(parts) != 6 or not parts[0] == "arn":
        raise ValueError("not an execute-api ARN")
    segments = parts[5].split("/")
    if len(segments) < 2 or not segments[0] or not segments[1]:
        raise ValueError("not an execute-api ARN")
    return f"{':'.join(parts[:5])}:{segments[0]}/{segments[1]}"


def allow_policy(principal: Principal, method_arn: str) -> dict[str, Any]:
    """The authorizer response: Allow for every route family the principal may reach."""
    base = api_arn_base(method_arn)
    resources = [f"{base}/{method}/{path}" for method, path in reachable_route_families(principal)]
    statement: dict[str, Any]
    if resources:
        statement = {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resources}
    else:
        statement = {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [f"{base}/*"]}
    return {
        "principalId": principal.principal_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
        "context": principal.to_authorizer_context(),
    }
