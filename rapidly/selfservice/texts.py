"""The pages' wording in the three supported languages."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "fi": {
        "language": "Kieli",
        "title": "Omat tietoni",
        "heading": "Tietosi yrityksellä {company}",
        "intro": "Tällä sivulla näet kaiken, mitä sinusta on tallennettu. Voit ladata tiedot tai poistaa ne kaikki.",
        "your_data": "Tallennetut tiedot",
        "nothing": "Sinusta ei ole tallennettu vielä mitään.",
        "saved_at": "tallennettu",
        "started_at": "Tiedot alettiin tallentaa",
        "erase_heading": "Poista kaikki tietoni",
        "erase_explain": "Painikkeesta kaikki sinusta tallennettu poistetaan heti ja pysyvästi. Tätä ei voi perua.",
        "erase_button": "Poista kaikki tietoni",
        "download_heading": "Lataa tietosi",
        "download": "Lataa kaikki tiedot (JSON)",
        "privacy_policy": "Tietosuojaseloste",
        "erased_title": "Tiedot poistettu",
        "erased_heading": "Kaikki tietosi on poistettu",
        "erased_at": "Poistettu",
        "erased_intro": "Alla on kuitti siitä, mitä poistettiin. Tämä linkki ei enää toimi.",
        "erased_pending": "Osa tiedoista poistetaan vielä taustalla; poisto viedään loppuun automaattisesti.",
        "store": "Tietovarasto",
        "count": "Poistettuja",
        "reference": "Viite",
        "not_found_title": "Linkki ei kelpaa",
        "not_found": "Tämä linkki ei kelpaa. Se on voinut vanhentua, tai sen tiedot on poistettu.",
        "forbidden_title": "Pyyntöä ei voitu vahvistaa",
        "forbidden": "Pyyntöä ei voitu vahvistaa, eikä mitään poistettu. Avaa linkkisi uudelleen ja paina "
        "painiketta sivulla.",
        "back": "Takaisin tietoihini",
    },
    "sv": {
        "language": "Språk",
        "title": "Mina uppgifter",
        "heading": "Dina uppgifter hos {company}",
        "intro": "Här ser du allt som har sparats om dig. Du kan ladda ner uppgifterna eller radera dem alla.",
        "your_data": "Sparade uppgifter",
        "nothing": "Ingenting har sparats om dig ännu.",
        "saved_at": "sparad",
        "started_at": "Uppgifterna började sparas",
        "erase_heading": "Radera alla mina uppgifter",
        "erase_explain": "Med knappen raderas allt som sparats om dig, genast och för alltid. Det går inte att ångra.",
        "erase_button": "Radera alla mina uppgifter",
        "download_heading": "Ladda ner dina uppgifter",
        "download": "Ladda ner alla uppgifter (JSON)",
        "privacy_policy": "Integritetspolicy",
        "erased_title": "Uppgifterna raderade",
        "erased_heading": "Alla dina uppgifter har raderats",
        "erased_at": "Raderade",
        "erased_intro": "Nedan finns ett kvitto på vad som raderades. Den här länken fungerar inte längre.",
        "erased_pending": "En del raderas fortfarande i bakgrunden; raderingen slutförs automatiskt.",
        "store": "Lagring",
        "count": "Raderade",
        "reference": "Referens",
        "not_found_title": "Länken är ogiltig",
        "not_found": "Den här länken är ogiltig. Den kan ha gått ut, eller så har uppgifterna raderats.",
        "forbidden_title": "Begäran kunde inte bekräftas",
        "forbidden": "Begäran kunde inte bekräftas och ingenting raderades. Öppna din länk igen och tryck "
        "på knappen på sidan.",
        "back": "Tillbaka till mina uppgifter",
    },
    "en": {
        "language": "Language",
        "title": "My data",
        "heading": "Your data at {company}",
        "intro": "This page shows everything stored about you. You can download it or erase all of it.",
        "your_data": "Stored data",
        "nothing": "Nothing has been stored about you yet.",
        "saved_at": "saved",
        "started_at": "Storing began",
        "erase_heading": "Delete all my data",
        "erase_explain": "The button erases everything stored about you, at once and for good. It cannot be undone.",
        "erase_button": "Delete all my data",
        "download_heading": "Download your data",
        "download": "Download all data (JSON)",
        "privacy_policy": "Privacy policy",
        "erased_title": "Data erased",
        "erased_heading": "All your data has been erased",
        "erased_at": "Erased",
        "erased_intro": "Below is a receipt of what was removed. This link no longer works.",
        "erased_pending": "Some of it is still being removed in the background; this completes by itself.",
        "store": "Store",
        "count": "Removed",
        "reference": "Reference",
        "not_found_title": "Link not valid",
        "not_found": "This link is not valid. It may have expired, or its data has been erased.",
        "forbidden_title": "The request could not be verified",
        "forbidden": "The request could not be verified and nothing was erased. Open your link again and "
        "press the button on the page.",
        "back": "Back to my data",
    },
}

#: Receipt rows: each store's name for people.
STORES: dict[str, dict[str, str]] = {
    "field_values": {"fi": "Tallennetut vastaukset", "sv": "Sparade svar", "en": "Saved answers"},
    "contact_tokens": {"fi": "Pääsylinkit", "sv": "Åtkomstlänkar", "en": "Access links"},
    "rate_limits": {"fi": "Käyttörajojen laskurit", "sv": "Räknare för begränsningar", "en": "Usage-limit counters"},
    "contact_events": {"fi": "Muutostapahtumat", "sv": "Ändringshändelser", "en": "Change events"},
    "contact": {"fi": "Yhteystietue", "sv": "Kontaktpost", "en": "Contact record"},
}

LANGUAGE_NAMES = {"fi": "Suomi", "sv": "Svenska", "en": "English"}


def store_name(store: str, locale: str) -> str:
    return STORES.get(store, {}).get(locale, store)
