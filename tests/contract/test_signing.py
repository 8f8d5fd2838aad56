"""Signed retained states (issue 14): `sign_state` appends an HMAC-SHA256 of the payload's bytes, `verify_state`
returns the state only when the key verifies it, and a missing, altered or foreign signature is a typed
``bad_signature`` error."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from pdm import contract
from pdm.contract.errors import ContractError, MachineMismatchError, SignatureError
from pdm.contract.signing import StateKeyError, unsigned_body

KEY = b"0123456789abcdef0123456789abcdef"  # 32 characters
TS = 1_795_406_400.0
STATE = contract.State(machine_id="pump-007", state="alert", since=TS, alert_id=contract.alert_id("pump-007", TS),
                       score=0.91, threshold=0.42, model=contract.ModelRef(name="pump", version="1"),
                       instance="scorer-0", ts=TS + 60)


def test_a_signed_state_verifies_and_round_trips() -> None:
    signed = contract.sign_state(STATE.encode(), KEY)
    assert contract.verify_state(signed, KEY, machine_id="pump-007") == STATE
    obj = json.loads(signed)
    assert list(obj)[-1] == "sig" and obj["sig"].startswith("hmac-sha256:")
    # the signature is an HMAC-SHA256 of exactly the unsigned payload's bytes (computed here independently)
    expected = hmac.new(KEY, STATE.encode(), hashlib.sha256).hexdigest()
    assert obj["sig"] == "hmac-sha256:" + expected
    # consumers that do not verify still read a valid state: unknown fields are ignored
    assert contract.parse_state(signed, "pump-007") == STATE


def test_any_change_breaks_the_signature() -> None:
    signed = contract.sign_state(STATE.encode(), KEY)
    forged = [
        signed.replace(b'"alert"', b'"normal"', 1),
        signed.replace(b"0.91", b"0.11"),
        signed.replace(b"scorer-0", b"scorer-1"),
        signed[:-3] + (b"0" if signed[-3:-2] != b"0" else b"1") + signed[-2:],  # one hex digit of the signature
    ]
    for payload in forged:
        assert payload != signed
        with pytest.raises(SignatureError, match="does not verify") as info:
            contract.verify_state(payload, KEY)
        assert info.value.reason == "bad_signature"


def test_another_key_or_no_signature_is_a_bad_signature() -> None:
    signed = contract.sign_state(STATE.encode(), KEY)
    with pytest.raises(SignatureError, match="does not verify"):
        contract.verify_state(signed, b"another key of at least 32 chars!!")
    with pytest.raises(SignatureError, match='no "sig" field'):
        contract.verify_state(STATE.encode(), KEY)
    with pytest.raises(SignatureError):
        contract.verify_state(STATE.encode()[:-1] + b',"sig":"hmac-sha256:' + b"0" * 64 + b'"}', KEY)


def test_a_verified_state_is_still_validated_against_its_topic() -> None:
    signed = contract.sign_state(STATE.encode(), KEY)
    with pytest.raises(MachineMismatchError):
        contract.verify_state(signed, KEY, machine_id="pump-008")
    bad = contract.sign_state(b'{"schema": 1, "machine_id": "pump-007", "state": "broken"}', KEY)
    with pytest.raises(ContractError) as info:
        contract.verify_state(bad, KEY)
    assert info.value.reason == "bad_field"


def test_whitespace_around_the_object_does_not_matter() -> None:
    spaced = b'{ "schema": 1, "machine_id": "pump-007", "state": "normal", "since": 1795406400.0,\n' \
             b' "instance": "scorer-0", "ts": 1795406460.0 }\n'
    signed = contract.sign_state(spaced, KEY)
    body, _ = unsigned_body(signed)
    assert contract.verify_state(signed, KEY).state == "normal" and body.endswith(b"1795406460.0}")


def test_signing_refuses_what_it_cannot_sign() -> None:
    with pytest.raises(ContractError):
        contract.sign_state(b"[1, 2]", KEY)
    with pytest.raises(SignatureError, match="already signed"):
        contract.sign_state(contract.sign_state(STATE.encode(), KEY), KEY)
    with pytest.raises(StateKeyError):
        contract.sign_state(STATE.encode(), b"")


def test_the_key_comes_from_the_environment_and_must_be_long() -> None:
    assert contract.state_key({}) is None
    assert contract.state_key({"PDM_STATE_KEY": "k" * 32}) == b"k" * 32
    with pytest.raises(StateKeyError, match="PDM_STATE_KEY: found a key of 8 characters, expected at least 32"):
        contract.state_key({"PDM_STATE_KEY": "password"})
