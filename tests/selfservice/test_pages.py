"""The self-service pages over real HTTP: what they show, what they refuse, what never changes them."""

from __future__ import annotations

import asyncio
import html
import re

import pytest
from tortoise import connections

from rapidly import db, tenancy
from rapidly.contacts import service as contacts
from rapidly.erasure.models import Erasure
from tests.contacts.test_contacts_api import save, start

ME = """
query Me($locale: String) { me(locale: $locale) { __typename contactId tenantName privacyPolicyUrl selfServiceUrl
  locale values { key label kind value text } } }
"""


@pytest.fixture
async def roofing(world):
    return await world.tenant(
        "kattohuolto", name="Kattohuolto Oy", privacy_policy_url="https://kattohuolto.example/tietosuoja"
    )


async def filled(gql) -> str:
    token = await start(gql, "kattohuolto")
    await save(gql, token, "name", "Maija <script>alert(1)</script>")
    await save(gql, token, "phone", "040 123 4567")
    await save(gql, token, "damage_description", "Vuotaa\nräystäältä")
    return token


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)


async def snapshot(database_url: str) -> dict[str, str]:
    """A digest of every row of every table, found from the catalog: any write shows. Read as the
    owner: every tenant's rows, not only those one tenant may see."""
    conn = await db.Credentials.from_url(database_url).connect()
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        digests = {}
        for row in tables:
            if row["tablename"] == "tortoise_migrations":
                continue
            table = row["tablename"]
            rows = await conn.fetch(
                f"SELECT count(*) AS n, md5(string_agg(t::text, '|' ORDER BY t::text)) AS digest FROM \"{table}\" t"  # noqa: S608
            )
            digests[table] = f"{rows[0]['n']}:{rows[0]['digest']}"
    finally:
        await conn.close()
    return digests


async def test_the_page_shows_every_value_with_its_label_and_one_delete_button(http, gql, roofing):
    # given
    token = await filled(gql)

    # when
    response = await http.get(f"/my/{token}", headers={"Accept-Language": "fi"})

    # then
    assert response.status_code == 200
    page = response.text
    assert '<html lang="fi">' in page
    assert "Tietosi yrityksellä Kattohuolto Oy" in page
    assert "Nimi" in page and "Maija &lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "+358401234567" in page
    assert "Vuotaa\nräystäältä" in html.unescape(page)
    assert page.count("<button") == 1 and "Poista kaikki tietoni</button>" in page
    assert f'action="{token}/delete"' in page and 'method="post"' in page
    assert f'href="{token}/export.json?lang=fi"' in page
    assert 'href="https://kattohuolto.example/tietosuoja"' in page
    assert "<script" not in page.replace("&lt;script", "") and "http://" not in page


async def test_the_page_speaks_finnish_swedish_and_english(http, gql, roofing):
    # given
    token = await filled(gql)

    # when
    by_header = await http.get(f"/my/{token}", headers={"Accept-Language": "sv-FI,sv;q=0.9,en;q=0.5"})
    by_query = await http.get(f"/my/{token}?lang=en", headers={"Accept-Language": "sv"})
    fallback = await http.get(f"/my/{token}", headers={"Accept-Language": "de-DE,de;q=0.9"})
    hostile = await http.get(f"/my/{token}?lang=%3Cscript%3E", headers={"Accept-Language": "x;q=abc," * 500})

    # then
    assert "Radera alla mina uppgifter</button>" in by_header.text and '<html lang="sv">' in by_header.text
    assert "Delete all my data</button>" in by_query.text
    assert "Poista kaikki tietoni</button>" in fallback.text  # the contact's own language
    assert hostile.status_code == 200 and '<html lang="fi">' in hostile.text
    for response in (by_header, by_query):
        assert 'aria-current="page"' in response.text


async def test_pages_carry_privacy_headers(http, gql, roofing):
    # given
    token = await filled(gql)

    # when
    responses = [
        await http.get(f"/my/{token}"),
        await http.get(f"/my/{token}/export.json"),
        await http.get("/my/rpc_forged"),
    ]

    responses += [
        await http.head(f"/my/{token}"),
        await http.post(f"/my/{token}/delete", data={"csrf": "0" * 64}),
        await http.post(f"/my/{token}/delete", data={"csrf": csrf_of((await http.get(f"/my/{token}")).text)}),
    ]

    # then
    assert [r.status_code for r in responses] == [200, 200, 404, 200, 403, 200]
    assert "All your data has been erased" in responses[-1].text or "Kaikki tietosi" in responses[-1].text
    for response in responses:
        headers = response.headers
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
        assert headers["x-robots-tag"] == "noindex, nofollow"
        if response.headers["content-type"].startswith("application/json"):
            continue
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "form-action 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "script-src" not in csp


async def test_export_json_holds_everything_for_portability(http, gql, roofing):
    # given
    token = await filled(gql)

    # when
    response = await http.get(f"/my/{token}/export.json?lang=en")

    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"] == 'attachment; filename="my-data.json"'
    data = response.json()
    assert data["company"] == {"name": "Kattohuolto Oy", "privacyPolicyUrl": "https://kattohuolto.example/tietosuoja"}
    assert token not in response.text  # the file may be handed on; the link would let its holder erase
    assert data["photos"] == []
    assert {v["key"]: v["value"] for v in data["values"]} == {
        "name": "Maija <script>alert(1)</script>",
        "phone": "+358401234567",
        "damage_description": "Vuotaa\nräystäältä",
    }
    assert data["values"][0]["label"] == "Name"


async def test_get_and_head_floods_change_nothing_and_the_two_clicks_still_work(http, gql, roofing, database_url):
    # given
    token = await filled(gql)
    before = await snapshot(database_url)
    assert before["field_value"].startswith("3:")

    # when: a mail scanner opens the link and everything on it, many times
    for method, path in [("GET", ""), ("HEAD", ""), ("GET", "/export.json"), ("HEAD", "/export.json")] * 10:
        response = await http.request(method, f"/my/{token}{path}")
        assert response.status_code == 200
        if method == "HEAD":
            assert response.content == b""
    await asyncio.gather(*[http.get(f"/my/{token}") for _ in range(40)])
    scanner_delete = await http.get(f"/my/{token}/delete")

    # then
    assert scanner_delete.status_code == 404
    assert await snapshot(database_url) == before
    with tenancy.as_tenant(roofing.id):
        assert not await Erasure.exists()

    # when: the two clicks
    page = await http.get(f"/my/{token}")
    erased = await http.post(f"/my/{token}/delete", data={"csrf": csrf_of(page.text), "lang": "en"})

    # then
    assert erased.status_code == 200
    assert "All your data has been erased" in erased.text
    assert '<tr data-store="field_values"><td>Saved answers</td><td class="n">3</td></tr>' in erased.text
    assert '<tr data-store="contact"><td>Contact record</td><td class="n">1</td></tr>' in erased.text
    assert await contacts.contact_for_token(token) is None


async def test_unknown_forged_expired_and_erased_links_get_the_same_404(http, gql, roofing):
    # given
    expired = await filled(gql)
    with tenancy.as_tenant(roofing.id):
        await connections.get("default").execute_query("UPDATE contact_token SET expires_at = now() - interval '1s'")
    erased = await filled(gql)
    page = await http.get(f"/my/{erased}")
    await http.post(f"/my/{erased}/delete", data={"csrf": csrf_of(page.text)})
    candidates = [f"rpc_{'A' * 43}", "rps_staff-token-shape", expired, erased, "x" * 5000, "%00", "..%2F..%2Fetc"]

    staff_token = "rps_" + "A" * 43

    # when
    responses = [await http.get(f"/my/{token}") for token in [*candidates, staff_token]]
    exports = [await http.get(f"/my/{token}/export.json") for token in candidates]
    posts = [await http.post(f"/my/{token}/delete", data={"csrf": "0" * 64}) for token in candidates[:4]]

    # then
    bodies = {r.text for r in responses + exports + posts}
    assert {r.status_code for r in responses + exports + posts} == {404}
    assert len(bodies) == 1
    assert "This link is not valid" in bodies.pop()


async def test_the_delete_button_needs_the_csrf_token_of_this_very_link(http, gql, roofing):
    # given
    token = await filled(gql)
    other = await filled(gql)
    other_csrf = csrf_of((await http.get(f"/my/{other}")).text)
    own_csrf = csrf_of((await http.get(f"/my/{token}")).text)

    # when
    attempts = [
        await http.post(f"/my/{token}/delete"),
        await http.post(f"/my/{token}/delete", data={"csrf": ""}),
        await http.post(f"/my/{token}/delete", data={"csrf": "0" * 64}),
        await http.post(f"/my/{token}/delete", data={"csrf": "ä" * 64}),
        await http.post(f"/my/{token}/delete", data={"csrf": own_csrf.upper()}),
        await http.post(f"/my/{token}/delete", data={"csrf": own_csrf + "0"}),
        await http.post(f"/my/{token}/delete", data={"csrf": other_csrf}),
        await http.post(f"/my/{token}/delete", json={"csrf": own_csrf}),
        await http.post(f"/my/{token}/delete", data={"csrf": own_csrf}, headers={"Origin": "https://evil.example"}),
        await http.post(
            f"/my/{token}/delete", data={"csrf": own_csrf}, headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"}
        ),
        await http.post(
            f"/my/{token}/delete",
            data={"csrf": own_csrf},
            headers={"Origin": str(http.base_url).rstrip("/"), "Sec-Fetch-Site": "same-site"},
        ),
        await http.post(f"/my/{token}/delete", data={"csrf": own_csrf}, headers={"Sec-Fetch-Site": "cross-site"}),
        await http.post(
            f"/my/{token}/delete",
            content=f"csrf={own_csrf}&pad={'x' * 5000}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ]

    # then
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert "nothing was erased" in attempts[0].text.lower() or "mitään poistettu" in attempts[0].text
    assert await contacts.contact_for_token(token) is not None
    with tenancy.as_tenant(roofing.id):
        assert not await Erasure.exists()


async def test_a_replayed_post_after_erasure_is_a_404_and_erases_nothing_more(http, gql, roofing):
    # given
    token = await filled(gql)
    csrf = csrf_of((await http.get(f"/my/{token}")).text)
    same_origin = {"Origin": str(http.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    first = await http.post(f"/my/{token}/delete", data={"csrf": csrf}, headers=same_origin)

    # when
    replay = await http.post(f"/my/{token}/delete", data={"csrf": csrf}, headers=same_origin)

    # then
    assert first.status_code == 200
    assert replay.status_code == 404
    with tenancy.as_tenant(roofing.id):
        assert await Erasure.all().count() == 1


async def test_an_oversized_request_is_refused_and_erases_nothing(http, gql, roofing):
    # given
    token = await filled(gql)

    # when
    huge = await http.post(
        f"/my/{token}/delete",
        content=b"csrf=" + b"a" * 3_000_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    long_path = await http.get(f"/my/{token}{'a' * 20_000}")

    # then
    assert huge.status_code == 413
    assert long_path.status_code in (404, 414)
    assert await contacts.contact_for_token(token) is not None


async def test_me_returns_everything_about_the_contact_only(gql, roofing, world):
    # given
    token = await filled(gql)
    await world.staff("kattohuolto", "anna@kattohuolto.example")
    from tests.contacts.test_contacts_api import staff_token

    staff = await staff_token(gql)

    # when
    me = (await gql(ME, {"locale": "en"}, token=token))["me"]
    as_staff = (await gql(ME, token=staff))["me"]
    anonymous = (await gql(ME))["me"]
    forged = (await gql(ME, token="rpc_" + "A" * 43))["me"]

    # then
    assert me["tenantName"] == "Kattohuolto Oy"
    assert me["privacyPolicyUrl"] == "https://kattohuolto.example/tietosuoja"
    assert me["selfServiceUrl"].endswith(f"/my/{token}")
    assert me["locale"] == "en"
    assert [(v["key"], v["kind"]) for v in me["values"]] == [
        ("name", "TEXT"),
        ("phone", "PHONE"),
        ("damage_description", "LONG_TEXT"),
    ]
    assert [v["label"] for v in me["values"]][:2] == ["Name", "Phone number"]
    assert me["values"][1]["value"] == "+358401234567"
    assert as_staff is None and anonymous is None and forged is None


async def test_the_page_of_a_contact_shows_no_other_contact(http, gql, roofing):
    # given
    mine = await filled(gql)
    theirs = await start(gql, "kattohuolto")
    await save(gql, theirs, "name", "Toinen Henkilö")

    # when
    page = (await http.get(f"/my/{mine}")).text

    # then
    assert "Toinen Henkilö" not in page
    assert str((await contacts.contact_for_token(theirs)).id) not in page


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "null"},  # what browsers send under Referrer-Policy: no-referrer, without Sec-Fetch-Site
        {"Sec-Fetch-Site": "none"},  # typed or bookmarked
        {},  # no browser headers at all
    ],
)
async def test_the_button_works_from_older_browsers_and_plain_clients(http, gql, roofing, headers):
    # given
    token = await filled(gql)
    csrf = csrf_of((await http.get(f"/my/{token}")).text)

    # when
    response = await http.post(f"/my/{token}/delete", data={"csrf": csrf}, headers=headers)

    # then
    assert response.status_code == 200
    assert await contacts.contact_for_token(token) is None


async def test_me_with_a_hostile_locale_falls_back(gql, roofing):
    # given
    token = await filled(gql)

    # when
    me = (await gql(ME, {"locale": "x" * 10_000}, token=token))["me"]

    # then
    assert me["locale"] == "fi"


async def test_the_page_and_the_export_show_the_photos_through_signed_links(http, gql, roofing):
    # given
    from tests.media import images
    from tests.media.test_upload_api import upload

    token = await filled(gql)
    assert (await upload(http, token, images.jpeg(400, 300))).status_code == 200

    # when
    page = (await http.get(f"/my/{token}?lang=en")).text
    export = (await http.get(f"/my/{token}/export.json")).json()

    # then
    src = html.unescape(re.search(r'<img src="([^"]+)"', page).group(1))
    assert "/media/" in src and "signature=" in src and 'alt="A photo you sent"' in page
    assert (await http.get(src)).headers["content-type"] == "image/jpeg"
    assert [(p["field"], p["width"], p["height"]) for p in export["photos"]] == [("roof_photos", 400, 300)]
    assert (await http.get(export["photos"][0]["downloadUrl"])).status_code == 200
