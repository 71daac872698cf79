"""Find and parse recorded 1m kline files.

Two row formats are read, told apart by their column count:

- 6 columns ``open_time,open,high,low,close,volume`` (the freqtrade-derived files in
  ``shared/data/binance/spot/1m``; see its SOURCES.md);
- 12 columns, Binance's public-data kline format (data.binance.vision):
  ``open_time,open,high,low,close,volume,close_time,quote_volume,count,
  taker_buy_volume,taker_buy_quote_volume,ignore``; an optional header line is
  skipped and microsecond timestamps (spot files from 2025 on) are scaled to ms.

File names follow Binance's public-data naming, ``<SYMBOL>-1m-<YYYY-MM-DD>`` (daily)
or ``<SYMBOL>-1m-<YYYY-MM>`` (monthly), with the suffix ``.csv``, ``.csv.gz`` or
``.zip``. They may sit in one folder per symbol (``<dir>/<SYMBOL>/<file>``) or all in
one flat folder. Given the root of ``shared/data/binance``, its ``spot/1m`` folder is
used.

Every parsed file becomes a float64 array of shape (rows, 11) in Binance's kline
column order (see :mod:`exchange_sim._candles`); times are exact in float64.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import ReplayDataError
from ._intervals import DAY_MS, MINUTE_MS

_NAME = re.compile(r"^([A-Z0-9]+)-1m-(\d{4}-\d{2})(-\d{2})?\.(csv|csv\.gz|zip)$")
#: Candidate sub-folders of the replay folder, tried in order.
_LAYOUTS = (".", "spot/1m", "1m")
_EPOCH = _dt.date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class DataFile:
    """One file on disk: a single UTC day, or a calendar month (``monthly``)."""

    path: Path
    monthly: bool


class ReplayIndex:
    """Which 1m files exist, per symbol and UTC day (file contents are not read).

    Attributes:
        root: the folder the files were found in.
        days: ``{symbol: {day_start_ms: DataFile}}``; a monthly file is listed under
            every day of its month.
    """

    def __init__(self, root: Path, days: dict[str, dict[int, DataFile]]) -> None:
        self.root = root
        self.days = days

    @classmethod
    def scan(cls, replay_dir: Path) -> ReplayIndex:
        """Index ``replay_dir`` (or its ``spot/1m`` / ``1m`` sub-folder).

        Raises:
            ReplayDataError: the folder does not exist or holds no 1m kline file.
        """
        replay_dir = Path(replay_dir)
        if not replay_dir.is_dir():
            raise ReplayDataError(f"replay folder not found: {replay_dir}")
        for layout in _LAYOUTS:
            root = (replay_dir / layout).resolve()
            if root.is_dir():
                days = _scan_root(root)
                if days:
                    return cls(root, days)
        raise ReplayDataError(
            f"no 1m kline files (<SYMBOL>-1m-<YYYY-MM-DD>.csv[.gz]|.zip) in {replay_dir} or its spot/1m folder"
        )

    @property
    def symbols(self) -> list[str]:
        """Symbols with at least one file, sorted."""
        return sorted(self.days)

    def first_day(self, symbol: str) -> int:
        return min(self.days[symbol])

    def last_day(self, symbol: str) -> int:
        return max(self.days[symbol])


def _day_ms(year: int, month: int, day: int) -> int:
    return (_dt.date(year, month, day) - _EPOCH).days * DAY_MS


def _register(days: dict[str, dict[int, DataFile]], path: Path) -> None:
    match = _NAME.match(path.name)
    if match is None:
        return
    symbol, month_text, day_text = match.group(1), match.group(2), match.group(3)
    year, month = (int(x) for x in month_text.split("-"))
    per_symbol = days.setdefault(symbol, {})
    if day_text:
        per_symbol[_day_ms(year, month, int(day_text[1:]))] = DataFile(path, monthly=False)
        return
    start = _day_ms(year, month, 1)
    end = _day_ms(year + month // 12, month % 12 + 1, 1)
    for day in range(start, end, DAY_MS):
        per_symbol.setdefault(day, DataFile(path, monthly=True))  # daily files win


def _scan_root(root: Path) -> dict[str, dict[int, DataFile]]:
    days: dict[str, dict[int, DataFile]] = {}
    for entry in root.iterdir():
        if entry.is_dir():
            for path in entry.iterdir():
                _register(days, path)
        else:
            _register(days, entry)
    return days


def read_text(path: Path) -> str:
    """The CSV text of a ``.csv``, ``.csv.gz`` or ``.zip`` (first ``.csv`` member) file."""
    if path.name.endswith(".gz"):
        raw = gzip.decompress(path.read_bytes())
    elif path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.endswith(".csv")]
            if not members:
                raise ReplayDataError(f"{path}: zip archive holds no .csv file")
            raw = archive.read(members[0])
    else:
        raw = path.read_bytes()
    return raw.decode("ascii", errors="strict")


def parse_klines(text: str, source: str) -> np.ndarray:
    """Parse 6- or 12-column kline CSV text into a (rows, 11) float64 array.

    Columns the 6-column format lacks are derived: close_time = open_time + 59,999
    (exact), quote_volume = volume * close (approximation), trades = taker buy base
    volume = taker buy quote volume = 0 (unknown).

    Raises:
        ReplayDataError: wrong column count, non-numeric cells, or open times that do
            not strictly increase; the message names ``source``.
    """
    text = text.replace("\r", "").strip()
    if not text:
        return np.empty((0, 11))
    first_line, _, rest = text.partition("\n")
    if not (first_line[:1].isdigit()):
        text, first_line = rest, rest.partition("\n")[0]  # header row
        if not text:
            return np.empty((0, 11))
    ncols = first_line.count(",") + 1
    if ncols not in (6, 12):
        raise ReplayDataError(f"{source}: {ncols} columns; expected 6 or 12")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            flat = np.fromstring(text.replace("\n", ","), sep=",")
        except (DeprecationWarning, ValueError) as exc:
            raise ReplayDataError(f"{source}: non-numeric or malformed cell ({exc})") from exc
    if flat.size % ncols:
        raise ReplayDataError(f"{source}: rows of unequal length")
    table = flat.reshape(-1, ncols)
    rows = np.zeros((table.shape[0], 11))
    rows[:, :6] = table[:, :6]
    if ncols == 12:
        rows[:, 6:] = table[:, 6:11]
        if rows[0, 0] > 1e14:  # microseconds (Binance spot public data since 2025)
            rows[:, 0] = np.floor(rows[:, 0] / 1000)
            rows[:, 6] = np.floor(rows[:, 6] / 1000)
    else:
        rows[:, 6] = rows[:, 0] + (MINUTE_MS - 1)
        rows[:, 7] = rows[:, 5] * rows[:, 4]
    if rows.shape[0] > 1 and not np.all(np.diff(rows[:, 0]) > 0):
        raise ReplayDataError(f"{source}: open times do not strictly increase")
    return rows


def load_file(data_file: DataFile) -> dict[int, np.ndarray]:
    """Read one file and split it into ``{day_start_ms: rows}`` (only days with rows)."""
    rows = parse_klines(read_text(data_file.path), str(data_file.path))
    if rows.shape[0] == 0:
        return {}
    day_of_row = (rows[:, 0] // DAY_MS).astype(np.int64)
    cuts = np.flatnonzero(np.diff(day_of_row)) + 1
    out: dict[int, np.ndarray] = {}
    for chunk in np.split(rows, cuts):
        out[int(chunk[0, 0]) // DAY_MS * DAY_MS] = np.ascontiguousarray(chunk)
    return out
