"""Where lock records live: the seam and its adapters."""

from cmdgate.locks.store.base import LockRecord, LockStore, lock_key
from cmdgate.locks.store.dynamodb import DynamoDBLockStore
from cmdgate.locks.store.memory import InMemoryLockStore

__all__ = ["DynamoDBLockStore", "InMemoryLockStore", "LockRecord", "LockStore", "lock_key"]
