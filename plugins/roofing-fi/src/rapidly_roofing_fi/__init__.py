"""Example tenant plugin: a Finnish roofing company (Kattohuolto-style), in Finnish and English.

Installed under the entry-point group `rapidly` as `roofing_fi`. A Swedish-speaking visitor sees the English
labels (the core falls back) and gets the core's Swedish message wording.
"""

from __future__ import annotations

from rapidly import hookimpl
from rapidly.plugins import FieldKind, FieldLimits, FieldRole, FieldSpec, MessageTemplate, TenantInfo

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        key="name",
        kind=FieldKind.TEXT,
        role=FieldRole.NAME,
        required=True,
        labels={"fi": "Nimi", "en": "Name"},
        purpose={
            "fi": "Jotta tiedämme, kenen katosta on kyse ja kenelle vastaamme.",
            "en": "So we know whose roof this is and whom to answer.",
        },
    ),
    FieldSpec(
        key="phone",
        kind=FieldKind.PHONE,
        role=FieldRole.PHONE,
        required=True,
        labels={"fi": "Puhelinnumero", "en": "Phone number"},
        purpose={
            "fi": "Soitamme sinulle sopiaksemme katon tarkastuksesta.",
            "en": "We call you to arrange an inspection of the roof.",
        },
    ),
    FieldSpec(
        key="email",
        kind=FieldKind.EMAIL,
        role=FieldRole.EMAIL,
        labels={"fi": "Sähköposti", "en": "Email"},
        purpose={
            "fi": "Lähetämme tarjouksen ja linkin, josta näet ja voit poistaa tietosi.",
            "en": "We send you our quote and a link where you can see and delete your data.",
        },
    ),
    FieldSpec(
        key="street_address",
        kind=FieldKind.TEXT,
        required=True,
        limits=FieldLimits(max_length=200),
        labels={"fi": "Kohteen osoite", "en": "Address of the property"},
        help={
            "fi": "Katuosoite, postinumero ja paikkakunta.",
            "en": "Street address, postcode and town.",
        },
        purpose={
            "fi": "Jotta löydämme kohteen ja voimme arvioida matkan ja aikataulun.",
            "en": "So we can find the property and plan the visit.",
        },
    ),
    FieldSpec(
        key="damage_description",
        kind=FieldKind.LONG_TEXT,
        required=True,
        limits=FieldLimits(max_length=4000),
        labels={"fi": "Vaurion kuvaus", "en": "Description of the damage"},
        help={
            "fi": "Mitä on tapahtunut, missä kohtaa kattoa ja milloin huomasit vaurion? Vuotaako sisälle?",
            "en": "What happened, where on the roof, and when did you notice it? Is water coming in?",
        },
        purpose={
            "fi": "Jotta voimme arvioida korjauksen kiireellisyyden ja laajuuden ennen käyntiä.",
            "en": "So we can judge how urgent and how large the repair is before we visit.",
        },
    ),
    FieldSpec(
        key="roof_photos",
        kind=FieldKind.IMAGE,
        limits=FieldLimits(max_files=10),
        labels={"fi": "Kuvat katosta", "en": "Photos of the roof"},
        help={
            "fi": "Kuvaa turvallisesti maasta tai ikkunasta – älä nouse katolle.",
            "en": "Take them safely from the ground or a window – do not climb onto the roof.",
        },
        purpose={
            "fi": "Kuvista näemme vaurion ja voimme antaa alustavan arvion jo ennen käyntiä.",
            "en": "Photos show us the damage, so we can give a first estimate before visiting.",
        },
    ),
)

_HELLO_FI = "Hei{% if contact_name %} {{ contact_name }}{% endif %},"
_HELLO_EN = "Hello{% if contact_name %} {{ contact_name }}{% endif %},"

#: Our own wording, keyed by (event, channel, locale); everything else is the core's default wording.
TEMPLATES: dict[tuple[str, str, str], MessageTemplate] = {
    ("continue_link", "email", "fi"): MessageTemplate(
        subject="Lisää kuvat katosta – {{ tenant_name }}",
        body=(
            f"{_HELLO_FI}\n\n"
            "avaa tämä linkki puhelimellasi ja lisää kuvat vauriosta. Antamasi tiedot ovat jo tallessa.\n\n"
            "{{ link }}\n\n"
            "Älä nouse katolle kuvaamaan: kuvat maasta tai ikkunasta riittävät.\n\n"
            "Terveisin\n{{ tenant_name }}\n"
        ),
    ),
    ("continue_link", "sms", "fi"): MessageTemplate(
        subject=None, body="{{ tenant_name }}: lisää kuvat katosta puhelimellasi: {{ link }}"
    ),
    ("continue_link", "email", "en"): MessageTemplate(
        subject="Add photos of your roof – {{ tenant_name }}",
        body=(
            f"{_HELLO_EN}\n\n"
            "open this link on your phone and add photos of the damage. What you have entered is saved.\n\n"
            "{{ link }}\n\n"
            "Please do not climb onto the roof: photos from the ground or a window are enough.\n\n"
            "Best regards\n{{ tenant_name }}\n"
        ),
    ),
    ("continue_link", "sms", "en"): MessageTemplate(
        subject=None, body="{{ tenant_name }}: add photos of your roof from your phone: {{ link }}"
    ),
    ("new_contact", "email", "fi"): MessageTemplate(
        subject="Uusi kattovaurioilmoitus",
        body="Uusi ilmoitus kattovauriosta on saapunut. Avaa se ja soita asiakkaalle:\n\n{{ link }}\n",
    ),
    ("new_contact", "sms", "fi"): MessageTemplate(subject=None, body="Uusi kattovaurioilmoitus: {{ link }}"),
    ("new_contact", "email", "en"): MessageTemplate(
        subject="New roof damage report",
        body="A new roof damage report has arrived. Open it and call the customer:\n\n{{ link }}\n",
    ),
    ("new_contact", "sms", "en"): MessageTemplate(subject=None, body="New roof damage report: {{ link }}"),
}


@hookimpl
def contact_fields(tenant: TenantInfo) -> list[FieldSpec]:
    """Name, phone, email, address of the property, description of the damage and photos of the roof."""
    return list(FIELDS)


@hookimpl
def message_template(tenant: TenantInfo, event: str, channel: str, locale: str) -> MessageTemplate | None:
    """Our wording for the continue link and new-contact notices in Finnish and English; None otherwise."""
    return TEMPLATES.get((event, channel, locale))
