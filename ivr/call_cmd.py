"""The `ivr call` command: options in command-line order become the call's actions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

HEARING_NICENESS = 10
"""How much `ivr call` lowers its priority once the call ended and it hears what it recorded."""

ACTION_OPTIONS = {"--dtmf": "dtmf", "--say": "say", "--play": "play"}


class _InOrder(click.Command):
    """Keeps `--dtmf/--say/--play` in command-line order: click hands a repeated option's values
    to the command grouped by option, so `--dtmf 1 --say X --dtmf 1` would press 1 twice first."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        actions: list[tuple[str, str]] = []
        it = iter(args)
        for arg in it:
            name, eq, value = arg.partition("=")
            if name in ACTION_OPTIONS:
                value = value if eq else next(it, "")
                actions.append((ACTION_OPTIONS[name], value))
            elif arg == "--":
                break
        ctx.ensure_object(dict)["actions"] = actions
        return super().parse_args(ctx, args)


def _catalogue(flows_dir: Path, config: Any) -> list[tuple[str, str]]:
    """(text, language) of every prompt the flows can say, in every language a flow can be in:
    the language picks the voice the prompt is rendered with here, as `serve` renders it."""
    from ivr.flow.catalog import prompt_pairs
    from ivr.flow.loader import iter_yaml_files
    from ivr.flow.validate import load_flows

    if not flows_dir.is_dir():
        return []
    result = load_flows(list(iter_yaml_files([flows_dir], tests=False)), config)
    return [pair for f in result.flows.values() for pair in prompt_pairs(f)]


def _flow_language(flows_dir: Path, config: Any, flow_id: str) -> str:
    """The language a script's flow speaks (its caller answers in it); en-US when unknown."""
    from ivr.flow.loader import iter_yaml_files
    from ivr.flow.validate import load_flows

    if not flows_dir.is_dir():
        return "en-US"
    flow = load_flows(list(iter_yaml_files([flows_dir], tests=False)), config).flows.get(flow_id)
    return flow.header.language if flow is not None else "en-US"


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ivr" / "call-prompts"


def _hear(samples: np.ndarray, catalogue: list[tuple[str, str]], cache: Any,
          transcriber: Any) -> Any:
    """Static prompts by sound (as the IVR plays them: its pack or the same TTS), templates by
    grammar, the rest by open transcription (ivr.speech.hear)."""
    from ivr.speech.catalogue_audio import candidates
    from ivr.speech.hear import hear

    static, templates = candidates(catalogue, cache)
    return hear(samples, 8000, static, templates, transcriber)


def _expect_before_inputs(steps: list[Any], actions: list[Any],
                          catalogue: list[tuple[str, str]], cache: Any) -> None:
    """Give each input action the prompts its case expects before it, as the audio of the
    catalogue prompts each expectation may be (those it can hear by sound), so the caller
    waits for them: an IVR on a busy machine may pause between two prompts longer than a
    caller's usual quiet (ivr.sip.caller.Action.after)."""
    from ivr.speech.catalogue_audio import candidates
    from ivr.speech.prompt_asr import expect_matches

    static, _ = candidates(catalogue, cache)
    inputs = iter(actions)
    pending: list[list[tuple[str, np.ndarray]]] = []
    for step in steps:
        if step.kind == "expect_prompt":
            group = [(text, audio) for text, audio in static if expect_matches(step.value, text)]
            if group:
                pending.append(group)
            continue
        action = next(inputs, None)
        if action is None:
            return
        action.after, pending = pending, []


def _windows(marks: list[int], steps: list[Any]) -> list[tuple[int, int]]:
    """For each expect_prompt step: the audio window since the previous input step (ms)."""
    out = []
    n_input = 0
    bounds = [0, *marks] + [10**9] * (len(steps) + 1)  # inputs never sent: nothing heard
    for step in steps:
        if step.kind == "expect_prompt":
            out.append((bounds[n_input], bounds[n_input + 1]))
        else:
            n_input += 1
    return out


def _recogniser(prompts: int, transcriber: Any) -> str:
    """How the prompts were heard, for the report."""
    asr = transcriber.name if transcriber is not None else "no transcription"
    return f"prompt catalogue ({prompts} prompts) + {asr}" if prompts else f"{asr} (no flows found)"


def _heard_line(prompt: dict[str, Any]) -> str:
    if prompt["heard_by"] == "catalogue":
        return f"ivr: {prompt['text']}"
    return f"ivr: {prompt['text']}  (asr, confidence {prompt['confidence']})"


def _headers(given: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in given:
        name, sep, value = item.partition(":")
        if not sep or not name.strip() or not all(c.isalnum() or c == "-" for c in name.strip()) \
                or "\r" in value or "\n" in value:
            raise click.BadParameter(f"{item!r} is not NAME: VALUE", param_hint="--header")
        out[name.strip()] = value.strip()
    return out


@click.command("call", cls=_InOrder)
@click.argument("uri")
@click.option("--dtmf", multiple=True, help="send digits by RFC 4733 (in order with the other actions)")
@click.option("--say", multiple=True, help="speak text (TTS over RTP)")
@click.option("--play", multiple=True,
              type=click.Path(exists=True, dir_okay=False), help="send a WAV file (any rate)")
@click.option("--script", "script", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="run a flow test case over the call")
@click.option("--case", "case_name", help="the case of --script to run (default: the first)")
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path),
              help="write what the IVR played to a WAV file")
@click.option("--flows", "flows_dir", type=click.Path(path_type=Path),
              help="flows whose prompts the recogniser expects (default: the config's flows)")
@click.option("--prompts", "prompts_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="more prompt texts to hear by sound, one a line (e.g. a case's rendered "
                   "templates, as `ivr test --sip` passes them)")
@click.option("--voice", "caller_voice", metavar="ENGINE[:VOICE]",
              help="the caller's voice for --say, e.g. flite:rms or espeak-ng:en+m3 "
                   "(default: the engine config's TTS voice)")
@click.option("--asr", "asr", type=click.Choice(["auto", "whisper", "pocketsphinx", "none"]), default="auto",
              show_default=True,
              help="how to transcribe prompts the catalogue does not cover (auto: whisper when "
                   "installed, else pocketsphinx; none: the catalogue alone)")
@click.option("--codec", metavar="NAME", help="offer this codec first: G722, PCMU or PCMA")
@click.option("--header", "headers", multiple=True, metavar="NAME: VALUE",
              help="an extra INVITE header (repeatable), e.g. the X-IVR-Test of `ivr test --sip`")
@click.option("--timeout", default=90.0, show_default=True, help="seconds before hanging up")
@click.option("--local-port", default=0, help="local SIP port (default: any)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
@click.pass_context
def call(ctx: click.Context, uri: str, dtmf: tuple[str, ...], say: tuple[str, ...],
         play: tuple[str, ...], script: Path | None, case_name: str | None, record: Path | None,
         flows_dir: Path | None, prompts_file: Path | None, caller_voice: str | None, asr: str,
         codec: str | None, headers: tuple[str, ...],
         timeout: float, local_port: int, config_path: Path | None, as_json: bool) -> None:
    """Place a real SIP test call: send DTMF and speech, hear and check the IVR's prompts."""
    from ivr.config import load_config
    from ivr.flow.scripted import Step
    from ivr.flow.testing import load_test_file, parse_step
    from ivr.sip.caller import Action, TestCaller, codec_priorities, save_audio
    from ivr.speech.hear import Hearing, describe
    from ivr.speech.prompt_asr import expect_matches
    from ivr.speech.transcribe import TranscriberError, open_transcriber
    from ivr.speech.tts import Voice
    from ivr.speech.voices import language_voices, pack_of, voice_of

    if not uri.startswith("sip:"):
        raise click.BadParameter("a SIP URI like sip:1000@127.0.0.1:5060", param_hint="URI")
    config = load_config(config_path)
    steps: list[Step] = []
    say_language = "en-US"
    if script is not None:
        if ctx.obj and ctx.obj.get("actions"):
            raise click.UsageError("--script runs the case's steps; give no --dtmf/--say/--play")
        test = load_test_file(script)
        say_language = _flow_language(flows_dir or Path(config.flows), config, test.flow)
        cases = [c for c in test.cases if case_name in (None, c.name)]
        if not cases:
            raise click.BadParameter(f"no case named {case_name!r}", param_hint="--case")
        steps = [parse_step(s) for s in cases[0].steps]
        actions = [Action({"audio": "play"}.get(s.kind, s.kind), s.value) for s in steps
                   if s.kind != "expect_prompt"]
    else:
        actions = [Action(k, v) for k, v in (ctx.obj or {}).get("actions", [])]
    tts = config.speech.tts
    voice = None
    if caller_voice:
        engine, _, name = caller_voice.partition(":")
        if engine not in ("espeak-ng", "flite"):
            raise click.BadParameter("ENGINE is espeak-ng or flite", param_hint="--voice")
        voice = Voice(engine, name or ("rms" if engine == "flite" else "en-us"), tts.rate)
    try:
        codec_priorities(codec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--codec") from None
    try:
        transcriber = open_transcriber(asr)
    except TranscriberError as exc:
        raise click.BadParameter(str(exc), param_hint="--asr") from None
    caller = TestCaller(uri, local_port=local_port, timeout=timeout,
                        tts=voice_of(tts), cache_dir=_cache_dir(),
                        voice=voice, codec=codec, headers=_headers(headers),
                        # a script's call ends with the IVR (a queue's announcements included)
                        listen_after=timeout if script is not None else 15.0,
                        say_language=say_language)
    caller.cache.languages = language_voices(tts)  # the IVR's voices and recorded pack, so its
    caller.cache.pack = pack_of(config)            # prompts are recognised as they play
    catalogue = _catalogue(flows_dir or Path(config.flows), config)
    if prompts_file is not None:
        # a case's rendered templates, in whichever of the flows' languages the call speaks
        languages = list(dict.fromkeys(lang for _, lang in catalogue)) or ["en-US"]
        catalogue += [(t, lang) for t in prompts_file.read_text().splitlines() if t.strip()
                      for lang in languages]
    if steps:
        _expect_before_inputs(steps, actions, catalogue, caller.cache)
    report = asyncio.run(caller.run(actions))
    with contextlib.suppress(OSError):
        # hearing the call is work for later: on a machine that also runs the IVR (`ivr test
        # --sip` runs several calls at once) it must not starve calls still in progress
        os.nice(HEARING_NICENESS)
    samples = np.frombuffer(report.audio, dtype="<i2")
    hearing: Hearing = (_hear(samples, catalogue, caller.cache, transcriber) if samples.size
                        else Hearing())
    heard = hearing.prompts
    offset = report.answered_ms or 0
    failures: list[str] = []
    passed: bool | None = None
    if script is not None:
        if hearing.nothing_recognised:
            failures.append(f"audio played ({hearing.speech_ms} ms of speech) but nothing in it "
                            "was recognised")
        expects = [s for s in steps if s.kind == "expect_prompt"]
        for step, (lo, hi) in zip(expects, _windows(report.marks, steps), strict=True):
            window = [h for h in heard if lo - 500 <= h.at_ms < hi]
            if not any(expect_matches(step.value, h.text) for h in window):
                got = " | ".join(h.text for h in window) or "(nothing)"
                failures.append(f"expected a prompt containing {step.value!r}; heard: {got}")
        passed = not failures
    if record is not None:
        save_audio(record, report.audio)
    doc: dict[str, Any] = {
        "call_id": report.call_id, "answered_ms": report.answered_ms, "codec": report.codec,
        **describe(hearing, offset),
        "sent": report.sent, "transfer": report.transfer, "end": report.end,
        "passed": passed, "failures": failures,
        "recogniser": _recogniser(len({t for t, _ in catalogue}), transcriber),
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(f"call {report.call_id}: answered after {report.answered_ms} ms"
                   + (f" ({report.codec})" if report.codec else ""))
        events: list[tuple[int, str]] = [(p["at_ms"], _heard_line(p)) for p in doc["prompts"]]
        events += [(u["at_ms"], "ivr: (speech, not recognised)") for u in doc["unrecognised"]]
        events += [(s["at_ms"], "you: " + ", ".join(f"{k}={v}" for k, v in s.items() if k != "at_ms"))
                   for s in report.sent]
        for at, text in sorted(events):
            click.echo(f"  {at / 1000:7.2f}s  {text}")
        if report.transfer:
            click.echo(f"  transferred to {report.transfer['target']}")
        click.echo(f"  end: {report.end}")
        for f in failures:
            click.echo(f"FAIL {f}")
        if passed:
            click.echo("PASS")
    sys.stdout.flush()
    if report.answered_ms is None:
        sys.exit(1)
    sys.exit(1 if passed is False else 0)

