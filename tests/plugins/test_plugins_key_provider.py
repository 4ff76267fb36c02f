"""The `key_provider` hook: installation-wide, first answer wins, answers checked, failures name the plugin.

The shipped AWS KMS provider is tested against a real KMS API in tests/keys/test_aws_kms.py.
"""

from __future__ import annotations

import os

import pytest

from rapidly import hookimpl
from rapidly.config import Settings
from rapidly.keys.aws_kms import AwsKmsProvider
from rapidly.keys.root import PassphraseProvider
from rapidly.plugins import PluginError, PluginRegistry, format_plugins

PASSPHRASE = "a root key passphrase for the plugin tests, long enough"


class ProviderPlugin:
    """A plugin whose key_provider answers `answer`; records that it was asked."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.asked = 0

    @hookimpl
    def key_provider(self, settings):
        self.asked += 1
        return self.answer


class RaisingProviderPlugin:
    @hookimpl
    def key_provider(self, settings):
        raise RuntimeError("vault sealed")


class WrappingProviderPlugin:
    @hookimpl(wrapper=True)
    def key_provider(self, settings):
        return (yield)


def test_hook_key_provider_is_none_when_no_plugin_answers(empty_registry):
    # when no KMS is configured and no plugin offers a root key
    provider = empty_registry.key_provider(Settings())

    # then the core's own RAPIDLY_ROOT_KEY is the root key (rapidly.keys.root.root_providers)
    assert provider is None


def test_hook_key_provider_is_asked_of_every_plugin_not_per_tenant():
    # given two plugins, one without an answer, registered for no tenant in particular
    provider = PassphraseProvider(PASSPHRASE)
    silent, answering = ProviderPlugin(None), ProviderPlugin(provider)
    registry = PluginRegistry(load_entrypoints=False, plugins=[("vault", answering), ("other", silent)])

    # when
    found = registry.key_provider(Settings())

    # then the answer of whichever plugin gives one, asked once each
    assert found is provider
    assert (silent.asked, answering.asked) == (1, 1)


def test_hook_key_provider_first_answer_wins_in_pluggys_order():
    # given two plugins that both answer
    first, last = PassphraseProvider(PASSPHRASE), PassphraseProvider(PASSPHRASE + " too")
    early, late = ProviderPlugin(first), ProviderPlugin(last)
    registry = PluginRegistry(load_entrypoints=False, plugins=[("early", early), ("late", late)])

    # when
    found = registry.key_provider(Settings())

    # then the last registered is asked first, as pluggy calls every hook, and the next is not asked
    assert found is last
    assert (early.asked, late.asked) == (0, 1)


@pytest.mark.parametrize("answer", ["a passphrase", b"\x00" * 32, object()], ids=["str", "bytes", "object"])
def test_hook_key_provider_answer_that_is_no_provider_is_a_plugin_error_naming_the_plugin(answer):
    # given
    registry = PluginRegistry(load_entrypoints=False, plugins=[("vault", ProviderPlugin(answer))])

    # when
    with pytest.raises(PluginError) as info:
        registry.key_provider(Settings())

    # then
    assert (info.value.plugin, info.value.hook) == ("vault", "key_provider")
    assert "not a KeyProvider" in str(info.value)


def test_hook_key_provider_answer_without_a_key_id_is_a_plugin_error():
    # given a provider whose key_id names nothing
    provider = PassphraseProvider(PASSPHRASE)
    provider.key_id = " "
    registry = PluginRegistry(load_entrypoints=False, plugins=[("vault", ProviderPlugin(provider))])

    # when
    with pytest.raises(PluginError) as info:
        registry.key_provider(Settings())

    # then
    assert info.value.plugin == "vault"
    assert "without a key_id" in str(info.value)


def test_hook_key_provider_exception_is_a_plugin_error_naming_the_plugin():
    # given
    registry = PluginRegistry(load_entrypoints=False, plugins=[("vault", RaisingProviderPlugin())])

    # when
    with pytest.raises(PluginError) as info:
        registry.key_provider(Settings())

    # then the plugin is named and the original exception is chained
    assert (info.value.plugin, info.value.hook) == ("vault", "key_provider")
    assert "RuntimeError: vault sealed" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_hook_key_provider_takes_no_wrappers():
    # given
    registry = PluginRegistry(load_entrypoints=False, plugins=[("wrapper", WrappingProviderPlugin())])

    # when
    with pytest.raises(PluginError) as info:
        registry.key_provider(Settings())

    # then
    assert (info.value.plugin, info.value.hook) == ("wrapper", "key_provider")


def test_hook_key_provider_the_shipped_aws_kms_provider_answers_when_a_kms_key_is_set(empty_registry, monkeypatch):
    # given a KMS key (making the provider contacts no KMS), and no AWS profile of the machine's
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    settings = Settings(
        kms_key_id="arn:aws:kms:eu-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        kms_region="eu-north-1",
        kms_access_key_id="testing",
        kms_secret_access_key="testing",
    )

    # when
    provider = empty_registry.key_provider(settings)

    # then
    assert isinstance(provider, AwsKmsProvider)
    assert provider.key_id == "aws-kms:" + settings.kms_key_id
    assert provider.opens("aws-kms:alias/another") and not provider.opens("passphrase:0123")


def test_hook_key_provider_a_plugin_of_it_alone_is_listed_and_the_shipped_one_is_internal():
    # given a plugin that implements key_provider only
    registry = PluginRegistry(load_entrypoints=False, plugins=[("vault", ProviderPlugin(None))])

    # when
    described = registry.describe()
    text = format_plugins(registry)

    # then it is listed with its hook; the core's KMS plugin is not a tenant plugin
    assert described == [("vault", ["key_provider"])]
    assert not registry.has("rapidly.aws_kms")
    assert "rapidly.aws_kms answers it when RAPIDLY_KMS_KEY_ID is set" in text
    with pytest.raises(PluginError, match="reserved for the core"):
        registry.register(ProviderPlugin(None), "rapidly.aws_kms")
