"""The program's rules as data, loaded from ``program.toml``.

The 中小企業119 rules change every fiscal year, so nothing here is a
constant in code: the fee, cap, units, period, payer and texts all come from
the TOML file. A mistake in that file must stop start-up with a message that
names the key (``fee.cap_scope``), not surface later as a wrong payment, so
every value is checked (pydantic) against the schema in
``domain.program_file``. That is the only module of ours imported here, and it
does not import this one: everything else imports ``program``.
"""
from __future__ import annotations

import calendar
import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import jpholiday
from pydantic import ValidationError

from domain.program_file import DEFAULT_ACCEPTANCE_TEXT, ProgramFile, RetentionTable, problems

DEFAULT_PATH = Path(__file__).with_name("program.toml")


class ProgramConfigError(ValueError):
    """``program.toml`` is missing a key or holds a value the rules cannot use.

    The message always starts with the file and the dotted key
    (``program.toml: fee.cap_scope …``) so whoever edits the file knows
    exactly what to fix.
    """


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
class FeeBreakdown:
    """One dispatch's fee, as stored with the report and paid.

    Gross, withholding and net are kept separately because the payment
    file carries the net while the withholding has to be reported to the
    tax office; ``capped`` tells the secretariat why the fee is lower than
    minutes × rate.
    """

    minutes: int
    units: int
    gross_yen: int
    capped: bool
    withholding_yen: int
    travel_yen: int
    net_yen: int


@dataclass(frozen=True)
class Payer:
    """The paying account written into the 全銀 transfer file's header.

    Names are half-width 全銀 kana exactly as the bank registered them:
    the bank rejects a file whose header does not match its records, so
    nothing is converted here. ``transfer_day`` is the 振込指定日 rule: that
    day of the month after the fee month (see :meth:`Program.transfer_date`).
    """

    consignor_code: str  # 委託者コード, 10 digits, given by the bank
    consignor_name_kana: str  # 委託者名, ≤ 40
    bank_code: str  # 仕向銀行番号, 4 digits
    bank_name_kana: str  # 仕向銀行名, ≤ 15
    branch_code: str  # 仕向支店番号, 3 digits
    branch_name_kana: str  # 仕向支店名, ≤ 15
    account_type: str  # 預金種目: "1" 普通 / "2" 当座
    account_number: str  # 7 digits
    transfer_day: int  # 振込指定日: day of the month following the fee month


# How long personal data and its traces are kept (``[retention]``; see ``domain.retention``):
# the checked table itself, already an immutable value — one place for the names and defaults.
Retention = RetentionTable


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
    acceptance_text: str = DEFAULT_ACCEPTANCE_TEXT
    payer: Payer | None = None
    geofence_max_misses: int = 3  # check-ins/outs beyond the radius before the reason is asked
    checkin_tolerance_days: int = 0  # days either side of the dispatch's date on which check-in is allowed
    checkin_early_late_minutes: int = 60  # a check-in further than this from the scheduled start is 要確認
    retention: Retention = field(default_factory=Retention)
    # Where business time comes from. Only tests set it: the check-in rule
    # ("on the dispatch's Tokyo day") makes a scenario that spans hours depend
    # on the hour it runs at, so they pin the clock instead of the scenario.
    clock: Callable[[], datetime] | None = field(default=None, compare=False, repr=False)

    def acceptance(self) -> str:
        """The 就任承諾書 text the expert signs, with the conditions version it refers to."""
        return self.acceptance_text.format(program=self.name, version=self.conditions.version)

    def now(self) -> datetime:
        """Business time: always Asia/Tokyo (or the configured zone), whatever the server's zone."""
        if self.clock is not None:
            return self.clock().astimezone(self.timezone)
        return datetime.now(self.timezone)

    # --- fees ------------------------------------------------------------------------------------------

    @property
    def unit_yen(self) -> int:
        """Fee for one counted unit (5,280 yen/h × 30 min = 2,640); whole yen, checked at load."""
        return self.hourly_yen * self.unit_minutes // 60

    def fee_for_minutes(self, minutes: int) -> int:
        """Fee in yen for face-to-face minutes: whole units only, capped.

        0:29 → 0, 0:30 → 2,640, 1:30 → 7,920, 6:00 and beyond → the cap.
        Kept for callers that only need the gross of one dispatch; same as
        ``fee(minutes).gross_yen``.
        """
        return self.fee(minutes).gross_yen

    def fee(self, minutes: int, travel_yen: int = 0, already_paid_today_yen: int = 0) -> FeeBreakdown:
        """The whole fee of one dispatch: units, cap, withholding, travel, net.

        * Only whole ``unit_minutes`` count; the remainder is truncated
          (the program pays for completed half hours, not started ones).
        * ``cap_scope = "dispatch"``: each dispatch is capped on its own and
          ``already_paid_today_yen`` is ignored. ``"day"``: the cap covers all
          of one expert's dispatches that day, so the caller passes the gross
          already counted for that expert and day, and this dispatch gets at
          most ``cap - already`` (never below 0).
        * Travel is reimbursed as claimed and is outside the cap.
        * Withholding (when on) is ``floor(base × rate)`` in Decimal — never
          float, whose binary rounding can be off by a yen — on the fee or on
          fee + travel, per ``withholding_base``.
        * net = gross − withholding + travel.
        """
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise TypeError("minutes must be an int")
        if travel_yen < 0:
            raise ValueError(f"travel_yen must not be negative (got {travel_yen})")
        if already_paid_today_yen < 0:
            raise ValueError(f"already_paid_today_yen must not be negative (got {already_paid_today_yen})")
        units = minutes // self.unit_minutes if minutes > 0 else 0
        uncapped = units * self.unit_yen
        if self.cap_scope == "day":
            room = max(self.cap_yen - already_paid_today_yen, 0)
        else:
            room = self.cap_yen
        gross = min(uncapped, room)
        withholding_yen = 0
        if self.withholding:
            base = gross + travel_yen if self.withholding_base == "fee_and_travel" else gross
            withholding_yen = int((Decimal(base) * self.withholding_rate).to_integral_value(rounding=ROUND_FLOOR))
        return FeeBreakdown(
            minutes=max(minutes, 0),
            units=units,
            gross_yen=gross,
            capped=uncapped > gross,
            withholding_yen=withholding_yen,
            travel_yen=travel_yen,
            net_yen=gross - withholding_yen + travel_yen,
        )

    def fee_month(self, dispatch_date: date) -> str:
        """The fee month "YYYY-MM": the month of the dispatch date in the program's zone.

        Callers pass a Tokyo date. An aware datetime is converted to the
        program's zone first, so a dispatch at 00:30 JST on the 1st (still the
        previous month in UTC) lands in the right month.
        """
        if isinstance(dispatch_date, datetime):
            if dispatch_date.tzinfo is not None:
                dispatch_date = dispatch_date.astimezone(self.timezone)
            dispatch_date = dispatch_date.date()
        return f"{dispatch_date.year:04d}-{dispatch_date.month:02d}"

    def transfer_date(self, fee_month: str) -> date:
        """振込指定日 for a fee month: ``payer.transfer_day`` of the following month.

        A day past the month's end means its last day. A day banks are closed
        (see :func:`is_bank_holiday`) moves to the business day before it,
        because a 総合振込 file dated on a closed day is refused or executed
        late, and paying late breaks the promise to the experts.
        """
        payer = self.require_payer()
        m = re.fullmatch(r"(\d{4})-(\d{2})", fee_month or "")
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ValueError(f"fee month must be YYYY-MM (got {fee_month!r})")
        year, month = int(m.group(1)), int(m.group(2))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        day = min(payer.transfer_day, calendar.monthrange(year, month)[1])
        result = date(year, month, day)
        while is_bank_holiday(result):
            result -= timedelta(days=1)
        return result

    def require_payer(self) -> Payer:
        """The payer settings, or a clear error when the file has no ``[payer]`` table."""
        if self.payer is None:
            raise ProgramConfigError("program.toml: payer: the [payer] table is required for 全銀 transfer files")
        return self.payer


def is_bank_holiday(day: date) -> bool:
    """Whether Japanese banks are closed: Saturdays, Sundays, national
    holidays (including 振替休日 and 国民の休日, from ``jpholiday``, which
    computes them by the holiday law, so future years work) and the year-end
    closure 12/31–1/3 (銀行法施行令 第5条)."""
    if day.weekday() >= 5:
        return True
    if (day.month, day.day) in ((12, 31), (1, 1), (1, 2), (1, 3)):
        return True
    return jpholiday.is_holiday(day)


# --- loading program.toml: the schema and its error wording are domain.program_file's -----------------------


def _from_file(parsed: ProgramFile) -> Program:
    """The checked tables as the rules: mostly the same names, a few renamed or turned into our types."""
    disp, com, reg = parsed.dispatch, parsed.commission, parsed.registration
    return Program(
        **parsed.program.model_dump(exclude={"timezone"}), timezone=ZoneInfo(parsed.program.timezone),
        **parsed.fee.model_dump(),  # hourly_yen … withholding_base: the same names
        **parsed.session.model_dump(),  # idle_minutes, retry_limit
        free_dispatches_per_business=disp.free_per_business,
        **disp.model_dump(exclude={"free_per_business"}),
        checkin_early_late_minutes=parsed.attendance.early_late_minutes,
        terms=VersionedText(parsed.terms.version, parsed.terms.text),
        conditions=VersionedText(parsed.conditions.version, parsed.conditions.text),
        **reg.model_dump(exclude={"requirements"}),  # qualifications, expertise
        requirements=tuple(Requirement(r.key, r.label, r.min_years) for r in reg.requirements),
        commission_number_prefix=com.number_prefix,
        **com.model_dump(exclude={"number_prefix"}),
        payer=None if parsed.payer is None else Payer(**parsed.payer.model_dump()),
        retention=parsed.retention,
    )


def load_program(path: str | Path | None = None) -> Program:
    """Read and check the program file; a bad file stops start-up with a clear error naming the key.

    Every problem is reported, one line each: ``program.toml: fee.cap_scope: must be …``.
    """
    p = Path(path) if path else DEFAULT_PATH
    with p.open("rb") as fh:
        try:
            raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ProgramConfigError(f"{p.name}: not valid TOML: {exc}") from None
    try:
        parsed = ProgramFile.model_validate(raw)
    except ValidationError as exc:
        raise ProgramConfigError("\n".join(f"{p.name}: {line}" for line in problems(exc))) from None
    return _from_file(parsed)
