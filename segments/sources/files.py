"""File sources: the wanted columns of a CSV or Parquet file, and the names the file has."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads


def _read_csv(
    path: Path, wanted: list[str], text: Sequence[str], dictionary: Sequence[str]
) -> tuple[pa.Table, set[str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), [])
    present = [c for c in wanted if c in header]
    if not present:  # an empty include list would read every column
        return pa.table({}), set(header)
    types: dict[str, pa.DataType] = {c: pa.string() for c in text if c in present}
    types.update({c: pa.dictionary(pa.int32(), pa.string()) for c in dictionary if c in present})
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=present, column_types=types, strings_can_be_null=True
        ),
    )
    return table, set(header)


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
