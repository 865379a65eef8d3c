"""Files destinations: a full snapshot and the added and removed ids of every run.

Each run writes, under ``path`` (a folder, or any fsspec URL such as ``s3://bucket/x``)::

    <segment>/<as_of>-run<id>/snapshot.csv     every member after this run
    <segment>/<as_of>-run<id>/added.csv        ids added by this run
    <segment>/<as_of>-run<id>/removed.csv      ids removed by this run
    <segment>/<as_of>-run<id>/_SUCCESS         written last: the folder is complete
    <segment>/current.csv                      the latest snapshot

(``.parquet`` with ``format: parquet``), one column ``entity_id``. Each file is written to
a temporary name beside it and moved into place, so a reader never sees half a file;
writing a run again replaces its files with the same content.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import fsspec
import pandas as pd

from commands.syncs import Work
from segments.destinations import DestinationConfig
from sync.errors import ConfigError, Retry


class FilesSender:
    def __init__(self, name: str, config: DestinationConfig, base_dir: Path) -> None:
        self.name, self.config = name, config
        target = config.path or ""
        if "://" not in target and not Path(target).is_absolute():
            target = str((base_dir / target).resolve())
        try:
            self.fs, self.root = fsspec.core.url_to_fs(target)
        except (ImportError, ValueError) as error:
            raise ConfigError(
                f"destination '{name}': cannot open {config.path!r}: {error}"
            ) from None
        self.ext = config.format

    def send(self, work: Work) -> list[str]:
        folder = f"{self.root}/{work.segment}/{_day(work)}-run{work.run_id}"
        try:
            self.fs.makedirs(folder, exist_ok=True)
            self._write(f"{folder}/added.{self.ext}", work.add)
            self._write(f"{folder}/removed.{self.ext}", work.remove)
            snapshot = sorted(work.snapshot or [])
            self._write(f"{folder}/snapshot.{self.ext}", snapshot)
            self._put(f"{folder}/_SUCCESS", b"")
            self._write(f"{self.root}/{work.segment}/current.{self.ext}", snapshot)
        except OSError as error:
            raise Retry(f"files '{self.name}': {error.strerror or error}") from None
        return []

    def reset(self, work: Work) -> None:
        """Nothing to undo: every run writes a complete snapshot."""

    def close(self) -> None:
        pass

    def _write(self, path: str, keys: list[str]) -> None:
        frame = pd.DataFrame({"entity_id": pd.Series(sorted(keys), dtype="str")})
        buffer = io.BytesIO()
        if self.ext == "parquet":
            frame.to_parquet(buffer, index=False)
        else:
            frame.to_csv(buffer, index=False)
        self._put(path, buffer.getvalue())

    def _put(self, path: str, data: bytes) -> None:
        temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with self.fs.open(temporary, "wb") as handle:
            handle.write(data)
        self.fs.mv(temporary, path)


def _day(work: Work) -> str:
    return work.as_of.isoformat() if work.as_of else "undated"
