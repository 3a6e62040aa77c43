"""`ivr validate`'s warnings for a recorded prompt pack: prompts a flow says that the pack has no
recording of (they are synthesised instead), and say-as fragments it lacks. Warnings, never
errors: a pack is filled in file by file while TTS covers the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ivr.flow.languages import flow_languages
from ivr.flow.model import Flow
from ivr.speech.packs import PromptPack, pack_texts, prompt_id, uses_say_as

if TYPE_CHECKING:
    from ivr.flow.validate import Checker

SHOWN = 8
"""Missing fragments named in the warning (the rest are counted)."""


def check_pack(checker: Checker, flow: Flow, pack: PromptPack) -> None:
    for language in flow_languages(flow):
        say_as = False
        for node_id, node in flow.nodes.items():
            for text in node.prompts(language):
                say_as = say_as or uses_say_as(text)
                for part in pack_texts(text):
                    if pack.recording(part, language) is None:
                        checker.warn(("nodes", node_id), f"prompt pack {language} has no "
                                     f"{prompt_id(part)}.wav for {part!r} (TTS says it)")
        lacking = pack.missing_fragments(language) if say_as else []
        if lacking:
            more = f" and {len(lacking) - SHOWN} more" if len(lacking) > SHOWN else ""
            checker.warn(("flow",), f"prompt pack {language} lacks say-as fragments "
                         f"{', '.join(lacking[:SHOWN])}{more} (its say-as values are "
                         "synthesised)")
