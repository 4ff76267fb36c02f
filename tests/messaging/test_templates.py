"""Wording: every event x channel x locale carries the core's self-service link (and, in HTML email,
its delete button); no template, however hostile, can remove, hide or redirect it."""

from __future__ import annotations

import itertools
import uuid

import pytest

from rapidly import hookimpl
from rapidly.messaging.templates import BUTTON, RenderError, compose, render
from rapidly.plugins import (
    SUPPORTED_LOCALES,
    Channel,
    MessageEvent,
    MessageTemplate,
    PluginError,
    PluginRegistry,
    TenantInfo,
    template_context,
)

LINK = "https://rapidly.example/continue/rpc_CONTINUE"
MY = "https://rapidly.example/my/rpc_SELFSERVICE"


def tenant(plugin: str = "") -> TenantInfo:
    return TenantInfo(id=uuid.uuid4(), slug="kattohuolto", name="Kattohuolto <Oy>", plugin=plugin)


def composed(registry: PluginRegistry, info: TenantInfo, event: MessageEvent, channel: Channel, locale: str):  # type: ignore[no-untyped-def]
    template = registry.message_template(info, event, channel, locale)
    context = template_context(event, tenant_name=info.name, link=LINK, contact_name="Maija")
    return compose(
        template,
        event=event,
        channel=channel,
        locale=locale,
        context=context,
        self_service_link=None if event.to_staff else MY,
    )


@pytest.mark.parametrize(
    ("event", "channel", "locale"), list(itertools.product(MessageEvent, Channel, SUPPORTED_LOCALES))
)
def test_every_default_message_carries_what_it_must(event, channel, locale):
    # given
    registry = PluginRegistry(load_entrypoints=False)

    # when
    message = composed(registry, tenant(), event, channel, locale)

    # then
    assert LINK in message.text
    if event.to_staff:
        assert MY not in message.text and "Maija" not in message.text
        return
    assert message.text.rstrip().endswith(MY)
    if channel == Channel.EMAIL:
        assert message.subject and "\n" not in message.subject
        assert f'<a href="{MY}"' in message.html and f"{BUTTON[locale]}</a>" in message.html
        assert "Kattohuolto &lt;Oy&gt;" in message.html  # the template's text is escaped
    else:
        assert message.html is None and len(message.text) < 700


class Hostile:
    """A tenant plugin that tries to get rid of the core's link in every way a template can."""

    def __init__(self, body: str) -> None:
        self.body = body

    @hookimpl
    def message_template(self, tenant, event, channel, locale):  # type: ignore[no-untyped-def]
        subject = None if channel == "sms" else "Hello"
        return MessageTemplate(subject=subject, body=self.body)


@pytest.mark.parametrize(
    "body",
    [
        "{% if false %}nothing{% endif %}.",  # renders to almost nothing
        "Hi <!-- everything after this is a comment",
        '<div style="display:none">',
        "<style>a{display:none}</style><a href='{{ link }}'>click</a>",
        "{{ link }}\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n",
    ],
    ids=["empty", "html-comment", "display-none", "css", "push-down"],
)
@pytest.mark.parametrize("channel", list(Channel))
def test_a_hostile_template_cannot_remove_or_hide_the_link(body, channel):
    # given
    registry = PluginRegistry(load_entrypoints=False)
    registry.register(Hostile(body), "hostile")

    # when
    message = composed(registry, tenant("hostile"), MessageEvent.CONTINUE_LINK, channel, "en")

    # then
    assert message.text.rstrip().endswith(MY)
    if channel == Channel.EMAIL:
        html = message.html
        assert "<!--" not in html and "<div" not in html and "<style" not in html
        assert html.count(f'href="{MY}"') == 2 and "Delete all my data</a>" in html
        assert html.index("Delete all my data") > html.index("&lt;") if "<" in body else True


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Delete your data here: https://rapidly-example.eu/my/x", "links must come from"),
        ("Go to www.example.com", "links must come from"),
        ("{% for c in tenant_name %}{% for d in tenant_name %}x{% endfor %}{% endfor %}", "For is not allowed"),
        ("{{ tenant_name|center(100000000) }}", "filter 'center' is not allowed"),
        ("{% macro m() %}x{% endmacro %}", "Macro is not allowed"),
        ("{{ tenant_name.__class__ }}", "Getattr is not allowed"),
        ("{{ secret }}", "unknown variable"),
    ],
)
def test_templates_that_could_hide_mislead_or_hang_are_refused_when_loaded(body, problem):
    # given
    registry = PluginRegistry(load_entrypoints=False)
    registry.register(Hostile(body), "hostile")

    # when
    with pytest.raises(PluginError) as refused:
        registry.message_template(tenant("hostile"), MessageEvent.CONTINUE_LINK, Channel.SMS, "en")

    # then
    assert problem in str(refused.value)


def test_rendering_is_capped_in_size():
    # when / then
    with pytest.raises(RenderError):
        render(
            "{{ tenant_name }}" * 100, {"tenant_name": "x" * 200, "contact_name": "", "link": "", "staff_name": ""}, 600
        )


def test_an_end_user_message_without_the_self_service_link_is_refused():
    # given
    template = MessageTemplate(subject=None, body="{{ link }}")
    context = template_context(MessageEvent.CONTINUE_LINK, tenant_name="T", link=LINK)

    # when / then
    with pytest.raises(ValueError, match="self-service link"):
        compose(
            template,
            event=MessageEvent.CONTINUE_LINK,
            channel=Channel.SMS,
            locale="fi",
            context=context,
            self_service_link=None,
        )


@pytest.mark.parametrize(
    "body",
    [
        'http{{""}}s{{""}}:{{""}}/{{""}}/evil.example/my/x',
        'https{{":"}}{{"/"}}/evil.example',
        "{% if 1 %}ht{% endif %}tps://evil.example",
        "Delete here: https：／／evil.example",  # full-width look-alikes
        "Delete here: evil.example/my/abc",
    ],
    ids=["split-by-expressions", "split-by-constants", "split-by-if", "full-width", "bare-domain"],
)
def test_a_link_assembled_at_render_time_is_caught(body):
    # given: each passes the load-time check, which sees the pieces only
    template = MessageTemplate(subject=None, body=body)
    context = template_context(MessageEvent.CONTINUE_LINK, tenant_name="T", link=LINK)

    # when / then
    with pytest.raises(RenderError, match="link of its own"):
        compose(
            template,
            event=MessageEvent.CONTINUE_LINK,
            channel=Channel.SMS,
            locale="en",
            context=context,
            self_service_link=MY,
        )


def test_runs_of_empty_lines_cannot_push_the_link_out_of_sight():
    # given
    template = MessageTemplate(subject="Hi", body="x" + "\n" * 500 + "y")
    context = template_context(MessageEvent.CONTINUE_LINK, tenant_name="T", link=LINK)

    # when
    message = compose(
        template,
        event=MessageEvent.CONTINUE_LINK,
        channel=Channel.EMAIL,
        locale="en",
        context=context,
        self_service_link=MY,
    )

    # then
    assert message.text.startswith("x\n\ny\n") and len(message.text.splitlines()) < 10
    with pytest.raises(RenderError, match="too many lines"):
        compose(
            MessageTemplate(subject="Hi", body="x\n." * 2000),
            event=MessageEvent.CONTINUE_LINK,
            channel=Channel.EMAIL,
            locale="en",
            context=context,
            self_service_link=MY,
        )
