"""Example tenant plugin: a Swedish car repair shop, in Swedish and English.

Installed under the entry-point group `rapidly` as `carrepair_se`. A Finnish-speaking visitor sees the
Swedish labels when the tenant's default locale is "sv" (the core falls back) and gets the core's Finnish
message wording.
"""

from __future__ import annotations

from rapidly import hookimpl
from rapidly.plugins import (
    Channel,
    Choice,
    FieldKind,
    FieldLimits,
    FieldRole,
    FieldSpec,
    MessageEvent,
    MessageTemplate,
    TenantInfo,
)

SERVICE_TYPES: tuple[Choice, ...] = (
    Choice("service", {"sv": "Service", "en": "Service"}),
    Choice("repair", {"sv": "Reparation", "en": "Repair"}),
    Choice("tyres", {"sv": "Däckbyte eller däckhotell", "en": "Tyre change or tyre storage"}),
    Choice("inspection", {"sv": "Inför besiktning", "en": "Pre-inspection check"}),
    Choice("air_conditioning", {"sv": "AC-service", "en": "Air conditioning service"}),
    Choice("other", {"sv": "Annat", "en": "Something else"}),
)

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        key="name",
        kind=FieldKind.TEXT,
        role=FieldRole.NAME,
        required=True,
        labels={"sv": "Namn", "en": "Name"},
        purpose={
            "sv": "Så att vi vet vem bilen tillhör och vem vi ska kontakta.",
            "en": "So we know whose car it is and whom to contact.",
        },
    ),
    FieldSpec(
        key="phone",
        kind=FieldKind.PHONE,
        role=FieldRole.PHONE,
        required=True,
        labels={"sv": "Telefonnummer", "en": "Phone number"},
        purpose={
            "sv": "Så att vi kan ringa om vi har frågor och när bilen är klar.",
            "en": "So we can call you with questions and when the car is ready.",
        },
    ),
    FieldSpec(
        key="email",
        kind=FieldKind.EMAIL,
        role=FieldRole.EMAIL,
        labels={"sv": "E-post", "en": "Email"},
        purpose={
            "sv": "För bokningsbekräftelsen och en länk där du kan se och radera dina uppgifter.",
            "en": "For the booking confirmation and a link where you can see and delete your data.",
        },
    ),
    FieldSpec(
        key="registration_number",
        kind=FieldKind.TEXT,
        required=True,
        limits=FieldLimits(max_length=10),
        labels={"sv": "Registreringsnummer", "en": "Registration number"},
        help={"sv": "T.ex. ABC 123 eller ABC 12D.", "en": "For example ABC 123 or ABC 12D."},
        purpose={
            "sv": "Så att vi kan hämta bilens tekniska uppgifter och beställa rätt reservdelar.",
            "en": "So we can look up the car's technical data and order the right parts.",
        },
    ),
    FieldSpec(
        key="make_model",
        kind=FieldKind.TEXT,
        limits=FieldLimits(max_length=100),
        labels={"sv": "Bilmärke och modell", "en": "Make and model"},
        help={"sv": "T.ex. Volvo V70 2012.", "en": "For example Volvo V70 2012."},
        purpose={
            "sv": "Så att vi vet vilken bil det gäller och kan planera arbetet.",
            "en": "So we know which car it is and can plan the work.",
        },
    ),
    FieldSpec(
        key="service_type",
        kind=FieldKind.CHOICE,
        required=True,
        choices=SERVICE_TYPES,
        labels={"sv": "Vad gäller det?", "en": "What do you need?"},
        purpose={
            "sv": "Så att vi kan boka rätt tid och rätt mekaniker.",
            "en": "So we can book the right amount of time and the right mechanic.",
        },
    ),
    FieldSpec(
        key="problem_description",
        kind=FieldKind.LONG_TEXT,
        limits=FieldLimits(max_length=3000),
        labels={"sv": "Beskriv problemet", "en": "Describe the problem"},
        help={
            "sv": "Vad händer, när började det, hörs eller känns något särskilt?",
            "en": "What happens, when did it start, do you hear or feel anything unusual?",
        },
        purpose={
            "sv": "Så att vi kan felsöka snabbare och ge en ungefärlig kostnad.",
            "en": "So we can find the fault faster and give you a rough cost.",
        },
    ),
    FieldSpec(
        key="preferred_date",
        kind=FieldKind.DATE,
        labels={"sv": "Önskat datum", "en": "Preferred date"},
        purpose={
            "sv": "Så att vi kan föreslå en tid som passar dig.",
            "en": "So we can offer you a time that suits you.",
        },
    ),
    FieldSpec(
        key="photos",
        kind=FieldKind.IMAGE,
        limits=FieldLimits(max_files=6),
        labels={"sv": "Bilder", "en": "Photos"},
        help={
            "sv": "T.ex. varningslampor på instrumentpanelen eller skadan.",
            "en": "For example warning lights on the dashboard, or the damage.",
        },
        purpose={
            "sv": "Bilder hjälper oss att bedöma felet innan du kommer in.",
            "en": "Photos help us judge the fault before you come in.",
        },
    ),
)

_HELLO_SV = "Hej{% if contact_name %} {{ contact_name }}{% endif %},"
_HELLO_EN = "Hello{% if contact_name %} {{ contact_name }}{% endif %},"

#: Our own wording, keyed by (event, channel, locale); everything else is the core's default wording.
TEMPLATES: dict[tuple[str, str, str], MessageTemplate] = {
    (MessageEvent.CONTINUE_LINK, Channel.EMAIL, "sv"): MessageTemplate(
        subject="Skicka bilder på bilen – {{ tenant_name }}",
        body=(
            f"{_HELLO_SV}\n\n"
            "öppna länken i mobilen för att lägga till bilder, till exempel på varningslampor eller skadan."
            " Det du redan har fyllt i finns kvar.\n\n"
            "{{ link }}\n\n"
            "Hälsningar\n{{ tenant_name }}\n"
        ),
    ),
    (MessageEvent.CONTINUE_LINK, Channel.SMS, "sv"): MessageTemplate(
        subject=None, body="{{ tenant_name }}: lägg till bilder på bilen från mobilen: {{ link }}"
    ),
    (MessageEvent.CONTINUE_LINK, Channel.EMAIL, "en"): MessageTemplate(
        subject="Send photos of your car – {{ tenant_name }}",
        body=(
            f"{_HELLO_EN}\n\n"
            "open the link on your phone to add photos, for example of warning lights or the damage."
            " What you have entered so far is saved.\n\n"
            "{{ link }}\n\n"
            "Regards\n{{ tenant_name }}\n"
        ),
    ),
    (MessageEvent.CONTINUE_LINK, Channel.SMS, "en"): MessageTemplate(
        subject=None, body="{{ tenant_name }}: add photos of your car from your phone: {{ link }}"
    ),
    (MessageEvent.NEW_CONTACT, Channel.EMAIL, "sv"): MessageTemplate(
        subject="Ny verkstadsförfrågan",
        body="En ny förfrågan har kommit in. Öppna den och boka en tid:\n\n{{ link }}\n",
    ),
    (MessageEvent.NEW_CONTACT, Channel.SMS, "sv"): MessageTemplate(
        subject=None, body="Ny verkstadsförfrågan: {{ link }}"
    ),
    (MessageEvent.NEW_CONTACT, Channel.EMAIL, "en"): MessageTemplate(
        subject="New workshop request",
        body="A new request has arrived. Open it and book a time:\n\n{{ link }}\n",
    ),
    (MessageEvent.NEW_CONTACT, Channel.SMS, "en"): MessageTemplate(
        subject=None, body="New workshop request: {{ link }}"
    ),
}


@hookimpl
def contact_fields(tenant: TenantInfo) -> list[FieldSpec]:
    """Contact details, the car, what it needs, a preferred date and photos."""
    return list(FIELDS)


@hookimpl
def message_template(tenant: TenantInfo, event: str, channel: str, locale: str) -> MessageTemplate | None:
    """Our wording for the continue link and new-request notices in Swedish and English; None otherwise.

    The keys are `MessageEvent` and `Channel` members, which compare and hash like the plain strings the
    core passes.
    """
    return TEMPLATES.get((event, channel, locale))
