"""The program's rules as data, loaded from ``program.toml``.

The 中小企業119 rules change every fiscal year, so nothing here is a
constant in code: the fee, cap, units, period and texts all come from the
TOML file. This module imports nothing of ours.
"""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

DEFAULT_PATH = Path(__file__).with_name("program.toml")


@dataclass(frozen=True)
class VersionedText:
    """A text users agree to; the version and hash go into the consent record."""

    version: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Requirement:
    key: str
    label: str
    min_years: int | None = None


@dataclass(frozen=True)
class Program:
    name: str
    timezone: ZoneInfo
    period_start: date
    period_end: date
    hourly_yen: int
    unit_minutes: int
    cap_yen: int
    cap_scope: str
    withholding: bool
    withholding_rate: Decimal
    withholding_base: str
    free_dispatches_per_business: int
    geofence_radius_m: int
    report_reminder_days: int
    idle_minutes: int
    retry_limit: int
    terms: VersionedText
    conditions: VersionedText
    qualifications: tuple[str, ...]
    expertise: tuple[str, ...]
    requirements: tuple[Requirement, ...] = field(default_factory=tuple)
    letter_auto_send: bool = True
    secretariat_name: str = "中小企業119 事務局"
    commission_number_prefix: str = "119"
    acceptance_text: str = "私は、{program}の専門家として委嘱されることを承諾し、委嘱条件（{version}）を遵守します。"

    def acceptance(self) -> str:
        """The 就任承諾書 text the expert signs, with the conditions version it refers to."""
        return self.acceptance_text.format(program=self.name, version=self.conditions.version)

    def now(self) -> datetime:
        """Business time: always Asia/Tokyo (or the configured zone), whatever the server's zone."""
        return datetime.now(self.timezone)

    def fee_for_minutes(self, minutes: int) -> int:
        """Fee in yen for face-to-face minutes: whole units only, capped.

        0:29 → 0, 0:30 → 2,640, 1:30 → 7,920, 6:00 and beyond → the cap.
        """
        if minutes <= 0:
            return 0
        unit_yen = self.hourly_yen * self.unit_minutes // 60
        units = minutes // self.unit_minutes
        return min(units * unit_yen, self.cap_yen)


def load_program(path: str | Path | None = None) -> Program:
    """Read and check the program file; a bad file stops start-up with a clear error."""
    p = Path(path) if path else DEFAULT_PATH
    with p.open("rb") as fh:
        raw = tomllib.load(fh)
    prog, fee, disp, sess = raw["program"], raw["fee"], raw["dispatch"], raw.get("session", {})
    reg = raw["registration"]
    com = raw.get("commission", {})
    if fee["cap_scope"] not in ("dispatch", "day"):
        raise ValueError(f"{p}: fee.cap_scope must be 'dispatch' or 'day'")
    if fee["withholding_base"] not in ("fee", "fee_and_travel"):
        raise ValueError(f"{p}: fee.withholding_base must be 'fee' or 'fee_and_travel'")
    return Program(
        name=prog["name"],
        timezone=ZoneInfo(prog.get("timezone", "Asia/Tokyo")),
        period_start=prog["period_start"],
        period_end=prog["period_end"],
        hourly_yen=int(fee["hourly_yen"]),
        unit_minutes=int(fee["unit_minutes"]),
        cap_yen=int(fee["cap_yen"]),
        cap_scope=fee["cap_scope"],
        withholding=bool(fee["withholding"]),
        withholding_rate=Decimal(str(fee["withholding_rate"])),
        withholding_base=fee["withholding_base"],
        free_dispatches_per_business=int(disp["free_per_business"]),
        geofence_radius_m=int(disp["geofence_radius_m"]),
        report_reminder_days=int(disp["report_reminder_days"]),
        idle_minutes=int(sess.get("idle_minutes", 30)),
        retry_limit=int(sess.get("retry_limit", 3)),
        terms=VersionedText(raw["terms"]["version"], raw["terms"]["text"]),
        conditions=VersionedText(raw["conditions"]["version"], raw["conditions"]["text"]),
        qualifications=tuple(reg["qualifications"]),
        expertise=tuple(reg["expertise"]),
        requirements=tuple(Requirement(**r) for r in reg["requirements"]),
        letter_auto_send=bool(com.get("letter_auto_send", True)),
        secretariat_name=str(com.get("secretariat_name", "中小企業119 事務局")),
        commission_number_prefix=str(com.get("number_prefix", "119")),
        acceptance_text=str(com.get("acceptance_text", Program.acceptance_text)),
    )
