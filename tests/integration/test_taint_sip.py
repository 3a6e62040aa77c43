"""A sensitive PIN over a real SIP call leaves no trace: not in the log, the CDR or any state file.

The caller (`ivr call`, pjsua2) types the PIN by RFC 4733 DTMF into a flow written here, which
copies it with `set`, reads the copy back in a prompt and hands it to an http node whose back-end
is down. Afterwards every byte under the server's state directory (SQLite store and outboxes,
the prompt cache and its file names, private prompt files), the server's log and the CDR
are searched for the PIN as typed, spaced and in words: only masked forms may be there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from server import IVR_BIN, REPO, Server, free_port, start_server

from ivr.speech.tts import PromptCache, Voice

pytestmark = pytest.mark.integration

PIN = "40719263"
FORMS = [PIN, "4 0 7 1 9 2 6 3", "four zero seven one nine two six three",
         "four oh seven one nine two six three", "4071 9263"]
MASKED = "****9263"
ROUTE = "5700"

FLOW = """
flow: pin-taint
defaults: {timeout: 5s, retries: 1}
start: ask
nodes:
  ask:
    collect:
      prompt: "Enter your PIN, then press pound."
      digits: {min: 8, max: 8, terminator: "#"}
      into: pin
      sensitive: true
    next: copy
    on_fail: bye
  copy:
    set: {again: "{{ pin }}", shown_twice: "PIN {{ pin }} twice {{ last.value }}"}
    next: readback
  readback:
    say: "You entered {{ again | say_digits }}."
    next: lookup
  lookup:
    http: {url: "http://127.0.0.1:%(port)d/pins/{{ again }}", timeout: 1s}
    next: bye
    on_error: bye
  bye:
    say: "Goodbye."
    hangup: true
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("taint")
    (root / "flows").mkdir()
    (root / "flows" / "pin-taint.yaml").write_text(FLOW % {"port": free_port()})
    routes = yaml.safe_load((REPO / "ivr" / "defaults.yaml").read_text())["routes"]
    srv = start_server(root, max_calls=4, extra={"routes": {**routes, ROUTE: "pin-taint"}})
    try:
        yield srv
    finally:
        srv.stop()


def call(server: Server, *args: str) -> tuple[int, dict[str, Any], str]:
    """`ivr call` to the flow, recognising prompts by this flow's catalogue only (the server's
    whole catalogue makes the caller's transcription take minutes on a busy machine)."""
    own = server.root / "caller-flows"
    own.mkdir(exist_ok=True)
    shutil.copy(server.flows / "pin-taint.yaml", own)
    proc = subprocess.run(
        [str(IVR_BIN), "call", f"sip:{ROUTE}@{server.uri_host}", *args, "--flows", str(own),
         "--json", "--timeout", "60"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    try:
        return proc.returncode, json.loads(proc.stdout), proc.stderr
    except ValueError:
        raise AssertionError(f"no JSON: {proc.stdout[-500:]} {proc.stderr[-2000:]}") from None


def leaks(data: bytes) -> list[str]:
    return [f for f in FORMS if f.encode() in data]


def test_a_pin_typed_over_sip_is_masked_in_log_cdr_and_state(server: Server) -> None:
    before = len(server.calls())
    code, doc, err = call(server, "--dtmf", f"{PIN}#")
    assert code == 0, err[-2000:]
    heard = [str(p["text"]).lower() for p in doc["prompts"]]
    assert any("enter your pin" in t for t in heard), heard
    assert any("goodbye" in t for t in heard), heard
    (cdr,) = server.wait_cdrs(before + 1)[before:]
    server.wait_idle()

    # the flow ran with the real value (the http node reached its lookup) and recorded it masked
    status, full = server.get(f"/calls/{cdr['call_id']}")
    assert status == 200
    assert full["path"] == ["ask", "copy", "readback", "lookup", "bye"], full
    variables = full["variables"]
    assert variables["pin"] == MASKED and variables["again"] == MASKED, variables
    assert variables["shown_twice"] == f"PIN {MASKED} twice {MASKED}", variables
    assert MASKED in variables["http_error"] or "ConnectError" in variables["http_error"]
    said = [t["text"] for t in full["transcript"]]
    assert MASKED in said and f"You entered {MASKED}." in said, said
    assert not leaks(json.dumps(full).encode()), json.dumps(full)[:2000]
    assert not leaks(json.dumps(server.calls()).encode())

    # the log: the http failure was logged, masked
    server.stop()
    log = server.log_path.read_bytes()
    assert b"http node lookup failed" in log
    assert not leaks(log), [line for line in log.decode(errors="replace").splitlines()
                            if any(f in line for f in FORMS)][:5]

    # every byte and every name under the state directory
    var = server.root / "var"
    files = [p for p in var.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" for p in files) and any(p.suffix == ".wav" for p in files)
    for p in files:
        assert not leaks(p.read_bytes()), f"{p} holds the PIN"
        assert not leaks(str(p.relative_to(var)).encode())
    assert not [p for p in (var / "private").rglob("*") if p.is_file()], "a private prompt stayed"

    # the prompt cache: the fixed prompts are there under keyed names, the read-back is not
    cache = PromptCache(var / "prompts", Voice(), 8000)
    assert (var / "prompts.key").is_file()
    assert cache.cached("Enter your PIN, then press pound.") is not None
    assert cache.cached("Goodbye.") is not None
    assert cache.cached("You entered 4 0 7 1 9 2 6 3.") is None
    assert all(p.name.startswith(("t-", "file-", "beep-")) for p in (var / "prompts").iterdir())
