"""The program's rules as data, loaded from ``program.toml``.

The 中小企業119 rules change every fiscal year, so nothing here is a
constant in code: the fee, cap, units, period, payer and texts all come from
the TOML file. A mistake in that file must stop start-up with a message that
names the key (``fee.cap_scope``), not surface later as a wrong payment, so
every value is checked here. This module imports nothing of ours.
"""
from __future__ import annotations

import calendar
import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jpholiday

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
    payer: Payer | None = None
    geofence_max_misses: int = 3  # check-ins/outs beyond the radius before the reason is asked
    checkin_tolerance_days: int = 0  # days either side of the dispatch's date on which check-in is allowed
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


# --- loading and validation ------------------------------------------------------------------------------

_MISSING: Any = object()

# The 全銀 character set (JIS X 0201 subset): half-width katakana without small
# kana, A–Z, 0–9, space and a few symbols. Duplicated from
# conversations.normalize.ZENGIN_ALLOWED because this module imports nothing of ours.
_ZENGIN_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ().-/,\uff62\uff63\uff9e\uff9f\uff66"
    + "".join(chr(o) for o in range(0xFF71, 0xFF9E))
)

_FEE_KEYS = frozenset(
    {"hourly_yen", "unit_minutes", "cap_yen", "cap_scope", "withholding", "withholding_rate", "withholding_base"}
)
_PAYER_KEYS = frozenset(
    {
        "consignor_code", "consignor_name_kana", "bank_code", "bank_name_kana", "branch_code",
        "branch_name_kana", "account_type", "account_number", "transfer_day",
    }
)


class _Reader:
    """Typed access to the parsed TOML with errors naming ``file: section.key``."""

    def __init__(self, path: Path, raw: dict[str, Any]) -> None:
        self.path = path
        self.raw = raw

    def fail(self, key: str, problem: str) -> ProgramConfigError:
        return ProgramConfigError(f"{self.path.name}: {key}: {problem}")

    def section(self, name: str, *, required: bool = True, known: frozenset[str] | None = None) -> dict[str, Any]:
        sec = self.raw.get(name, _MISSING)
        if sec is _MISSING:
            if required:
                raise self.fail(name, f"the [{name}] table is missing")
            return {}
        if not isinstance(sec, dict):
            raise self.fail(name, f"must be a [{name}] table")
        if known is not None:
            for key in sec:
                if key not in known:
                    raise self.fail(f"{name}.{key}", "unknown key (typo?); known keys: " + ", ".join(sorted(known)))
        return sec

    def get(self, sec: dict[str, Any], name: str, key: str, kind: type, default: Any = _MISSING) -> Any:
        dotted = f"{name}.{key}"
        if key not in sec:
            if default is _MISSING:
                raise self.fail(dotted, "is missing")
            return default
        value = sec[key]
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(dotted, f"must be a whole number (got {value!r})")
        elif kind is bool:
            if not isinstance(value, bool):
                raise self.fail(dotted, f"must be true or false (got {value!r})")
        elif kind is date:
            if isinstance(value, datetime) or not isinstance(value, date):
                raise self.fail(dotted, f"must be a date like 2026-04-01 (got {value!r})")
        elif kind is Decimal:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise self.fail(dotted, f"must be a decimal number in quotes, e.g. \"0.1021\" (got {value!r})")
            try:
                # str() first: Decimal(0.1021) would carry the float's binary error.
                value = Decimal(str(value))
            except InvalidOperation:
                raise self.fail(dotted, f"must be a decimal number, e.g. \"0.1021\" (got {value!r})") from None
            if not value.is_finite():
                raise self.fail(dotted, f"must be a finite number (got {value!r})")
        elif kind is str:
            if not isinstance(value, str):
                raise self.fail(dotted, f"must be a text in quotes (got {value!r})")
        elif kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.fail(dotted, f"must be a list of texts (got {value!r})")
        return value

    def positive(self, value: int, dotted: str, *, zero_ok: bool = False) -> int:
        if value < 0 or (value == 0 and not zero_ok):
            raise self.fail(dotted, f"must be {'0 or more' if zero_ok else 'greater than 0'} (got {value})")
        return value

    def choice(self, value: str, dotted: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(dotted, "must be " + " or ".join(repr(c) for c in choices) + f" (got {value!r})")
        return value

    def digits(self, sec: dict[str, Any], name: str, key: str, width: int) -> str:
        value = sec.get(key, _MISSING)
        if isinstance(value, int) and not isinstance(value, bool):
            raise self.fail(f"{name}.{key}", f"write the {width} digits in quotes so leading zeros stay (got {value!r})")
        value = self.get(sec, name, key, str)
        if not re.fullmatch(rf"[0-9]{{{width}}}", value):
            raise self.fail(f"{name}.{key}", f"must be exactly {width} digits (got {value!r})")
        return value

    def kana(self, sec: dict[str, Any], name: str, key: str, max_len: int) -> str:
        value = self.get(sec, name, key, str)
        bad = "".join(dict.fromkeys(ch for ch in value if ch not in _ZENGIN_CHARS))
        if not value.strip():
            raise self.fail(f"{name}.{key}", "must not be empty")
        if bad:
            raise self.fail(
                f"{name}.{key}",
                f"only half-width 全銀 kana (ｱ-ﾝ, ﾞ, ﾟ, no small kana), A-Z, 0-9, space and ().-/, are allowed "
                f"(found {bad!r})",
            )
        if len(value) > max_len:
            raise self.fail(f"{name}.{key}", f"at most {max_len} characters (got {len(value)})")
        return value


def _load_payer(r: _Reader) -> Payer | None:
    """The optional ``[payer]`` table: only the 全銀 export needs it, and fails clearly without it."""
    sec = r.section("payer", required=False, known=_PAYER_KEYS)
    if not sec:
        return None
    n = "payer"
    account_type = r.choice(r.get(sec, n, "account_type", str), "payer.account_type", ("1", "2"))
    transfer_day = r.get(sec, n, "transfer_day", int)
    if not 1 <= transfer_day <= 31:
        raise r.fail("payer.transfer_day", f"must be a day of the month, 1-31 (got {transfer_day})")
    return Payer(
        consignor_code=r.digits(sec, n, "consignor_code", 10),
        consignor_name_kana=r.kana(sec, n, "consignor_name_kana", 40),
        bank_code=r.digits(sec, n, "bank_code", 4),
        bank_name_kana=r.kana(sec, n, "bank_name_kana", 15),
        branch_code=r.digits(sec, n, "branch_code", 3),
        branch_name_kana=r.kana(sec, n, "branch_name_kana", 15),
        account_type=account_type,
        account_number=r.digits(sec, n, "account_number", 7),
        transfer_day=transfer_day,
    )


def _load_requirements(r: _Reader, reg: dict[str, Any]) -> tuple[Requirement, ...]:
    items = reg.get("requirements", _MISSING)
    if items is _MISSING:
        raise r.fail("registration.requirements", "is missing")
    if not isinstance(items, list):
        raise r.fail("registration.requirements", "must be [[registration.requirements]] tables")
    out: list[Requirement] = []
    for i, item in enumerate(items):
        where = f"registration.requirements[{i}]"
        if not isinstance(item, dict):
            raise r.fail(where, "must be a table with key and label")
        unknown = set(item) - {"key", "label", "min_years"}
        if unknown:
            raise r.fail(f"{where}.{sorted(unknown)[0]}", "unknown key; known keys: key, label, min_years")
        min_years = r.get(item, where, "min_years", int, None)
        out.append(Requirement(r.get(item, where, "key", str), r.get(item, where, "label", str), min_years))
    return tuple(out)


def load_program(path: str | Path | None = None) -> Program:
    """Read and check the program file; a bad file stops start-up with a clear error naming the key."""
    p = Path(path) if path else DEFAULT_PATH
    with p.open("rb") as fh:
        try:
            raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ProgramConfigError(f"{p.name}: not valid TOML: {exc}") from None
    r = _Reader(p, raw)

    prog = r.section("program")
    fee = r.section("fee", known=_FEE_KEYS)
    disp = r.section("dispatch")
    sess = r.section("session", required=False)
    reg = r.section("registration")
    com = r.section("commission", required=False)
    terms = r.section("terms")
    conditions = r.section("conditions")

    tz_name = r.get(prog, "program", "timezone", str, "Asia/Tokyo")
    try:
        timezone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.fail("program.timezone", f"unknown time zone {tz_name!r}") from None
    period_start = r.get(prog, "program", "period_start", date)
    period_end = r.get(prog, "program", "period_end", date)
    if period_end < period_start:
        raise r.fail("program.period_end", f"must not be before program.period_start ({period_start})")

    hourly_yen = r.positive(r.get(fee, "fee", "hourly_yen", int), "fee.hourly_yen")
    unit_minutes = r.positive(r.get(fee, "fee", "unit_minutes", int), "fee.unit_minutes")
    if unit_minutes > 60 or hourly_yen * unit_minutes % 60:
        raise r.fail(
            "fee.unit_minutes",
            f"must be at most 60 and give a whole-yen unit fee (fee.hourly_yen × unit_minutes / 60 = "
            f"{Decimal(hourly_yen * unit_minutes) / 60})",
        )
    cap_yen = r.positive(r.get(fee, "fee", "cap_yen", int), "fee.cap_yen")
    withholding_rate = r.get(fee, "fee", "withholding_rate", Decimal)
    if not Decimal(0) <= withholding_rate < Decimal(1):
        raise r.fail("fee.withholding_rate", f"must be a fraction between 0 and 1, e.g. \"0.1021\" (got {withholding_rate})")

    return Program(
        name=r.get(prog, "program", "name", str),
        timezone=timezone,
        period_start=period_start,
        period_end=period_end,
        hourly_yen=hourly_yen,
        unit_minutes=unit_minutes,
        cap_yen=cap_yen,
        cap_scope=r.choice(r.get(fee, "fee", "cap_scope", str), "fee.cap_scope", ("dispatch", "day")),
        withholding=r.get(fee, "fee", "withholding", bool),
        withholding_rate=withholding_rate,
        withholding_base=r.choice(
            r.get(fee, "fee", "withholding_base", str), "fee.withholding_base", ("fee", "fee_and_travel")
        ),
        free_dispatches_per_business=r.positive(
            r.get(disp, "dispatch", "free_per_business", int), "dispatch.free_per_business", zero_ok=True
        ),
        geofence_radius_m=r.positive(r.get(disp, "dispatch", "geofence_radius_m", int), "dispatch.geofence_radius_m"),
        geofence_max_misses=r.positive(r.get(disp, "dispatch", "geofence_max_misses", int, 3),
                                       "dispatch.geofence_max_misses"),
        checkin_tolerance_days=r.positive(r.get(disp, "dispatch", "checkin_tolerance_days", int, 0),
                                          "dispatch.checkin_tolerance_days", zero_ok=True),
        report_reminder_days=r.positive(
            r.get(disp, "dispatch", "report_reminder_days", int), "dispatch.report_reminder_days", zero_ok=True
        ),
        idle_minutes=r.positive(r.get(sess, "session", "idle_minutes", int, 30), "session.idle_minutes"),
        retry_limit=r.positive(r.get(sess, "session", "retry_limit", int, 3), "session.retry_limit"),
        terms=VersionedText(r.get(terms, "terms", "version", str), r.get(terms, "terms", "text", str)),
        conditions=VersionedText(
            r.get(conditions, "conditions", "version", str), r.get(conditions, "conditions", "text", str)
        ),
        qualifications=tuple(r.get(reg, "registration", "qualifications", list)),
        expertise=tuple(r.get(reg, "registration", "expertise", list)),
        requirements=_load_requirements(r, reg),
        letter_auto_send=r.get(com, "commission", "letter_auto_send", bool, True),
        secretariat_name=r.get(com, "commission", "secretariat_name", str, "中小企業119 事務局"),
        commission_number_prefix=r.get(com, "commission", "number_prefix", str, "119"),
        acceptance_text=r.get(com, "commission", "acceptance_text", str, Program.acceptance_text),
        payer=_load_payer(r),
    )
