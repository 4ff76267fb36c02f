"""A software WebAuthn authenticator: real P-256 keys and signatures, in the formats a browser sends.

For the server's checks of what a browser cannot be made to send (a wrong origin or RP ID, a
counter that goes backwards, an assertion replayed, a signature of another key); the browser tests
use Chromium's own virtual authenticator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Authenticator:
    """One discoverable credential, made by `create()` for the options a server gave."""

    origin: str
    rp_id: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    counter: int = 0
    user_handle: bytes | None = None

    def create(self, options_json: str, *, origin: str | None = None, rp_id: str | None = None) -> str:
        """The browser's `credential.toJSON()` for `navigator.credentials.create(options)`."""
        options = json.loads(options_json)
        self.user_handle = unb64url(options["user"]["id"])
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + cose
        auth_data = self._auth_data(rp_id, UP | UV | AT) + attested
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "attestationObject": b64url(attestation),
                    "transports": ["internal"],
                },
                "clientExtensionResults": {},
                "authenticatorAttachment": "platform",
            }
        )

    def get(
        self,
        options_json: str,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        counter: int | None = None,
        flags: int = UP | UV,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        """The browser's `credential.toJSON()` for `navigator.credentials.get(options)`; the
        counter moves on by one unless `counter` is given."""
        options = json.loads(options_json)
        self.counter = self.counter + 1 if counter is None else counter
        auth_data = self._auth_data(rp_id, flags)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = (key or self.key).sign(signed, ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature),
                    "userHandle": b64url(self.user_handle or b""),
                },
                "clientExtensionResults": {},
                "authenticatorAttachment": "platform",
            }
        )

    def _auth_data(self, rp_id: str | None, flags: int) -> bytes:
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", self.counter)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        ).encode()
