"""Signed retained states: an HMAC-SHA256 over a state payload's exact bytes, so that a consumer (a restarted
daemon restoring its open alerts) can tell the scorer's own retained states from forged ones.

The signature is one more field, ``"sig": "hmac-sha256:<64 hex digits>"``, appended as the payload's last key:
consumers that do not verify ignore it (unknown fields are ignored, schema 1 unchanged). It covers every byte of
the payload before it, so verifying needs no canonical JSON: strip the field, recompute, compare in constant time
(`hmac.compare_digest`). The key is shared by the scorers of a site and comes from the environment
(``PDM_STATE_KEY``, at least 32 characters, e.g. ``openssl rand -hex 32``); see docs/security.md.

A signature proves who wrote a state, not when: a replayed older state of the same machine verifies too, so a
consumer also compares ``ts`` with what it knows.

>>> key = b"k" * 32
>>> state = State(machine_id="pump-007", state="normal", since=1795406400.0, instance="scorer-0", ts=1795406460.0)
>>> signed = sign_state(state.encode(), key)
>>> verify_state(signed, key, machine_id="pump-007") == state
True
>>> try:
...     verify_state(signed.replace(b"normal", b"alert\\", \\"alert_id\\": \\"x"), key)
... except SignatureError as exc:
...     print(exc.reason)
bad_signature
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping

from pdm.contract.errors import NotJSONError, SignatureError
from pdm.contract.messages import State, parse_state
from pdm.errors import DataError

STATE_KEY_ENV = "PDM_STATE_KEY"
MIN_KEY_CHARS = 32
SIG_FIELD = "sig"
SIG_PREFIX = "hmac-sha256:"
_SIGNED_TAIL = re.compile(rb'\s*,?\s*"sig"\s*:\s*"hmac-sha256:([0-9a-f]{64})"\s*}\s*$')


class StateKeyError(DataError):
    """The state key is missing or too short: the message names the variable and the expected form."""


def state_key(env: Mapping[str, str] | None = None, name: str = STATE_KEY_ENV) -> bytes | None:
    """The key from the environment variable ``name`` (``None`` when unset or empty); `StateKeyError` when it is
    shorter than 32 characters (a guessable key is worse than none: it looks like protection)."""
    value = (os.environ if env is None else env).get(name, "")
    if not value:
        return None
    if len(value) < MIN_KEY_CHARS:
        raise StateKeyError(f"{name}: found a key of {len(value)} characters, expected at least {MIN_KEY_CHARS} "
                            "(e.g. the output of `openssl rand -hex 32`)")
    return value.encode("utf-8")


def _mac(body: bytes, key: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def sign_state(payload: bytes, key: bytes) -> bytes:
    """``payload`` (a JSON object's bytes, e.g. ``State.encode()``) with ``"sig"`` appended as its last key."""
    if not key:
        raise StateKeyError("state key: found an empty key, expected at least 32 characters")
    body = bytes(payload).rstrip()
    if not body.startswith(b"{") or not body.endswith(b"}"):
        raise NotJSONError(f"state: found {body[:20]!r}..., expected the bytes of a JSON object to sign")
    if _SIGNED_TAIL.search(body):
        raise SignatureError("state: found a payload that is already signed, expected an unsigned one")
    inner = body[:-1].rstrip()
    sep = b"" if inner == b"{" else b","
    return inner + sep + f'"{SIG_FIELD}":"{SIG_PREFIX}{_mac(inner + b"}", key)}"}}'.encode()


def unsigned_body(payload: bytes) -> tuple[bytes, str]:
    """The bytes that were signed and the signature's hex digits; `SignatureError` when there is no signature."""
    raw = bytes(payload)
    match = _SIGNED_TAIL.search(raw)
    if match is None:
        raise SignatureError('state: found no "sig" field at the end, expected a state signed with the scorers\' '
                             f"key ({STATE_KEY_ENV})")
    head = raw[: match.start()].rstrip()
    body = head + b"}"
    return body, match.group(1).decode("ascii")


def verify_state(payload: bytes, key: bytes, machine_id: str | None = None) -> State:
    """The state of a signed payload, once its signature is verified (constant-time compare); `SignatureError`
    (reason ``bad_signature``) when it is missing or wrong, the contract's other errors when the state itself is
    invalid. ``machine_id`` is the topic's MACHINE (checked when given)."""
    if not key:
        raise StateKeyError("state key: found an empty key, expected at least 32 characters")
    body, found = unsigned_body(payload)
    if not hmac.compare_digest(_mac(body, key), found):
        raise SignatureError("state: found a signature that the key does not verify, expected the scorers' "
                             "signature (a forged or altered state, or another key)")
    return parse_state(body, machine_id)
