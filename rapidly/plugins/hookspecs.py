"""The hooks a plugin may implement (DESIGN.md §4, contract).

Hooks are synchronous and declarative: they return data, the core does the I/O. `contact_fields` and
`message_template` answer for one tenant; `key_provider` answers for the whole installation. Each is
documented under its exact signature in docs/plugin_hooks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from rapidly.plugins.types import FieldSpec, MessageTemplate, TenantInfo

if TYPE_CHECKING:
    from rapidly.config import Settings
    from rapidly.keys.root import KeyProvider

hookspec = pluggy.HookspecMarker("rapidly")


@hookspec(firstresult=True)
def contact_fields(tenant: TenantInfo) -> list[FieldSpec] | None:
    """The fields of the tenant's contact form, each with its purpose; None to use the core's default form."""


@hookspec(firstresult=True)
def message_template(tenant: TenantInfo, event: str, channel: str, locale: str) -> MessageTemplate | None:
    """The wording of one message (event, channel, locale); None to use the core's default wording."""


@hookspec(firstresult=True)
def key_provider(settings: Settings) -> KeyProvider | None:
    """The installation's root key, held by a key management service; None to use RAPIDLY_ROOT_KEY."""
