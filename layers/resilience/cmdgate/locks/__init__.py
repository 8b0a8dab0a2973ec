"""DynamoDB lease locks with fencing tokens, explicit heartbeats and expiry.

    manager = LockManager(DynamoDBLockStore(dynamodb_client, control_table))
    lease = manager.acquire(f"state#{key}", request_id, remaining_s=remaining)   # 1 UpdateItem
    try:
        client.update_item(**fenced_update(register_write, lease.fence))          # refused if a newer fence wrote
        lease = manager.heartbeat(lease, 10, remaining)                           # 1 UpdateItem, if needed
    finally:
        manager.release(lease)                                                    # 1 UpdateItem

Why a fence and not a lease alone, and why not the AWS lock client's record
version (a GUID, which cannot be ordered): see `cmdgate.locks.base`.
"""

from cmdgate.locks.base import Lease, LeaseLock, LockManager
from cmdgate.locks.config import LockConfig
from cmdgate.locks.exceptions import LockError, LockHeld, LockLost
from cmdgate.locks.fencing import FENCE_ATTRIBUTE, fence_condition, fenced_update
from cmdgate.locks.store import DynamoDBLockStore, InMemoryLockStore, LockRecord, LockStore

__all__ = [
    "FENCE_ATTRIBUTE",
    "DynamoDBLockStore",
    "InMemoryLockStore",
    "Lease",
    "LeaseLock",
    "LockConfig",
    "LockError",
    "LockHeld",
    "LockLost",
    "LockManager",
    "LockRecord",
    "LockStore",
    "fence_condition",
    "fenced_update",
]
