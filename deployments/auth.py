"""Optional API-key check of every RPC, done by the ingress before anything else.

Keys come from an environment variable of the ingress replicas (comma-separated) and/or a file
(one key per line, `#` comments), both named in the config's `auth:` section. A request passes
with `x-api-key: <key>` or `authorization: Bearer <key>` metadata. Keys are compared as SHA-256
digests with `hmac.compare_digest` against every configured key (no early exit, so the time
taken says nothing about which key or how much of it matched), and no key ever reaches a log or
an error message: the failure message only says which metadata to send.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Iterable

from .config import PROJECT_ROOT, AuthArgs

API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"


class AuthConfigError(ValueError):
    """Auth is configured but yields no key (the service must not start open by mistake)."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def load_keys(args: AuthArgs, environ: dict | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    keys: list[str] = []
    if args.api_keys_env:
        keys += [k.strip() for k in environ.get(args.api_keys_env, "").split(",")]
    if args.api_keys_file:
        path = Path(args.api_keys_file)
        path = path if path.is_absolute() else PROJECT_ROOT / path
        try:
            lines = path.read_text().splitlines()
        except OSError as err:
            raise AuthConfigError(f"auth.api_keys_file {str(path)!r} cannot be read: {err.strerror}") from None
        keys += [line.split("#", 1)[0].strip() for line in lines]
    keys = [k for k in keys if k]
    if not keys:
        raise AuthConfigError(
            f"auth is configured (api_keys_env={args.api_keys_env!r}, api_keys_file={args.api_keys_file!r}) "
            "but no key was found: set the variable or fill the file, or remove the auth section")
    return keys


class KeyChecker:
    """`allows(metadata)`: whether the request's metadata carries one of the keys."""

    def __init__(self, keys: Iterable[str]):
        self._digests = [_digest(k) for k in keys]

    @classmethod
    def from_args(cls, args: AuthArgs) -> "KeyChecker | None":
        return cls(load_keys(args)) if args.enabled else None

    def allows(self, metadata: Iterable[tuple[str, str | bytes]]) -> bool:
        offered = presented_key(metadata)
        if offered is None:
            return False
        digest = _digest(offered)
        match = False
        for known in self._digests:  # every key, whatever matched before
            match |= hmac.compare_digest(digest, known)
        return match


def presented_key(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    for key, value in metadata:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        key = key.lower()
        if key == API_KEY_HEADER:
            return value.strip()
        if key == AUTHORIZATION_HEADER:
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None


UNAUTHENTICATED_MESSAGE = (
    f"this server needs an API key: send `{API_KEY_HEADER}: <key>` or `{AUTHORIZATION_HEADER}: Bearer <key>` "
    "metadata (llasa-tts --api-key, or the LLASA_API_KEY environment variable)")
