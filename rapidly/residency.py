"""EU/EEA residency guard (DESIGN.md P10, §6).

Every backend that holds or carries personal data (database, object storage, SMTP relay, SMS gateway), the key
management service that holds the root key when one is configured (`RAPIDLY_KMS_KEY_ID`), and the traces'
collector (sent none, but told how the service is used), must be positively known to be in an EEA country.
A location comes either from a known provider's endpoint host or bucket region (looked up in `REGIONS`), or
from a declared `RAPIDLY_*_COUNTRY` for local and custom backends.  Anything not positively known to be in the
EEA is a failure: unknown regions, undeclared countries, buckets that cannot be reached.
`rapidly check` prints the verdicts (`run_check`); `rapidly serve` refuses to start (`assert_resident`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from rapidly.config import Settings

__all__ = [
    "EEA_COUNTRIES",
    "HOST_PATTERNS",
    "REGIONS",
    "BackendVerdict",
    "HostMatch",
    "ResidencyError",
    "ResidencyReport",
    "assert_resident",
    "check_residency",
    "match_host",
    "normalize_bucket_location",
    "region_country",
    "run_check",
]

# -- countries ---------------------------------------------------------------------------------------------

#: EU27 + Iceland, Liechtenstein, Norway (ISO 3166-1 alpha-2; Greece is GR, not EL).
EEA_COUNTRIES: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
        "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
        "IS", "LI", "NO",
    }
)  # fmt: skip

#: Names for messages; a code missing here is shown bare.
COUNTRY_NAMES: dict[str, str] = {
    "AT": "Austria", "BE": "Belgium", "BG": "Bulgaria", "HR": "Croatia", "CY": "Cyprus",
    "CZ": "Czechia", "DK": "Denmark", "EE": "Estonia", "FI": "Finland", "FR": "France",
    "DE": "Germany", "GR": "Greece", "HU": "Hungary", "IE": "Ireland", "IT": "Italy",
    "LV": "Latvia", "LT": "Lithuania", "LU": "Luxembourg", "MT": "Malta", "NL": "Netherlands",
    "PL": "Poland", "PT": "Portugal", "RO": "Romania", "SK": "Slovakia", "SI": "Slovenia",
    "ES": "Spain", "SE": "Sweden", "IS": "Iceland", "LI": "Liechtenstein", "NO": "Norway",
    "GB": "United Kingdom", "CH": "Switzerland", "US": "United States", "CA": "Canada",
    "MX": "Mexico", "BR": "Brazil", "CL": "Chile", "ZA": "South Africa", "IL": "Israel",
    "AE": "United Arab Emirates", "BH": "Bahrain", "QA": "Qatar", "SA": "Saudi Arabia",
    "IN": "India", "SG": "Singapore", "HK": "Hong Kong", "TW": "Taiwan", "JP": "Japan",
    "KR": "South Korea", "CN": "China", "ID": "Indonesia", "MY": "Malaysia", "TH": "Thailand",
    "AU": "Australia", "NZ": "New Zealand",
}  # fmt: skip

# -- provider regions ----------------------------------------------------------------------------------------
# Provider -> region (or zone) name, lower case -> ISO country.  Each provider's European regions are listed in
# full, including the ones outside the EEA (UK, Switzerland) whose names look European; the main regions
# elsewhere are listed so that a verdict can name the country.  A name missing here is unknown and rejected.

REGIONS: dict[str, dict[str, str]] = {
    "AWS": {
        # Europe
        "eu-central-1": "DE",  # Frankfurt
        "eu-central-2": "CH",  # Zurich            (not EEA)
        "eu-west-1": "IE",  # Ireland
        "eu-west-2": "GB",  # London               (not EEA)
        "eu-west-3": "FR",  # Paris
        "eu-south-1": "IT",  # Milan
        "eu-south-2": "ES",  # Spain (Aragón)
        "eu-north-1": "SE",  # Stockholm
        "eusc-de-east-1": "DE",  # European Sovereign Cloud, Brandenburg
        # elsewhere
        "us-east-1": "US", "us-east-2": "US", "us-west-1": "US", "us-west-2": "US",
        "us-gov-east-1": "US", "us-gov-west-1": "US",
        "ca-central-1": "CA", "ca-west-1": "CA", "mx-central-1": "MX", "sa-east-1": "BR",
        "af-south-1": "ZA", "il-central-1": "IL", "me-south-1": "BH", "me-central-1": "AE",
        "ap-south-1": "IN", "ap-south-2": "IN", "ap-east-1": "HK", "ap-east-2": "TW",
        "ap-northeast-1": "JP", "ap-northeast-2": "KR", "ap-northeast-3": "JP",
        "ap-southeast-1": "SG", "ap-southeast-2": "AU", "ap-southeast-3": "ID", "ap-southeast-4": "AU",
        "ap-southeast-5": "MY", "ap-southeast-6": "NZ", "ap-southeast-7": "TH",
        "cn-north-1": "CN", "cn-northwest-1": "CN",
    },
    "GCP": {
        # Europe
        "europe-central2": "PL",  # Warsaw
        "europe-north1": "FI",  # Hamina
        "europe-north2": "SE",  # Stockholm
        "europe-southwest1": "ES",  # Madrid
        "europe-west1": "BE",  # St. Ghislain
        "europe-west2": "GB",  # London            (not EEA)
        "europe-west3": "DE",  # Frankfurt
        "europe-west4": "NL",  # Eemshaven
        "europe-west6": "CH",  # Zurich            (not EEA)
        "europe-west8": "IT",  # Milan
        "europe-west9": "FR",  # Paris
        "europe-west10": "DE",  # Berlin
        "europe-west12": "IT",  # Turin
        # elsewhere
        "us-central1": "US", "us-east1": "US", "us-east4": "US", "us-east5": "US", "us-south1": "US",
        "us-west1": "US", "us-west2": "US", "us-west3": "US", "us-west4": "US",
        "northamerica-northeast1": "CA", "northamerica-northeast2": "CA", "northamerica-south1": "MX",
        "southamerica-east1": "BR", "southamerica-west1": "CL",
        "asia-east1": "TW", "asia-east2": "HK", "asia-northeast1": "JP", "asia-northeast2": "JP",
        "asia-northeast3": "KR", "asia-south1": "IN", "asia-south2": "IN", "asia-southeast1": "SG",
        "asia-southeast2": "ID", "australia-southeast1": "AU", "australia-southeast2": "AU",
        "me-central1": "QA", "me-central2": "SA", "me-west1": "IL", "africa-south1": "ZA",
    },
    "Azure": {
        # Europe
        "northeurope": "IE",  # Dublin
        "westeurope": "NL",  # Amsterdam
        "francecentral": "FR", "francesouth": "FR",
        "germanywestcentral": "DE", "germanynorth": "DE",
        "swedencentral": "SE", "swedensouth": "SE",
        "norwayeast": "NO", "norwaywest": "NO",
        "polandcentral": "PL", "italynorth": "IT", "spaincentral": "ES",
        "austriaeast": "AT", "belgiumcentral": "BE", "denmarkeast": "DK",
        "uksouth": "GB", "ukwest": "GB",  # (not EEA)
        "switzerlandnorth": "CH", "switzerlandwest": "CH",  # (not EEA)
        # elsewhere
        "eastus": "US", "eastus2": "US", "centralus": "US", "northcentralus": "US", "southcentralus": "US",
        "westcentralus": "US", "westus": "US", "westus2": "US", "westus3": "US",
        "canadacentral": "CA", "canadaeast": "CA", "mexicocentral": "MX",
        "brazilsouth": "BR", "brazilsoutheast": "BR", "chilecentral": "CL",
        "southafricanorth": "ZA", "southafricawest": "ZA", "israelcentral": "IL", "qatarcentral": "QA",
        "uaenorth": "AE", "uaecentral": "AE",
        "centralindia": "IN", "southindia": "IN", "westindia": "IN",
        "eastasia": "HK", "southeastasia": "SG", "japaneast": "JP", "japanwest": "JP",
        "koreacentral": "KR", "koreasouth": "KR", "indonesiacentral": "ID", "malaysiawest": "MY",
        "australiaeast": "AU", "australiasoutheast": "AU", "australiacentral": "AU", "australiacentral2": "AU",
        "newzealandnorth": "NZ",
    },
    "Scaleway": {
        "fr-par": "FR", "fr-par-1": "FR", "fr-par-2": "FR", "fr-par-3": "FR",
        "nl-ams": "NL", "nl-ams-1": "NL", "nl-ams-2": "NL", "nl-ams-3": "NL",
        "pl-waw": "PL", "pl-waw-1": "PL", "pl-waw-2": "PL", "pl-waw-3": "PL",
    },
    # OpenStack-style names with a number (GRA7, UK1, DE1, ...) are looked up without it, see `region_country`.
    "OVHcloud": {
        "gra": "FR",  # Gravelines
        "rbx": "FR",  # Roubaix
        "sbg": "FR",  # Strasbourg
        "eu-west-par": "FR",  # Paris (3-AZ)
        "de": "DE",  # Frankfurt / Limburg
        "lim": "DE",  # Limburg
        "waw": "PL",  # Warsaw
        "eu-south-mil": "IT",  # Milan (3-AZ)
        "uk": "GB",  # London                     (not EEA)
        "bhs": "CA", "ca-east-tor": "CA", "us-east-va": "US", "us-west-or": "US",
        "sgp": "SG", "syd": "AU", "ap-south-mum": "IN",
    },
    "Hetzner": {
        "fsn1": "DE",  # Falkenstein
        "nbg1": "DE",  # Nuremberg
        "hel1": "FI",  # Helsinki
        "ash": "US", "hil": "US", "sin": "SG",
    },
    "Exoscale": {
        "at-vie-1": "AT", "at-vie-2": "AT",  # Vienna
        "bg-sof-1": "BG",  # Sofia
        "de-fra-1": "DE",  # Frankfurt
        "de-muc-1": "DE",  # Munich
        "hr-zag-1": "HR",  # Zagreb
        "ch-gva-2": "CH",  # Geneva            (not EEA)
        "ch-dk-2": "CH",  # Zurich             (not EEA)
    },
    "IONOS": {
        # object storage regions
        "de": "DE",  # Frankfurt
        "eu-central-1": "DE",  # Frankfurt
        "eu-central-2": "DE",  # Berlin (unlike AWS eu-central-2, Zurich)
        "eu-central-3": "DE",  # Berlin
        "eu-south-2": "ES",  # Logroño
        # data centre locations (managed databases: pg-*.postgresql.<location>.ionos.com)
        "de-fra": "DE", "de-fkb": "DE", "de-txl": "DE", "es-vit": "ES", "fr-par": "FR",
        "gb-lhr": "GB", "gb-bhx": "GB",  # (not EEA)
        "us-las": "US", "us-ewr": "US", "us-mci": "US",
    },
    "UpCloud": {
        "at-vie1": "AT", "de-fra1": "DE", "dk-cph1": "DK", "es-mad1": "ES", "fi-hel1": "FI", "fi-hel2": "FI",
        "nl-ams1": "NL", "no-svg1": "NO", "pl-waw1": "PL", "se-sto1": "SE",
        "uk-lon1": "GB",  # London                 (not EEA)
        "us-chi1": "US", "us-nyc1": "US", "us-sjo1": "US", "sg-sin1": "SG", "au-syd1": "AU",
        # Managed Object Storage region: primary zone fi-hel1 (its zones are fi-hel1 and de-fra1).
        "europe-1": "FI",
    },
    # SMS gateway with a fixed EU setup.
    "GatewayAPI": {"eu": "DK"},
}  # fmt: skip

# -- endpoint hosts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostPattern:
    """A host name pattern of a provider; the `region` group (or the fixed `region`) names the region.

    A pattern with neither says only which provider it is; the region then has to come from the resource
    itself (an S3 bucket's reported region)."""

    provider: str
    pattern: str
    region: str | None = None


_AWS_REGION = r"(?P<region>(?:[a-z]{2}|eusc)(?:-gov)?-[a-z]+-\d+)"

#: First match wins.
HOST_PATTERNS: tuple[HostPattern, ...] = (
    # AWS: RDS (x.y.eu-north-1.rds.amazonaws.com), Aurora DSQL, and any regional service host:
    # s3.eu-north-1..., bucket.s3.eu-west-2..., s3-eu-west-1..., s3.dualstack..., email-smtp.eu-west-1..., sns...
    HostPattern("AWS", rf"\.{_AWS_REGION}\.rds\.amazonaws\.com(?:\.cn)?$"),
    HostPattern("AWS", rf"\.dsql\.{_AWS_REGION}\.on\.aws$"),
    HostPattern("AWS", rf"(?:^|[.-]){_AWS_REGION}\.amazonaws\.com(?:\.cn)?$"),
    HostPattern("AWS", r"(?:^|\.)s3-external-1\.amazonaws\.com$", region="us-east-1"),
    HostPattern("AWS", r"(?:^|\.)s3\.amazonaws\.com$"),  # global endpoint: the bucket's region decides
    # GCP: Cloud Storage XML (S3-interoperable) API, global and regional endpoints
    HostPattern("GCP", r"(?:^|\.)storage\.(?P<region>[a-z]+-[a-z]+\d+)\.rep\.googleapis\.com$"),
    HostPattern("GCP", r"^storage\.googleapis\.com$"),
    # Scaleway: s3.fr-par.scw.cloud, bucket.s3.nl-ams.scw.cloud, x.rdb.fr-par.scw.cloud, x.pg.sdb.fr-par.scw.cloud
    HostPattern("Scaleway", r"(?:^|\.)(?P<region>[a-z]{2}-[a-z]{3})\.scw\.cloud$"),
    # OVHcloud: s3.gra.io.cloud.ovh.net, s3.gra.perf.cloud.ovh.net, s3.uk.cloud.ovh.net, storage.gra.cloud.ovh.net
    HostPattern("OVHcloud", r"(?:^|\.)s3\.(?P<region>[a-z0-9-]+)\.(?:io\.|perf\.)?cloud\.ovh\.(?:net|us)$"),
    HostPattern("OVHcloud", r"(?:^|\.)storage\.(?P<region>[a-z0-9-]+)\.cloud\.ovh\.net$"),
    # Hetzner: fsn1.your-objectstorage.com, bucket.hel1.your-objectstorage.com
    HostPattern("Hetzner", r"(?:^|\.)(?P<region>[a-z]{3}\d)\.your-objectstorage\.com$"),
    # Exoscale: sos-ch-gva-2.exo.io, bucket.sos-de-fra-1.exo.io
    HostPattern("Exoscale", r"(?:^|\.)sos-(?P<region>[a-z]{2}-[a-z]{2,4}-\d+)\.exo\.io$"),
    # IONOS: s3.eu-central-1.ionoscloud.com, s3-eu-central-1.ionoscloud.com, managed PostgreSQL hosts
    HostPattern("IONOS", r"(?:^|\.)s3[.-](?P<region>[a-z]{2}-[a-z]+-\d+)\.ionoscloud\.com$"),
    HostPattern("IONOS", r"(?:^|\.)s3-de-central\.profitbricks\.com$", region="de"),
    HostPattern("IONOS", r"\.postgresql\.(?P<region>[a-z]{2}-[a-z]{3})\.ionos\.com$"),
    # UpCloud: bucket.fi-hel2.upcloudobjects.com; managed object storage (abc12.upcloudobjects.com) has no zone
    HostPattern("UpCloud", r"(?:^|\.)(?P<region>[a-z]{2}-[a-z]{3}\d)\.upcloudobjects\.com$"),
    HostPattern("UpCloud", r"^[a-z0-9]+(?:-private)?\.upcloudobjects\.com$"),
    # GatewayAPI EU (SMS): gatewayapi.eu, api.gatewayapi.eu
    HostPattern("GatewayAPI", r"(?:^|\.)gatewayapi\.eu$", region="eu"),
)

_COMPILED = tuple((p, re.compile(p.pattern)) for p in HOST_PATTERNS)


@dataclass(frozen=True)
class HostMatch:
    provider: str
    region: str | None  # None: the host names the provider but not the region


def match_host(host: str | None) -> HostMatch | None:
    """The provider (and region, when the host names one) of a known endpoint host, else None."""
    if not host:
        return None
    host = host.strip().rstrip(".").lower()
    for pattern, regex in _COMPILED:
        found = regex.search(host)
        if found:
            region = pattern.region or found.groupdict().get("region")
            return HostMatch(pattern.provider, region)
    return None


def region_country(provider: str, region: str) -> str | None:
    """The country of `region` at `provider`, or None when the table does not know it."""
    table = REGIONS.get(provider, {})
    name = region.strip().lower()
    country = table.get(name)
    if country is None and provider == "OVHcloud":
        country = table.get(name.rstrip("0123456789"))  # GRA7 -> gra, UK1 -> uk
    return country


def _readings(region: str) -> list[tuple[str, str]]:
    """Every (provider, country) reading of a region name across the tables."""
    return [(p, c) for p in REGIONS if (c := region_country(p, region)) is not None]


def _worst_reading(region: str, provider: str | None = None) -> tuple[str, str] | None:
    """How to read a region name whose provider is unsure: the provider's own table if it knows the name,
    otherwise the first reading outside the EEA, otherwise the first reading.

    Ambiguous names are judged by their worst reading: `eu-central-2` is Berlin at IONOS but Zurich at AWS,
    so on an unknown S3-compatible endpoint it is rejected as CH."""
    if provider and (country := region_country(provider, region)):
        return provider, country
    readings = _readings(region)
    outside = [r for r in readings if r[1] not in EEA_COUNTRIES]
    return (outside or readings or [None])[0]


def normalize_bucket_location(raw: str | None, *, aws: bool) -> str | None:
    """A bucket's reported location as a lower-case region name, or None for "no region information".

    AWS reports us-east-1 as an empty LocationConstraint and the legacy "EU" for eu-west-1.  Elsewhere an empty
    location means nothing (MinIO reports its default region that way), so it is not read as us-east-1."""
    value = (raw or "").strip().lower()
    if aws:
        if not value:
            return "us-east-1"
        if value == "eu":
            return "eu-west-1"
    return value or None


# -- verdicts ------------------------------------------------------------------------------------------------

Status = Literal["ok", "OUTSIDE EEA", "UNDECLARED", "UNKNOWN", "UNREACHABLE"]


@dataclass(frozen=True)
class BackendVerdict:
    backend: str  # database, storage, kms, smtp, sms, traces
    location: str | None  # ISO country, or None when unknown / not configured
    how: str  # how the location was determined
    ok: bool
    setting: str | None  # the RAPIDLY_* setting to fix when not ok
    message: str  # names the country and, when not ok, the setting
    status: Status = "ok"

    def __post_init__(self) -> None:
        if self.ok != (self.status == "ok"):
            raise ValueError(f"verdict ok={self.ok} contradicts status {self.status!r}")


@dataclass(frozen=True)
class ResidencyReport:
    verdicts: list[BackendVerdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def failures(self) -> list[BackendVerdict]:
        return [v for v in self.verdicts if not v.ok]

    def get(self, backend: str) -> BackendVerdict:
        for verdict in self.verdicts:
            if verdict.backend == backend:
                return verdict
        raise KeyError(backend)

    def format_table(self) -> str:
        header = ("backend", "location", "how determined", "verdict")
        rows = [(v.backend, v.location or "-", v.how, v.status) for v in self.verdicts]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(3)]

        def line(row: tuple[str, str, str, str]) -> str:
            return "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[3]])

        return "\n".join([line(header), line(tuple("-" * len(h) for h in header)), *map(line, rows)])  # type: ignore[arg-type]

    def failure_lines(self) -> list[str]:
        return [f"{v.backend}: {v.status}: {v.message}" for v in self.failures]


class ResidencyError(Exception):
    """A backend is outside the EEA, undeclared, unknown or unreachable; the message names each one."""

    def __init__(self, report: ResidencyReport) -> None:
        self.report = report
        super().__init__(f"data must stay in the EU/EEA: {'; '.join(report.failure_lines())}")


def _name(country: str) -> str:
    return f"{country} ({COUNTRY_NAMES[country]})" if country in COUNTRY_NAMES else country


def _ok(backend: str, country: str, how: str) -> BackendVerdict:
    return BackendVerdict(backend, country, how, True, None, f"in {_name(country)}, inside the EEA")


def _fail(backend: str, status: Status, country: str | None, how: str, setting: str, message: str) -> BackendVerdict:
    return BackendVerdict(backend, country, how, False, setting, message, status)


def _outside(backend: str, country: str, how: str, setting: str, what: str) -> BackendVerdict:
    return _fail(
        backend, "OUTSIDE EEA", country, how, setting,
        f"{what} is in {_name(country)}, outside the EEA; change {setting}",
    )  # fmt: skip


def _unknown_region(backend: str, provider: str, region: str, how: str, setting: str) -> BackendVerdict:
    return _fail(
        backend, "UNKNOWN", None, how, setting,
        f"{provider} region {region!r} is not in Rapidly's region table, so its country is unknown and it is "
        f"not accepted; use a region known to be in the EEA ({setting})",
    )  # fmt: skip


def _declared(backend: str, declared: str | None, setting: str, what: str) -> BackendVerdict:
    """Verdict for a backend whose location only its operator knows (local or custom host)."""
    if declared is None:
        return _fail(
            backend, "UNDECLARED", None, f"{what}, country not declared", setting,
            f"the location of the {what} cannot be derived; set {setting} to the ISO code of the EEA country "
            "where it runs (e.g. FI)",
        )  # fmt: skip
    how = f"declared {setting} ({what})"
    if declared not in EEA_COUNTRIES:
        return _fail(
            backend, "OUTSIDE EEA", declared, how, setting,
            f"{setting}={declared} puts the {what} in {_name(declared)}, outside the EEA; change {setting}",
        )  # fmt: skip
    return _ok(backend, declared, how)


# -- hosts (database, smtp, sms, traces) ---------------------------------------------------------------------


def _is_local(host: str) -> bool:
    if host.startswith("/") or host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _postgres_hosts(url: str) -> list[str]:
    """Host names of a libpq URL: `host1:5432,host2/db`, `[::1]`, or `?host=/socket/dir`; never the userinfo."""
    parts = urlsplit(url)
    hosts: list[str] = []
    netloc = parts.netloc.rpartition("@")[2]
    for item in netloc.split(","):
        item = unquote(item)
        if item.startswith("["):
            host = item[1 : item.find("]")] if "]" in item else item[1:]
        elif item.startswith("/"):
            host = item
        else:
            host = item.rsplit(":", 1)[0] if item.count(":") == 1 else item
        if host:
            hosts.append(host.lower())
    for value in parse_qs(parts.query).get("host", []):
        hosts.extend(h.strip().lower() for h in value.split(",") if h.strip())
    return hosts or ["localhost"]  # libpq's default is the local socket


def _check_hosts(
    backend: str, hosts: list[str], url_setting: str, country_setting: str, declared: str | None, label: str
) -> BackendVerdict:
    """Known provider hosts decide by their region; local and custom hosts need the declared country."""
    derived: list[tuple[str, str]] = []  # (how, country)
    needs_declaration: list[str] = []
    for host in hosts:
        found = match_host(host)
        if found is not None and found.region is not None:
            how = f"{label} host, {found.provider} region {found.region}"
            country = region_country(found.provider, found.region)
            if country is None:
                return _unknown_region(backend, found.provider, found.region, how, url_setting)
            if country not in EEA_COUNTRIES:
                return _outside(backend, country, how, url_setting, f"{found.provider} region {found.region}")
            derived.append((how, country))
        elif _is_local(host):
            needs_declaration.append(f"local {label} socket" if host.startswith("/") else f"local {label} host {host}")
        else:
            needs_declaration.append(f"custom {label} host {host}")
    if needs_declaration:
        return _declared(backend, declared, country_setting, ", ".join(needs_declaration))
    how, country = derived[0]
    return _ok(backend, country, "; ".join(h for h, _ in derived) if len(derived) > 1 else how)


def _check_database(settings: Settings) -> BackendVerdict:
    if not settings.database_url:
        return _declared("database", settings.database_country, "RAPIDLY_DATABASE_COUNTRY", "embedded PostgreSQL")
    return _check_hosts(
        "database", _postgres_hosts(settings.database_url), "RAPIDLY_DATABASE_URL",
        "RAPIDLY_DATABASE_COUNTRY", settings.database_country, "database",
    )  # fmt: skip


def _check_url_backend(
    backend: str, url: str | None, url_setting: str, country_setting: str, declared: str | None, label: str
) -> BackendVerdict:
    if not url:
        return BackendVerdict(backend, None, "not configured", True, None, "not configured")
    if url == "file:":  # the demo's SMS: written to a file in the data directory, sent nowhere
        return BackendVerdict(backend, None, "a file in the data directory", True, None, "nothing leaves")
    host = (urlsplit(url).hostname or "").lower()
    return _check_hosts(backend, [host], url_setting, country_setting, declared, label)


# -- storage -------------------------------------------------------------------------------------------------

#: Upper bound for one bucket probe, whatever botocore's own timeouts and retries do.
S3_PROBE_TIMEOUT = 20.0


@dataclass(frozen=True)
class _Probe:
    region: str | None  # lower-case region the bucket reports; None: no region information
    error: str | None  # why the bucket cannot be used; None: reachable


def _client_error(exc: Exception, bucket: str) -> tuple[str | None, str]:
    """(region header, message) of a botocore ClientError, without anything from the request URL."""
    response = getattr(exc, "response", {}) or {}
    meta = response.get("ResponseMetadata", {})
    region = (meta.get("HTTPHeaders") or {}).get("x-amz-bucket-region")
    code = str(response.get("Error", {}).get("Code", "")) or str(meta.get("HTTPStatusCode", "error"))
    status = meta.get("HTTPStatusCode")
    if code in ("NoSuchBucket", "404") or status == 404:
        return region, f"bucket {bucket!r} does not exist"
    if code in ("AccessDenied", "403", "Forbidden") or status == 403:
        return region, f"access to bucket {bucket!r} was denied (check the S3 credentials)"
    return region, f"S3 answered {code} for bucket {bucket!r}"


async def _probe_aws(s3: object, bucket: str) -> _Probe:
    """HeadBucket's `x-amz-bucket-region` works from any region (also on 301/403); GetBucketLocation second."""
    from botocore.exceptions import ClientError

    try:
        answer = await s3.head_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    except ClientError as exc:
        region, message = _client_error(exc, bucket)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 301 and region:
            return _Probe(region.lower(), None)
        return _Probe(region.lower() if region else None, message)
    region = answer.get("BucketRegion") or answer["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
    if region:
        return _Probe(region.lower(), None)
    location = await s3.get_bucket_location(Bucket=bucket)  # type: ignore[attr-defined]
    return _Probe(normalize_bucket_location(location.get("LocationConstraint"), aws=True), None)


async def _probe_compatible(s3: object, bucket: str) -> _Probe:
    """GetBucketLocation first: S3-compatible servers report their configured region there, and nothing when
    none is set, whereas their HeadBucket often answers the protocol default us-east-1 regardless."""
    from botocore.exceptions import ClientError

    try:
        location = await s3.get_bucket_location(Bucket=bucket)  # type: ignore[attr-defined]
    except ClientError as exc:
        region, message = _client_error(exc, bucket)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status not in (403, 405, 501) or "does not exist" in message:
            return _Probe(None, message)
    else:
        return _Probe(normalize_bucket_location(location.get("LocationConstraint"), aws=False), None)
    # GetBucketLocation refused or unimplemented: HeadBucket says whether the bucket is usable.
    try:
        answer = await s3.head_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    except ClientError as exc:
        return _Probe(None, _client_error(exc, bucket)[1])
    region = answer.get("BucketRegion") or answer["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
    region = (region or "").lower()
    return _Probe(region if region and region != "us-east-1" else None, None)


async def _probe_bucket(settings: Settings, *, aws: bool, host: str) -> _Probe:
    """Ask the bucket itself where it is, with short timeouts so `rapidly check` never hangs."""
    import aioboto3
    from aiobotocore.config import AioConfig
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    bucket = settings.s3_bucket or ""
    config = AioConfig(
        connect_timeout=5,
        read_timeout=5,
        retries={"total_max_attempts": 2, "mode": "standard"},
        # RAPIDLY_S3_ENDPOINT_URL is the only endpoint: AWS_ENDPOINT_URL* must not redirect the check.
        ignore_configured_endpoint_urls=True,
        s3={"addressing_style": "auto" if aws else "path"},
    )
    try:
        async with asyncio.timeout(S3_PROBE_TIMEOUT):
            session = aioboto3.Session(
                aws_access_key_id=settings.s3_access_key_id, aws_secret_access_key=settings.s3_secret_access_key
            )
            async with session.client(
                "s3",
                endpoint_url=settings.s3_endpoint_url,
                region_name=settings.s3_region or "us-east-1",
                config=config,
            ) as s3:
                return await (_probe_aws(s3, bucket) if aws else _probe_compatible(s3, bucket))
    except NoCredentialsError:
        return _Probe(None, "no S3 credentials found (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
    except (EndpointConnectionError, ConnectTimeoutError):
        return _Probe(None, f"could not connect to the S3 endpoint {host}")
    except (ReadTimeoutError, TimeoutError):
        return _Probe(None, f"the S3 endpoint {host} did not answer in time")
    except ClientError as exc:
        return _Probe(None, _client_error(exc, bucket)[1])
    except BotoCoreError as exc:
        return _Probe(None, f"S3 request failed ({type(exc).__name__})")


async def _check_storage(settings: Settings) -> BackendVerdict:
    backend = "storage"
    if settings.storage == "local":
        return _declared(backend, settings.storage_country, "RAPIDLY_STORAGE_COUNTRY", "local storage directory")

    bucket = settings.s3_bucket or ""
    endpoint = settings.s3_endpoint_url
    host = (urlsplit(endpoint).hostname or "").lower() if endpoint else "s3.amazonaws.com"
    found = match_host(host) if endpoint else HostMatch("AWS", None)
    provider = found.provider if found else None

    # 1. RAPIDLY_S3_REGION must not itself name a region known to be outside the EEA.
    if settings.s3_region:
        reading = _worst_reading(settings.s3_region, provider)
        if reading and reading[1] not in EEA_COUNTRIES:
            how = f"RAPIDLY_S3_REGION, {reading[0]} region {settings.s3_region}"
            return _outside(backend, reading[1], how, "RAPIDLY_S3_REGION", f"{reading[0]} region {settings.s3_region}")

    # 2. A known endpoint that names its region decides without being contacted when outside the EEA.
    host_country: str | None = None
    host_how = ""
    if found is not None and found.region is not None:
        host_how = f"endpoint host, {found.provider} region {found.region}"
        host_country = region_country(found.provider, found.region)
        if host_country is None:
            return _unknown_region(backend, found.provider, found.region, host_how, "RAPIDLY_S3_ENDPOINT_URL")
        if host_country not in EEA_COUNTRIES:
            return _outside(
                backend,
                host_country,
                host_how,
                "RAPIDLY_S3_ENDPOINT_URL",
                f"{found.provider} region {found.region}",
            )
    # 3. A custom endpoint (MinIO, ...) needs a declared country before anything else.
    if found is None:
        declared = _declared(backend, settings.storage_country, "RAPIDLY_STORAGE_COUNTRY", f"S3 endpoint {host}")
        if not declared.ok:
            return declared

    # 4. Ask the bucket.
    probe = await _probe_bucket(settings, aws=provider == "AWS", host=host)
    where = f"bucket {bucket!r}"
    country: str | None = None
    how = host_how
    if probe.region:
        # A known provider's bucket is read in that provider's table only; on a custom endpoint the name is
        # judged by its worst reading in any table.
        if provider is not None:
            known = region_country(provider, probe.region)
            reading = (provider, known) if known else None
        else:
            reading = _worst_reading(probe.region)
        label = f"{reading[0]} region {probe.region}" if reading else f"region {probe.region}"
        how = f"{host_how}; bucket region {probe.region}" if host_how else f"bucket reports {label}"
        if reading and reading[1] not in EEA_COUNTRIES:
            return _outside(backend, reading[1], how, "RAPIDLY_S3_BUCKET", f"{where} ({label})")
        if reading:
            country = reading[1]
        elif found is not None and found.region is None:  # the bucket's region is all there is to go on
            return _unknown_region(backend, provider or "S3", probe.region, how, "RAPIDLY_S3_BUCKET")
    if found is None:  # custom endpoint: the declared country is the location
        country = settings.storage_country
        if probe.region:
            how = f"declared RAPIDLY_STORAGE_COUNTRY (S3 endpoint {host}); bucket reports region {probe.region}"
        elif probe.error:
            how = f"declared RAPIDLY_STORAGE_COUNTRY (S3 endpoint {host}); bucket not reached"
        else:
            how = f"declared RAPIDLY_STORAGE_COUNTRY (S3 endpoint {host}); bucket reports no region"
    elif country is None:
        country = host_country
    if probe.error:
        return _fail(
            backend, "UNREACHABLE", country, how or f"S3 endpoint {host}", "RAPIDLY_S3_BUCKET",
            f"{where} could not be checked: {probe.error}; fix RAPIDLY_S3_BUCKET or RAPIDLY_S3_ENDPOINT_URL",
        )  # fmt: skip
    if country is None:
        return _fail(
            backend, "UNKNOWN", None, how or f"S3 endpoint {host}", "RAPIDLY_S3_BUCKET",
            f"{where} reports no region, so its country is unknown; fix RAPIDLY_S3_BUCKET",
        )  # fmt: skip
    return _ok(backend, country, how)


# -- the root key's KMS --------------------------------------------------------------------------------------


def _check_kms(settings: Settings) -> BackendVerdict:
    """Where the KMS that holds the root key is, located as the object storage is but never contacted: a
    known endpoint host names its region; AWS's own endpoint is in RAPIDLY_KMS_REGION (or the region of a
    key ARN); a custom endpoint is where RAPIDLY_KMS_COUNTRY declares."""
    backend = "kms"
    endpoint = settings.kms_endpoint_url
    host = (urlsplit(endpoint).hostname or "").lower() if endpoint else "kms.amazonaws.com"
    found = match_host(host) if endpoint else HostMatch("AWS", None)
    provider = found.provider if found else None
    arn_region = _arn_region(settings.kms_key_id or "")

    # 1. Neither RAPIDLY_KMS_REGION nor the key's ARN may name a region known to be outside the EEA.
    for region, setting in ((settings.kms_region, "RAPIDLY_KMS_REGION"), (arn_region, "RAPIDLY_KMS_KEY_ID")):
        if region and (reading := _worst_reading(region, provider)) and reading[1] not in EEA_COUNTRIES:
            how = f"{setting}, {reading[0]} region {region}"
            return _outside(backend, reading[1], how, setting, f"{reading[0]} region {region}")

    # 2. A known endpoint that names its region decides.
    if found is not None and found.region is not None:
        how = f"endpoint host, {found.provider} region {found.region}"
        country = region_country(found.provider, found.region)
        if country is None:
            return _unknown_region(backend, found.provider, found.region, how, "RAPIDLY_KMS_ENDPOINT_URL")
        if country not in EEA_COUNTRIES:
            return _outside(
                backend, country, how, "RAPIDLY_KMS_ENDPOINT_URL", f"{found.provider} region {found.region}"
            )
        return _ok(backend, country, how)

    # 3. A custom endpoint (any AWS-API KMS) is where its operator declares.
    if found is None:
        return _declared(backend, settings.kms_country, "RAPIDLY_KMS_COUNTRY", f"KMS endpoint {host}")

    # 4. AWS's own endpoint: the region the client is told.
    region = settings.kms_region or arn_region
    setting = "RAPIDLY_KMS_REGION" if settings.kms_region else "RAPIDLY_KMS_KEY_ID"
    if not region:
        return _fail(
            backend, "UNDECLARED", None, f"{found.provider} KMS, region not set", "RAPIDLY_KMS_REGION",
            "the KMS's region is not set, so its country is unknown; set RAPIDLY_KMS_REGION to a region in "
            "the EEA (e.g. eu-north-1)",
        )  # fmt: skip
    how = f"{setting}, {found.provider} region {region}"
    country = region_country(found.provider, region)
    if country is None:
        return _unknown_region(backend, found.provider, region, how, setting)
    return _ok(backend, country, how)


def _arn_region(value: str) -> str | None:
    """The region of an ARN (arn:partition:service:region:account:resource), else None."""
    parts = value.split(":", 5)
    return (parts[3] or None) if len(parts) == 6 and parts[0] == "arn" else None


# -- entry points --------------------------------------------------------------------------------------------


async def check_residency(settings: Settings) -> ResidencyReport:
    """One verdict per backend: database, storage, the KMS (when RAPIDLY_KMS_KEY_ID is set), smtp, sms,
    traces."""
    storage = await _check_storage(settings)
    return ResidencyReport(
        [
            _check_database(settings),
            storage,
            *([_check_kms(settings)] if settings.kms_key_id else []),
            _check_url_backend(
                "smtp",
                settings.smtp_url,
                "RAPIDLY_SMTP_URL",
                "RAPIDLY_SMTP_COUNTRY",
                settings.smtp_country,
                "SMTP",
            ),
            _check_url_backend(
                "sms",
                settings.sms_url,
                "RAPIDLY_SMS_URL",
                "RAPIDLY_SMS_COUNTRY",
                settings.sms_country,
                "SMS gateway",
            ),
            _check_url_backend(
                "traces",
                settings.otel_endpoint,
                "RAPIDLY_OTEL_ENDPOINT",
                "RAPIDLY_OTEL_COUNTRY",
                settings.otel_country,
                "OTLP collector",
            ),
        ]
    )


async def assert_resident(settings: Settings) -> ResidencyReport:
    """The report when every backend is in the EEA; otherwise `ResidencyError` naming each failure."""
    report = await check_residency(settings)
    if not report.ok:
        raise ResidencyError(report)
    return report


def run_check(settings: Settings) -> int:
    """`rapidly check`: print the table and every failure; 0 when all backends are in the EEA, else 1."""
    report = asyncio.run(check_residency(settings))
    print(report.format_table())
    if report.ok:
        return 0
    print()
    print("Rapidly keeps all data in the EU/EEA. Fix:")
    for line in report.failure_lines():
        print(f"  {line}")
    return 1
