"""Which permission each API route needs: one table for the authorizer policy and the api function."""

from __future__ import annotations

from dataclasses import dataclass

from cmdgate.auth.permissions import Principal, may_reach_prefix


@dataclass(frozen=True)
class RouteFamily:
    """A set of routes (`*` in the path = one or more segments) gated by a permission prefix."""

    method: str
    path: str
    permission_prefix: str | None  # None: any authenticated principal


# Admin reaches every route (`*/*`); everyone else only the families below.
ROUTE_FAMILIES: tuple[RouteFamily, ...] = (
    RouteFamily("GET", "v1/commands", "commands.list"),
    RouteFamily("POST", "v1/commands/*", "commands.run:"),
    RouteFamily("GET", "v1/executions/*", None),
    RouteFamily("GET", "v1/state/*", "state.read:"),
    RouteFamily("PUT", "v1/state/*", "state.write:"),
    RouteFamily("PATCH", "v1/state/*", "state.write:"),
    RouteFamily("DELETE", "v1/state/*", "state.write:"),
    RouteFamily("POST", "v1/state/*", "state.write:"),
)


def reachable_route_families(principal: Principal) -> list[tuple[str, str]]:
    """(method, path) pairs the principal may reach; `[("*", "*")]` for admin."""
    if principal.is_admin:
        return [("*", "*")]
    reachable = []
    for family in ROUTE_FAMILIES:
        if family.permission_prefix is None or any(
            may_reach_prefix(p, family.permission_prefix) for p in principal.permissions
        ):
            reachable.append((family.method, family.path))
    return reachable


def command_permission(command_name: str) -> str:
    """The default permission that lets a principal run a command."""
    return f"commands.run:{command_name}"
