"""A channel driven by steps instead of a phone: `ivr simulate` and `ivr test` run on it.

DTMF behaves as on a real line: digits go into a type-ahead buffer and each `listen` takes what the
waiting node asks for (up to a terminator, a whole menu key, or max digits), so `dtmf: "12345678#"`
followed by `dtmf: "1"` fills a collect and then answers its confirmation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ivr.errors import CallerHangup, InputsExhausted
from ivr.flow.channel import (
    Channel,
    Input,
    ListenSpec,
    Prompt,
    QueueRequest,
    QueueResult,
    RecordRequest,
    TransferRequest,
)

StepKind = Literal["expect_prompt", "dtmf", "say", "audio", "silence", "hangup"]
INPUT_KINDS = ("dtmf", "say", "audio", "silence", "hangup")


@dataclass(frozen=True)
class Step:
    kind: StepKind
    value: str = ""

    def describe(self) -> str:
        return f"{self.kind}: {self.value}" if self.value else self.kind


Recognizer = Callable[[str, ListenSpec], Input | None]
"""Turns a WAV file into the caller's input under a listen spec (the real ASR, issue 4)."""


def take_digits(buffer: str, spec: ListenSpec) -> tuple[str, str]:
    """Split a type-ahead buffer into (this entry, what stays buffered)."""
    for key in spec.dtmf_keys:
        if not key.isdigit() and buffer.startswith(key):
            return key, buffer[len(key):]
    if spec.terminator:
        end = buffer.find(spec.terminator)
        if 0 <= end <= spec.max_digits:
            return buffer[:end], buffer[end + 1:]
        n = min(len(buffer), spec.max_digits)
        return buffer[:n], buffer[n:]
    for n in range(1, min(len(buffer), spec.max_digits) + 1):
        head = buffer[:n]
        if head in spec.dtmf_keys and not any(
            len(k) > n and k.startswith(head) for k in spec.dtmf_keys
        ):
            return head, buffer[n:]
    n = min(len(buffer), spec.max_digits)
    return buffer[:n], buffer[n:]


@dataclass
class ScriptedChannel(Channel):
    """Plays into a list, listens from steps; checks `expect_prompt` steps as it goes."""

    steps: list[Step]
    recognizer: Recognizer | None = None
    queue_results: Mapping[str, str] = field(default_factory=dict)
    transfer_results: Mapping[str, bool] = field(default_factory=dict)
    on_prompt: Callable[[Prompt], None] | None = None
    read_step: Callable[[], Step | None] | None = None
    """Interactive source used once `steps` run out (the console simulator)."""
    speech: bool = True
    """False: a call without speech recognition (`say`/`audio` steps are heard as silence)."""

    played: list[str] = field(default_factory=list)
    window: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    queued: list[QueueRequest] = field(default_factory=list)
    transfers: list[TransferRequest] = field(default_factory=list)
    hung_up: bool = False
    _digits: str = ""
    _window_pos: int = 0

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = True) -> None:
        for p in prompts:
            self.played.append(p.describe())
            self.window.append(p.describe())
            if self.on_prompt:
                self.on_prompt(p)

    def _expect(self, text: str) -> None:
        needle = text.lower()
        for i in range(self._window_pos, len(self.window)):
            if needle in self.window[i].lower():
                self._window_pos = i
                return
        heard = " | ".join(self.window) or "(nothing)"
        self.failures.append(f"expected a prompt containing {text!r}; prompts since the last "
                             f"step: {heard}")

    def _next_step(self) -> Step | None:
        while self.steps:
            step = self.steps.pop(0)
            if step.kind == "expect_prompt":
                self._expect(step.value)
                continue
            return step
        return self.read_step() if self.read_step else None

    def _new_window(self) -> None:
        self.window = []
        self._window_pos = 0

    @property
    def speech_available(self) -> bool:
        return self.speech

    async def listen(self, spec: ListenSpec) -> Input | None:
        if self._digits:
            value, self._digits = take_digits(self._digits, spec)
            self._new_window()
            return Input("dtmf", value)
        step = self._next_step()
        if step is None:
            raise InputsExhausted()
        self._new_window()
        if step.kind == "dtmf":
            value, self._digits = take_digits(step.value, spec)
            return Input("dtmf", value)
        if step.kind in ("say", "audio") and not self.speech:
            return None  # nobody is listening for speech on this call
        if step.kind == "say":
            return Input("speech", step.value, 1.0)
        if step.kind == "audio":
            if self.recognizer is None:
                self.failures.append("audio input needs a speech recognizer; none is configured")
                raise InputsExhausted()
            return self.recognizer(step.value, spec)
        if step.kind == "silence":
            return None
        self.hung_up = True
        raise CallerHangup()

    def finish(self) -> None:
        """Check what is left once the flow ended: trailing expectations, unused input."""
        leftover: list[str] = []
        for step in self.steps:
            if step.kind == "expect_prompt":
                self._expect(step.value)
            else:
                leftover.append(step.describe())
        self.steps = []
        if self._digits:
            leftover.insert(0, f"dtmf: {self._digits} (buffered)")
        if leftover:
            self.failures.append(f"the flow ended before these steps were used: {leftover}")

    async def enqueue(self, request: QueueRequest) -> QueueResult:
        self.queued.append(request)
        status = self.queue_results.get(request.name, "connected")
        return QueueResult(status=status)  # type: ignore[arg-type]

    async def transfer(self, request: TransferRequest) -> bool:
        self.transfers.append(request)
        return self.transfer_results.get(request.to, True)

    async def record(self, request: RecordRequest) -> str | None:
        return f"simulated://{request.name}.wav"

    async def hangup(self) -> None:
        self.hung_up = True
