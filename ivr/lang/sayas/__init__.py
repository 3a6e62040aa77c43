"""Say-as per language: the words the template filters (`say_number`, `say_currency`...) give.

One module per language (en, zh, ko), keyed here by language tag. A flow in a language without
one is refused when it loads (`ivr.flow.validate`), not mid-call.
"""

from __future__ import annotations

from ivr.lang.sayas.base import SayAs
from ivr.lang.sayas.en import English
from ivr.lang.sayas.ko import Korean
from ivr.lang.sayas.zh import Mandarin

__all__ = ["SayAs", "UnsupportedLanguage", "languages", "speaker", "supported"]

_SPEAKERS: dict[str, SayAs] = {}
for _s, _tags in ((English(), ("en",)), (Mandarin(), ("zh", "zh-cn", "zh-sg", "zh-hans", "cmn")),
                  (Korean(), ("ko",))):
    _SPEAKERS.update(dict.fromkeys(_tags, _s))


class UnsupportedLanguage(ValueError):
    """No say-as for a language."""


def _find(language: str) -> SayAs | None:
    tag = language.strip().lower().replace("_", "-")
    primary = tag.split("-")[0]
    if tag in _SPEAKERS:
        return _SPEAKERS[tag]
    if primary == "zh":  # zh-TW/zh-HK want traditional characters (兩, 萬): not done yet
        return None
    return _SPEAKERS.get(primary)


def speaker(language: str) -> SayAs:
    found = _find(language)
    if found is None:
        raise UnsupportedLanguage(f"no say-as for language {language!r} (have: "
                                  f"{', '.join(languages())})")
    return found


def supported(language: str) -> bool:
    return _find(language) is not None


def languages() -> list[str]:
    return sorted({s.language for s in _SPEAKERS.values()})
