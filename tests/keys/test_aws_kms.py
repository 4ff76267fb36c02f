"""The shipped AWS KMS provider, through the `key_provider` hook, against a real KMS API over HTTP (moto's
server, which serves KMS on the same endpoint as S3): round trips, what does not open, rotation between KMS
keys, an unreachable KMS, and messages that never hold a key, a ciphertext or a context."""

from __future__ import annotations

import base64
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import botocore.session
import pytest

from rapidly.config import Settings
from rapidly.errors import is_unavailable
from rapidly.keys import Unreadable
from rapidly.keys.aws_kms import AwsKmsProvider, KeyServiceRefused
from rapidly.keys.root import KeyProvider, KeyServiceUnavailable
from rapidly.keys.sealing import new_key, place
from rapidly.plugins import PluginRegistry

REGION = "eu-north-1"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """botocore reads the environment and ~/.aws: make every test independent of them."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def kms_endpoint(s3_endpoint: str) -> str:
    """moto's server answers the KMS API on the S3 server's endpoint."""
    return s3_endpoint


@pytest.fixture
def kms(kms_endpoint: str) -> Any:
    """A client of the KMS, for what an operator does there (create keys and aliases)."""
    return botocore.session.Session().create_client(
        "kms",
        endpoint_url=kms_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def create_key(kms: Any) -> Callable[[], str]:
    """Create a symmetric key in the KMS, through its API; returns the key's ARN."""

    def create() -> str:
        return kms.create_key(Description="rapidly test root key")["KeyMetadata"]["Arn"]

    return create


def kms_settings(endpoint: str, key_id: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "kms_key_id": key_id,
        "kms_region": REGION,
        "kms_endpoint_url": endpoint,
        "kms_country": "FI",
        "kms_access_key_id": "testing",
        "kms_secret_access_key": "testing",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def provider_for(settings: Settings) -> KeyProvider:
    """The root key's provider as the core gets it: through the hook, with no plugin installed."""
    provider = PluginRegistry(load_entrypoints=False).key_provider(settings)
    assert provider is not None
    return provider


def tenant_place() -> bytes:
    return place("tenant-key", uuid.uuid4())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns


# -- round trips --------------------------------------------------------------------------------------------


def test_a_tenant_key_wrapped_through_the_hook_opens_at_its_place(kms_endpoint, create_key):
    # given the provider the hook gives for a KMS key
    arn = create_key()
    provider = provider_for(kms_settings(kms_endpoint, arn))
    key, where = new_key(), tenant_place()

    # when
    wrapped = provider.wrap(key, where)
    opened = provider.unwrap(wrapped, where)

    # then
    assert isinstance(provider, AwsKmsProvider)
    assert provider.key_id == f"aws-kms:{arn}"
    assert opened == key
    assert key not in wrapped


def test_a_key_named_by_its_alias_wraps_and_opens(kms_endpoint, kms, create_key):
    # given a key configured by alias, so its account is learnt from the KMS (DescribeKey)
    alias = f"alias/rapidly-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=create_key())
    by_alias = provider_for(kms_settings(kms_endpoint, alias))
    key, where = new_key(), tenant_place()

    # when
    opened = by_alias.unwrap(by_alias.wrap(key, where), where)

    # then
    assert opened == key
    assert by_alias.key_id == f"aws-kms:{alias}"


# -- what does not open -------------------------------------------------------------------------------------


def test_a_wrapped_key_moved_to_another_tenant_is_unreadable(kms_endpoint, create_key):
    # given a tenant key wrapped at one tenant's place
    provider = provider_for(kms_settings(kms_endpoint, create_key()))
    wrapped = provider.wrap(new_key(), tenant_place())

    # when it is opened at another tenant's place
    with pytest.raises(Unreadable) as info:
        provider.unwrap(wrapped, tenant_place())

    # then the KMS refused it as a ciphertext that does not open there
    assert "InvalidCiphertextException" in str(info.value)


#: Ways a wrapped key may be damaged (moto answers InvalidCiphertextException or AccessDeniedException).
DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "one byte short": lambda blob: blob[:-1],
    "truncated": lambda blob: blob[:8],
    "last byte altered": lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),
    "middle byte altered": lambda blob: blob[:40] + bytes([blob[40] ^ 0x80]) + blob[41:],
    "key part altered": lambda blob: blob[:10] + bytes([blob[10] ^ 1]) + blob[11:],
    "empty": lambda blob: b"",
    "too long": lambda blob: blob * 70,
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_truncated_or_altered_wrapped_key_is_unreadable(kms_endpoint, create_key, damage):
    # given
    provider = provider_for(kms_settings(kms_endpoint, create_key()))
    where = tenant_place()
    wrapped = provider.wrap(new_key(), where)

    # when / then
    with pytest.raises(Unreadable):
        provider.unwrap(damage(wrapped), where)


def test_a_key_wrapped_under_another_kms_key_still_opens_so_rotation_works(kms_endpoint, create_key):
    # given a tenant key wrapped by the old KMS key, and the settings moved to a new one
    old, new = create_key(), create_key()
    key, where = new_key(), tenant_place()
    wrapped = provider_for(kms_settings(kms_endpoint, old)).wrap(key, where)
    provider = provider_for(kms_settings(kms_endpoint, new))

    # when
    opens = provider.opens(f"aws-kms:{old}")
    opened = provider.unwrap(wrapped, where)

    # then the new provider opens the old key's tenant keys (KMS reads the key from the ciphertext) ...
    assert opens and opened == key
    # ... and wraps under the new key: what `rapidly keys rotate` stores, with the new key_id
    assert provider.key_id == f"aws-kms:{new}" != f"aws-kms:{old}"
    assert provider.unwrap(provider.wrap(key, where), where) == key
    assert not provider.opens("passphrase:0123456789abcdef")


def test_a_key_wrapped_under_a_key_of_another_account_is_unreadable(kms_endpoint, create_key):
    # given a tenant key wrapped by a KMS key of moto's account, and a configured key of another account
    arn = create_key()
    where = tenant_place()
    wrapped = provider_for(kms_settings(kms_endpoint, arn)).wrap(new_key(), where)
    account = arn.split(":")[4]
    elsewhere = provider_for(kms_settings(kms_endpoint, arn.replace(f":{account}:", ":999999999999:")))

    # when the KMS opens it (it does, for the credentials it was given)
    with pytest.raises(Unreadable) as info:
        elsewhere.unwrap(wrapped, where)

    # then the provider refuses a key that the configured key's account does not hold
    assert "another AWS account" in str(info.value)


# -- an unreachable KMS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["wrap", "unwrap"])
def test_an_unreachable_kms_is_unavailable_within_seconds(operation):
    # given nothing listens where the KMS should be
    provider = provider_for(kms_settings(f"http://127.0.0.1:{closed_port()}", "alias/rapidly"))
    where = tenant_place()

    # when
    started = time.monotonic()
    with pytest.raises(KeyServiceUnavailable) as info:
        if operation == "wrap":
            provider.wrap(new_key(), where)
        else:
            provider.unwrap(b"\x01" * 120, where)

    # then a retry may cure it: a request answers 503 UNAVAILABLE, a start refuses
    assert time.monotonic() - started < 10
    assert is_unavailable(info.value)
    assert "aws-kms:alias/rapidly" in str(info.value)


def test_a_failure_raised_from_an_unreachable_kms_is_unavailable_too():
    # given the key ring's kind of failure, wrapped by a caller
    try:
        try:
            raise KeyServiceUnavailable("aws-kms:alias/rapidly: the KMS cannot be reached for Decrypt")
        except KeyServiceUnavailable as exc:
            raise RuntimeError("opening tenant keys") from exc
    except RuntimeError as exc:
        wrapped = exc

    # when / then
    assert is_unavailable(wrapped)
    assert not is_unavailable(Unreadable("aws-kms:alias/rapidly: the KMS does not open a tenant key"))


def test_a_key_the_kms_does_not_have_is_refused_not_unavailable(kms_endpoint):
    # given a key ID that names no key
    provider = provider_for(kms_settings(kms_endpoint, "alias/no-such-key"))

    # when
    with pytest.raises(KeyServiceRefused) as info:
        provider.wrap(new_key(), tenant_place())

    # then no retry cures it, and the message names the key and the error code
    assert not is_unavailable(info.value)
    assert str(info.value) == "aws-kms:alias/no-such-key: the KMS refused Encrypt (NotFoundException)"


# -- what messages hold -------------------------------------------------------------------------------------


def test_no_failure_message_holds_the_key_the_wrapped_key_or_the_context(kms_endpoint, create_key):
    # given a tenant key, its wrapped form and its place
    arn = create_key()
    provider = provider_for(kms_settings(kms_endpoint, arn))
    key, where = new_key(), tenant_place()
    wrapped = provider.wrap(key, where)
    unreachable = provider_for(kms_settings(f"http://127.0.0.1:{closed_port()}", arn))
    unknown = provider_for(kms_settings(kms_endpoint, "alias/no-such-key"))

    # when every kind of failure happens
    failures: list[BaseException] = []
    for attempt in (
        lambda: provider.unwrap(wrapped, tenant_place()),
        lambda: provider.unwrap(wrapped[:-1] + bytes([wrapped[-1] ^ 1]), where),
        lambda: provider.unwrap(b"", where),
        lambda: unreachable.unwrap(wrapped, where),
        lambda: unreachable.wrap(key, where),
        lambda: unknown.wrap(key, where),
    ):
        with pytest.raises((Unreadable, KeyServiceUnavailable, KeyServiceRefused)) as info:
            attempt()
        failures.append(info.value)

    # then neither the message nor the printed traceback holds any of them, in any spelling
    secrets = [
        where.decode(),
        where.decode().split("/")[2],  # the tenant's ID
        *(
            spelling
            for data in (key, wrapped)
            for spelling in (data.hex(), repr(data)[2:-1], base64.b64encode(data).decode())
        ),
    ]
    for failure in failures:
        printed = "".join(traceback.format_exception(failure))
        assert failure.__cause__ is None  # botocore's own error, which may quote the parameters, is not chained
        assert not [secret for secret in secrets if secret in printed], printed
        assert arn in str(failure) or "alias/no-such-key" in str(failure)
