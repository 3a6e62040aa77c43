"""Making a recorded prompt pack once from TTS (`ivr pack build`), for a site to replace file by
file with studio recordings.

Every prompt text of the flows in the pack's language (a template's fixed parts apart) becomes
`<prompt id>.wav`, and every say-as fragment of the language `say/<fragment>.wav`, at 16 kHz
(calls take 8 or 16). A file already there is kept, so a rebuild after a wording change adds
the new prompts and never overwrites a studio recording; `prompts.tsv` lists id and text.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ivr.lang.sayas import speaker
from ivr.speech.engines import TtsError, Voice
from ivr.speech.packs import INDEX, SAY_DIR, normal, pack_texts, prompt_id
from ivr.speech.tts import PromptCache

PACK_RATE = 16000


@dataclass
class BuildReport:
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _index(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {row[0]: row[1] for row in csv.reader(f, delimiter="\t") if len(row) >= 2}


def _write_index(path: Path, rows: dict[str, str]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        for key in sorted(rows):
            writer.writerow([key, rows[key]])
    tmp.replace(path)


def build_pack(texts: Iterable[str], language: str, out: Path, voice: Voice,
               languages: dict[str, Voice] | None = None, *, force: bool = False) -> BuildReport:
    """Render the pack of `language` under `out` (out/<language>/...) from prompt texts."""
    home = out / language
    (home / SAY_DIR).mkdir(parents=True, exist_ok=True)
    index = _index(home / INDEX)
    wanted: dict[Path, str] = {}
    for text in texts:
        for part in pack_texts(text):
            key = prompt_id(part)
            index[key] = part
            wanted[home / f"{key}.wav"] = part
    for fragment in speaker(language).inventory:
        index[f"{SAY_DIR}/{fragment}"] = fragment
        wanted[home / SAY_DIR / f"{fragment}.wav"] = fragment
    report = BuildReport()
    with tempfile.TemporaryDirectory(prefix="ivr-pack-") as tmp:
        cache = PromptCache(Path(tmp) / "cache", voice, PACK_RATE, languages=languages,
                            key_file=Path(tmp) / "cache.key")
        for dst, text in wanted.items():
            name = str(dst.relative_to(home))
            if dst.is_file() and not force:
                report.kept.append(name)
                continue
            try:
                rendered = cache.render_sync(text, language)
            except TtsError as exc:
                report.failed.append(f"{name}: {exc}")
                continue
            tmp_dst = dst.with_suffix(".tmp")
            tmp_dst.write_bytes(rendered.read_bytes())
            tmp_dst.replace(dst)
            report.written.append(name)
    _write_index(home / INDEX, {k: normal(v) for k, v in index.items()})
    return report
