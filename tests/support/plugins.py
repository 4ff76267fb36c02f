"""Plugins installed for one test, as pip installs them."""

from __future__ import annotations

import textwrap
from pathlib import Path

#: A plugin that breaks the rule every field states its purpose.
PURPOSELESS = """
from rapidly import hookimpl
from rapidly.plugins import FieldKind, FieldSpec

@hookimpl
def contact_fields(tenant):
    return [FieldSpec(key="shoe_size", kind=FieldKind.NUMBER, labels={"en": "Shoe size"}, purpose={})]
"""


def install_plugin(site: Path, name: str, source: str) -> dict[str, str]:
    """Install a plugin the way pip would (module + dist-info with an entry point) into `site`;
    returns the environment that puts it on the path."""
    (site / f"{name}.py").write_text(textwrap.dedent(source))
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[rapidly]\n{name} = {name}\n")
    return {"PYTHONPATH": str(site)}
