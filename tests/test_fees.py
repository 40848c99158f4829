"""Fees as the program's rules say (SPEC "Rules"): units, cap, withholding, travel,
fee month, 振込指定日 — and a program.toml with a bad key refused, naming it."""
from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from program import DEFAULT_PATH, FeeBreakdown, Payer, Program, ProgramConfigError, is_bank_holiday, load_program


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program()


def variant(program: Program, **changes: object) -> Program:
    return dataclasses.replace(program, **changes)


# --------------------------------------------------------------------- the SPEC fee table


@pytest.mark.parametrize(
    "hours, minutes, yen",
    [
        (0, 29, 0),
        (0, 30, 2_640),
        (0, 59, 2_640),
        (1, 0, 5_280),
        (1, 29, 5_280),
        (1, 30, 7_920),
        (5, 59, 29_040),
        (6, 0, 31_680),
        (7, 0, 31_680),
    ],
)
def test_spec_fee_table(program: Program, hours: int, minutes: int, yen: int) -> None:
    total = hours * 60 + minutes
    assert program.fee(total).gross_yen == yen
    assert program.fee_for_minutes(total) == yen  # the older API agrees


def test_defaults_from_program_toml(program: Program) -> None:
    assert (program.hourly_yen, program.unit_minutes, program.unit_yen) == (5_280, 30, 2_640)
    assert (program.cap_yen, program.cap_scope) == (31_680, "dispatch")
    assert program.withholding is False
    assert program.withholding_rate == Decimal("0.1021")


def test_two_hours_ten_minutes(program: Program) -> None:
    assert program.fee(130) == FeeBreakdown(
        minutes=130, units=4, gross_yen=10_560, capped=False, withholding_yen=0, travel_yen=0, net_yen=10_560
    )


def test_nothing_for_no_time(program: Program) -> None:
    assert program.fee(0).gross_yen == 0
    assert program.fee(-5).gross_yen == 0
    assert program.fee(-5).units == 0


def test_capped_flag(program: Program) -> None:
    assert program.fee(360).capped is False  # exactly the cap: nothing was cut
    seven = program.fee(420)
    assert (seven.units, seven.gross_yen, seven.capped) == (14, 31_680, True)


# --------------------------------------------------------------------- cap scope


def test_cap_per_dispatch_ignores_the_day(program: Program) -> None:
    assert program.fee(180, already_paid_today_yen=26_400).gross_yen == 15_840


def test_cap_per_day_two_dispatches(program: Program) -> None:
    per_day = variant(program, cap_scope="day")
    first = per_day.fee(5 * 60)
    second = per_day.fee(3 * 60, already_paid_today_yen=first.gross_yen)
    assert (first.gross_yen, first.capped) == (26_400, False)
    assert (second.gross_yen, second.capped) == (5_280, True)
    assert first.gross_yen + second.gross_yen == per_day.cap_yen


def test_cap_per_day_already_full(program: Program) -> None:
    per_day = variant(program, cap_scope="day")
    late = per_day.fee(60, travel_yen=800, already_paid_today_yen=31_680)
    assert (late.gross_yen, late.capped, late.net_yen) == (0, True, 800)
    assert per_day.fee(60, already_paid_today_yen=40_000).gross_yen == 0


# --------------------------------------------------------------------- travel, withholding, net


def test_travel_outside_the_cap(program: Program) -> None:
    fee = program.fee(8 * 60, travel_yen=1_240)
    assert (fee.gross_yen, fee.travel_yen, fee.net_yen) == (31_680, 1_240, 32_920)


def test_withholding_off_by_default(program: Program) -> None:
    fee = program.fee(130, travel_yen=500)
    assert (fee.withholding_yen, fee.net_yen) == (0, 11_060)


def test_withholding_on_fee_base_truncates_to_the_yen(program: Program) -> None:
    on = variant(program, withholding=True)
    fee = on.fee(130, travel_yen=500)
    assert fee.withholding_yen == 1_078  # 10,560 × 10.21 % = 1,078.176
    assert fee.net_yen == 10_560 - 1_078 + 500
    assert on.fee(360).withholding_yen == 3_234  # 31,680 × 10.21 % = 3,234.528
    assert on.fee(30).withholding_yen == 269  # 2,640 × 10.21 % = 269.544


def test_withholding_on_fee_and_travel(program: Program) -> None:
    on = variant(program, withholding=True, withholding_base="fee_and_travel")
    fee = on.fee(130, travel_yen=500)
    assert fee.withholding_yen == 1_129  # 11,060 × 10.21 % = 1,129.226
    assert fee.net_yen == 10_560 - 1_129 + 500


def test_withholding_exact_products_are_not_cut_a_yen_short(program: Program) -> None:
    # Bases whose product is a whole number must not lose a yen to rounding:
    # 10,000 × 10.21 % = 1,021 exactly.
    on = variant(program, withholding=True, withholding_base="fee_and_travel")
    assert on.fee(0, travel_yen=10_000).withholding_yen == 1_021
    assert on.fee(0, travel_yen=100_000).withholding_yen == 10_210
    assert isinstance(on.withholding_rate, Decimal)


def test_withholding_rate_written_as_toml_float_is_exact(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'withholding_rate = "0.1021"', "withholding_rate = 0.1021")
    assert load_program(path).withholding_rate == Decimal("0.1021")


def test_bad_arguments(program: Program) -> None:
    with pytest.raises(ValueError, match="travel_yen"):
        program.fee(60, travel_yen=-1)
    with pytest.raises(ValueError, match="already_paid_today_yen"):
        program.fee(60, already_paid_today_yen=-1)
    with pytest.raises(TypeError):
        program.fee(60.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------- fee month, transfer date


def test_fee_month(program: Program) -> None:
    assert program.fee_month(date(2026, 4, 1)) == "2026-04"
    assert program.fee_month(date(2026, 12, 31)) == "2026-12"
    # An aware time is read in Tokyo: 2026-04-30 15:30 UTC is 2026-05-01 00:30 JST.
    assert program.fee_month(datetime(2026, 4, 30, 15, 30, tzinfo=timezone.utc)) == "2026-05"


def test_payer_loaded(program: Program) -> None:
    assert program.payer == Payer(
        consignor_code="1234567890",
        consignor_name_kana="ﾁﾕｳｼﾖｳｷｷﾞﾖｳ119ｼﾞﾑｷﾖｸ",
        bank_code="0001",
        bank_name_kana="ﾐｽﾞﾎ",
        branch_code="001",
        branch_name_kana="ﾄｳｷﾖｳｴｲｷﾞﾖｳﾌﾞ",
        account_type="1",
        account_number="1234567",
        transfer_day=10,
    )


@pytest.mark.parametrize(
    "fee_month, day, expected",
    [
        ("2026-05", 10, date(2026, 6, 10)),  # Wednesday
        ("2026-09", 10, date(2026, 10, 9)),  # 10 Oct is a Saturday → Friday 9th
        ("2026-04", 10, date(2026, 5, 8)),  # 10 May is a Sunday → Friday 8th
        ("2026-12", 10, date(2027, 1, 8)),  # year change; 10 Jan 2027 is a Sunday
        ("2027-01", 31, date(2027, 2, 26)),  # day past month end → 28 Feb (Sunday) → Friday 26th
        ("2026-07", 25, date(2026, 8, 25)),
        ("2026-12", 3, date(2026, 12, 30)),  # 1/3 (Sun) back through the 12/31–1/3 bank closure
        ("2027-01", 11, date(2027, 2, 10)),  # 2/11 建国記念の日 (Thursday) → Wednesday 10th
        ("2026-04", 6, date(2026, 5, 1)),  # Golden Week: 5/6 振替休日, 5/5, 5/4, 5/3 Sun, 5/2 Sat → 5/1
        ("2026-08", 22, date(2026, 9, 18)),  # 9/22 国民の休日, 9/21 敬老の日, then the weekend → 9/18
        ("2027-06", 20, date(2027, 7, 20)),  # 7/19 is 海の日 but the 20th is a business day
    ],
)
def test_transfer_date(program: Program, fee_month: str, day: int, expected: date) -> None:
    assert program.payer is not None
    prog = variant(program, payer=dataclasses.replace(program.payer, transfer_day=day))
    result = prog.transfer_date(fee_month)
    assert result == expected
    assert not is_bank_holiday(result)


@pytest.mark.parametrize("bad", ["2026-13", "2026-5", "202605", "", "May 2026"])
def test_transfer_date_refuses_bad_month(program: Program, bad: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        program.transfer_date(bad)


def test_transfer_date_needs_payer(program: Program) -> None:
    with pytest.raises(ProgramConfigError, match="payer"):
        variant(program, payer=None).transfer_date("2026-05")


# --------------------------------------------------------------------- program.toml validation


def write_toml(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / "program.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_unchanged_copy_loads(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'cap_scope = "dispatch"', 'cap_scope = "day"')
    assert load_program(path).cap_scope == "day"


def test_payer_table_is_optional_until_used(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    start = text.index("[payer]")
    end = text.index("[dispatch]")
    path = tmp_path / "program.toml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    prog = load_program(path)
    assert prog.payer is None
    assert prog.fee(60).gross_yen == 5_280


@pytest.mark.parametrize(
    "old, new, key",
    [
        ('cap_scope = "dispatch"', 'cap_scope = "week"', "fee.cap_scope"),
        ('withholding_base = "fee"', 'withholding_base = "travel"', "fee.withholding_base"),
        ("hourly_yen = 5280", "hourly_yen = -5280", "fee.hourly_yen"),
        ("hourly_yen = 5280", 'hourly_yen = "5280"', "fee.hourly_yen"),
        ("hourly_yen = 5280", "hourly_yen = 5281", "fee.unit_minutes"),  # 2,640.5 yen per unit
        ("cap_yen = 31680", "cap_yen = 31680\ncap_yenn = 1", "fee.cap_yenn"),  # unknown key (typo)
        ("cap_yen = 31680", "", "fee.cap_yen"),  # missing
        ('withholding_rate = "0.1021"', 'withholding_rate = "10.21%"', "fee.withholding_rate"),
        ('withholding_rate = "0.1021"', 'withholding_rate = "1.5"', "fee.withholding_rate"),
        ("withholding = false", 'withholding = "no"', "fee.withholding"),
        ('consignor_code = "1234567890"', 'consignor_code = "123456789"', "payer.consignor_code"),
        ('consignor_code = "1234567890"', "consignor_code = 1234567890", "payer.consignor_code"),
        ('bank_code = "0001"', 'bank_code = "1"', "payer.bank_code"),
        ('branch_code = "001"', 'branch_code = "01A"', "payer.branch_code"),
        ('account_number = "1234567"', 'account_number = "12345678"', "payer.account_number"),
        ('account_type = "1"', 'account_type = "4"', "payer.account_type"),
        ('bank_name_kana = "ﾐｽﾞﾎ"', 'bank_name_kana = "みずほ"', "payer.bank_name_kana"),
        ('bank_name_kana = "ﾐｽﾞﾎ"', 'bank_name_kana = "ﾐｽﾞﾎｷﾞﾝｺｳﾄｳｷﾖｳﾎﾝﾃﾝ"', "payer.bank_name_kana"),
        ('consignor_name_kana = "ﾁﾕｳｼﾖｳｷｷﾞﾖｳ119ｼﾞﾑｷﾖｸ"', 'consignor_name_kana = "ﾁｭｳｼｮｳ"',
         "payer.consignor_name_kana"),  # small kana are not 全銀
        ("transfer_day = 10", "transfer_day = 32", "payer.transfer_day"),
        ("transfer_day = 10", "transfer_day = 10\ntransfer_days = 3", "payer.transfer_days"),
        ('timezone = "Asia/Tokyo"', 'timezone = "Asia/Tokio"', "program.timezone"),
        ("period_end = 2027-02-28", "period_end = 2026-03-01", "program.period_end"),
        ("geofence_radius_m = 300", "geofence_radius_m = 0", "dispatch.geofence_radius_m"),
        ("free_per_business = 3", "", "dispatch.free_per_business"),
    ],
)
def test_bad_key_refused_naming_it(tmp_path: Path, old: str, new: str, key: str) -> None:
    path = write_toml(tmp_path, old, new)
    with pytest.raises(ProgramConfigError) as err:
        load_program(path)
    assert f"program.toml: {key}:" in str(err.value)
    assert isinstance(err.value, ValueError)  # callers catching ValueError keep working


def test_missing_table_named(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[fee]", "[fees]")
    with pytest.raises(ProgramConfigError, match="program.toml: fee: the \\[fee\\] table is missing"):
        load_program(path)


def test_not_toml_refused(tmp_path: Path) -> None:
    path = tmp_path / "program.toml"
    path.write_text("[fee\nhourly_yen = ", encoding="utf-8")
    with pytest.raises(ProgramConfigError, match="not valid TOML"):
        load_program(path)
