"""A tour of everything a served Rapidly does, as its clients do it, with customer data full of markers.

`Tour(url, ...).run()` drives, against one served Rapidly (any process layout), every root field of
the committed `schema.graphql` (queries and mutations over HTTP, the two subscriptions over real
WebSockets) and every page: `/`, `/console` and the browser code, the customer's own page, its
export and its delete form (with its CSRF token), the phone page and its upload form, a signed media
link, `/readyz`, `/healthz` and `/metrics`; then links that were forged, erased or tampered with, and
input that is wrong in every way a client can get it wrong, so that the error paths speak too.

What it typed is in `markers` (unique to this tour: a run's needles never match another run's),
what the server handed out in `secrets` (contact, staff and continue-link tokens, CSRF tokens, media
URL signatures, self-service and phone links); `called` holds the root fields it ran, to compare with
`schema_root_fields()`: a new operation must be added here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import websockets
from graphql import FieldNode, OperationDefinitionNode, build_schema, parse

from tests.media import images
from tests.support.authenticator import Authenticator
from tests.support.live import Watcher, until

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema.graphql"
_ROOTS = {"query": "Query", "mutation": "Mutation", "subscription": "Subscription"}


def schema_root_fields() -> set[tuple[str, str]]:
    """(type, field) for every root field of the committed schema."""
    schema = build_schema(SCHEMA_PATH.read_text())
    found: set[tuple[str, str]] = set()
    for root in (schema.query_type, schema.mutation_type, schema.subscription_type):
        if root is not None:
            found |= {(root.name, name) for name in root.fields}
    return found


def root_fields(document: str) -> set[tuple[str, str]]:
    """(type, field) for every root field a document selects."""
    found: set[tuple[str, str]] = set()
    for definition in parse(document).definitions:
        if isinstance(definition, OperationDefinitionNode):
            for selection in definition.selection_set.selections:
                if isinstance(selection, FieldNode) and not selection.name.value.startswith("__"):
                    found.add((_ROOTS[definition.operation.value], selection.name.value))
    return found


# -- documents (every root field of the schema) ------------------------------------------------------

FORM = """
query Form($tenant: String!, $locale: String) {
  form(tenant: $tenant, locale: $locale) { __typename tenantName locale fields { key kind label purpose } }
}
"""
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    __typename ... on LoginSuccess { token staff { id email } } ... on Error { message }
  }
}
"""
LOGOUT = "mutation { logout }"
VIEWER = """
query {
  viewer {
    __typename id email locale unreadNotifications
    tenant { slug name retentionDays allowedOrigins messageChannels { event channels } }
  }
}
"""
FIELDS = "query F($locale: String) { fields(locale: $locale) { __typename key kind label purpose role } }"
START = """
mutation Start($tenant: String!, $locale: String) {
  startContact(tenant: $tenant, locale: $locale) {
    __typename ... on ContactSession { token selfServiceUrl } ... on Error { message }
  }
}
"""
SAVE = """
mutation Save($key: String!, $value: JSON) {
  saveField(key: $key, value: $value) {
    __typename
    ... on FieldSaved { value { key value updatedAt } }
    ... on InputInvalidError { message errors { field code message } }
    ... on AuthError { message }
  }
}
"""
ME = """
query Me($locale: String) {
  me(locale: $locale) {
    __typename contactId locale tenantName selfServiceUrl
    values { key label value text }
    media { id fieldKey url }
    messages { event channel status maskedRecipient }
    chatMessages { edges { node { body author } } }
  }
}
"""
UPLOAD = """
mutation Upload($fieldKey: String!, $file: Upload!) {
  uploadMedia(fieldKey: $fieldKey, file: $file) {
    __typename
    ... on MediaUploaded { media { id fieldKey contentType url } }
    ... on InputInvalidError { errors { field code message } }
    ... on AuthError { message }
  }
}
"""
CREATE_LINK = """
mutation { createContinueLink { __typename ... on ContinueLink { url qrSvg expiresAt } ... on Error { message } } }
"""
SEND_LINK = """
mutation Send($channel: Channel!) {
  sendContinueLink(channel: $channel) {
    __typename ... on LinkSent { channel maskedRecipient } ... on InputInvalidError { errors { code } }
    ... on Error { message }
  }
}
"""
SEND_CHAT = """
mutation Chat($body: String!, $contactId: ID, $attachment: Upload) {
  sendChatMessage(body: $body, contactId: $contactId, attachment: $attachment) {
    __typename
    ... on ChatMessageSent { chatMessage { id body author attachment { contentType url } } }
    ... on InputInvalidError { errors { field code } }
    ... on Error { message }
  }
}
"""
CHAT_MESSAGES = """
query Thread($id: ID!) { chatMessages(contactId: $id) { __typename edges { node { body author readAt } } } }
"""
READ_CHAT = "mutation Read($id: ID) { markChatRead(contactId: $id) }"
REQUEST_PHOTO = """
mutation Ask($id: ID!, $channel: Channel!) {
  requestPhoto(contactId: $id, channel: $channel) {
    __typename ... on PhotoRequested { channel } ... on InputInvalidError { errors { code } } ... on Error { message }
  }
}
"""
CONTACTS = """
query Contacts($first: Int, $search: String) {
  contacts(first: $first, search: $search) {
    __typename edges { cursor node { id displayName values { key value } } } pageInfo { hasNextPage endCursor }
  }
}
"""
CONTACT = """
query Contact($id: ID!) {
  contact(id: $id) {
    __typename id displayName values { key value } media { id url } messages { event channel status error }
  }
}
"""
NOTIFICATIONS = """
query { notifications(first: 50) { __typename edges { node { id kind contactId text readAt } } } }
"""
MARK_NOTIFICATIONS = "mutation Mark($ids: [ID!]!) { markNotificationsRead(ids: $ids) }"
DELETE_MY_DATA = """
mutation { deleteMyData { __typename ... on ErasureReceipt { contactId complete removed { store count } } } }
"""
DELETE_CONTACT = """
mutation Delete($id: ID!) {
  deleteContact(id: $id) { __typename ... on ErasureReceipt { contactId complete } ... on Error { message } }
}
"""
COMPANY = """
query {
  viewer {
    __typename id role
    tenant { retentionDays messageChannels { event channels } staff { id email role lastSignInAt }
             invitations { id email role expiresAt sent problem } }
  }
}
"""
INVITE = """
mutation Invite($email: String!, $role: StaffRole!) {
  inviteStaff(email: $email, role: $role) {
    __typename ... on StaffInvited { email role expiresAt } ... on InputInvalidError { errors { field code } }
    ... on Error { message }
  }
}
"""
INVITATION = "query Invitation($token: String!) { staffInvitation(token: $token) { email role companyName } }"
ACCEPT_INVITATION = """
mutation Accept($token: String!, $password: String!) {
  acceptStaffInvitation(token: $token, password: $password) {
    __typename ... on LoginSuccess { token } ... on InputInvalidError { errors { code } } ... on Error { message }
  }
}
"""
CANCEL_INVITATION = """
mutation Cancel($id: ID!) {
  cancelStaffInvitation(id: $id) { __typename ... on InvitationCancelled { id } ... on Error { message } }
}
"""
CHANGE_ROLE = """
mutation Role($id: ID!, $role: StaffRole!) {
  changeStaffRole(id: $id, role: $role) {
    __typename ... on StaffRoleChanged { staff { id role } } ... on InputInvalidError { errors { code } }
    ... on Error { message }
  }
}
"""
REMOVE_STAFF = """
mutation Remove($id: ID!) {
  removeStaff(id: $id) {
    __typename ... on StaffRemoved { id } ... on InputInvalidError { errors { code } } ... on Error { message }
  }
}
"""
_SETTING = """__typename ... on CompanySettingsChanged { tenant { allowedOrigins retentionDays } }
    ... on InputInvalidError { errors { field code } } ... on Error { message }"""
ADD_ORIGIN = f"mutation Add($origin: String!) {{ addAllowedOrigin(origin: $origin) {{ {_SETTING} }} }}"
REMOVE_ORIGIN = f"mutation Drop($origin: String!) {{ removeAllowedOrigin(origin: $origin) {{ {_SETTING} }} }}"
RETENTION = f"mutation Keep($days: Int) {{ setRetentionDays(days: $days) {{ {_SETTING} }} }}"
CHANNELS = f"""
mutation Channels($event: String!, $channels: [Channel!]!) {{
  setMessageChannels(event: $event, channels: $channels) {{ {_SETTING} }}
}}
"""
PASSKEY_REGISTRATION = """
mutation { passkeyRegistrationOptions { __typename ... on PasskeyOptions { options } ... on Error { message } } }
"""
REGISTER_PASSKEY = """
mutation Register($credential: String!, $name: String!) {
  registerPasskey(credential: $credential, name: $name) {
    __typename ... on PasskeyAdded { passkey { id name } } ... on InputInvalidError { errors { code } }
    ... on Error { message }
  }
}
"""
PASSKEY_SIGN_IN_OPTIONS = "mutation { passkeySignInOptions { __typename ... on PasskeyOptions { options } } }"
SIGN_IN_WITH_PASSKEY = """
mutation SignIn($credential: String!) {
  signInWithPasskey(credential: $credential) { __typename ... on LoginSuccess { token } ... on Error { message } }
}
"""
MY_PASSKEYS = "query { viewer { passkeys { id name createdAt lastUsedAt } } }"
PASSKEY_ONLY = "mutation O($on: Boolean!) { setPasskeyOnly(on: $on) { __typename } }"
SMS_NUMBER_CHECK = """
mutation S($number: String!) { startSmsNumberCheck(number: $number) { __typename
  ... on SmsCodeSent { number } ... on InputInvalidError { errors { code } } } }
"""
VERIFY_SMS_NUMBER = """
mutation V($code: String!) { verifySmsNumber(code: $code) { __typename ... on InputInvalidError { errors { code } } } }
"""
MY_MESSAGE_CHANNELS = """
mutation C($event: String!, $channels: [Channel!]) { setMyMessageChannels(event: $event, channels: $channels) {
  __typename } }
"""
REMOVE_SMS_NUMBER = "mutation { removeSmsNumber { smsNumber } }"
HOW_I_AM_REACHED = "query { viewer { smsNumber smsNumberWaiting { number } messageChannels { event channels own } } }"
REMOVE_PASSKEY = "mutation Remove($id: ID!) { removePasskey(id: $id) { __typename ... on Error { message } } }"
RESET_PASSKEYS = "mutation Reset($id: ID!) { resetStaffPasskeys(id: $id) { __typename ... on Error { message } } }"
REQUIRE_PASSKEY = f"mutation Require($on: Boolean!) {{ setPasskeyRequired(required: $on) {{ {_SETTING} }} }}"
_WORDING_ARGS = "$event: String!, $channel: Channel!, $locale: String!"
_WORDING = "event: $event, channel: $channel, locale: $locale"
MESSAGE_PREVIEW = f"""
query Preview({_WORDING_ARGS}, $subject: String, $body: String!) {{
  messagePreview({_WORDING}, subject: $subject, body: $body) {{
    __typename ... on MessagePreview {{ subject text deleteButton }} ... on InputInvalidError {{ errors {{ code }} }}
    ... on Error {{ message }}
  }}
}}
"""
SET_WORDING = f"""
mutation Wording({_WORDING_ARGS}, $subject: String, $body: String!) {{
  setMessageWording({_WORDING}, subject: $subject, body: $body) {{ {_SETTING} }}
}}
"""
RESET_WORDING = f"mutation Reset({_WORDING_ARGS}) {{ resetMessageWording({_WORDING}) {{ {_SETTING} }} }}"
WORDINGS = "query { viewer { tenant { messageWordings { event channel locale subject body custom } } } }"
CONTACT_EVENTS = "subscription { contactEvents { kind contactId contact { displayName values { key value } } } }"
MY_EVENTS = "subscription { myEvents { kind contactId contact { values { key value } } } }"

_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
_LETTERS = "ghjkmnpqrstvwxyz"  # not hex: a tag never matches part of an ID


def _tag() -> str:
    return "".join(secrets.choice(_LETTERS) for _ in range(10))


@dataclass
class Person:
    """A customer whose every value carries the same unique tag (and a phone number of their own)."""

    tag: str = field(default_factory=_tag)
    digits: str = field(default_factory=lambda: "40" + str(secrets.randbelow(9_000_000) + 1_000_000))

    @property
    def name(self) -> str:
        return f"Äiniö Touristi-{self.tag}"

    @property
    def email(self) -> str:
        return f"aino.{self.tag}@example.fi"

    @property
    def phone(self) -> str:
        """An EEA mobile number as typed: +358 40 123 4567."""
        return f"+358 {self.digits[:2]} {self.digits[2:5]} {self.digits[5:]}"

    @property
    def address(self) -> str:
        return f"Tourintie {self.tag} B 7, 00100 Helsinki"

    @property
    def text(self) -> str:
        return f"Katto vuotaa {self.tag}\nSisällä on märkää, ullakolla {self.tag}-ämpäri"

    @property
    def chat(self) -> str:
        return f"Milloin pääsette käymään? Terveisin {self.tag}"

    @property
    def staff_reply(self) -> str:
        return f"Huomenna kello 9, {self.tag}"

    @property
    def photo_name(self) -> str:
        return f"IMG_{self.tag}.jpg"

    @property
    def photo_comment(self) -> str:
        return f"Mökki {self.tag}"

    def values(self) -> dict[str, str]:
        return {
            "name": self.name,
            "phone": self.phone,
            "email": self.email,
            "street_address": self.address,
            "damage_description": self.text,
        }

    def markers(self) -> dict[str, str]:
        """What must never be printed, by what it is."""
        return {
            "tag": self.tag,
            "name": self.name,
            "email": self.email,
            "phone as typed": self.phone,
            "phone": f"+358{self.digits}",
            "address": self.address,
            "free text": self.text,
            "chat": self.chat,
            "staff's reply": self.staff_reply,
            "photo's file name": self.photo_name,
            "photo's comment": self.photo_comment,
        }

    def phone_pattern(self) -> re.Pattern[str]:
        """The national number's digits, however they are spaced or dashed."""
        return re.compile(r"[\s-]?".join(self.digits))


def _photo(person: Person) -> bytes:
    """A phone's JPEG: EXIF with the person's words in it and a GPS position."""
    return images.jpeg(320, 240, comment=person.photo_comment, gps=True, orientation=6)


def _png_with_text(person: Person) -> bytes:
    """A PNG whose text chunk holds the person's email (the upload strips it)."""
    return images.png(40, 30, text=f"owner {person.email}")


def _truncated() -> bytes:
    return images.jpeg()[:2000]


class TourFailed(AssertionError):
    pass


class Tour:
    """One tour of a served Rapidly at `url`, as tenant `tenant`'s customers and staff member."""

    def __init__(
        self,
        url: str,
        tenant: str,
        staff_email: str,
        staff_password: str,
        *,
        metrics_token: str | None = None,
        site_url: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.tenant = tenant
        self.staff_email = staff_email
        self.staff_password = staff_password
        self.metrics_token = metrics_token
        self.site_url = site_url
        self.main, self.by_page, self.by_self, self.by_staff = Person(), Person(), Person(), Person()
        self.people = [self.main, self.by_page, self.by_self, self.by_staff]
        #: (label, value): everything the server handed out that must stay secret.
        self.secrets: list[tuple[str, str]] = []
        #: Root fields run (their operation executed and answered).
        self.called: set[tuple[str, str]] = set()
        #: Answers that are not logs but must not hold a secret either (`/metrics`).
        self.answers: dict[str, str] = {}
        #: Events the two subscriptions delivered.
        self.events: dict[str, int] = {}
        self.main_token = ""
        self.main_id = ""
        self.staff_token = ""
        self.http = httpx.AsyncClient(
            base_url=self.url,
            timeout=30,
            # Headers that a library might log: they carry a marker and a token-like referrer.
            headers={"User-Agent": f"tour/1 ({self.main.email})"},
        )

    # -- what the test scans for -------------------------------------------------------------------

    @property
    def markers(self) -> list[tuple[str, str]]:
        return [
            (f"{what} of customer {i}", value) for i, p in enumerate(self.people) for what, value in p.markers().items()
        ]

    @property
    def phone_patterns(self) -> list[re.Pattern[str]]:
        return [p.phone_pattern() for p in self.people]

    def _secret(self, label: str, value: str) -> str:
        assert value, label
        self.secrets.append((label, value))
        return value

    # -- plumbing --------------------------------------------------------------------------------

    async def gql(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        """Run a document that is valid; record its root fields; the data."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        return self._answered(query, response)

    def _answered(self, query: str, response: httpx.Response) -> dict:
        if response.status_code != 200:
            raise TourFailed(f"{response.status_code}: {response.text[:500]}")
        body = response.json()
        if body.get("errors"):
            raise TourFailed(f"{query.strip()[:80]}: {body['errors']}")
        self.called |= root_fields(query)
        return body["data"]

    async def multipart(
        self, query: str, variables: dict, files: dict[str, tuple[str, bytes, str]], token: str | None
    ) -> dict:
        """The GraphQL multipart request spec: `files` by the variable they stand for."""
        mapping = {str(i): [f"variables.{name}"] for i, name in enumerate(files)}
        operations = {"query": query, "variables": {**variables, **dict.fromkeys(files)}}
        headers = {"Rapidly-Upload": "1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.http.post(
            "/graphql",
            data={"operations": json.dumps(operations), "map": json.dumps(mapping)},
            files={str(i): spec for i, spec in enumerate(files.values())},
            headers=headers,
        )
        return self._answered(query, response)

    async def raw(self, body: bytes | str, content_type: str = "application/json", token: str | None = None) -> int:
        """A POST /graphql that is wrong somehow; its status."""
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.http.post("/graphql", content=body, headers=headers)
        assert response.status_code < 500, (response.status_code, response.text[:300])
        return response.status_code

    async def get(self, path: str, expect: int = 200, **kwargs: object) -> httpx.Response:
        response = await self.http.get(path, **kwargs)  # type: ignore[arg-type]
        if response.status_code != expect:
            raise TourFailed(f"GET {path}: {response.status_code}, not {expect}")
        return response

    async def post(self, path: str, expect: int | tuple[int, ...], **kwargs: object) -> httpx.Response:
        response = await self.http.post(path, **kwargs)  # type: ignore[arg-type]
        if response.status_code not in (expect if isinstance(expect, tuple) else (expect,)):
            raise TourFailed(f"POST {path}: {response.status_code}, not {expect}: {response.text[:300]}")
        return response

    # -- the tour ----------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._pages_for_anyone()
            await self._staff_signs_in()
            staff_events = await Watcher(self.url, self.staff_token, CONTACT_EVENTS).open()
            try:
                await self._main_customer(staff_events)
                await self._staff_works()
                await self._company_admin()
                await self._passkeys()
                await self._message_wording()
                await self._sms_number()
                await self._customers_pages()
                await self._erasures()
                await self._forged_and_wrong()
                await self._websockets_gone_wrong()
                await self._raw_http()
                if self.site_url is not None:
                    await self._company_page()
                await self._staff_signs_out()
                await self._operations_pages()
                assert await until(lambda: staff_events.events >= 10, 10), staff_events.events
                self.called |= root_fields(CONTACT_EVENTS)
            finally:
                self.events["contactEvents"] = staff_events.events
                await staff_events.close()
            assert not staff_events.errors, staff_events.errors
        finally:
            await self.http.aclose()

    async def erase_main(self) -> None:
        """The main customer erases themselves (after `run`, e.g. once a backup holds them)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as self.http:
            erased = (await self.gql(DELETE_MY_DATA, token=self.main_token))["deleteMyData"]
        assert erased["__typename"] == "ErasureReceipt" and erased["complete"], erased

    async def _pages_for_anyone(self) -> None:
        await self.get("/")
        await self.get("/", headers={"Accept-Language": "sv-FI,sv;q=0.9"})
        await self.get("/console")
        for asset in ("/embed/form.js", "/embed/form.css", "/embed/chat.js", "/lib/graphql.js", "/console/console.js"):
            etag = (await self.get(asset)).headers["etag"]
            await self.get(asset, 304, headers={"If-None-Match": etag})
        await self.get("/embed/nothing.js", 404)
        await self.get("/favicon.ico", 204)
        await self.get("/readyz")
        await self.get("/healthz")
        await self.get(f"/nowhere/{self.main.email}?phone={self.main.phone}", 404)
        by_get = await self.http.get(
            "/graphql", params={"query": f'{{ form(tenant: "{self.main.tag}") {{ locale }} }}'}
        )
        assert 400 <= by_get.status_code < 500, by_get.status_code
        form = (await self.gql(FORM, {"tenant": self.tenant, "locale": "en"}))["form"]
        assert form["__typename"] == "Form" and form["fields"], form
        assert (await self.gql(FORM, {"tenant": f"no-{self.main.tag}"}))["form"] is None

    async def _staff_signs_in(self) -> None:
        wrong = (await self.gql(LOGIN, {"email": self.staff_email, "password": f"wrong {self.main.tag}"}))["login"]
        unknown = (await self.gql(LOGIN, {"email": self.main.email, "password": self.main.name}))["login"]
        assert wrong["__typename"] == unknown["__typename"] == "AuthError", (wrong, unknown)
        signed_in = (await self.gql(LOGIN, {"email": self.staff_email, "password": self.staff_password}))["login"]
        assert signed_in["__typename"] == "LoginSuccess", signed_in
        self.staff_token = self._secret("staff token", signed_in["token"])
        viewer = (await self.gql(VIEWER, token=self.staff_token))["viewer"]
        assert viewer["__typename"] == "Staff", viewer
        assert (await self.gql(FIELDS, {"locale": "sv"}, token=self.staff_token))["fields"]

    async def _start(self, person: Person, locale: str = "fi") -> tuple[str, str]:
        started = (await self.gql(START, {"tenant": self.tenant, "locale": locale}))["startContact"]
        assert started["__typename"] == "ContactSession", started
        token = self._secret("contact token", started["token"])
        self._secret("self-service link", started["selfServiceUrl"])
        for key, value in person.values().items():
            saved = (await self.gql(SAVE, {"key": key, "value": value}, token))["saveField"]
            assert saved["__typename"] == "FieldSaved", (key, saved)
        return token, (await self.gql(ME, {"locale": "en"}, token))["me"]["contactId"]

    async def _main_customer(self, staff_events: Watcher) -> None:
        person = self.main
        self.main_token, self.main_id = await self._start(person)
        token = self.main_token
        mine = await Watcher(self.url, token, MY_EVENTS).open()
        try:
            # Wrong values: each refusal names the field, never echoes the value into a log.
            for key, value in (
                ("email", f"{person.tag}-at-nowhere"),
                ("phone", f"+1 212 555 {person.digits[-4:]} {person.tag}"),
                (f"key_{person.tag}", person.email),
                ("damage_description", {"nested": person.text}),
                ("name", "x" * 5000 + person.tag),
            ):
                refused = (await self.gql(SAVE, {"key": key, "value": value}, token))["saveField"]
                assert refused["__typename"] == "InputInvalidError", (key, refused)
            # A NUL character: refused by validation or by PostgreSQL, either way never in a log line.
            await self.http.post(
                "/graphql",
                json={"query": SAVE, "variables": {"key": "street_address", "value": f"a\u0000{person.tag}"}},
                headers={"Authorization": f"Bearer {token}"},
            )
            me = (await self.gql(ME, {"locale": "fi"}, token))["me"]
            assert me["selfServiceUrl"] in [value for _, value in self.secrets], me
            # Photos: a phone's JPEG (EXIF, GPS, its file name), a PNG with text, and two refused ones.
            uploaded = (
                await self.multipart(
                    UPLOAD,
                    {"fieldKey": "roof_photos"},
                    {"file": (person.photo_name, _photo(person), "image/jpeg")},
                    token,
                )
            )["uploadMedia"]
            assert uploaded["__typename"] == "MediaUploaded", uploaded
            self._media_url(uploaded["media"]["url"])
            png = (
                await self.multipart(
                    UPLOAD,
                    {"fieldKey": "roof_photos"},
                    {"file": (f"{person.email}.png", _png_with_text(person), "image/png")},
                    token,
                )
            )["uploadMedia"]
            assert png["__typename"] == "MediaUploaded", png
            for name, data in ((person.photo_name, _truncated()), (f"{person.tag}.png", images.png_bomb())):
                refused = (
                    await self.multipart(
                        UPLOAD, {"fieldKey": "roof_photos"}, {"file": (name, data, "image/jpeg")}, token
                    )
                )["uploadMedia"]
                assert refused["__typename"] == "InputInvalidError", refused
            wrong_field = (
                await self.multipart(
                    UPLOAD,
                    {"fieldKey": f"f_{person.tag}"},
                    {"file": (person.photo_name, _photo(person), "image/jpeg")},
                    token,
                )
            )["uploadMedia"]
            assert wrong_field["__typename"] == "InputInvalidError", wrong_field
            unguarded = await self.http.post(
                "/graphql",
                data={
                    "operations": json.dumps({"query": UPLOAD, "variables": {"fieldKey": "roof_photos", "file": None}}),
                    "map": json.dumps({"0": ["variables.file"]}),
                },
                files={"0": (person.photo_name, _photo(person), "image/jpeg")},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert 400 <= unguarded.status_code < 500, unguarded.status_code
            # Continue on the phone: a link on screen, and links sent to my own email and phone.
            link = (await self.gql(CREATE_LINK, token=token))["createContinueLink"]
            assert link["__typename"] == "ContinueLink", link
            self._continue_url(link["url"])
            for channel in ("EMAIL", "SMS"):
                sent = (await self.gql(SEND_LINK, {"channel": channel}, token))["sendContinueLink"]
                assert sent["__typename"] == "LinkSent", sent
            # Chat, both ways, with a photo attached.
            said = (await self.gql(SEND_CHAT, {"body": person.chat}, token))["sendChatMessage"]
            assert said["__typename"] == "ChatMessageSent", said
            attached = (
                await self.multipart(
                    SEND_CHAT,
                    {"body": f"kuva {person.tag}"},
                    {"attachment": (person.photo_name, _photo(person), "image/jpeg")},
                    token,
                )
            )["sendChatMessage"]
            assert attached["__typename"] == "ChatMessageSent", attached
            self._media_url(attached["chatMessage"]["attachment"]["url"])
            empty = (await self.gql(SEND_CHAT, {"body": ""}, token))["sendChatMessage"]
            assert empty["__typename"] == "InputInvalidError", empty
            assert await until(lambda: mine.events >= 2, 10), mine.events
            self.called |= root_fields(MY_EVENTS)
        finally:
            self.events["myEvents"] = mine.events
            await mine.close()
        assert not mine.errors, mine.errors
        assert await until(lambda: staff_events.events >= 5, 10), staff_events.events

    def _media_url(self, url: str) -> None:
        self._secret("signed media link", url)
        self._secret("media link signature", parse_qs(urlsplit(url).query)["signature"][0])

    def _continue_url(self, url: str) -> None:
        self._secret("phone link", url)
        self._secret("continue-link token", urlsplit(url).path.rsplit("/", 1)[1])

    async def _staff_works(self) -> None:
        staff, person, contact_id = self.staff_token, self.main, self.main_id
        listed = (await self.gql(CONTACTS, {"first": 10}, staff))["contacts"]
        assert any(edge["node"]["id"] == contact_id for edge in listed["edges"]), listed
        found = (await self.gql(CONTACTS, {"search": person.tag}, staff))["contacts"]
        assert [edge["node"]["id"] for edge in found["edges"]] == [contact_id], found
        assert (await self.gql(CONTACTS, {"search": person.digits[2:]}, staff))["contacts"]["edges"]
        contact = (await self.gql(CONTACT, {"id": contact_id}, staff))["contact"]
        assert contact["displayName"] == person.name, contact
        for media in contact["media"]:
            self._media_url(media["url"])
        thread = (await self.gql(CHAT_MESSAGES, {"id": contact_id}, staff))["chatMessages"]
        assert thread["edges"][0]["node"]["body"] == person.chat, thread
        replied = (await self.gql(SEND_CHAT, {"body": person.staff_reply, "contactId": contact_id}, staff))[
            "sendChatMessage"
        ]
        assert replied["__typename"] == "ChatMessageSent", replied
        await self.gql(READ_CHAT, {"id": contact_id}, staff)
        await self.gql(READ_CHAT, {}, self.main_token)
        for channel in ("EMAIL", "SMS"):
            asked = (await self.gql(REQUEST_PHOTO, {"id": contact_id, "channel": channel}, staff))["requestPhoto"]
            assert asked["__typename"] == "PhotoRequested", asked
        notifications = (await self.gql(NOTIFICATIONS, token=staff))["notifications"]["edges"]
        ids = [edge["node"]["id"] for edge in notifications]
        assert ids, notifications
        await self.gql(MARK_NOTIFICATIONS, {"ids": ids}, staff)
        # Another tenant's contact, or none: "not found", whatever the ID.
        assert (await self.gql(CONTACT, {"id": "00000000-0000-4000-8000-000000000000"}, staff))["contact"] is None
        assert (await self.gql(CHAT_MESSAGES, {"id": "00000000-0000-4000-8000-000000000000"}, staff))[
            "chatMessages"
        ] is None

    async def _company_admin(self) -> None:
        """The staff member, the company's admin, runs its account: invitations to addresses full of
        markers, refused and withdrawn; roles and a removal refused (the last admin stays); settings
        set to what they were, and refused."""
        staff, invitee = self.staff_token, self.by_page
        company = (await self.gql(COMPANY, token=staff))["viewer"]
        assert company["role"] == "ADMIN", company
        tenant = company["tenant"]
        for email, expected in ((invitee.email, "StaffInvited"), (invitee.name, "InputInvalidError")):
            invited = (await self.gql(INVITE, {"email": email, "role": "STAFF"}, staff))["inviteStaff"]
            assert invited["__typename"] == expected, invited
        waiting = (await self.gql(COMPANY, token=staff))["viewer"]["tenant"]["invitations"]
        assert [i["email"] for i in waiting] == [invitee.email], waiting
        forged = f"rpi_{invitee.tag}"
        assert (await self.gql(INVITATION, {"token": forged}))["staffInvitation"] is None
        accepted = await self.gql(ACCEPT_INVITATION, {"token": forged, "password": invitee.text})
        assert accepted["acceptStaffInvitation"]["__typename"] == "AuthError", accepted
        cancelled = (await self.gql(CANCEL_INVITATION, {"id": waiting[0]["id"]}, staff))["cancelStaffInvitation"]
        assert cancelled["__typename"] == "InvitationCancelled", cancelled
        me = company["id"]
        demoted = (await self.gql(CHANGE_ROLE, {"id": me, "role": "STAFF"}, staff))["changeStaffRole"]
        removed = (await self.gql(REMOVE_STAFF, {"id": me}, staff))["removeStaff"]
        assert demoted["__typename"] == removed["__typename"] == "InputInvalidError", (demoted, removed)
        origin = f"https://{invitee.tag}.example.fi"
        for document, variables in (
            (ADD_ORIGIN, {"origin": origin}),
            (REMOVE_ORIGIN, {"origin": origin}),
            (ADD_ORIGIN, {"origin": f"{origin}/{invitee.email}"}),
            (RETENTION, {"days": tenant["retentionDays"]}),
            (RETENTION, {"days": 0}),
            *((CHANNELS, {"event": c["event"], "channels": c["channels"]}) for c in tenant["messageChannels"][:2]),
            (CHANNELS, {"event": invitee.tag, "channels": []}),
        ):
            answer = next(iter((await self.gql(document, variables, staff)).values()))
            assert answer["__typename"] in ("CompanySettingsChanged", "InputInvalidError"), answer

    async def _passkeys(self) -> None:
        """The staff member adds a passkey named with markers, signs in with it, and with forged and
        garbage answers; requires passkeys and stops; makes it their second factor and stops; a
        colleague's reset and a removal by IDs full of markers are refused; the passkey removed."""
        staff, someone = self.staff_token, self.by_page
        device = Authenticator(origin=self.url, rp_id=urlsplit(self.url).hostname or "")
        options = (await self.gql(PASSKEY_REGISTRATION, token=staff))["passkeyRegistrationOptions"]["options"]
        added = await self.gql(REGISTER_PASSKEY, {"credential": device.create(options), "name": someone.text}, staff)
        assert added["registerPasskey"]["__typename"] == "PasskeyAdded", added
        for answer, expected in (
            (device.get, "LoginSuccess"),
            (lambda o: device.get(o, origin=someone.email), "AuthError"),
        ):
            options = (await self.gql(PASSKEY_SIGN_IN_OPTIONS))["passkeySignInOptions"]["options"]
            signed_in = (await self.gql(SIGN_IN_WITH_PASSKEY, {"credential": answer(options)}))["signInWithPasskey"]
            assert signed_in["__typename"] == expected, signed_in
        garbage = (await self.gql(SIGN_IN_WITH_PASSKEY, {"credential": someone.text}))["signInWithPasskey"]
        assert garbage["__typename"] == "AuthError", garbage
        for on in (True, False):
            required = (await self.gql(REQUIRE_PASSKEY, {"on": on}, staff))["setPasskeyRequired"]
            assert required["__typename"] == "CompanySettingsChanged", required
        for document in (RESET_PASSKEYS, REMOVE_PASSKEY):
            refused = next(iter((await self.gql(document, {"id": someone.tag}, staff)).values()))
            assert refused["__typename"] == "NotFoundError", refused
        for on in (True, False):
            only = (await self.gql(PASSKEY_ONLY, {"on": on}, staff))["setPasskeyOnly"]
            assert only["__typename"] == "PasskeyOnlyChanged", only
        [mine] = (await self.gql(MY_PASSKEYS, token=staff))["viewer"]["passkeys"]
        removed = (await self.gql(REMOVE_PASSKEY, {"id": mine["id"]}, staff))["removePasskey"]
        assert removed["__typename"] == "PasskeyRemoved", removed

    async def _message_wording(self) -> None:
        """The admin previews and saves wordings full of markers, and hostile ones (refused with the
        reason), then resets them: the next messages of the tour go in the default words."""
        staff, someone = self.staff_token, self.by_page
        key = {"event": "CONTINUE_LINK", "channel": "EMAIL", "locale": "fi"}
        good = {**key, "subject": someone.name, "body": f"{someone.text} {{{{ link }}}}"}
        for variables, expected in (
            (good, "MessagePreview"),
            ({**good, "body": f"{{{{ link.__class__ }}}} {someone.email}"}, "InputInvalidError"),
            ({**good, "body": f"https://{someone.tag}.example/"}, "InputInvalidError"),
        ):
            previewed = (await self.gql(MESSAGE_PREVIEW, variables, staff))["messagePreview"]
            assert previewed["__typename"] == expected, previewed
        saved = (await self.gql(SET_WORDING, good, staff))["setMessageWording"]
        assert saved["__typename"] == "CompanySettingsChanged", saved
        custom = [
            w for w in (await self.gql(WORDINGS, token=staff))["viewer"]["tenant"]["messageWordings"] if w["custom"]
        ]
        assert len(custom) == 1, custom
        reset = (await self.gql(RESET_WORDING, key, staff))["resetMessageWording"]
        assert reset["__typename"] == "CompanySettingsChanged", reset

    async def _sms_number(self) -> None:
        """The staff member gives a customer's number as their own (its code is texted to it), and
        garbage; wrong codes full of markers; their channels, with an event full of markers; the
        number removed."""
        staff, someone = self.staff_token, self.by_page
        for number, expected in ((someone.phone, "SmsCodeSent"), (someone.text, "InputInvalidError")):
            started = (await self.gql(SMS_NUMBER_CHECK, {"number": number}, staff))["startSmsNumberCheck"]
            assert started["__typename"] == expected, started
        waiting = (await self.gql(HOW_I_AM_REACHED, token=staff))["viewer"]["smsNumberWaiting"]
        assert waiting is not None, "a number waits for its code"
        for code in (someone.digits[:6], someone.email):
            verified = (await self.gql(VERIFY_SMS_NUMBER, {"code": code}, staff))["verifySmsNumber"]
            assert verified["__typename"] == "InputInvalidError", verified
        for event, channels, expected in (
            ("NEW_CONTACT", ["EMAIL"], "MyMessageChannelsChanged"),
            ("NEW_CONTACT", None, "MyMessageChannelsChanged"),
            (someone.text, ["SMS"], "InputInvalidError"),
        ):
            chosen = await self.gql(MY_MESSAGE_CHANNELS, {"event": event, "channels": channels}, staff)
            assert chosen["setMyMessageChannels"]["__typename"] == expected, chosen
        removed = (await self.gql(REMOVE_SMS_NUMBER, token=staff))["removeSmsNumber"]
        assert removed == {"smsNumber": None}, removed

    async def _customers_pages(self) -> None:
        token, person = self.main_token, self.main
        referer = {"Referer": f"{self.url}/my/{token}"}
        page = await self.get(f"/my/{token}", headers=referer)
        assert person.name in page.text and person.email in page.text, "the page shows what is stored"
        self._secret("CSRF token of the delete form", _CSRF.search(page.text).group(1))
        await self.get(f"/my/{token}?lang=en")
        head = await self.http.head(f"/my/{token}")
        assert head.status_code == 200, head.status_code
        export = await self.get(f"/my/{token}/export.json")
        assert person.email in export.text
        self.answers["export.json"] = export.text  # for the scan's positive control
        await self.get(f"/my/{token}/{person.tag}", 404)
        # The delete form with a wrong CSRF token, and from another site: refused, nothing erased.
        await self.post(f"/my/{token}/delete", 403, data={"csrf": "0" * 64, "lang": "fi"})
        await self.post(f"/my/{token}/delete", 403, data={"csrf": person.tag}, headers={"Sec-Fetch-Site": "cross-site"})
        # The signed media link, and the same with its signature or expiry tampered with.
        media_url = next(value for label, value in self.secrets if label == "signed media link")
        assert (await self.http.get(media_url)).status_code == 200
        parts = urlsplit(media_url)
        query = parse_qs(parts.query)
        signature = query["signature"][0]
        forged = parts._replace(query=parts.query.replace(signature, signature[::-1])).geturl()
        assert (await self.http.get(forged)).status_code == 404
        expired = parts._replace(query=parts.query.replace(f"expires={query['expires'][0]}", "expires=1")).geturl()
        assert (await self.http.get(expired)).status_code == 404
        # The phone page and its upload form.
        phone_link = next(value for label, value in self.secrets if label == "phone link")
        path = urlsplit(phone_link).path
        phone_page = await self.get(path, headers={"Accept-Language": "en"})
        csrf = self._secret("CSRF token of the phone page", _CSRF.search(phone_page.text).group(1))
        await self.get(f"{path}?lang=sv&added=1")
        photo = {"file": (person.photo_name, _photo(person), "image/jpeg")}
        added = await self.post(f"{path}/upload", 303, data={"csrf": csrf, "field": "roof_photos"}, files=photo)
        assert added.headers["location"].endswith("added=1"), added.headers
        await self.post(f"{path}/upload", 403, data={"csrf": "0" * 64, "field": "roof_photos"}, files=photo)
        bomb = {"file": (f"{person.email}.png", images.png_bomb(), "image/png")}
        await self.post(f"{path}/upload", 400, data={"csrf": csrf, "field": "roof_photos"}, files=bomb)
        await self.post(f"{path}/upload", 400, data={"csrf": csrf, "field": f"x_{person.tag}"}, files=photo)
        await self.post(f"{path}/upload", 400, data={"csrf": csrf, "field": "roof_photos"})
        await self.post(  # a broken multipart body
            f"{path}/upload",
            (400, 403),
            content=b"--x\r\n" + person.text.encode(),
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )

    async def _erasures(self) -> None:
        # By the customer's own page: the link, the button.
        token, _ = await self._start(self.by_page, locale="sv")
        page = await self.get(f"/my/{token}")
        csrf = self._secret("CSRF token of the delete form", _CSRF.search(page.text).group(1))
        receipt = await self.post(f"/my/{token}/delete", 200, data={"csrf": csrf, "lang": "sv"})
        assert self.by_page.name not in receipt.text
        await self.get(f"/my/{token}", 404)
        await self.get(f"/my/{token}/export.json", 404)
        await self.post(f"/my/{token}/delete", 404, data={"csrf": csrf})
        # By deleteMyData; by the staff's deleteContact; each twice (the second is "not found" or the
        # same receipt), and the erased tokens are then worthless.
        token, _ = await self._start(self.by_self, locale="en")
        first = (await self.gql(DELETE_MY_DATA, token=token))["deleteMyData"]
        assert first["__typename"] == "ErasureReceipt", first
        assert (await self.gql(DELETE_MY_DATA, token=token))["deleteMyData"]["__typename"] == "AuthError"
        assert (await self.gql(ME, {}, token))["me"] is None
        token, contact_id = await self._start(self.by_staff)
        for _ in range(2):
            erased = (await self.gql(DELETE_CONTACT, {"id": contact_id}, self.staff_token))["deleteContact"]
            assert erased["__typename"] == "ErasureReceipt", erased
        saved = (await self.gql(SAVE, {"key": "name", "value": self.by_staff.name}, token))["saveField"]
        assert saved["__typename"] == "AuthError", saved
        notifications = (await self.gql(NOTIFICATIONS, token=self.staff_token))["notifications"]["edges"]
        assert notifications, "staff notifications read (deleted) now"

    async def _forged_and_wrong(self) -> None:
        person = self.main
        forged_contact = self._secret("forged contact token", "rpc_" + secrets.token_urlsafe(32))
        forged_staff = self._secret("forged staff token", "rps_" + secrets.token_urlsafe(32))
        for path in (f"/my/{forged_contact}", f"/my/{forged_contact}/export.json", f"/continue/{forged_contact}"):
            await self.get(path, 404)
        await self.post(f"/my/{forged_contact}/delete", 404, data={"csrf": "0" * 64})
        await self.post(
            f"/continue/{forged_contact}/upload",
            404,
            data={"csrf": "0" * 64},
            files={"file": ("a.jpg", b"x", "image/jpeg")},
        )
        assert (await self.gql(ME, {}, forged_contact))["me"] is None
        assert (await self.gql(SAVE, {"key": "name", "value": person.name}, forged_contact))["saveField"][
            "__typename"
        ] == ("AuthError")
        assert (await self.gql(VIEWER, token=forged_staff))["viewer"] is None
        assert (await self.gql(VIEWER, token=self.main_token))["viewer"] is None  # a contact's token is no staff's
        # A contact's token is no staff's: refused (as a top-level error), and the same for the others.
        for query, variables, token in (
            (DELETE_CONTACT, {"id": self.main_id}, self.main_token),
            (CONTACTS, {"search": person.email}, forged_staff),
            (REQUEST_PHOTO, {"id": self.main_id, "channel": "SMS"}, self.main_token),
            (CHAT_MESSAGES, {"id": self.main_id}, None),
            (MARK_NOTIFICATIONS, {"ids": [self.main_id]}, forged_contact),
        ):
            await self.raw(json.dumps({"query": query, "variables": variables}), token=token)
        # Bodies and documents that are wrong, each quoting a customer's data.
        assert await self.raw(f'{{"query": "{person.email}'.encode()) == 400
        await self.raw(json.dumps([person.email, person.phone]))
        await self.raw(json.dumps({"query": f"query {{ form(tenant: {person.name!r}) {{ locale }} }}"}))
        await self.raw(json.dumps({"query": f"query {{ me {{ nope_{person.tag} }} }}"}), token=self.main_token)
        await self.raw(
            json.dumps(
                {
                    "query": "query Q($first: Int) { contacts(first: $first) { __typename } }",
                    "variables": {"first": person.email},
                }
            ),
            token=self.staff_token,
        )
        await self.raw(
            json.dumps({"query": SAVE, "variables": {"key": person.tag, "value": {"a": [person.phone] * 3}}})
        )
        await self.raw(f"query={person.email}", "application/x-www-form-urlencoded")
        await self.raw(person.text.encode(), "text/plain", token=forged_contact)
        too_big = json.dumps({"query": SAVE, "variables": {"key": "name", "value": person.name * 80_000}})
        with contextlib.suppress(httpx.TransportError):  # the server may close before it is all sent
            assert await self.raw(too_big, token=self.main_token) == 413
        started = await self.raw(json.dumps({"query": START, "variables": {"tenant": person.email}}))
        assert started == 200

    async def _websockets_gone_wrong(self) -> None:
        person = self.main
        ws_url = self.url.replace("http://", "ws://") + "/graphql"
        forged = next(value for label, value in self.secrets if label == "forged contact token")
        exchanges = [
            [
                {"type": "connection_init", "payload": {"authorization": f"Bearer {forged}"}},
                {"id": "1", "type": "subscribe", "payload": {"query": MY_EVENTS}},
            ],
            [
                {"type": "connection_init", "payload": {"authorization": f"Bearer {self.main_token}"}},
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": f"subscription {{ myEvents {{ nope_{person.tag} }} }}"},
                },
                {"id": "2", "type": "subscribe", "payload": {"query": CONTACT_EVENTS}},
                {
                    "id": "3",
                    "type": "subscribe",
                    "payload": {"query": SAVE, "variables": {"key": "name", "value": person.name}},
                },
            ],
            [{"type": "connection_init", "payload": {"authorization": person.email}}],
            [{"type": "subscribe", "id": person.tag, "payload": {"query": MY_EVENTS}}],
            [{"type": "connection_init", "payload": {}}, {"type": f"bogus-{person.tag}", "value": person.phone}],
        ]
        for messages in exchanges:
            await _exchange(ws_url, messages, subprotocols=["graphql-transport-ws"])
        await _exchange(ws_url, [person.text], subprotocols=["graphql-transport-ws"])  # not JSON at all
        await _exchange(ws_url, [{"type": "connection_init"}], subprotocols=[f"graphql-ws-{person.tag}"])
        await _exchange(self.url.replace("http://", "ws://") + f"/my/{self.main_token}", [person.email])

    async def _raw_http(self) -> None:
        """Requests that are not HTTP, or barely: uvicorn's own complaints must not quote them."""
        parts = urlsplit(self.url)
        person = self.main
        for request in (
            f"GET /my/{self.main_token} HTTP/1.1\r\nHost: x\r\nX-Mail {person.email}\r\n\r\n",
            f"GET /continue/{self.main_token}?{person.tag} HTTP/9.9\r\n\r\n",
            f"{person.tag} /my/{self.main_token} HTTP/1.1\r\nHost: x\r\n\r\n",
            f"POST /my/{self.main_token}/delete HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\ncsrf={person.tag}",
        ):
            await _raw(parts.hostname or "127.0.0.1", parts.port or 80, request.encode())

    async def _company_page(self) -> None:
        """The demo's second listener: the sample company page (and what it does with anything else)."""
        assert self.site_url is not None
        async with httpx.AsyncClient(
            base_url=self.site_url, timeout=30, headers={"Referer": f"{self.url}/my/{self.main_token}"}
        ) as site:
            page = await site.get("/")
            assert page.status_code == 200 and "rapidly-form" in page.text, page.status_code
            assert (await site.get("/site.css")).status_code == 200
            assert (await site.get("/favicon.ico")).status_code == 204
            assert (await site.get(f"/my/{self.main_token}")).status_code == 404
            assert (await site.get(f"/?token={self.main_token}&email={self.main.email}")).status_code == 200
            assert (await site.post(f"/continue/{self.main_token}", content=self.main.text.encode())).status_code == 404
            assert (await site.head("/")).status_code == 200
        site_parts = urlsplit(self.site_url)
        await _exchange(f"ws://{site_parts.netloc}/my/{self.main_token}", [self.main.email])
        await _raw(
            site_parts.hostname or "127.0.0.1",
            site_parts.port or 80,
            f"GET /my/{self.main_token} HTTP/7\r\n\r\n".encode(),
        )

    async def _staff_signs_out(self) -> None:
        second = (await self.gql(LOGIN, {"email": self.staff_email, "password": self.staff_password}))["login"]
        token = self._secret("staff token", second["token"])
        assert (await self.gql(LOGOUT, token=token))["logout"] is True
        assert (await self.gql(VIEWER, token=token))["viewer"] is None
        again = await self.http.post("/graphql", json={"query": LOGOUT}, headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 200, again.status_code

    async def _operations_pages(self) -> None:
        assert (await self.http.get("/metrics")).status_code in (401, 404)
        wrong = await self.http.get("/metrics", headers={"Authorization": f"Bearer {self.main_token}"})
        assert wrong.status_code in (401, 404)
        if self.metrics_token:
            scraped = await self.get("/metrics", headers={"Authorization": f"Bearer {self.metrics_token}"})
            self.answers["/metrics"] = scraped.text
        await self.get("/readyz")


async def _exchange(url: str, messages: list[object], subprotocols: list[str] | None = None) -> None:
    """Connect, send `messages` (JSON unless text), and read whatever comes for a moment; whatever the
    server does (close, error, refuse the handshake) is fine: what it logs is the point."""
    with contextlib.suppress(Exception):
        async with websockets.connect(url, subprotocols=subprotocols, open_timeout=5, close_timeout=2) as ws:  # type: ignore[arg-type]
            for message in messages:
                await ws.send(message if isinstance(message, str) else json.dumps(message))
            with contextlib.suppress(Exception):
                async with asyncio.timeout(0.5):
                    async for _ in ws:
                        pass


async def _raw(host: str, port: int, request: bytes) -> None:
    """Send bytes on a TCP connection and read the answer, if any."""
    with contextlib.suppress(OSError, TimeoutError):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            await writer.drain()
            async with asyncio.timeout(2):
                await reader.read(65536)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
