"""The 全銀 総合振込 file (exact bytes, refusals) and the fee CSV Excel opens."""
from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date

import pytest

from domain.normalize import to_zengin_kana
from domain.payments import (
    FEE_CSV_COLUMNS,
    Transfer,
    fees_csv,
    fees_csv_chunks,
    name_kana_for_field,
    parse_zengin_file,
    zengin_transfer_file,
)
from program import Payer, load_program

PAYER = load_program().require_payer()
DAY = date(2026, 6, 10)


def transfers() -> list[Transfer]:
    return [
        Transfer("0005", "123", "普通", "0001234", to_zengin_kana("やまだ たろう"), 10_560, "1",
                 "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ", "ﾄｳｷﾖｳｴｲｷﾞﾖｳﾌﾞ"),
        Transfer("9900", "018", "貯蓄", "1234567", to_zengin_kana("ジョン スミス"), 32_920, "2"),
        Transfer("0001", "001", "当座", "7654321", to_zengin_kana("サトウ キョウコ"), 2_371),
    ]


def records(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    return data.split(b"\r\n")[:-1]


# --------------------------------------------------------------------- the file


def test_three_transfers_every_record_120_bytes_crlf() -> None:
    data = zengin_transfer_file(PAYER, DAY, transfers())
    lines = records(data)
    assert len(lines) == 6  # header, 3 data, trailer, end
    assert all(len(line) == 120 for line in lines)
    assert len(data) == 6 * 122
    assert data.count(b"\r\n") == 6 and b"\n" not in data.replace(b"\r\n", b"")
    assert [line[:1] for line in lines] == [b"1", b"2", b"2", b"2", b"8", b"9"]
    data.decode("cp932")  # strictly decodable


def test_exact_header_bytes() -> None:
    header = records(zengin_transfer_file(PAYER, DAY, transfers()))[0].decode("cp932")
    assert header == (
        "1" "21" "0" "1234567890"
        + "ﾁﾕｳｼﾖｳｷｷﾞﾖｳ119ｼﾞﾑｷﾖｸ".ljust(40)
        + "0610" "0001" + "ﾐｽﾞﾎ".ljust(15) + "001" + "ﾄｳｷﾖｳｴｲｷﾞﾖｳﾌﾞ".ljust(15)
        + "1" "1234567" + " " * 17
    )


def test_exact_data_bytes() -> None:
    first = records(zengin_transfer_file(PAYER, DAY, transfers()))[1].decode("cp932")
    assert first == (
        "2" "0005" + "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ".ljust(15) + "123" + "ﾄｳｷﾖｳｴｲｷﾞﾖｳﾌﾞ".ljust(15)
        + "0000" "1" "0001234" + "ﾔﾏﾀﾞ ﾀﾛｳ".ljust(30)
        + "0000010560" "0" "0000000001" "0000000000" "7" " " + " " * 7
    )


def test_trailer_count_and_total() -> None:
    lines = records(zengin_transfer_file(PAYER, DAY, transfers()))
    assert lines[4] == b"8" + b"000003" + b"000000045851" + b" " * 101
    assert lines[5] == b"9" + b" " * 119


def test_round_trip() -> None:
    parsed = parse_zengin_file(zengin_transfer_file(PAYER, DAY, transfers()))
    header = parsed["header"]
    assert (header["type_code"], header["consignor_code"], header["transfer_mmdd"]) == ("21", "1234567890", "0610")
    assert header["consignor_name_kana"] == PAYER.consignor_name_kana
    assert parsed["trailer"]["total_count"] == 3
    assert parsed["trailer"]["total_amount"] == 10_560 + 32_920 + 2_371
    rows = parsed["data"]
    assert [r["holder_kana"] for r in rows] == ["ﾔﾏﾀﾞ ﾀﾛｳ", "ｼﾞﾖﾝ ｽﾐｽ", "ｻﾄｳ ｷﾖｳｺ"]
    assert [r["account_type"] for r in rows] == ["1", "4", "2"]
    assert [r["amount_yen"] for r in rows] == [10_560, 32_920, 2_371]
    assert [r["customer_code"] for r in rows] == ["0000000001", "0000000002", "0000000000"]
    assert rows[1]["bank_name_kana"] == "" and rows[1]["branch_code"] == "018"


def test_parse_without_line_breaks() -> None:
    data = zengin_transfer_file(PAYER, DAY, transfers()).replace(b"\r\n", b"")
    assert parse_zengin_file(data)["trailer"]["total_count"] == 3


def test_parse_refuses_wrong_trailer() -> None:
    lines = records(zengin_transfer_file(PAYER, DAY, transfers()))
    wrong_count = lines[:]
    wrong_count[4] = b"8" + b"000002" + lines[4][7:]
    with pytest.raises(ValueError, match="合計件数"):
        parse_zengin_file(b"".join(line + b"\r\n" for line in wrong_count))
    wrong_total = lines[:]
    wrong_total[4] = lines[4][:7] + b"000000045850" + lines[4][19:]
    with pytest.raises(ValueError, match="合計金額"):
        parse_zengin_file(b"".join(line + b"\r\n" for line in wrong_total))


def test_parse_refuses_short_record() -> None:
    lines = records(zengin_transfer_file(PAYER, DAY, transfers()))
    lines[2] = lines[2][:119]
    with pytest.raises(ValueError, match="data record 2: 119 bytes"):
        parse_zengin_file(b"".join(line + b"\r\n" for line in lines))


# --------------------------------------------------------------------- refusals


@pytest.mark.parametrize("holder", ["山田 太郎", "やまだ たろう", "ヤマダ タロウ", "ﾁｭｳｼｮｳ", "yamada"])
def test_non_zengin_holder_refused(holder: str) -> None:
    bad = [dataclasses.replace(transfers()[0], holder_kana=holder)]
    with pytest.raises(ValueError, match=r"data record 1 受取人名 \(holder_kana\)"):
        zengin_transfer_file(PAYER, DAY, bad)


def test_over_long_holder_refused_not_truncated() -> None:
    long_name = to_zengin_kana("カブシキガイシャ チュウショウキギョウシエン ジギョウダン")
    assert len(long_name) > 30
    bad = [dataclasses.replace(transfers()[0], holder_kana=long_name)]
    with pytest.raises(ValueError, match=r"受取人名 \(holder_kana\): at most 30"):
        zengin_transfer_file(PAYER, DAY, bad)


def test_over_long_payer_name_refused() -> None:
    payer = dataclasses.replace(PAYER, consignor_name_kana="ｱ" * 41)
    with pytest.raises(ValueError, match=r"header 委託者名 \(consignor_name_kana\): at most 40"):
        zengin_transfer_file(payer, DAY, transfers())


@pytest.mark.parametrize(
    "change, field",
    [
        ({"amount_yen": 0}, "amount_yen"),
        ({"amount_yen": -10}, "amount_yen"),
        ({"amount_yen": 10_000_000_000}, "amount_yen"),
        ({"account_type": "普通預金"}, "account_type"),
        ({"account_number": "123456"}, "account_number"),
        ({"bank_code": "05"}, "bank_code"),
        ({"branch_code": "12A"}, "branch_code"),
        ({"customer_code": "119-2026-00001"}, "customer_code"),
        ({"customer_code": "12345678901"}, "customer_code"),
        ({"bank_name_kana": "ミツビシ"}, "bank_name_kana"),
        ({"branch_name_kana": "ﾄｳｷﾖｳｴｲｷﾞﾖｳﾌﾞﾀﾞｲﾆ"}, "branch_name_kana"),
        ({"holder_kana": ""}, "holder_kana"),
    ],
)
def test_bad_transfer_field_named(change: dict, field: str) -> None:
    bad = [transfers()[0], dataclasses.replace(transfers()[1], **change)]
    with pytest.raises(ValueError, match=rf"data record 2 .*\({field}\)"):
        zengin_transfer_file(PAYER, DAY, bad)


def test_empty_list_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        zengin_transfer_file(PAYER, DAY, [])


def test_payer_is_a_program_payer() -> None:
    assert isinstance(PAYER, Payer)


# --------------------------------------------------------------------- bank / branch names


def test_name_kana_for_field() -> None:
    assert name_kana_for_field("ミズホ") == "ﾐｽﾞﾎ"
    assert name_kana_for_field("") == ""
    # 15 fits exactly; a dakuten that would fall past the cut takes its kana with it.
    assert name_kana_for_field("トウキョウエイギョウブダイニ") == "ﾄｳｷﾖｳｴｲｷﾞﾖｳﾌﾞﾀﾞ"
    assert name_kana_for_field("トウキョウエイギョウブアガ") == "ﾄｳｷﾖｳｴｲｷﾞﾖｳﾌﾞｱ"
    with pytest.raises(ValueError, match="kana reading"):
        name_kana_for_field("三菱UFJ")


# --------------------------------------------------------------------- CSV


def csv_rows() -> list[dict]:
    return [
        {
            "application_no": 12, "name": "山田\u3000太郎", "dispatch_no": 301, "dispatch_date": date(2026, 5, 14),
            "business_name": "株式会社やまだ製作所", "minutes": 130, "gross_yen": 10_560, "withholding_yen": 0,
            "travel_yen": 840, "net_yen": 11_400, "report_accepted_on": date(2026, 5, 20), "extra": "ignored",
        },
        {
            "application_no": 15, "name": "佐藤\u3000京子", "dispatch_no": 302, "dispatch_date": date(2026, 5, 15),
            "business_name": "=HYPERLINK(\"http://x\")", "minutes": 420, "gross_yen": 31_680,
            "withholding_yen": 3_234, "travel_yen": 0, "net_yen": 28_446, "report_accepted_on": None,
        },
    ]


def test_csv_bom_crlf_and_readable() -> None:
    data = fees_csv(csv_rows())
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert table[0] == ["申請No", "氏名", "派遣No", "派遣日", "事業者名", "対面時間(分)", "謝金(税込)",
                        "源泉徴収", "交通費", "支払額", "報告書受理日"]
    assert table[0] == [label for _, label in FEE_CSV_COLUMNS]
    assert table[1] == ["12", "山田\u3000太郎", "301", "2026-05-14", "株式会社やまだ製作所", "130", "10560", "0",
                        "840", "11400", "2026-05-20"]
    assert table[2][4] == "'=HYPERLINK(\"http://x\")"  # not run as a formula by Excel
    assert table[2][-1] == ""
    assert len(table) == 3


def test_csv_dict_reader_by_header() -> None:
    reader = csv.DictReader(io.StringIO(fees_csv(csv_rows()).decode("utf-8-sig"), newline=""))
    assert [row["支払額"] for row in reader] == ["11400", "28446"]


def test_csv_header_only_when_empty() -> None:
    assert fees_csv([]).decode("utf-8-sig").count("\r\n") == 1


def test_csv_missing_key_named() -> None:
    row = csv_rows()[0]
    del row["net_yen"]
    with pytest.raises(ValueError, match="row 1: missing key\\(s\\) net_yen"):
        fees_csv([row])


def test_the_csv_in_pieces_is_the_same_file_with_one_bom() -> None:
    rows = csv_rows() * 7  # 14 rows in pieces of 3
    chunks = list(fees_csv_chunks(rows, rows_per_chunk=3))
    assert len(chunks) == 5 and b"".join(chunks) == fees_csv(rows)
    assert b"".join(chunks).count(b"\xef\xbb\xbf") == 1
