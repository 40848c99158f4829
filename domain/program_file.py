"""``program.toml``'s schema (pydantic) and the words its refusals use.

Strict: "5280" is not a number, true is not 1, a rate is a decimal in
quotes so no float rounding reaches a fee. A value the rules cannot use is
refused with the words :func:`problems` gives, each after its dotted key
(``fee.cap_scope: must be …``). Tables that list every key (fee, payer,
requirements) refuse unknown ones: they are typos.

Only the file's shape lives here; ``program.load_program`` reads the file,
names it in each message and turns the checked tables into a ``Program``.
This module does not import ``program`` (which imports it), so there is no
cycle.
"""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from domain.normalize import ZENGIN_ALLOWED

# The 就任承諾書 text when [commission] leaves it out; also ``Program``'s
# default, so a Program built in code and one loaded without the key agree.
DEFAULT_ACCEPTANCE_TEXT = "私は、{program}の専門家として委嘱されることを承諾し、委嘱条件（{version}）を遵守します。"


def _rate(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be a decimal number in quotes, e.g. \"0.1021\" (got {value!r})")
    try:
        rate = Decimal(str(value))  # str() first: Decimal(0.1021) would carry the float's binary error
    except InvalidOperation:
        raise ValueError(f"must be a decimal number, e.g. \"0.1021\" (got {value!r})") from None
    if not rate.is_finite():
        raise ValueError(f"must be a finite number (got {value!r})")
    if not Decimal(0) <= rate < Decimal(1):
        raise ValueError(f"must be a fraction between 0 and 1, e.g. \"0.1021\" (got {rate})")
    return rate


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of texts (got {value!r})")
    return tuple(value)


def _digits(width: int) -> BeforeValidator:
    def check(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f"write the {width} digits in quotes so leading zeros stay (got {value!r})")
        if isinstance(value, str) and not re.fullmatch(rf"[0-9]{{{width}}}", value):
            raise ValueError(f"must be exactly {width} digits (got {value!r})")
        return value  # anything else: "must be a text in quotes"

    return BeforeValidator(check)


def _kana(max_len: int) -> AfterValidator:
    """The bank rejects a header that is not in the 全銀 character set or too long, so refuse it at start-up."""
    def check(value: str) -> str:
        bad = "".join(dict.fromkeys(ch for ch in value if ch not in ZENGIN_ALLOWED))
        if not value.strip():
            raise ValueError("must not be empty")
        if bad:
            raise ValueError(f"only half-width 全銀 kana (ｱ-ﾝ, ﾞ, ﾟ, no small kana), A-Z, 0-9, space and ().-/, "
                             f"are allowed (found {bad!r})")
        if len(value) > max_len:
            raise ValueError(f"at most {max_len} characters (got {len(value)})")
        return value

    return AfterValidator(check)


Positive = Annotated[int, Field(gt=0)]
Count = Annotated[int, Field(ge=0)]
Texts = Annotated[tuple[str, ...], BeforeValidator(_texts)]


class _Table(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)  # keys of no use here are ignored; extra="forbid" refuses them


class ProgramTable(_Table):
    name: str
    timezone: str = "Asia/Tokyo"
    period_start: date
    period_end: date

    @field_validator("timezone")
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name

    @field_validator("period_end")
    def _not_before_start(cls, end: date, info: ValidationInfo) -> date:
        start = info.data.get("period_start")
        if start is not None and end < start:
            raise ValueError(f"must not be before program.period_start ({start})")
        return end


class FeeTable(_Table, extra="forbid"):
    hourly_yen: Positive
    unit_minutes: Positive
    cap_yen: Positive
    cap_scope: Literal["dispatch", "day"]
    withholding: bool
    withholding_rate: Annotated[Decimal, BeforeValidator(_rate)]
    withholding_base: Literal["fee", "fee_and_travel"]

    @field_validator("unit_minutes")
    def _whole_yen_unit(cls, unit_minutes: int, info: ValidationInfo) -> int:
        hourly_yen = info.data.get("hourly_yen")
        if hourly_yen is not None and (unit_minutes > 60 or hourly_yen * unit_minutes % 60):
            raise ValueError(f"must be at most 60 and give a whole-yen unit fee (fee.hourly_yen × unit_minutes / 60"
                             f" = {Decimal(hourly_yen * unit_minutes) / 60})")
        return unit_minutes


class PayerTable(_Table, extra="forbid"):
    consignor_code: Annotated[str, _digits(10)]
    consignor_name_kana: Annotated[str, _kana(40)]
    bank_code: Annotated[str, _digits(4)]
    bank_name_kana: Annotated[str, _kana(15)]
    branch_code: Annotated[str, _digits(3)]
    branch_name_kana: Annotated[str, _kana(15)]
    account_type: Literal["1", "2"]
    account_number: Annotated[str, _digits(7)]
    transfer_day: Annotated[int, Field(ge=1, le=31)]  # a day of the month


class DispatchTable(_Table):
    free_per_business: Count
    geofence_radius_m: Positive
    geofence_max_misses: Positive = 3
    checkin_tolerance_days: Count = 0
    report_reminder_days: Count


class AttendanceTable(_Table):
    # A check-in more than this many minutes away from the scheduled start (either side) is told to the
    # expert and shown as 要確認 on the report card.
    early_late_minutes: Positive = 60


class SessionTable(_Table):
    idle_minutes: Positive = 30
    retry_limit: Positive = 3


class RetentionTable(_Table, extra="forbid"):
    processed_event_days: Positive = 30
    outbox_days: Positive = 90
    closed_application_photo_days: Positive = 90
    abandoned_draft_days: Positive = 180
    abandoned_draft_notice_days: Positive = 14
    log_days: Positive = 30
    records_years: Positive = 7


class VersionedTextTable(_Table):
    version: str
    text: str


class CommissionTable(_Table):
    letter_auto_send: bool = True
    secretariat_name: str = "中小企業119 事務局"
    number_prefix: str = "119"
    acceptance_text: str = DEFAULT_ACCEPTANCE_TEXT


class RequirementTable(_Table, extra="forbid"):
    key: str
    label: str
    min_years: int | None = None


class RegistrationTable(_Table):
    qualifications: Texts
    expertise: Texts
    requirements: list[RequirementTable]


class ProgramFile(_Table):
    """The whole file; tables with defaults may be left out, ``[payer]`` until a 全銀 file is made."""

    program: ProgramTable
    fee: FeeTable
    payer: PayerTable | None = None
    dispatch: DispatchTable
    session: SessionTable = Field(default_factory=SessionTable)
    attendance: AttendanceTable = Field(default_factory=AttendanceTable)
    retention: RetentionTable = Field(default_factory=RetentionTable)
    registration: RegistrationTable
    commission: CommissionTable = Field(default_factory=CommissionTable)
    terms: VersionedTextTable
    conditions: VersionedTextTable

    @field_validator("payer", mode="before")
    def _empty_payer_is_none(cls, value: Any) -> Any:
        return None if value == {} else value


def _dotted(loc: tuple[int | str, ...]) -> str:
    """``('registration', 'requirements', 0, 'key')`` → ``registration.requirements[0].key``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


_CLOSED_TABLES: dict[str, type[BaseModel]] = {"fee": FeeTable, "payer": PayerTable, "registration": RequirementTable,
                                              "retention": RetentionTable}  # by loc[0]


_PROBLEMS = {  # pydantic's error type → what to tell whoever edits the file
    "int_type": "must be a whole number (got {input!r})",
    "bool_type": "must be true or false (got {input!r})",
    "string_type": "must be a text in quotes (got {input!r})",
    "date_type": "must be a date like 2026-04-01 (got {input!r})",
    "literal_error": "must be {expected} (got {input!r})",
    "greater_than": "must be greater than {gt} (got {input})",
    "greater_than_equal": "must be {ge} or more (got {input})",
    "less_than_equal": "must be at most {le} (got {input})",
    "list_type": "must be [[{where}]] tables",
    "value_error": "{error}",  # the validators' own words
}


def _problem(error: Any) -> str:
    """What is wrong, in words for whoever edits the file (the key is named before it)."""
    kind, loc, where = error["type"], error["loc"], _dotted(error["loc"])
    if kind == "missing":
        return f"the [{where}] table is missing" if len(loc) == 1 else "is missing"
    if kind == "extra_forbidden":
        return "unknown key (typo?); known keys: " + ", ".join(sorted(_CLOSED_TABLES[loc[0]].model_fields))
    if kind == "model_type":  # an item of [[registration.requirements]], or a table
        return "must be a table with key and label" if isinstance(loc[-1], int) else f"must be a [{where}] table"
    if kind in _PROBLEMS:
        return _PROBLEMS[kind].format(input=error.get("input"), where=where, **error.get("ctx", {}))
    return f"{error['msg']} (got {error.get('input')!r})"


def problems(exc: ValidationError) -> list[str]:
    """Every problem pydantic found, one line each: ``fee.cap_scope: must be …`` (the caller names the file)."""
    return [f"{_dotted(e['loc'])}: {_problem(e)}" for e in exc.errors()]
