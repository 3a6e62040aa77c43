"""The prompt cache keeps no sensitive prompt, and its names cannot be reversed without its key.

A call is simulated through the real prompt player (`SipCallControl`, with a stand-in for the
pjsua2 session) and the real synthesiser (espeak-ng), so what lands on disk is what a live
call leaves there.
"""

from __future__ import annotations

import asyncio
import hashlib
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import Harness

from ivr.flow.channel import Prompt
from ivr.flow.scripted import ScriptedChannel, Step
from ivr.sip.control import SipCallControl
from ivr.speech import tts
from ivr.speech.tts import PromptCache, TtsError, Voice

PIN = "40719263"
CONFIRM = "You entered {{ pin | say_digits }}. Press 1 if right."
FLOW = f"""
    flow: t
    start: ask
    nodes:
      ask:
        collect:
          prompt: "Enter your PIN."
          digits: {{min: 8, max: 8}}
          into: pin
          sensitive: true
          confirm: "{CONFIRM}"
        next: copy
      copy: {{set: {{again: "{{{{ pin }}}}"}}, next: bye}}
      bye: {{say: "Your PIN ends {{{{ again[-4:] }}}}. Goodbye."}}
"""


@dataclass
class FakeSession:
    """What `SipCallControl.play` needs of a pjsua2 call: it notes each file as played."""

    call_id: str = "call-1"
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    digits: list[str] = field(default_factory=list)
    speech: Any = None
    played: list[tuple[Path, int, bool]] = field(default_factory=list)
    """(path, mode, whether it was inside the cache directory) at the time it played."""
    cache_root: Path = Path()

    async def play_files(self, paths: Sequence[str], *, barge_in: bool) -> bool:
        for p in map(Path, paths):
            assert p.is_file(), f"{p} is not there to play"
            self.played.append((p, stat.S_IMODE(p.stat().st_mode), p.parent == self.cache_root))
        return True


@dataclass
class PlayingChannel(ScriptedChannel):
    """The scripted caller, with every prompt also played through the real prompt player."""

    control: SipCallControl | None = None

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = True) -> None:
        await super().play(prompts, barge_in=barge_in)
        assert self.control is not None
        await self.control.play(prompts, barge_in=False)


@pytest.fixture
def cache(tmp_path: Path) -> PromptCache:
    return PromptCache(tmp_path / "var" / "prompts", Voice(), 8000,
                       private_dir=tmp_path / "var" / "private")


async def test_a_sensitive_prompt_plays_from_a_private_file_and_never_enters_the_cache(
    harness: Harness, cache: PromptCache, tmp_path: Path
) -> None:
    session = FakeSession(cache_root=cache.root)
    channel = PlayingChannel(steps=[Step("dtmf", PIN), Step("dtmf", "1")],
                             control=SipCallControl(session, cache, account=None))  # type: ignore[arg-type]
    flows = harness.load(FLOW)
    from ivr.flow.context import CallContext
    from ivr.flow.interpreter import Interpreter

    ctx = CallContext(channel=channel, config=harness.config, flows=flows, flow=flows["t"])
    result = await Interpreter(ctx).run()
    assert result.ctx.path == ["ask", "copy", "bye"]
    assert result.ctx.prompts == ["Enter your PIN.", "You entered ****9263. Press 1 if right.",
                                  "Your PIN ends 9263. Goodbye."]
    # played: the fixed prompt from the cache, the two carrying the PIN from private 0600 files
    where = [(inside, mode) for _, mode, inside in session.played]
    assert where[0][0] is True
    assert where[1:] == [(False, 0o600), (False, 0o600)]
    for path, _, _ in session.played[1:]:
        assert not path.exists() and not path.parent.exists(), "a private prompt outlived its play"
        assert path.is_relative_to(tmp_path / "var" / "private")
    # the cache holds exactly the one fixed prompt; nothing of the PIN in names or lookups
    files = sorted(p.name for p in cache.root.iterdir())
    assert files == [cache.path_for("Enter your PIN.").name]
    spoken = "You entered 4 0 7 1 9 2 6 3. Press 1 if right."
    assert cache.cached(spoken) is None
    assert cache.cached("Your PIN ends 9263. Goodbye.") is None
    assert not any(PIN in p.name or "9263" in p.name for p in (tmp_path / "var").rglob("*"))


async def test_private_rendering_passes_the_text_on_stdin_not_the_command_line(
    cache: PromptCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], bytes | None]] = []
    real_run = subprocess.run

    def spy(cmd: list[str], **kwargs: Any) -> Any:
        seen.append((list(cmd), kwargs.get("input")))
        return real_run(cmd, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)  # the module tts renders through
    path = await cache.render_private("Your PIN is 4 0 7 1.", "en-US")
    assert path.is_file() and path.stat().st_size > 1000
    cmd, given = seen[0]
    assert not any("4 0 7 1" in arg for arg in cmd), "the text is visible in a process listing"
    assert given == b"Your PIN is 4 0 7 1."
    PromptCache.discard(path)
    assert not path.parent.exists()


def test_cache_names_are_keyed_by_a_private_install_secret(tmp_path: Path) -> None:
    root = tmp_path / "var" / "prompts"
    cache = PromptCache(root, Voice(), 8000)
    key = tmp_path / "var" / "prompts.key"
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.parent != root  # a copy of the cache directory alone does not carry the key
    text = "You entered 4 0 7 1 9 2 6 3."
    name = cache.path_for(text).name
    # the name before keys: a plain sha256 over the same fields (reversible by enumeration)
    v = cache.voice
    legacy = hashlib.sha256(f"{v.engine}|{v.voice}|{v.rate}|8000|{text}".encode()).hexdigest()[:32]
    assert legacy not in name
    # same install: the same name (workers and the supervisor share the cache)
    assert PromptCache(root, Voice(), 8000).path_for(text).name == name
    # another key (a stolen directory, guessed with a fresh key): no name matches
    other = PromptCache(tmp_path / "elsewhere" / "prompts", Voice(), 8000)
    assert other.path_for(text).name != name
    # a real rendering is found again by its text, as the integration tests look prompts up
    cache.render_sync("Hello.")
    assert PromptCache(root, Voice(), 8000).cached("Hello.") == cache.path_for("Hello.")


def test_serve_removes_names_from_before_the_key_and_a_damaged_key_is_refused(
    tmp_path: Path
) -> None:
    root = tmp_path / "prompts"
    root.mkdir()
    (root / ("0123456789abcdef" * 2 + ".wav")).write_bytes(b"RIFF")
    (root / "file-abc-8000.wav").write_bytes(b"RIFF")  # ops audio: kept
    cache = PromptCache(root, Voice(), 8000)
    assert len(list(root.iterdir())) == 2  # opening a cache removes nothing (others may read it)
    assert cache.forget_unkeyed() == 1
    assert sorted(p.name for p in root.iterdir()) == ["file-abc-8000.wav"]
    (tmp_path / "prompts.key").write_bytes(b"short")
    with pytest.raises(TtsError, match="damaged"):
        PromptCache(root, Voice(), 8000)


def test_racing_processes_agree_on_one_key(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    first = tts.install_key(key)
    assert tts.install_key(key) == first
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]  # no temporary left behind
