"""The core's defaults, registered as the internal plugin "rapidly.defaults".

Its hook implementations run last (`trylast=True`), so a tenant plugin's answer wins and the defaults answer
whenever the tenant plugin returns None: a minimal contact form and wording for every event, channel and
supported locale. Messages to staff carry no personal data (a sent message cannot be erased).
"""

from __future__ import annotations

from rapidly import hookimpl
from rapidly.plugins.types import (
    Channel,
    FieldKind,
    FieldRole,
    FieldSpec,
    MessageEvent,
    MessageTemplate,
    TenantInfo,
)

#: Name under which this module is registered; not a tenant plugin and never listed as one.
PLUGIN_NAME = "rapidly.defaults"


DEFAULT_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        key="name",
        kind=FieldKind.TEXT,
        role=FieldRole.NAME,
        required=True,
        labels={"fi": "Nimi", "sv": "Namn", "en": "Name"},
        purpose={
            "fi": "Jotta tiedämme, kenen yhteydenotosta on kyse ja miten voimme puhutella sinua.",
            "sv": "Så att vi vet vem ärendet gäller och hur vi ska tilltala dig.",
            "en": "So we know whose enquiry this is and how to address you.",
        },
    ),
    FieldSpec(
        key="email",
        kind=FieldKind.EMAIL,
        role=FieldRole.EMAIL,
        labels={"fi": "Sähköposti", "sv": "E-post", "en": "Email"},
        purpose={
            "fi": "Jotta voimme vastata sinulle ja lähettää linkin, josta näet ja voit poistaa tietosi.",
            "sv": "Så att vi kan svara dig och skicka en länk där du kan se och radera dina uppgifter.",
            "en": "So we can reply to you and send you a link where you can see and delete your data.",
        },
    ),
    FieldSpec(
        key="phone",
        kind=FieldKind.PHONE,
        role=FieldRole.PHONE,
        labels={"fi": "Puhelinnumero", "sv": "Telefonnummer", "en": "Phone number"},
        purpose={
            "fi": "Jotta voimme soittaa tai lähettää tekstiviestin yhteydenottoosi liittyen.",
            "sv": "Så att vi kan ringa eller sms:a dig om ditt ärende.",
            "en": "So we can call or text you about your enquiry.",
        },
    ),
)


_HELLO = {
    "fi": "Hei{% if contact_name %} {{ contact_name }}{% endif %},",
    "sv": "Hej{% if contact_name %} {{ contact_name }}{% endif %},",
    "en": "Hello{% if contact_name %} {{ contact_name }}{% endif %},",
}
_REGARDS = {
    "fi": "Ystävällisin terveisin\n{{ tenant_name }}",
    "sv": "Med vänliga hälsningar\n{{ tenant_name }}",
    "en": "Kind regards\n{{ tenant_name }}",
}


def _to_end_user(locale: str, text: str) -> str:
    return f"{_HELLO[locale]}\n\n{text}\n\n{{{{ link }}}}\n\n{_REGARDS[locale]}\n"


def _to_staff(text: str) -> str:
    return f"{text}\n\n{{{{ link }}}}\n"


# event -> locale -> (email subject, email text, sms body)
_WORDING: dict[MessageEvent, dict[str, tuple[str, str, str]]] = {
    MessageEvent.CONTINUE_LINK: {
        "fi": (
            "Jatka yhteydenottoasi – {{ tenant_name }}",
            "voit jatkaa yhteydenottoasi yritykselle {{ tenant_name }} toisella laitteella, esimerkiksi"
            " puhelimella, ja lisätä kuvia. Jo antamasi tiedot ovat tallessa.\n\n"
            "Jos et pyytänyt tätä linkkiä, voit jättää viestin huomiotta.",
            "{{ tenant_name }}: jatka yhteydenottoasi ja lisää kuvia: {{ link }}",
        ),
        "sv": (
            "Fortsätt ditt ärende – {{ tenant_name }}",
            "du kan fortsätta ditt ärende hos {{ tenant_name }} på en annan enhet, till exempel mobilen,"
            " och lägga till bilder. Det du redan har fyllt i finns kvar.\n\n"
            "Om du inte bad om den här länken kan du bortse från meddelandet.",
            "{{ tenant_name }}: fortsätt ditt ärende och lägg till bilder: {{ link }}",
        ),
        "en": (
            "Continue your enquiry – {{ tenant_name }}",
            "you can continue your enquiry to {{ tenant_name }} on another device, such as your phone,"
            " and add photos. Everything you have entered so far is saved.\n\n"
            "If you did not ask for this link, you can ignore this message.",
            "{{ tenant_name }}: continue your enquiry and add photos: {{ link }}",
        ),
    },
    MessageEvent.SELF_SERVICE_LINK: {
        "fi": (
            "Tietosi – {{ tenant_name }}",
            "tästä linkistä näet kaikki tiedot, jotka olet antanut yritykselle {{ tenant_name }},"
            " ja voit poistaa ne kahdella klikkauksella.",
            "{{ tenant_name }}: näe tai poista antamasi tiedot: {{ link }}",
        ),
        "sv": (
            "Dina uppgifter – {{ tenant_name }}",
            "via den här länken ser du alla uppgifter du har lämnat till {{ tenant_name }}"
            " och kan radera dem med två klick.",
            "{{ tenant_name }}: se eller radera dina uppgifter: {{ link }}",
        ),
        "en": (
            "Your data – {{ tenant_name }}",
            "this link shows everything you have given to {{ tenant_name }} and lets you delete it all in two clicks.",
            "{{ tenant_name }}: see or delete your data: {{ link }}",
        ),
    },
    MessageEvent.PHOTO_REQUEST: {
        "fi": (
            "{{ tenant_name }} pyytää kuvia",
            "{% if staff_name %}{{ staff_name }} ({{ tenant_name }}){% else %}{{ tenant_name }}{% endif %}"
            " pyytää sinulta kuvia yhteydenottoosi liittyen. Voit lisätä ne puhelimellasi tästä linkistä:",
            "{{ tenant_name }} pyytää kuvia. Lisää ne tästä: {{ link }}",
        ),
        "sv": (
            "{{ tenant_name }} ber om bilder",
            "{% if staff_name %}{{ staff_name }} på {% endif %}{{ tenant_name }} ber dig skicka bilder"
            " till ditt ärende. Du kan lägga till dem med mobilen via länken:",
            "{{ tenant_name }} ber om bilder. Lägg till dem här: {{ link }}",
        ),
        "en": (
            "{{ tenant_name }} asks for photos",
            "{% if staff_name %}{{ staff_name }} at {% endif %}{{ tenant_name }} would like some photos"
            " for your enquiry. You can add them from your phone here:",
            "{{ tenant_name }} asks for photos. Add them here: {{ link }}",
        ),
    },
    MessageEvent.CHAT_REPLY: {
        "fi": (
            "Uusi viesti – {{ tenant_name }}",
            "{% if staff_name %}{{ staff_name }} ({{ tenant_name }}){% else %}{{ tenant_name }}{% endif %}"
            " on vastannut viestiisi. Lue vastaus ja jatka keskustelua:",
            "{{ tenant_name }} vastasi viestiisi: {{ link }}",
        ),
        "sv": (
            "Nytt meddelande – {{ tenant_name }}",
            "{% if staff_name %}{{ staff_name }} på {% endif %}{{ tenant_name }} har svarat på ditt"
            " meddelande. Läs svaret och fortsätt samtalet:",
            "{{ tenant_name }} har svarat på ditt meddelande: {{ link }}",
        ),
        "en": (
            "New message – {{ tenant_name }}",
            "{% if staff_name %}{{ staff_name }} at {% endif %}{{ tenant_name }} has replied to your"
            " message. Read the reply and continue the conversation:",
            "{{ tenant_name }} replied to your message: {{ link }}",
        ),
    },
    MessageEvent.NEW_CONTACT: {
        "fi": (
            "Uusi yhteydenotto – {{ tenant_name }}",
            "Uusi yhteydenotto on saapunut. Avaa se tästä:",
            "Uusi yhteydenotto ({{ tenant_name }}): {{ link }}",
        ),
        "sv": (
            "Nytt ärende – {{ tenant_name }}",
            "Ett nytt ärende har kommit in. Öppna det här:",
            "Nytt ärende ({{ tenant_name }}): {{ link }}",
        ),
        "en": (
            "New contact – {{ tenant_name }}",
            "A new contact has arrived. Open it here:",
            "New contact ({{ tenant_name }}): {{ link }}",
        ),
    },
    MessageEvent.MEDIA_ADDED: {
        "fi": (
            "Uusia kuvia – {{ tenant_name }}",
            "Yhteydenottoon on lisätty kuvia. Katso ne tästä:",
            "Uusia kuvia yhteydenotossa ({{ tenant_name }}): {{ link }}",
        ),
        "sv": (
            "Nya bilder – {{ tenant_name }}",
            "Bilder har lagts till i ett ärende. Se dem här:",
            "Nya bilder i ett ärende ({{ tenant_name }}): {{ link }}",
        ),
        "en": (
            "New photos – {{ tenant_name }}",
            "Photos have been added to a contact. See them here:",
            "New photos on a contact ({{ tenant_name }}): {{ link }}",
        ),
    },
    MessageEvent.CHAT_MESSAGE: {
        "fi": (
            "Uusi viesti asiakkaalta – {{ tenant_name }}",
            "Asiakas on lähettänyt viestin. Lue ja vastaa tästä:",
            "Uusi viesti asiakkaalta ({{ tenant_name }}): {{ link }}",
        ),
        "sv": (
            "Nytt meddelande från en kund – {{ tenant_name }}",
            "En kund har skickat ett meddelande. Läs och svara här:",
            "Nytt meddelande från en kund ({{ tenant_name }}): {{ link }}",
        ),
        "en": (
            "New message from a customer – {{ tenant_name }}",
            "A customer has sent a message. Read and reply here:",
            "New message from a customer ({{ tenant_name }}): {{ link }}",
        ),
    },
    MessageEvent.STAFF_INVITATION: {
        "fi": (
            "Kutsu: {{ tenant_name }} Rapidlyssä",
            "{{ tenant_name }} kutsuu sinut henkilökuntaansa Rapidlyn konsoliin, jossa näet asiakkaiden"
            " yhteydenotot. Aseta salasanasi tästä linkistä. Linkki toimii kerran ja vanhenee 72 tunnissa;"
            " jos et odottanut kutsua, voit jättää viestin huomiotta.",
            "{{ tenant_name }} kutsuu sinut Rapidlyyn: {{ link }}",
        ),
        "sv": (
            "Inbjudan: {{ tenant_name }} i Rapidly",
            "{{ tenant_name }} bjuder in dig till sin personal i Rapidlys konsol, där du ser kundernas ärenden."
            " Välj ditt lösenord via länken. Länken fungerar en gång och går ut om 72 timmar; om du inte"
            " väntade dig inbjudan kan du bortse från meddelandet.",
            "{{ tenant_name }} bjuder in dig till Rapidly: {{ link }}",
        ),
        "en": (
            "Invitation: {{ tenant_name }} on Rapidly",
            "{{ tenant_name }} invites you to join its staff in the Rapidly console, where you see its"
            " customers' enquiries. Choose your password with this link. It works once and expires in 72"
            " hours; if you did not expect this invitation, you can ignore this message.",
            "{{ tenant_name }} invites you to Rapidly: {{ link }}",
        ),
    },
}


def _build_templates() -> dict[tuple[MessageEvent, Channel, str], MessageTemplate]:
    templates: dict[tuple[MessageEvent, Channel, str], MessageTemplate] = {}
    for event, by_locale in _WORDING.items():
        for locale, (subject, text, sms) in by_locale.items():
            body = _to_staff(text) if event.to_staff else _to_end_user(locale, text)
            templates[(event, Channel.EMAIL, locale)] = MessageTemplate(subject=subject, body=body)
            templates[(event, Channel.SMS, locale)] = MessageTemplate(subject=None, body=sms)
    return templates


#: Every default template, keyed by (event, channel, locale).
DEFAULT_TEMPLATES: dict[tuple[MessageEvent, Channel, str], MessageTemplate] = _build_templates()


@hookimpl(trylast=True)
def contact_fields(tenant: TenantInfo) -> list[FieldSpec]:
    """The core's minimal form: name, email and phone."""
    return list(DEFAULT_FIELDS)


@hookimpl(trylast=True)
def message_template(tenant: TenantInfo, event: str, channel: str, locale: str) -> MessageTemplate | None:
    """The core's wording; None only for an event, channel or locale the core does not know."""
    ev, ch = MessageEvent.coerce(event), Channel.coerce(channel)
    if ev is None or ch is None:
        return None
    return DEFAULT_TEMPLATES.get((ev, ch, locale))
