"""The hooks a tenant plugin may implement (DESIGN.md §4, contract).

Hooks are synchronous and declarative: they return data, the core does the I/O. Each is documented under its
exact signature in docs/plugin_hooks.md.
"""

from __future__ import annotations

import pluggy

from rapidly.plugins.types import FieldSpec, MessageTemplate, TenantInfo

hookspec = pluggy.HookspecMarker("rapidly")


@hookspec(firstresult=True)
def contact_fields(tenant: TenantInfo) -> list[FieldSpec] | None:
    """The fields of the tenant's contact form, each with its purpose; None to use the core's default form."""


@hookspec(firstresult=True)
def message_template(tenant: TenantInfo, event: str, channel: str, locale: str) -> MessageTemplate | None:
    """The wording of one message (event, channel, locale); None to use the core's default wording."""
