"""Fee payment exports: the 全銀 総合振込 file for the bank and the fee CSV.

The secretariat pays experts by uploading a 全銀協 総合振込 file (種別コード
21) to its internet banking, and checks the month in Excel. Both are built
here from plain values — no database, no LINE — so the exact bytes can be
tested. A transfer file the bank refuses (or, worse, one that pays the wrong
account) costs a day of everyone's time, so nothing is silently truncated or
replaced: a value that does not fit its field raises a ``ValueError`` naming
the record and the field.

Layout (120-byte fixed-length records, CRLF after each; "N" fields are
right-aligned zero-padded digits, "C" fields left-aligned space-padded
half-width kana / A–Z / 0–9, encoded cp932):

* header (1): データ区分 1, 種別コード 21, コード区分 0, 委託者コード N10,
  委託者名 C40, 振込指定日 MMDD N4, 仕向銀行番号 N4, 仕向銀行名 C15,
  仕向支店番号 N3, 仕向支店名 C15, 預金種目 N1, 口座番号 N7, ダミー C17;
* data (2), one per transfer: 被仕向銀行番号 N4, 被仕向銀行名 C15,
  被仕向支店番号 N3, 被仕向支店名 C15, 手形交換所番号 N4 (unused, 0000),
  預金種目 N1 (1 普通, 2 当座, 4 貯蓄), 口座番号 N7, 受取人名 C30,
  振込金額 N10, 新規コード N1 (0), 顧客コード1 N10, 顧客コード2 N10,
  振込指定区分 N1 (7 = telegraphic), 識別表示 C1 (space), ダミー C7;
* trailer (8): 合計件数 N6, 合計金額 N12, ダミー C101;
* end (9): ダミー C119.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable, Iterator

from domain.banks import ACCOUNT_TYPE_CODES
from domain.normalize import ZENGIN_ALLOWED, InvalidInput, to_zengin_kana
from program import Payer

__all__ = [
    "RECORD_BYTES",
    "ENCODING",
    "Transfer",
    "zengin_transfer_file",
    "parse_zengin_file",
    "name_kana_for_field",
    "FEE_CSV_COLUMNS",
    "fees_csv",
]

RECORD_BYTES = 120
ENCODING = "cp932"
_EOL = b"\r\n"
_MAX_AMOUNT = 9_999_999_999  # N(10)

# (key, kind, width, 全銀 label). kind: "N" digits, "A" amount (int), "C" text.
# Keys match the Payer / Transfer attribute that fills them, so an error names
# what the caller passed and parse_zengin_file's output reads like the input.
Field = tuple[str, str, int, str]

HEADER: tuple[Field, ...] = (
    ("data_kind", "N", 1, "データ区分"),
    ("type_code", "N", 2, "種別コード"),
    ("code_division", "N", 1, "コード区分"),
    ("consignor_code", "N", 10, "委託者コード"),
    ("consignor_name_kana", "C", 40, "委託者名"),
    ("transfer_mmdd", "N", 4, "振込指定日"),
    ("bank_code", "N", 4, "仕向銀行番号"),
    ("bank_name_kana", "C", 15, "仕向銀行名"),
    ("branch_code", "N", 3, "仕向支店番号"),
    ("branch_name_kana", "C", 15, "仕向支店名"),
    ("account_type", "N", 1, "預金種目"),
    ("account_number", "N", 7, "口座番号"),
    ("dummy", "C", 17, "ダミー"),
)
DATA: tuple[Field, ...] = (
    ("data_kind", "N", 1, "データ区分"),
    ("bank_code", "N", 4, "被仕向銀行番号"),
    ("bank_name_kana", "C", 15, "被仕向銀行名"),
    ("branch_code", "N", 3, "被仕向支店番号"),
    ("branch_name_kana", "C", 15, "被仕向支店名"),
    ("clearing_house", "N", 4, "手形交換所番号"),
    ("account_type", "N", 1, "預金種目"),
    ("account_number", "N", 7, "口座番号"),
    ("holder_kana", "C", 30, "受取人名"),
    ("amount_yen", "A", 10, "振込金額"),
    ("new_code", "N", 1, "新規コード"),
    ("customer_code", "N", 10, "顧客コード1"),
    ("customer_code_2", "N", 10, "顧客コード2"),
    ("transfer_kind", "N", 1, "振込指定区分"),
    ("edi_flag", "C", 1, "識別表示"),
    ("dummy", "C", 7, "ダミー"),
)
TRAILER: tuple[Field, ...] = (
    ("data_kind", "N", 1, "データ区分"),
    ("total_count", "A", 6, "合計件数"),
    ("total_amount", "A", 12, "合計金額"),
    ("dummy", "C", 101, "ダミー"),
)
END: tuple[Field, ...] = (
    ("data_kind", "N", 1, "データ区分"),
    ("dummy", "C", 119, "ダミー"),
)
for _layout in (HEADER, DATA, TRAILER, END):
    if sum(f[2] for f in _layout) != RECORD_BYTES:  # a typo in a width would corrupt every file
        raise RuntimeError(f"全銀 layout starting {_layout[:2]} is not {RECORD_BYTES} bytes")


@dataclass
class Transfer:
    """One payment to one expert's account (the net amount of a fee month).

    ``holder_kana`` is stored as :func:`domain.normalize.to_zengin_kana`
    produced it and is written as is — the receiving bank compares it with
    its records, so it is never shortened. ``customer_code`` (e.g. the
    expert number, digits only) comes back on the bank's result file and ties
    a rejected transfer to its expert.
    """

    bank_code: str
    branch_code: str
    account_type: str  # 普通 / 当座 / 貯蓄
    account_number: str  # 7 digits
    holder_kana: str
    amount_yen: int  # net
    customer_code: str = ""
    bank_name_kana: str = ""
    branch_name_kana: str = ""


# --- field rendering -------------------------------------------------------------------------------------


def _digits(value: Any, width: int, where: str) -> str:
    """An N field: digits right-aligned and zero-padded; too long or non-digits raise."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected digits, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{where}: must not be negative (got {value})")
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise ValueError(f"{where}: expected digits, got {value!r}")
    if text == "":  # an unused optional N field
        return "0" * width
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{where}: only digits 0-9 are allowed (got {text!r})")
    if len(text) > width:
        raise ValueError(f"{where}: at most {width} digits (got {len(text)}: {text!r})")
    return text.rjust(width, "0")


def _text(value: str, width: int, where: str) -> str:
    """A C field: 全銀 half-width characters, left-aligned and space-padded."""
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected text, got {value!r}")
    bad = "".join(dict.fromkeys(ch for ch in value if ch not in ZENGIN_ALLOWED))
    if bad:
        raise ValueError(
            f"{where}: only half-width 全銀 kana (ｱ-ﾝ ﾞ ﾟ, no small kana), A-Z, 0-9, space and ().-/, "
            f"are allowed (found {bad!r} in {value!r}); convert with to_zengin_kana"
        )
    try:
        size = len(value.encode(ENCODING))
    except UnicodeEncodeError:  # pragma: no cover - ZENGIN_ALLOWED is all single-byte cp932
        raise ValueError(f"{where}: cannot be encoded in {ENCODING}: {value!r}") from None
    if size > width:
        raise ValueError(f"{where}: at most {width} characters (got {size}: {value!r})")
    return value + " " * (width - size)


def _render(layout: tuple[Field, ...], values: dict[str, Any], record: str) -> bytes:
    parts: list[str] = []
    for key, kind, width, label in layout:
        where = f"{record} {label} ({key})"
        value = values.get(key, "")
        parts.append(_text(value, width, where) if kind == "C" else _digits(value, width, where))
    encoded = "".join(parts).encode(ENCODING)
    if len(encoded) != RECORD_BYTES:  # pragma: no cover - guaranteed by the field checks
        raise ValueError(f"{record}: {len(encoded)} bytes instead of {RECORD_BYTES}")
    return encoded


def name_kana_for_field(text: str, width: int = 15) -> str:
    """A bank or branch name (e.g. zengin-code's full-width ミズホ) made fit for a C field.

    Names are informational (banks route by code), and long branch names
    exceed 15 half-width characters once dakuten are split, so these are
    converted and cut at ``width`` — unlike the holder name, which must
    never be shortened. A kana whose ﾞ/ﾟ would fall past the cut is dropped too.
    """
    if not text or not text.strip():
        return ""
    try:
        kana = to_zengin_kana(text)
    except InvalidInput:
        raise ValueError(f"name {text!r} cannot be written in 全銀 kana; pass its kana reading "
                         "(e.g. Bank.kana / Branch.kana)") from None
    if len(kana) > width:
        # ｶﾞ is two characters: cutting between them would name another place.
        kana = kana[: width - 1] if kana[width] in "\uff9e\uff9f" else kana[:width]
    return kana.rstrip()


# --- the transfer file -----------------------------------------------------------------------------------


def zengin_transfer_file(payer: Payer, transfer_date: date, transfers: list[Transfer]) -> bytes:
    """The 全銀協 総合振込 file: header, one data record per transfer, trailer, end.

    Every record is exactly 120 bytes in cp932, each followed by CRLF.
    Raises ``ValueError`` naming the record and field when a value cannot be
    written (wrong characters, too long, not digits, non-positive amount).
    """
    if not transfers:
        raise ValueError("no transfers: a 総合振込 file needs at least one data record")
    if len(transfers) > 999_999:
        raise ValueError(f"合計件数: at most 999,999 transfers per file (got {len(transfers)})")
    records = [
        _render(
            HEADER,
            {
                "data_kind": "1",
                "type_code": "21",
                "code_division": "0",
                "consignor_code": payer.consignor_code,
                "consignor_name_kana": payer.consignor_name_kana,
                "transfer_mmdd": transfer_date.strftime("%m%d"),
                "bank_code": payer.bank_code,
                "bank_name_kana": payer.bank_name_kana,
                "branch_code": payer.branch_code,
                "branch_name_kana": payer.branch_name_kana,
                "account_type": payer.account_type,
                "account_number": payer.account_number,
            },
            "header",
        )
    ]
    total = 0
    for i, t in enumerate(transfers, start=1):
        record = f"data record {i}"
        amount = t.amount_yen
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= _MAX_AMOUNT:
            raise ValueError(f"{record} 振込金額 (amount_yen): must be a whole number of yen, 1-{_MAX_AMOUNT} "
                             f"(got {amount!r})")
        account_type = ACCOUNT_TYPE_CODES.get(t.account_type)
        if account_type is None:
            raise ValueError(f"{record} 預金種目 (account_type): must be one of "
                             f"{', '.join(ACCOUNT_TYPE_CODES)} (got {t.account_type!r})")
        for key, value, width in (("bank_code", t.bank_code, 4), ("branch_code", t.branch_code, 3),
                                  ("account_number", t.account_number, 7)):
            if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) == width):
                raise ValueError(f"{record} ({key}): must be exactly {width} digits (got {value!r})")
        if not t.holder_kana.strip():
            raise ValueError(f"{record} 受取人名 (holder_kana): must not be empty")
        total += amount
        records.append(
            _render(
                DATA,
                {
                    "data_kind": "2",
                    "bank_code": t.bank_code,
                    "bank_name_kana": t.bank_name_kana,
                    "branch_code": t.branch_code,
                    "branch_name_kana": t.branch_name_kana,
                    "clearing_house": "0000",
                    "account_type": account_type,
                    "account_number": t.account_number,
                    "holder_kana": t.holder_kana,
                    "amount_yen": amount,
                    "new_code": "0",
                    "customer_code": t.customer_code,
                    "customer_code_2": "",
                    "transfer_kind": "7",
                    "edi_flag": "",
                },
                record,
            )
        )
    records.append(_render(TRAILER, {"data_kind": "8", "total_count": len(transfers), "total_amount": total},
                           "trailer"))
    records.append(_render(END, {"data_kind": "9"}, "end"))
    return b"".join(r + _EOL for r in records)


def _split_records(data: bytes) -> list[bytes]:
    """Records separated by CRLF (what we write) or, as banks also accept, none at all."""
    if _EOL in data:
        lines = data.split(_EOL)
        if lines and lines[-1] == b"":
            lines.pop()
        return lines
    if len(data) % RECORD_BYTES:
        raise ValueError(f"file of {len(data)} bytes without line breaks is not a multiple of {RECORD_BYTES}")
    return [data[i:i + RECORD_BYTES] for i in range(0, len(data), RECORD_BYTES)]


def _parse_record(layout: tuple[Field, ...], raw: bytes, record: str) -> dict[str, Any]:
    if len(raw) != RECORD_BYTES:
        raise ValueError(f"{record}: {len(raw)} bytes instead of {RECORD_BYTES}")
    try:
        text = raw.decode(ENCODING)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{record}: not {ENCODING}: {exc}") from None
    if len(text) != RECORD_BYTES:
        raise ValueError(f"{record}: contains double-byte characters; 全銀 records are half-width only")
    out: dict[str, Any] = {}
    pos = 0
    for key, kind, width, label in layout:
        value = text[pos:pos + width]
        pos += width
        if kind == "C":
            out[key] = value.rstrip(" ")
            continue
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"{record} {label} ({key}): expected {width} digits, got {value!r}")
        out[key] = int(value) if kind == "A" else value
    out.pop("dummy", None)
    return out


def parse_zengin_file(data: bytes) -> dict[str, Any]:
    """Read a 総合振込 file back: ``{"header", "data": [...], "trailer", "end"}``.

    For tests and for ops checking a file before upload: every record must
    be 120 bytes, the record order 1, 2…, 8, 9, and the trailer's count and
    total must match the data records (``ValueError`` otherwise).
    """
    lines = _split_records(data)
    if len(lines) < 3:
        raise ValueError(f"a 総合振込 file has at least a header, a trailer and an end record (got {len(lines)})")
    kinds = [line[:1] for line in lines]
    if kinds[0] != b"1" or kinds[-2] != b"8" or kinds[-1] != b"9" or any(k != b"2" for k in kinds[1:-2]):
        raise ValueError(f"record order must be 1, 2…, 8, 9 (got {b''.join(kinds).decode('ascii', 'replace')})")
    header = _parse_record(HEADER, lines[0], "header")
    if header["type_code"] != "21":
        raise ValueError(f"header 種別コード (type_code): 21 (総合振込) expected, got {header['type_code']}")
    rows = [_parse_record(DATA, line, f"data record {i}") for i, line in enumerate(lines[1:-2], start=1)]
    trailer = _parse_record(TRAILER, lines[-2], "trailer")
    end = _parse_record(END, lines[-1], "end")
    if trailer["total_count"] != len(rows):
        raise ValueError(f"trailer 合計件数 {trailer['total_count']} does not match {len(rows)} data records")
    total = sum(r["amount_yen"] for r in rows)
    if trailer["total_amount"] != total:
        raise ValueError(f"trailer 合計金額 {trailer['total_amount']} does not match the data records' sum {total}")
    return {"header": header, "data": rows, "trailer": trailer, "end": end}


# --- the fee CSV -----------------------------------------------------------------------------------------

FEE_CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("application_no", "申請No"),
    ("name", "氏名"),
    ("dispatch_no", "派遣No"),
    ("dispatch_date", "派遣日"),
    ("business_name", "事業者名"),
    ("minutes", "対面時間(分)"),
    ("gross_yen", "謝金(税込)"),
    ("withholding_yen", "源泉徴収"),
    ("travel_yen", "交通費"),
    ("net_yen", "支払額"),
    ("report_accepted_on", "報告書受理日"),
)
"""Row key → Japanese column header, in column order."""

# Excel runs a cell starting with these as a formula (CSV injection): a
# business name typed in LINE must stay text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str | int:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, int):
        return value  # plain digits, no separators, so Excel can sum the column
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def fees_csv(rows: Iterable[dict[str, Any]]) -> bytes:
    """The month's fees for the secretariat, as Excel opens it: UTF-8 with BOM, CRLF.

    Rows are dicts keyed by :data:`FEE_CSV_COLUMNS`' English keys (extra
    keys are ignored, a missing one raises ``ValueError`` naming it). Dates
    are written YYYY-MM-DD; amounts as plain integers.
    """
    return b"".join(fees_csv_chunks(rows))


def fees_csv_chunks(rows: Iterable[dict[str, Any]], rows_per_chunk: int = 500) -> Iterator[bytes]:
    """:func:`fees_csv` in pieces, for writing a month of any size in constant memory."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([label for _, label in FEE_CSV_COLUMNS])
    prefix = "\ufeff"  # the BOM, once
    for i, row in enumerate(rows, start=1):
        missing = [key for key, _ in FEE_CSV_COLUMNS if key not in row]
        if missing:
            raise ValueError(f"fees_csv row {i}: missing key(s) {', '.join(missing)}")
        writer.writerow([_cell(row[key]) for key, _ in FEE_CSV_COLUMNS])
        if i % rows_per_chunk == 0:
            yield (prefix + buf.getvalue()).encode("utf-8")
            prefix = ""
            buf.seek(0)
            buf.truncate()
    yield (prefix + buf.getvalue()).encode("utf-8")
