"""File sources: the wanted columns of a CSV or Parquet file, and the names the file has.

A CSV file is read so that loading never silently changes the data:

* **Text stays text.** In text columns (ids, keys, event names, ``string`` columns) only the
  empty string is missing, so a region ``NA`` (North America) is kept. A source's
  ``na_values`` adds markers that count as missing in every column.
* **Markers in typed columns are missing, not unparseable.** In ``number``, ``date`` and
  ``bool`` columns (and ``value``, ``timestamp``, ``created``) the usual markers ``NA``,
  ``N/A``, ``n/a``, ``null``, ``NULL``, ``-``, ``NaN`` and the like count as missing.
* **Numbers as people write them.** ``thousands`` (e.g. ``","``) is removed only where it
  groups digits in threes (``1,234,567``); ``decimal`` (e.g. ``","``) is the decimal mark.
  Without ``thousands``, ``1,234`` or ``$12`` is unparseable (the quality gate counts it),
  never a different number.
* **Dates are never guessed.** ISO 8601 dates and datetimes are read by default; with
  ``date_format`` (one strftime format, or one per column) other values are parsed with
  exactly that format. Anything else, such as ``05/01/2026`` without a format, is
  unparseable rather than read month-first.
* **delimiter** is one character, ``,`` by default.

For example, a European export::

    crm:
      kind: entity
      path: data/crm.csv
      id: account_id
      delimiter: ";"
      thousands: "."
      decimal: ","
      date_format: "%d/%m/%Y"
      columns: {region: string, mrr: number, signed: date}

reads ``account_id;region;mrr;signed`` / ``a1;NA;1.234,5;05/01/2026`` as region ``NA``,
mrr 1234.5 and signed 5 January 2026.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads

from segments.workspace import SourceConfig

MISSING_MARKERS = (
    "",
    "NA",
    "N/A",
    "n/a",
    "na",
    "null",
    "NULL",
    "Null",
    "-",
    "NaN",
    "nan",
    "-NaN",
    "-nan",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "1.#IND",
    "1.#QNAN",
)
_ISO_SECONDS = "%Y-%m-%dT%H:%M:%S"


def _typed_columns(cfg: SourceConfig, text: Sequence[str]) -> dict[str, str]:
    """The columns read as numbers, dates or booleans, by kind."""
    kinds = {c: k for c, k in cfg.columns.items() if k != "string"}
    if cfg.kind == "events" and cfg.value:
        kinds[cfg.value] = "number"
    kinds.update(dict.fromkeys(cfg.date_columns(), "date"))
    return {c: k for c, k in kinds.items() if c not in text}


class NotText(ValueError):
    """A CSV file that is not text in its source's encoding (the message says how)."""


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _not_text(path: Path, encoding: str) -> NotText:
    where = ""
    try:
        path.read_bytes().decode(encoding)
    except UnicodeDecodeError as exc:
        where = f" (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
    return NotText(
        f"{path.name} is not {encoding} text{where}: set encoding: on the source, "
        "for example latin-1, cp1252 or utf-16"
    )


def _read_csv(
    path: Path,
    wanted: list[str],
    text: Sequence[str],
    dictionary: Sequence[str],
    cfg: SourceConfig,
) -> tuple[pa.Table, set[str]]:
    try:
        return _read_csv_text(path, wanted, text, dictionary, cfg)
    except UnicodeDecodeError:
        raise _not_text(path, cfg.encoding) from None
    except pa.ArrowInvalid as exc:
        if "utf8" not in str(exc).lower():
            raise
        raise _not_text(path, cfg.encoding) from None


def _read_csv_text(
    path: Path,
    wanted: list[str],
    text: Sequence[str],
    dictionary: Sequence[str],
    cfg: SourceConfig,
) -> tuple[pa.Table, set[str]]:
    utf8 = _is_utf8(cfg.encoding)
    with open(path, newline="", encoding="utf-8-sig" if utf8 else cfg.encoding) as fh:
        header = next(csv.reader(fh, delimiter=cfg.delimiter), [])
    present = [c for c in wanted if c in header]
    if not present:  # an empty include list would read every column
        return pa.table({}), set(header)
    text = [*text, *dictionary, *(c for c, k in cfg.columns.items() if k == "string")]
    types: dict[str, pa.DataType] = {c: pa.string() for c in text if c in present}
    types.update({c: pa.dictionary(pa.int32(), pa.string()) for c in dictionary if c in present})
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(encoding="utf8" if utf8 else cfg.encoding),
        parse_options=pacsv.ParseOptions(delimiter=cfg.delimiter),
        convert_options=pacsv.ConvertOptions(
            include_columns=present,
            column_types=types,
            null_values=["", *cfg.na_values],
            strings_can_be_null=True,
            decimal_point=cfg.decimal,
        ),
    )
    markers = pa.array(list(dict.fromkeys([*MISSING_MARKERS, *cfg.na_values])), pa.string())
    for column, kind in _typed_columns(cfg, text).items():
        if column in present:
            i = table.schema.get_field_index(column)
            table = table.set_column(i, column, _typed(table[column], kind, column, cfg, markers))
    return table, set(header)


def _typed(
    arr: pa.ChunkedArray, kind: str, column: str, cfg: SourceConfig, markers: pa.Array
) -> pa.ChunkedArray:
    """A typed column as Arrow inferred it, or, when it stayed text, trimmed with the missing
    markers as nulls and numbers and dates brought to the plain forms the kinds read."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return arr
    values = pc.utf8_trim_whitespace(arr)
    values = pc.if_else(pc.is_in(values, value_set=markers), pa.scalar(None, pa.string()), values)
    if kind == "number":
        return _plain_numbers(values, cfg)
    if kind == "date":
        fmt = cfg.date_format_for(column)
        if fmt is None:
            return values
        parsed = pc.strptime(values, format=fmt, unit="s", error_is_null=True)
        return pc.coalesce(pc.strftime(parsed, format=_ISO_SECONDS), values)
    return values


def _plain_numbers(values: pa.ChunkedArray, cfg: SourceConfig) -> pa.ChunkedArray:
    """Numbers without thousands separators and with ``.`` as the decimal mark; float64 when
    every value parses, else text for the kinds to count what does not."""
    if cfg.thousands:
        sep, dec = _literal(cfg.thousands), _literal(cfg.decimal)
        grouped = rf"^[+-]?\d{{1,3}}({sep}\d{{3}})+({dec}\d*)?$"
        stripped = pc.replace_substring(values, pattern=cfg.thousands, replacement="")
        values = pc.if_else(pc.match_substring_regex(values, grouped), stripped, values)
    if cfg.decimal != ".":
        values = pc.replace_substring(values, pattern=cfg.decimal, replacement=".")
    try:
        return values.cast(pa.float64())
    except pa.ArrowInvalid:
        return values


def _literal(char: str) -> str:
    """One character as a regular expression that matches only it."""
    return "\\" + char if char.isascii() and not char.isalnum() and char != " " else char


def _read_parquet(
    path: Path, wanted: list[str], dictionary: Sequence[str]
) -> tuple[pa.Table, set[str]]:
    if not path.exists():
        raise FileNotFoundError(path)
    options = pads.ParquetFileFormat(
        read_options=pads.ParquetReadOptions(dictionary_columns=list(dictionary))
    )
    data = pads.dataset(path, format=options)
    names = set(data.schema.names)
    present = [c for c in wanted if c in names]
    return data.to_table(columns=present), names
