"""Roles and what each may do."""

from __future__ import annotations

from enum import StrEnum

from ordermesh.domain.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"  # everything, including API keys and configuration
    OPERATOR = "operator"  # run the operation: orders, stock, locations, catalogue
    INTEGRATION = "integration"  # a system feeding ordermesh: capture orders, set stock, read
    VIEWER = "viewer"  # read only


class Permission(StrEnum):
    READ = "read"
    WRITE_ORDERS = "write_orders"  # capture orders
    MANAGE_ORDERS = "manage_orders"  # cancel, hold, release, ship, complete
    WRITE_INVENTORY = "write_inventory"
    WRITE_CATALOG = "write_catalog"  # SKUs and locations
    ADMINISTER = "administer"  # API keys, dead letters


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(Permission) - {Permission.ADMINISTER},
    Role.INTEGRATION: frozenset(
        {Permission.READ, Permission.WRITE_ORDERS, Permission.WRITE_INVENTORY, Permission.WRITE_CATALOG}
    ),
    Role.VIEWER: frozenset({Permission.READ}),
}


def ensure_permitted(role: str, permission: Permission) -> None:
    if permission not in GRANTS.get(Role(role), frozenset()):
        raise Forbidden(f"the {role} role may not {permission.value.replace('_', ' ')}", role=role)
