"""Recorded prompt packs: prompt ids, what plays from a pack (whole prompts, template parts and
say-as fragments through the real prompt player), `ivr validate`'s warnings and `ivr pack build`."""

from __future__ import annotations

import asyncio
import sys
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from helpers import Harness

from ivr.flow.channel import Prompt
from ivr.flow.context import CallContext
from ivr.flow.interpreter import Interpreter
from ivr.flow.scripted import ScriptedChannel
from ivr.lang.sayas import speaker
from ivr.sip.control import SipCallControl
from ivr.speech.audio import read_wav
from ivr.speech.pack_build import build_pack
from ivr.speech.packs import PromptPack, normal, prompt_id
from ivr.speech.tts import PromptCache, Voice

FLOW = """
    flow: zh
    language: zh-CN
    start: hi
    nodes:
      hi: {set: {amount: "12.30"}, next: bal}
      bal: {say: "您的余额是{{ amount | say_currency }}。", next: who}
      who: {say: "{{ caller.number }}", next: bye}
      bye: {say: "再见。"}
"""


def tone(path: Path, hz: float, seconds: float = 0.2, rate: int = 16000) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    samples = (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def fill(pack: Path, language: str, texts: Sequence[str], fragments: Sequence[str]) -> None:
    for i, text in enumerate(texts):
        tone(pack / language / f"{prompt_id(text)}.wav", 300 + 50 * i)
    for i, f in enumerate(fragments):
        tone(pack / language / "say" / f"{f}.wav", 1000 + 20 * i, 0.1)


def test_a_prompt_id_is_stable_and_follows_the_wording() -> None:
    assert prompt_id("再见。") == prompt_id("  再见。 ") == prompt_id("再见。")
    assert prompt_id("Press 1  for sales.") == prompt_id("Press 1 for sales.")
    assert prompt_id("再见。") != prompt_id("再见!")
    assert prompt_id("x").startswith("p-") and len(prompt_id("x")) == 18


def test_the_pack_plays_whole_prompts_and_templates_from_parts_and_fragments(tmp_path: Path
                                                                             ) -> None:
    fill(tmp_path, "zh-CN", ["再见。", "您的余额是"], ["十", "二", "元", "三", "角"])
    pack = PromptPack(tmp_path)
    whole = pack.files(Prompt(text="再见。", language="zh-CN"))
    assert whole == [tmp_path / "zh-CN" / f"{prompt_id('再见。')}.wav"]
    from ivr.prompt import Piece
    said = Prompt(text="您的余额是十二元三角。", language="zh-CN",
                  pieces=(Piece("您的余额是"), Piece("十二元三角", say_as=True), Piece("。")))
    files = pack.files(said)
    assert files is not None
    assert [f.stem for f in files] == [prompt_id("您的余额是"), "十", "二", "元", "三", "角"]
    # a fragment missing, a part unrecorded, another language, a sensitive prompt: TTS
    lacking = Prompt(text="您的余额是两元。", language="zh-CN",
                     pieces=(Piece("您的余额是"), Piece("两元", say_as=True), Piece("。")))
    assert pack.files(lacking) is None
    assert pack.files(Prompt(text="你好。", language="zh-CN")) is None
    assert pack.files(Prompt(text="再见。", language="ko-KR")) is None
    assert pack.files(Prompt(text="再见。", language="zh-CN", shown="再见。")) is None
    # a pack directory for the primary language serves its regions
    (tmp_path / "zh-CN").rename(tmp_path / "zh")
    assert pack.files(Prompt(text="再见。", language="zh-CN")) is not None


@dataclass
class FakeSession:
    call_id: str = "c"
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    digits: list[str] = field(default_factory=list)
    speech: Any = None
    played: list[Path] = field(default_factory=list)

    async def play_files(self, paths: Sequence[str], *, barge_in: bool) -> bool:
        self.played += [Path(p) for p in paths]
        return True


@dataclass
class PlayingChannel(ScriptedChannel):
    control: SipCallControl | None = None

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = True) -> None:
        await super().play(prompts, barge_in=barge_in)
        assert self.control is not None
        await self.control.play(prompts, barge_in=False)


async def test_a_call_hears_the_pack_instead_of_tts(harness: Harness, tmp_path: Path) -> None:
    pack_dir = tmp_path / "packs"
    fill(pack_dir, "zh-CN", ["再见。", "您的余额是"], speaker("zh-CN").inventory)
    cache = PromptCache(tmp_path / "cache", Voice(), 8000, pack=PromptPack(pack_dir))
    session = FakeSession()
    channel = PlayingChannel(steps=[], control=SipCallControl(session, cache, account=None))  # type: ignore[arg-type]
    flows = harness.load(FLOW)
    ctx = CallContext(channel=channel, config=harness.config, flows=flows, flow=flows["zh"],
                      caller={"number": "555"})
    await Interpreter(ctx).run()
    assert ctx.prompts == ["您的余额是十二元三角。", "555", "再见。"]
    # balance: the recorded fixed part and five fragments, at the call's rate; "555" (not a
    # say-as value) by TTS; goodbye recorded
    names = [p.name for p in session.played]
    assert len(names) == 10  # a pack's prompt ends in silence: the player cuts its last ~150 ms
    assert names[6] == names[9] == "silence-250ms-8000.wav"
    rates = {read_wav(p)[1] for p in session.played}
    assert rates == {8000}
    first = read_wav(session.played[0])[0]
    assert abs(len(first) - 1600) < 20  # the 0.2 s tone, not speech
    tts_made = [p for p in session.played if p.name.startswith("t-")]
    assert len(tts_made) == 1 and cache.cached("555", "zh-CN") == tts_made[0]


def test_validate_warns_about_what_the_pack_lacks(harness: Harness, tmp_path: Path) -> None:
    pack_dir = tmp_path / "packs"
    inventory = speaker("zh-CN").inventory
    fill(pack_dir, "zh-CN", ["再见。"], [f for f in inventory if f != "元"])
    harness.config = harness.config.model_copy(
        update={"prompts": harness.config.prompts.model_copy(update={"packs": pack_dir})})
    result = harness.load_set(FLOW)
    assert not result.errors
    messages = [w.message for w in result.warnings]
    assert any(prompt_id("您的余额是") in m and "您的余额是" in m for m in messages)
    assert any("lacks say-as fragments 元" in m for m in messages)
    assert not any("再见" in m for m in messages)


def test_an_unsupported_language_with_say_as_is_a_load_error(harness: Harness) -> None:
    result = harness.load_set(FLOW.replace("zh-CN", "fr-FR"))
    assert any("say-as has no words for language 'fr-FR'" in p.message for p in result.errors)


def fake_tts(tmp_path: Path) -> Path:
    """A `command` engine: a tone as long as the text (reads it from stdin)."""
    script = tmp_path / "fake-tts"
    script.write_text(f"""#!{sys.executable}
import sys, wave
text = sys.stdin.read()
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"\\x10\\x00" * 800 * len(text))
""")
    script.chmod(0o755)
    return script


def test_pack_build_renders_once_and_keeps_studio_files(tmp_path: Path) -> None:
    voice = Voice("command", command=(str(fake_tts(tmp_path)), "{out}"))
    texts = ["您的余额是{{ amount | say_currency }}。", "再见。"]
    out = tmp_path / "pack"
    report = build_pack(texts, "zh-CN", out, voice)
    home = out / "zh-CN"
    assert not report.failed
    assert sorted(report.written) == sorted(
        [f"{prompt_id('您的余额是')}.wav", f"{prompt_id('再见。')}.wav",
         *(f"say/{f}.wav" for f in speaker("zh-CN").inventory)])
    samples, rate = read_wav(home / f"{prompt_id('再见。')}.wav")
    assert rate == 16000 and len(samples) == 16000 * 3 // 10  # 3 characters, 0.1 s each
    index = (home / "prompts.tsv").read_text(encoding="utf-8")
    assert f"{prompt_id('您的余额是')}\t您的余额是\n" in index and "say/元\t元\n" in index
    studio = tone(home / f"{prompt_id('再见。')}.wav", 440)
    before = studio.read_bytes()
    again = build_pack([*texts, "请稍候。"], "zh-CN", out, voice)
    assert again.written == [f"{prompt_id('请稍候。')}.wav"]
    assert studio.read_bytes() == before
    assert f"{prompt_id('请稍候。')}\t{normal('请稍候。')}" in (home / "prompts.tsv").read_text()


def test_pack_build_cli_writes_the_flows_prompts(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ivr.cli import cli

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "zh.yaml").write_text(FLOW.replace("\n    ", "\n"), encoding="utf-8")
    config = tmp_path / "ivr.yaml"
    config.write_text("speech:\n  tts:\n    engine: command\n"
                      f"    command: ['{fake_tts(tmp_path)}', '{{out}}']\n")
    got = CliRunner().invoke(cli, ["pack", "build", str(flows), "--language", "zh-CN",
                                   "--out", str(tmp_path / "p"), "--config", str(config)])
    assert got.exit_code == 0, got.output
    assert "1 flows" in got.output
    assert (tmp_path / "p" / "zh-CN" / f"{prompt_id('再见。')}.wav").is_file()
    bad = CliRunner().invoke(cli, ["pack", "build", str(flows), "--language", "fr-FR",
                                   "--out", str(tmp_path / "p")])
    assert bad.exit_code != 0 and "fr-FR" in bad.output


def test_ivr_call_hears_other_languages_templates_by_their_fixed_parts(tmp_path: Path) -> None:
    from ivr.speech.catalogue_audio import candidates

    pack_dir = tmp_path / "packs"
    fill(pack_dir, "zh-CN", ["您的余额是"], [])
    cache = PromptCache(tmp_path / "cache", Voice(), 8000, pack=PromptPack(pack_dir))
    zh = "您的余额是{{ amount | say_currency }}，谢谢。"
    en = "Your balance is {{ amount | say_currency }}."
    static, templates = candidates([(zh, "zh-CN"), (en, "en-US"), ("再见。", "zh-CN")], cache)
    assert templates == [en]  # the English grammar recogniser takes English templates
    assert [name for name, _ in static] == [zh, zh, "再见。"]  # 您的余额是 and 谢谢 by sound
    recorded = read_wav(pack_dir / "zh-CN" / f"{prompt_id('您的余额是')}.wav")[0]
    assert len(static[0][1]) == len(recorded) // 2  # the pack's recording, at 8 kHz


def test_the_english_grammar_recogniser_takes_other_languages_templates_without_failing() -> None:
    from ivr.speech.prompt_asr import PromptRecognizer

    zh, en = "您的余额是{{ amount | say_currency }}。", "Your balance is {{ amount | say_currency }}."
    recognizer = PromptRecognizer([zh, "잔액은 {{ n | say_number }}원입니다.", en])
    assert recognizer.grammar is not None
    assert [p.text for p in recognizer.grammar.patterns] == [en]
