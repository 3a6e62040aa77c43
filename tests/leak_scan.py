"""The leak scanner: after the tests, no sensitive value may sit in anything the IVR wrote.

Integration tests type and say sensitive values (account numbers, PINs, cards) into a real
`ivr serve`; they name each one with `typed()`. When the session ends, `scan()` reads every file
the IVR wrote under the session's temp root: each `ivr serve` root (the directory of its
`ivr.yaml`: serve.log, the state dir with CDR and outbox databases, the broker's persistence,
prompt-cache and recording names and metadata; not the flows and cases people wrote) and any
directory a test names with `ivr_wrote()` (IVR parts run in-process). It looks for those
values in every form a leak takes (as typed, spaced or dashed digits, spoken digit words), and
for any Luhn-valid 13-19 digit run that starts like a card number (2-6). A hit fails the run.

What the caller's side wrote (SIPp and softphone logs, recordings of what the caller heard) lies
outside those roots: the caller typed the value, so it is not a leak there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

TYPED: set[str] = set()
"""The sensitive values tests typed or said during this session."""

IVR_DIRS: set[Path] = set()
"""Directories tests named as written by IVR parts they run in-process."""

SCANNED_SUFFIXES = (".log", ".json", ".jsonl", ".sqlite", ".sqlite-wal", ".db", ".txt", ".yaml",
                    ".csv", ".ndjson")
"""Files whose contents are read; every file's name is checked whatever it is (a WAV's name can
be a leak; its samples cannot hold digits as text)."""

MAX_BYTES = 64 * 1024 * 1024

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

_CARD_RUN = re.compile(rb"(?<![\d.A-Za-z_-])([2-6]\d{12,18})(?![\d.A-Za-z_])")


def typed(*values: str) -> None:
    """Name values a test types or says as sensitive: the scan fails the run if it finds them."""
    for value in values:
        digits = "".join(c for c in value if c.isdigit())
        if len(digits) < 4:
            raise ValueError(f"a canary needs 4+ digits to be found reliably: {value!r}")
        TYPED.add(digits)


@dataclass(frozen=True)
class Hit:
    path: Path
    what: str
    """Which form matched ("typed 40719263 as '4 0 7 1 9 2 6 3'", "Luhn-valid run ...")."""
    context: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}: ...{self.context}..."


def forms(value: str) -> dict[str, bytes]:
    """The shapes a digit string takes when it leaks: as is, spaced, dashed, words."""
    return {
        "as is": value.encode(),
        "spaced": " ".join(value).encode(),
        "dashed": "-".join(value).encode(),
        "words": " ".join(WORDS[int(d)] for d in value).encode(),
    }


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _context(data: bytes, at: int, width: int) -> str:
    return data[max(0, at - 40): at + width + 40].decode("utf-8", "replace").replace("\n", " ")


def scan_bytes(path: Path, data: bytes, values: Iterable[str]) -> Iterator[Hit]:
    lowered = data.lower()
    for value in values:
        for form, needle in forms(value).items():
            at = lowered.find(needle)
            if at >= 0 and not _inside_longer_number(lowered, at, len(needle)):
                yield Hit(path, f"typed {value} {form}", _context(data, at, len(needle)))
    for m in _CARD_RUN.finditer(data):
        run = m.group(1).decode()
        if luhn_ok(run):
            yield Hit(path, f"Luhn-valid {len(run)}-digit run", _context(data, m.start(), len(run)))


def _inside_longer_number(data: bytes, at: int, width: int) -> bool:
    """'4826' inside '1764826000' (a port, a timestamp) is not the PIN 4826."""
    before = data[at - 1: at] if at else b""
    after = data[at + width: at + width + 1]
    return before.isdigit() or after.isdigit()


def ivr_wrote(path: Path) -> Path:
    """Name a directory that IVR code run in-process writes to, for the scan."""
    IVR_DIRS.add(path)
    return path


def ivr_roots(root: Path) -> list[Path]:
    """Every `ivr serve` root under `root` and every named IVR directory, outermost only."""
    found = {p.parent for p in root.rglob("ivr.yaml")} | {
        d for d in IVR_DIRS if d.is_relative_to(root)}
    return sorted(d for d in found if not any(d != o and d.is_relative_to(o) for o in found))


def _authored(path: Path, root: Path) -> bool:
    """What people wrote for the IVR to read, not what it wrote: flows and their test cases
    (a case types the value it tests), the config."""
    rel = path.relative_to(root)
    return rel.parts[0] == "flows" or path.name.endswith(".test.yaml") or rel == Path("ivr.yaml")


def scan(root: Path, values: Iterable[str] | None = None) -> tuple[int, list[Hit]]:
    """(files scanned, hits) for everything the IVR wrote under `root`."""
    wanted = sorted(TYPED if values is None else set(values))
    hits: list[Hit] = []
    files = {p for d in ivr_roots(root) for p in d.rglob("*")
             if p.is_file() and not p.is_symlink() and not _authored(p, d)}
    count = 0
    for path in sorted(files):
        count += 1
        hits.extend(scan_bytes(path, path.name.encode(), wanted))
        if path.suffix in SCANNED_SUFFIXES or path.name.endswith(SCANNED_SUFFIXES):
            try:
                data = path.read_bytes()[:MAX_BYTES]
            except OSError:
                continue
            hits.extend(scan_bytes(path, data, wanted))
    return count, hits
