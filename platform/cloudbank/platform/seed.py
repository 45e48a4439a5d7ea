"""Demo data that `cloudbank up` creates on its first start: a branch, a kiosk code and accounts."""

from __future__ import annotations

from dataclasses import dataclass, field

from cloudbank.platform.identity import Directory

DEMO_BRANCH = ("demo", "Demo Branch")


@dataclass
class SeedResult:
    created: bool
    accounts: list[tuple[str, str, str]] = field(default_factory=list)  # (role, username, password)
    enrolment_code: str = ""


async def seed_demo(directory: Directory) -> SeedResult:
    """Seed once: does nothing when any user exists already."""
    if await directory.list_users():
        return SeedResult(created=False)
    await directory.ensure_branch(*DEMO_BRANCH)
    result = SeedResult(created=True)
    for role, username in (("teller", "teller1"), ("supervisor", "supervisor1"), ("admin", "admin1")):
        _, password = await directory.add_user(username, role, display_name=f"Demo {role}")
        result.accounts.append((role, username, password))
    result.enrolment_code = await directory.create_enrolment_code(DEMO_BRANCH[0])
    return result
