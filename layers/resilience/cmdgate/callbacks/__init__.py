"""Completion callbacks: signed (Standard Webhooks) POSTs of a finished run to its `Callback-Url`."""

from cmdgate.callbacks.delivery import (
    CallbackDelivery,
    CallbackPolicy,
    CallbackUrlNotAllowed,
    RetryLater,
    SigningSecretMissing,
    parse_callback_url,
)
from cmdgate.callbacks.signing import CreatedSecret, SigningSecrets, SigningSecretsConflict, sign, signature_header
from cmdgate.callbacks.store import CallbackStore

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
