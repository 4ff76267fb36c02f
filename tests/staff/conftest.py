"""Two companies' staff, for the tests of company administration."""

from __future__ import annotations

import pytest

ANNA, VILLE, PEKKA = "anna@kattohuolto.example", "ville@kattohuolto.example", "pekka@putkimies.example"


@pytest.fixture
async def company(world):  # type: ignore[no-untyped-def]
    """Kattohuolto: Anna (its first staff member, so its admin) and Ville; Putkimies: Pekka."""
    roofing = await world.tenant("kattohuolto")
    plumbing = await world.tenant("putkimies")
    anna = await world.staff("kattohuolto", ANNA)
    ville = await world.staff("kattohuolto", VILLE)
    pekka = await world.staff("putkimies", PEKKA)
    return roofing, plumbing, anna, ville, pekka
