"""program.toml's pydantic schema: what it refuses names the key; what it accepts is the same Program.

tests/test_fees.py pins the rules and one bad value per key; these cover the
schema itself: several problems at once, nested keys, types TOML has and the
rules do not, and the shape of the loaded Program.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from domain.program_file import ProgramFile
from program import DEFAULT_PATH, Payer, Program, ProgramConfigError, Requirement, load_program


def write(tmp_path: Path, *changes: tuple[str, str]) -> Path:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "program.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ProgramConfigError) as err:
        load_program(path)
    return str(err.value).splitlines()


def test_the_shipped_file_loads_into_the_same_program():
    prog = load_program()
    assert isinstance(prog, Program)
    assert prog.timezone == ZoneInfo("Asia/Tokyo")
    assert (prog.period_start, prog.period_end) == (date(2026, 4, 1), date(2027, 2, 28))
    assert (prog.hourly_yen, prog.unit_minutes, prog.cap_yen, prog.cap_scope) == (5280, 30, 31680, "dispatch")
    assert prog.withholding is False and prog.withholding_rate == Decimal("0.1021")
    assert isinstance(prog.withholding_rate, Decimal) and prog.withholding_base == "fee"
    assert (prog.free_dispatches_per_business, prog.geofence_radius_m, prog.geofence_max_misses) == (3, 300, 3)
    assert (prog.checkin_tolerance_days, prog.report_reminder_days, prog.idle_minutes, prog.retry_limit) == (0, 3, 30, 3)
    assert isinstance(prog.qualifications, tuple) and prog.qualifications[0] == "中小企業診断士"
    assert isinstance(prog.expertise, tuple) and len(prog.expertise) == 12
    assert prog.requirements[1] == Requirement("b", "経営者または技術者として10年以上の実務経験", 10)
    assert prog.requirements[0].min_years is None
    assert (prog.terms.version, prog.conditions.version) == ("2026-04", "2026-04")
    assert prog.letter_auto_send is True and prog.commission_number_prefix == "119"
    assert prog.secretariat_name == "中小企業119 事務局"
    assert isinstance(prog.payer, Payer) and prog.payer.bank_code == "0001" and prog.payer.transfer_day == 10
    assert prog.clock is None


def test_optional_tables_take_their_defaults(tmp_path):
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    text = text[:text.index("[session]")] + text[text.index("[terms]"):]  # no [session]
    text = text[:text.index("[commission]")] + text[text.index("[registration]"):]  # no [commission]
    path = tmp_path / "program.toml"
    path.write_text(text, encoding="utf-8")
    prog = load_program(path)
    assert (prog.idle_minutes, prog.retry_limit) == (30, 3)
    assert prog.letter_auto_send is True and prog.acceptance_text == Program.acceptance_text


def test_an_empty_payer_table_is_no_payer(tmp_path):
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    text = text[:text.index("consignor_code")] + text[text.index("[dispatch]"):]
    path = tmp_path / "program.toml"
    path.write_text(text, encoding="utf-8")
    assert load_program(path).payer is None


def test_every_problem_is_reported_each_naming_its_key(tmp_path):
    path = write(tmp_path, ("hourly_yen = 5280", 'hourly_yen = "5280"'), ('cap_scope = "dispatch"', "cap_scope = 1"),
                 ("[terms]", "[termz]"), ("retry_limit = 3", "retry_limit = 0"))
    lines = problems(path)
    assert lines == [
        "program.toml: fee.hourly_yen: must be a whole number (got '5280')",
        "program.toml: fee.cap_scope: must be 'dispatch' or 'day' (got 1)",
        "program.toml: session.retry_limit: must be greater than 0 (got 0)",
        "program.toml: terms: the [terms] table is missing",
    ]


@pytest.mark.parametrize("old, new, expected", [
    ("period_start = 2026-04-01", "period_start = 2026-04-01T09:00:00",
     "program.period_start: must be a date like 2026-04-01"),
    ("period_start = 2026-04-01", 'period_start = "2026-04-01"', "program.period_start: must be a date like"),
    ("hourly_yen = 5280", "hourly_yen = true", "fee.hourly_yen: must be a whole number (got True)"),
    ("hourly_yen = 5280", "hourly_yen = 5280.0", "fee.hourly_yen: must be a whole number"),
    ("withholding = false", "withholding = 0", "fee.withholding: must be true or false"),
    ('withholding_rate = "0.1021"', "withholding_rate = true", "fee.withholding_rate: must be a decimal number"),
    ('withholding_rate = "0.1021"', 'withholding_rate = "nan"', "fee.withholding_rate: must be a finite number"),
    ('timezone = "Asia/Tokyo"', "timezone = 9", "program.timezone: must be a text in quotes (got 9)"),
    ('[terms]\nversion = "2026-04"', "[terms]\nversion = 2026", "terms.version: must be a text in quotes"),
    ("min_years = 10", 'min_years = "10"', "registration.requirements[1].min_years: must be a whole number"),
    ('key = "a"', 'key = "a"\nkind = "x"', "registration.requirements[0].kind: unknown key (typo?)"),
    ('label = "能力開発施設等で指導・研究に5年以上従事"\n', "", "registration.requirements[3].label: is missing"),
    ("expertise = [", 'expertise = ["x", 1, ', "registration.expertise: must be a list of texts"),
    ("transfer_day = 10", "transfer_day = 0", "payer.transfer_day: must be 1 or more (got 0)"),
    ("transfer_day = 10", "transfer_day = 32", "payer.transfer_day: must be at most 31 (got 32)"),
    ('account_number = "1234567"', "account_number = 1234567", "payer.account_number: write the 7 digits in quotes"),
    ('branch_name_kana = "ﾄｳｷﾖｳｴｲｷﾞﾖｳﾌﾞ"', 'branch_name_kana = " "', "payer.branch_name_kana: must not be empty"),
    ("letter_auto_send = true", 'letter_auto_send = "yes"', "commission.letter_auto_send: must be true or false"),
    ("checkin_tolerance_days = 0", "checkin_tolerance_days = -1", "dispatch.checkin_tolerance_days: must be 0 or more"),
])
def test_wrong_value_names_the_key(tmp_path, old, new, expected):
    lines = problems(write(tmp_path, (old, new)))
    assert any(line.startswith(f"program.toml: {expected}") for line in lines), lines


def test_a_table_that_is_not_a_table_is_named(tmp_path):
    path = write(tmp_path, ("# 中小企業119 専門家派遣: the", "session = 3\n# the"), ("[session]", "[sessionx]"))
    assert problems(path) == ["program.toml: session: must be a [session] table"]


def test_unknown_key_lists_the_known_ones(tmp_path):
    lines = problems(write(tmp_path, ("cap_yen = 31680", "cap_yen = 31680\nhourly_yenn = 1")))
    assert lines == ["program.toml: fee.hourly_yenn: unknown key (typo?); known keys: cap_scope, cap_yen, hourly_yen, "
                     "unit_minutes, withholding, withholding_base, withholding_rate"]


def test_keys_other_tables_do_not_know_are_left_alone(tmp_path):
    """Only fee, payer and the requirements list every key; notes elsewhere load as before."""
    path = write(tmp_path, ("[program]", "[program]\nnote = \"来年度は改定予定\""), ("[session]", "[notes]\nx = 1\n[session]"))
    assert load_program(path).name == "中小企業119 専門家派遣"


def test_the_error_names_the_file_it_read(tmp_path):
    text = DEFAULT_PATH.read_text(encoding="utf-8").replace("cap_yen = 31680", "cap_yen = 0")
    path = tmp_path / "fy2027.toml"
    path.write_text(text, encoding="utf-8")
    assert problems(path) == ["fy2027.toml: fee.cap_yen: must be greater than 0 (got 0)"]


def test_the_schema_is_the_file_s_tables():
    assert set(ProgramFile.model_fields) == {"program", "fee", "payer", "dispatch", "session", "registration",
                                             "commission", "terms", "conditions", "retention", "attendance"}
