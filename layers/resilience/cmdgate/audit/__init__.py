"""The audit trail: who did what, read from records that exist anyway plus one item per admin action.

- `stamp`: the request's who/where (`AuditStamp`) and the attributes it puts on a record;
- `log`: admin actions' own items (key created/revoked, DLQ redriven, ...) in the control table;
- `trail`: `GET /v1/admin/audit`, merging the sparse `by_audit_day` indexes of the executions,
  state and control tables in time order behind one cursor.
"""

from cmdgate.audit.log import AuditLog
from cmdgate.audit.stamp import ACTIONS, AUDIT_INDEX, AUDIT_SHARDS, AuditStamp, stamp_from_event
from cmdgate.audit.trail import AuditSource, AuditTrail, parse_since

__all__ = [
    "ACTIONS",
    "AUDIT_INDEX",
    "AUDIT_SHARDS",
    "AuditLog",
    "AuditSource",
    "AuditStamp",
    "AuditTrail",
    "parse_since",
    "stamp_from_event",
]
