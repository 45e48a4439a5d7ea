"""Demo data that `cloudbank up` creates on its first start: a branch, a kiosk code, accounts and
the service catalogue."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from cloudbank.platform.audit import AuditChain
from cloudbank.platform.catalogue import GENERAL, Catalogue, Service
from cloudbank.platform.identity import Directory
from cloudbank.platform.service_definitions import Definition, FieldDef, ScriptItem, ServiceDefinitions

DEMO_BRANCH = ("demo", "Demo Branch")

# A small but realistic catalogue. Keywords are what the live transcript suggests a service from;
# the wealth product is a dual-recorded sale with phrases the teller must say and must never say.
# `names` are the names in the other UI languages (the customer screens' zh). The phrases are English,
# the demo's speech language (pocketsphinx en-us): each word is in its dictionary, so each can be heard.
DEMO_SERVICES = (
    Service(GENERAL, "General enquiry", "general", "longest_idle", 20, 30, False, 240,
            ("question", "information"), names={"zh": "一般咨询"}),
    Service("open_account", "Open an account", "accounts", "longest_idle", 20, 60, False, 900,
            ("open an account", "new account", "savings account"), names={"zh": "开立账户"}),
    Service("lost_card", "Report a lost or stolen card", "cards", "fewest_calls", 15, 30, False, 300,
            ("lost my card", "stolen card", "block my card"), names={"zh": "挂失银行卡"}),
    Service("transfer", "Make a transfer", "payments", "longest_idle", 20, 30, False, 420,
            ("transfer", "send money", "wire"), names={"zh": "转账汇款"}),
    Service("change_phone", "Change phone number", "general", "longest_idle", 20, 30, False, 300,
            ("change my phone number", "new phone number", "mobile number"), names={"zh": "变更手机号码"}),
    Service("wealth", "Wealth product (fund / insurance)", "wealth", "skill_level", 30, 120, True, 1800,
            ("investment", "fund", "insurance", "wealth"),
            required_phrases=("risk disclosure", "you may lose money", "cooling-off period"),
            forbidden_phrases=("guaranteed return", "no risk", "cannot lose"),
            qualified_only=True, names={"zh": "理财产品（基金／保险）"}),
)


# The wealth service's business: a fund sale form the customer confirms and signs, a supervisor's
# authorisation above an amount, and the dual-recording script (the teller's disclosures are the
# catalogue's required phrases, so the live transcript ticks them; then the customer's answers).
DEMO_DEFINITIONS = {
    "wealth": Definition(
        title="Fund sale",
        fields=[
            FieldDef("fund", "Fund", "select", required=True, confirm=True,
                     options=["CB Global Equity Fund", "CB Balanced Income Fund", "CB Money Market Fund"]),
            FieldDef("amount", "Amount to invest (USD)", "number", required=True, confirm=True, min=100,
                     max=1_000_000),
            FieldDef("risk_profile", "Customer's risk profile", "select", required=True, confirm=True,
                     options=["conservative", "balanced", "growth", "aggressive"]),
            FieldDef("debit_account", "Account to debit", "text", required=True, confirm=True, max_length=20,
                     pattern="[0-9]{8,20}"),
            FieldDef("cooling_off_understood", "I know I can cancel within the 14-day cooling-off period",
                     "checkbox", required=True, confirm=True),
            FieldDef("notes", "Teller's notes", "text", max_length=500),
        ],
        script=[
            ScriptItem("risk_disclosure", "say", "risk disclosure", "Read the risk disclosure"),
            ScriptItem("may_lose_money", "say", "you may lose money", "Say the customer may lose money"),
            ScriptItem("cooling_off", "say", "cooling-off period", "Explain the cooling-off period"),
            ScriptItem("understands_risk", "answer", "I understand the risk", "The customer understands the risk"),
            ScriptItem("wants_to_buy", "answer", "I want to buy this fund", "The customer wants to buy"),
        ],
        authorisation="above", authorisation_field="amount", authorisation_above=50_000,
        signature=True,
        keywords=["investment", "fund", "wealth"],
    ),
}


async def seed_definitions(definitions: ServiceDefinitions, audit: AuditChain, maker: str, checker: str) -> None:
    """The demo services' definitions, proposed by one admin and approved by the other (maker-checker)."""
    for code, definition in DEMO_DEFINITIONS.items():
        if not await definitions.versions(code):
            version = await definitions.propose(code, definition, maker)
            await audit.append(maker, "service_definition.proposed", f"service:{code}",
                               {"version": version.version, "definition": asdict(definition)})
            await definitions.approve(code, version.version, checker)
            await audit.append(checker, "service_definition.approved", f"service:{code}",
                               {"version": version.version, "made_by": maker})


@dataclass
class SeedResult:
    created: bool
    accounts: list[tuple[str, str, str]] = field(default_factory=list)  # (role, username, password)
    enrolment_code: str = ""


async def seed_services(catalogue: Catalogue) -> bool:
    """Create the demo catalogue when it is empty (admins' edits are never overwritten)."""
    if await catalogue.list():
        return False
    for svc in DEMO_SERVICES:
        await catalogue.upsert(svc)
    return True


async def seed_demo(directory: Directory) -> SeedResult:
    """Seed once: the catalogue when it is empty; people and the kiosk code when no user exists."""
    catalogue = Catalogue(directory.engine)
    await seed_services(catalogue)
    if await directory.list_users():
        return SeedResult(created=False)
    await directory.ensure_branch(*DEMO_BRANCH)
    result = SeedResult(created=True)
    teller_skills = await catalogue.default_teller_skills()
    # Two admins, so that the media console's maker-checker (a second admin approves) can be tried.
    people = (("teller", "teller1"), ("teller", "teller2"), ("supervisor", "supervisor1"),
              ("admin", "admin1"), ("admin", "admin2"))
    # teller2 is also qualified for the wealth queue, so no demo service waits for a teller forever.
    skills = {"teller1": teller_skills, "teller2": {**teller_skills, "wealth": 1}}
    for role, username in people:
        # Distinct names: the wallboard, the call list and the approval history show them.
        _, password = await directory.add_user(username, role, display_name=f"Demo {role} {username[-1]}",
                                               skills=skills.get(username))
        result.accounts.append((role, username, password))
    admins = [u.id for u in await directory.list_users(role="admin")]
    await seed_definitions(ServiceDefinitions(directory.engine), AuditChain(directory.engine), admins[0], admins[1])
    result.enrolment_code = await directory.create_enrolment_code(DEMO_BRANCH[0])
    return result
