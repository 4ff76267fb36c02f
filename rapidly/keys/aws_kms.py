"""The root key in a key management service that speaks the AWS KMS API: the internal plugin "rapidly.aws_kms".

Its `key_provider` hook answers when `RAPIDLY_KMS_KEY_ID` is set (a key ID, key ARN, alias or alias ARN of
a symmetric key in an EU/EEA region; the residency guard checks where). Tenant keys are wrapped by KMS
Encrypt and opened by KMS Decrypt, with the tenant's place as the EncryptionContext, so a wrapped key moved
to another tenant does not open. The key material never leaves the KMS, and nothing this module raises or
logs holds a key, a ciphertext or a context: the key ID and the KMS's error code only.

Decrypt is not told which key to use: KMS reads it from the ciphertext, which is what lets `rapidly keys
rotate` move tenant keys from one KMS key to another. So that a ciphertext made under somebody else's key
(written into the database by whoever can write there) is not accepted, the key that opened it must be in
the configured key's AWS account.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from rapidly import hookimpl
from rapidly.keys.root import KeyServiceUnavailable
from rapidly.keys.sealing import Unreadable

if TYPE_CHECKING:
    from rapidly.config import Settings

#: Name under which this module is registered; not a tenant plugin and never listed as one.
PLUGIN_NAME = "rapidly.aws_kms"
#: What `key_id` starts with: every key this provider wraps is recorded under it.
KEY_ID_PREFIX = "aws-kms:"
#: The EncryptionContext's one entry: {"rapidly": the tenant's place}.
CONTEXT_KEY = "rapidly"

#: A request waits at most 5 s for a connection and 10 s for an answer, and is tried twice: an unreachable
#: KMS is told within seconds, and the key ring only calls it when a tenant key is first opened.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10
ATTEMPTS = 2

#: KMS ciphertext blobs are 1 to 6144 bytes (the API refuses others before any key is involved).
_BLOB_BYTES = range(1, 6145)
#: Decrypt's answers for a ciphertext that this KMS will not open with any key we may use: altered or
#: truncated, another context, a key that is gone, disabled, not ours or not for this.
_DOES_NOT_OPEN = frozenset(
    {
        "InvalidCiphertextException",
        "IncorrectKeyException",
        "NotFoundException",
        "AccessDeniedException",
        "DisabledException",
        "KMSInvalidStateException",
        "InvalidKeyUsageException",
    }
)
#: Answers that a retry may cure: the KMS is overloaded or failing now (any 5xx and 429 too).
_UNAVAILABLE = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

#: The client's method for each KMS operation this module calls.
_METHODS = {"Encrypt": "encrypt", "Decrypt": "decrypt", "DescribeKey": "describe_key"}


class KeyServiceRefused(Exception):
    """The KMS answered but refused the request: its credentials, permissions, the key or its state
    need fixing (a retry does not cure it). The message names the key ID and the KMS's error code."""


@hookimpl
def key_provider(settings: Settings) -> AwsKmsProvider | None:
    """An AWS KMS provider when RAPIDLY_KMS_KEY_ID is set."""
    return AwsKmsProvider(settings) if settings.kms_key_id else None


class AwsKmsProvider:
    """Wraps and unwraps tenant keys with one KMS key, through a synchronous botocore client (the key
    ring calls it in a thread). Credentials: `RAPIDLY_KMS_ACCESS_KEY_ID` and `RAPIDLY_KMS_SECRET_ACCESS_KEY`,
    else botocore's default chain (environment, profile, instance or task role)."""

    def __init__(self, settings: Settings) -> None:
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import NoRegionError

        configured = (settings.kms_key_id or "").strip()
        if not configured:
            raise ValueError("RAPIDLY_KMS_KEY_ID is empty")
        self._key = configured
        self.key_id = KEY_ID_PREFIX + configured
        #: The AWS account of the configured key (arn:partition:kms:region:ACCOUNT:...), once known.
        self._account = _arn_part(configured, 4)
        self._account_lock = threading.Lock()
        config = Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
            # RAPIDLY_KMS_ENDPOINT_URL is the only endpoint (the residency guard judges it): AWS_ENDPOINT_URL*
            # must not send the keys elsewhere.
            ignore_configured_endpoint_urls=True,
        )
        try:
            self._client = botocore.session.Session().create_client(
                "kms",
                region_name=settings.kms_region or _arn_part(configured, 3),
                endpoint_url=settings.kms_endpoint_url,
                aws_access_key_id=settings.kms_access_key_id,
                aws_secret_access_key=settings.kms_secret_access_key,
                config=config,
            )
        except NoRegionError:
            raise ValueError(
                "the KMS's region is unknown: set RAPIDLY_KMS_REGION (an EU/EEA region such as eu-north-1)"
            ) from None

    def __repr__(self) -> str:
        return f"AwsKmsProvider({self.key_id!r})"

    def wrap(self, key: bytes, where: bytes) -> bytes:
        answer = self._request(
            "Encrypt", KeyId=self._key, Plaintext=key, EncryptionContext=_context(where), unreadable=False
        )
        return bytes(answer["CiphertextBlob"])

    def unwrap(self, wrapped: bytes, where: bytes) -> bytes:
        if len(wrapped) not in _BLOB_BYTES:
            raise Unreadable(f"{self.key_id}: not a KMS ciphertext ({len(wrapped)} bytes)")
        answer = self._request("Decrypt", CiphertextBlob=bytes(wrapped), EncryptionContext=_context(where))
        used = str(answer.get("KeyId") or "")  # the key's ARN (a KMS without accounts names none on either side)
        if _arn_part(used, 4) != self._configured_account():
            raise Unreadable(f"{self.key_id}: the key that opened a tenant key ({used}) is in another AWS account")
        return bytes(answer["Plaintext"])

    def opens(self, key_id: str) -> bool:
        """Any KMS key's: Decrypt finds the key from the ciphertext (`unwrap` then checks its account)."""
        return key_id.startswith(KEY_ID_PREFIX)

    def _configured_account(self) -> str | None:
        """The configured key's account: from its ARN, else asked once per process (DescribeKey)."""
        if self._account is None:
            with self._account_lock:
                if self._account is None:
                    answer = self._request("DescribeKey", KeyId=self._key, unreadable=False)
                    self._account = _arn_part(str(answer.get("KeyMetadata", {}).get("Arn") or ""), 4)
        return self._account

    def _request(self, operation: str, *, unreadable: bool = True, **params: Any) -> dict[str, Any]:
        """One KMS call. Failures are re-raised without the original exception chained: botocore's
        messages may quote the parameters (the key, the ciphertext, the context)."""
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, SSLError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            return getattr(self._client, _METHODS[operation])(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            code = str(error.get("Code") or status or "error")
            if code in _UNAVAILABLE or status == 429 or status >= 500:
                raise KeyServiceUnavailable(f"{self.key_id}: the KMS cannot serve {operation} now ({code})") from None
            if unreadable and code in _DOES_NOT_OPEN:
                raise Unreadable(f"{self.key_id}: the KMS does not open a tenant key ({code})") from None
            raise KeyServiceRefused(f"{self.key_id}: the KMS refused {operation} ({code})") from None
        except SSLError:  # a certificate or TLS setting that no retry cures
            raise KeyServiceRefused(f"{self.key_id}: no TLS connection to the KMS for {operation} (SSLError)") from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise KeyServiceUnavailable(
                f"{self.key_id}: the KMS cannot be reached for {operation} ({type(exc).__name__})"
            ) from None
        except BotoCoreError as exc:  # no credentials, a parameter the API refuses, ...
            raise KeyServiceRefused(f"{self.key_id}: {operation} failed ({type(exc).__name__})") from None


def _context(where: bytes) -> dict[str, str]:
    return {CONTEXT_KEY: where.decode()}


def _arn_part(value: str, index: int) -> str | None:
    """A field of an ARN (arn:partition:service:region:account:resource): 3 = region, 4 = account."""
    parts = value.split(":", 5)
    return (parts[index] or None) if len(parts) == 6 and parts[0] == "arn" else None
