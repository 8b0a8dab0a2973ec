"""Which routes a principal may reach at all: the coarse table behind the authorizer's policy.

The fine check (which command, which key) is `cmdgate.authz.authorize`, made by the api
function and the worker; this table only says which route families can lead anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from cmdgate.auth.permissions import SCOPED_ACTIONS, Principal, may_reach_prefix


@dataclass(frozen=True)
class RouteFamily:
    """A set of routes (`*` in the path = one or more segments) gated by a permission prefix."""

    method: str
    path: str
    action: str | None  # a cmdgate.authz action; None: any authenticated principal

    @property
    def permission_prefix(self) -> str | None:
        """What a held pattern must be able to grant for this family to be reachable."""
        if self.action is None:
            return None
        return f"{self.action}:" if self.action in SCOPED_ACTIONS else self.action


# Admin reaches every route (`*/*`); everyone else only the families below.
ROUTE_FAMILIES: tuple[RouteFamily, ...] = (
    RouteFamily("GET", "v1/commands", "commands.list"),
    RouteFamily("POST", "v1/commands/*", "commands.run"),
    RouteFamily("GET", "v1/executions/*", None),
    RouteFamily("POST", "v1/executions/*/cancel", None),  # the same access as reading it (the api checks whose)
    RouteFamily("GET", "v1/state/*", "state.read"),
    RouteFamily("PUT", "v1/state/*", "state.write"),
    RouteFamily("PATCH", "v1/state/*", "state.write"),
    RouteFamily("DELETE", "v1/state/*", "state.write"),
    RouteFamily("POST", "v1/state/*", "state.write"),
)


def reachable_route_families(principal: Principal) -> list[tuple[str, str]]:
    """(method, path) pairs the principal may reach; `[("*", "*")]` for admin."""
    if principal.is_admin:
        return [("*", "*")]
    reachable = []
    for family in ROUTE_FAMILIES:
        prefix = family.permission_prefix
        if prefix is None or any(may_reach_prefix(p, prefix) for p in principal.permissions):
            reachable.append((family.method, family.path))
    return reachable
