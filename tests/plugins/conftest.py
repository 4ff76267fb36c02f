"""Fixtures for the plugin tests: registries without installed plugins, and tenants."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from rapidly.plugins import PluginRegistry, TenantInfo


@pytest.fixture
def make_tenant() -> Callable[..., TenantInfo]:
    """Build a TenantInfo for a plugin name: make_tenant("x", default_locale="sv")."""

    def make(plugin: str, **overrides: object) -> TenantInfo:
        values: dict[str, object] = {
            "id": uuid.uuid4(),
            "slug": f"tenant-{plugin or 'core'}".replace("_", "-"),
            "name": f"Company {plugin or 'core'}",
            "plugin": plugin,
        }
        values.update(overrides)
        return TenantInfo(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def empty_registry() -> PluginRegistry:
    """A registry with the core defaults only: installed entry points are not loaded."""
    return PluginRegistry(load_entrypoints=False)
