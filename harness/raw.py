"""``--raw-samples FILE``: every sample as a CSV row, written by the master (or the local runner)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Any

HEADER = ["timestamp", "type", "name", "step", "response_time_us", "failed", "warmup", "worker"]


class RawSampleWriter:
    """Opened at the first rows, so a run without samples leaves no file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._writer: Any = None

    def write(self, rows: list[Any], worker: str) -> None:
        if not rows:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(HEADER)
        for r in rows:
            self._writer.writerow([f"{r[0]:.6f}", r[1], r[2], "" if r[3] is None else r[3], r[4], r[5], r[6], worker])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file, self._writer = None, None
