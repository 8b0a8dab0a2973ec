"""Completion callbacks: signed (Standard Webhooks) POSTs of a finished run to its `Callback-Url`.

The names are loaded from their modules on first use: the api function reaches `signing` (secret
rotation) on every cold start, and `delivery` would bring httpx, which only the event processor's
deliveries need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cmdgate.callbacks.delivery import (
        CallbackDelivery,
        CallbackPolicy,
        CallbackUrlNotAllowed,
        RetryLater,
        SigningSecretMissing,
        parse_callback_url,
    )
    from cmdgate.callbacks.signing import (
        CreatedSecret,
        SigningSecrets,
        SigningSecretsConflict,
        sign,
        signature_header,
    )
    from cmdgate.callbacks.store import CallbackStore

_HOMES = {
    "CallbackDelivery": "delivery",
    "CallbackPolicy": "delivery",
    "CallbackUrlNotAllowed": "delivery",
    "RetryLater": "delivery",
    "SigningSecretMissing": "delivery",
    "parse_callback_url": "delivery",
    "CreatedSecret": "signing",
    "SigningSecrets": "signing",
    "SigningSecretsConflict": "signing",
    "sign": "signing",
    "signature_header": "signing",
    "CallbackStore": "store",
}

__all__ = [
    "CallbackDelivery",
    "CallbackPolicy",
    "CallbackStore",
    "CallbackUrlNotAllowed",
    "CreatedSecret",
    "RetryLater",
    "SigningSecretMissing",
    "SigningSecrets",
    "SigningSecretsConflict",
    "parse_callback_url",
    "sign",
    "signature_header",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
