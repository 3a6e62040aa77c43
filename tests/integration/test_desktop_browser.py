"""The agent desktop and the wallboard in real headless Chromium around a real `ivr serve`.

A real SIP call (`ivr call`) takes the bank flow's priority-banker path: balance, the account
number (sensitive), a back-end lookup that says the caller is gold, then the agent queue. The
agent's SIP phone (registered at the front) rings; the screen pop must show the masked account,
intent, tier and transcript before it answers. Then the faults: a wrong token, another agent's
offer, markup in a context value, a burst of 500 queued calls, a server restart with pages open.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import leak_scan
import pytest
from phones import Softphone
from playwright.sync_api import Browser, Page, expect, sync_playwright
from server import IVR_BIN, REPO, Server, restart_server, start_server

ADMIN, READER, BOB, DAVE = ("A" * 24, "R" * 24, "B" * 24, "D" * 24)
ACCOUNT = "40719263"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
DOCS = REPO / "docs"
SEEN = """() => { window.seen = [];
  new MutationObserver(() => {
    const q = document.querySelector('section[data-queue="general"]');
    if (!q) return;
    const now = [q.querySelector('[data-field="waiting"] b').textContent,
                 q.querySelector('.states [data-state="on_call"] b').textContent];
    const last = window.seen[window.seen.length - 1];
    if (!last || last[0] !== now[0] || last[1] !== now[1]) window.seen.push(now);
  }).observe(document.getElementById("queues"), {childList: true, subtree: true}); }"""
"""Records every (waiting, on call) the wallboard shows for the general queue, in order."""


class Bank(BaseHTTPRequestHandler):
    """The bank's account back-end: every account belongs to a gold customer."""

    def do_GET(self) -> None:
        body = json.dumps({"name": "Ada Lovelace", "tier": "gold", "balance": 1234.5}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def bank() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Bank)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, bank: int) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("desktop") / "srv", max_calls=8, api_token=ADMIN,
        env={"IVR_TOKENS": f"admin={ADMIN},read={READER},agent:bob={BOB},agent:dave={DAVE}"},
        extra={"agents": {"bob": {"queues": ["general"], "skills": {"banking": 5, "premier": 1}},
                          "dave": {"queues": ["general"], "skills": {"banking": 5}}},
               "desktop": {"heartbeat": "2s", "history_every": "2s"}})
    try:
        flow = srv.flows / "acme-bank.yaml"
        before = srv.health()["flows"]["acme-bank"]
        flow.write_text(flow.read_text().replace("127.0.0.1:8099", f"127.0.0.1:{bank}"))
        srv.wait(lambda: srv.health()["flows"]["acme-bank"] != before and all(
            w["flows"].get("acme-bank") != before for w in srv.health()["workers"] if w["alive"]),
            20, "the flow pointing at the test's bank back-end")
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _page(browser: Browser, server: Server, path: str, token: str | None) -> Page:
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.set_default_timeout(15000)
    page.goto(f"http://127.0.0.1:{server.http_port}{path}")
    if token is not None:
        page.fill("#token", token)
        page.press("#token", "Enter")
    return page


def _live(page: Page, timeout: float = 15000) -> None:
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=timeout)


def _agent(server: Server, name: str) -> dict[str, Any]:
    return dict(next(a for a in server.get("/agents")[1]["agents"] if a["name"] == name))


def _queue(server: Server, name: str = "general") -> dict[str, Any]:
    return dict(next(q for q in server.get("/queues")[1]["queues"] if q["name"] == name))


def _board(page: Page, queue: str = "general") -> dict[str, Any]:
    """The wallboard's figures for one queue, as the page shows them."""
    card = page.locator(f'section[data-queue="{queue}"]')
    doc: dict[str, Any] = {f: card.locator(f'[data-field="{f}"] b').inner_text()
                           for f in ("waiting", "callbacks")}
    doc["agents"] = {s: int(card.locator(f'.states [data-state="{s}"] b').inner_text())
                     for s in ("ready", "ringing", "on_call", "wrap_up", "away", "logged_out")}
    return doc


def _matches_api(page: Page, server: Server) -> bool:
    q = _queue(server)
    shown = _board(page)
    return shown == {"waiting": str(q["waiting"]), "callbacks": str(q["callbacks"]),
                     "agents": q["agents"]}


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}")


def _screenshot(page: Page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot))
    if os.environ.get("IVR_UPDATE_DOCS") == "1":  # refresh the README's pictures
        DOCS.mkdir(exist_ok=True)
        shutil.copy(shot, DOCS / name)


def test_screen_pop_before_the_phone_answers_then_accept_wallboard_and_disposition(
        server: Server, browser: Browser, tmp_path: Path) -> None:
    leak_scan.typed(ACCOUNT)
    desk = _page(browser, server, "/agent", BOB)
    _live(desk)
    expect(desk.locator("#me")).to_have_text("bob")
    board = _page(browser, server, "/wallboard", READER)
    _live(board)
    board.evaluate(SEEN)
    # the phone answers 6 s into the ring: the front gives an agent's phone 10 s
    # (front fr_inv_timer), the test sees the pop and accepts well before
    phone = Softphone("--name", "bob", "--register", server.uri_host, "--incoming", "answer",
                      "--answer-after", "6", "--duration", "90")
    caller: subprocess.Popen[bytes] | None = None
    try:
        phone.wait(15, "bob registered at the front", ev="registered", code=200)
        desk.keyboard.press("r")  # Ready, by its shortcut
        expect(desk.locator("#state")).to_have_text("ready")
        assert _agent(server, "bob")["state"] == "ready"
        hold = tmp_path / "quiet.wav"  # the caller stays on the line this long in the queue
        with wave.open(str(hold), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\0\0" * 8000 * 25)
        caller = subprocess.Popen(
            [str(IVR_BIN), "call", f"sip:1000@{server.uri_host}", "--asr", "none",
             "--dtmf", "1", "--dtmf", f"{ACCOUNT}#", "--dtmf", "1", "--dtmf", "1",
             "--play", str(hold), "--flows", str(server.flows), "--json", "--timeout", "90"],
            stdout=(tmp_path / "call.json").open("w"), stderr=subprocess.STDOUT)
        pop = desk.locator("#pop")
        expect(pop).to_be_visible(timeout=60000)
        text = pop.inner_text()
        assert not phone.seen(ev="state", leg="in", state="CONFIRMED"), "answered before the pop"
        assert "****9263" in text and ACCOUNT not in text, text
        assert "priority_banker" in text and "gold" in text and "Ada Lovelace" in text, text
        transcript = desk.locator("ol.transcript").inner_text()
        assert "****9263" in transcript and ACCOUNT not in transcript, transcript
        desk.keyboard.press("y")  # Accept, while the phone still rings
        expect(desk.locator("#pop-note")).to_contain_text("Accepted")
        call_id = _agent(server, "bob")["call_id"]
        # another agent's token cannot take or refuse bob's offer
        for action in ("accept", "reject"):
            status, doc = server.request("POST", f"/calls/{call_id}/offer/{action}", token=DAVE)
            assert status == 403, doc
        _screenshot(desk, tmp_path, "agent-desktop.png")
        _screenshot(board, tmp_path, "wallboard.png")
        phone.wait(20, "bob's phone answering", ev="state", leg="in", state="CONFIRMED")
        expect(desk.locator("#state")).to_have_text("on call", timeout=10000)
        expect(desk.locator("#call")).to_be_visible()
        _wait(lambda: _matches_api(board, server) and _board(board)["agents"]["on_call"] == 1,
              10, "the wallboard showing the call answered, as GET /queues does")
        seen = [tuple(x) for x in board.evaluate("window.seen")]
        waited = seen.index(("1", "0"))  # waiting 1 (ringing bob), nobody on a call
        assert ("0", "1") in seen[waited:], seen  # then answered: none waiting, bob on the call
        # the caller hangs up (after ~25 s on the line): wrap-up, its countdown, then the
        # disposition goes with the CDR
        expect(desk.locator("#wrapup")).to_contain_text("Wrap-up", timeout=60000)
        desk.select_option("#dispo-code", "resolved")
        desk.fill("#dispo-notes", "Balance query; <b>asked</b> about fees")
        desk.click("#dispo-save")
        expect(desk.locator("#dispo-status")).to_contain_text("Saved")
        cdr = server.wait(lambda: server.get(f"/calls/{call_id}")[1].get("disposition"), 10,
                          "the disposition in the CDR")
        assert cdr == {**cdr, "code": "resolved", "agent": "bob",
                       "notes": "Balance query; <b>asked</b> about fees"}
        # wrap-up ends on its own: bob is ready again
        expect(desk.locator("#state")).to_have_text("ready", timeout=20000)
        _call_search(browser, server, call_id)
    finally:
        phone.stop()
        if caller is not None and caller.poll() is None:
            caller.kill()
        desk.close()
        board.close()


def _call_search(browser: Browser, server: Server, call_id: str) -> None:
    """The call is found by caller flow and disposition; its timeline has the masked input,
    the transcript, the queue, the agent and the disposition."""
    page = _page(browser, server, "/calls", READER)
    try:
        server.wait(lambda: server.get(f"/calls/{call_id}")[1].get("ended_at"), 20, "the CDR")
        page.fill("#f-flow", "acme")
        page.fill("#f-dispo", "resolved")
        page.click("#filters button[type=submit]")
        row = page.locator(f'tr[data-call="{call_id}"]')
        expect(row).to_be_visible()
        assert page.locator("#results tr").count() == 1
        row.click()
        timeline = page.locator("#timeline")
        expect(timeline).to_contain_text("Disposition")
        text = timeline.inner_text()
        assert "****9263" in text and ACCOUNT not in text, text
        assert "agent bob" in text and "general" in text and "resolved by bob" in text, text
        assert "ask_account" in text and "priority_agent" in text, text
    finally:
        page.close()


def test_a_wrong_token_gets_no_page_data(server: Server, browser: Browser) -> None:
    for path in ("/agent", "/wallboard", "/calls"):
        page = _page(browser, server, path, "W" * 24)
        try:
            expect(page.locator("#signin-error")).to_contain_text("not", timeout=10000)
            assert page.locator("#app").is_hidden()
            body = page.locator("body").inner_text()
            assert "general" not in body and "bob" not in body, body
        finally:
            page.close()
    # an agent's token is not a supervisor's
    page = _page(browser, server, "/wallboard", BOB)
    try:
        expect(page.locator("#signin-error")).to_contain_text("read or admin")
        assert "general" not in page.locator("body").inner_text()
    finally:
        page.close()


def _publish(server: Server, lines: list[dict[str, Any]]) -> None:
    """ACD requests straight onto the bus, as a worker sends them."""
    host, port = server.health()["bus"].split("://")[1].split(":")
    proc = subprocess.run(
        ["mosquitto_pub", "-h", host, "-p", port, "-u", "ivr-worker", "-P",
         server.bus_password("ivr-worker"), "-t", "ivr/acd/request", "-q", "1", "-l"],
        input="\n".join(json.dumps(x) for x in lines) + "\n", text=True, capture_output=True,
        timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def _enqueue(call_id: str, **context: Any) -> dict[str, Any]:
    return {"op": "enqueue", "call_id": call_id, "queue": "general", "key": f"t:{call_id}",
            "reply_to": "ivr/acd/reply/desktop-test", "caller": {"number": "+15550001"},
            "flow": "acme-bank", "path": ["welcome", "agent"], "variables": {},
            "transcript": [{"who": "caller", "text": "<i>hi</i>"}], "context": context,
            "since": time.time()}


def test_markup_in_a_context_value_shows_as_text(server: Server, browser: Browser) -> None:
    server.request("POST", "/agents/bob/away")
    server.request("POST", "/agents/dave/ready")
    desk = _page(browser, server, "/agent", DAVE)
    try:
        _live(desk)
        evil = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
        _publish(server, [_enqueue("xss-1", intent=evil)])
        expect(desk.locator("#pop")).to_be_visible(timeout=15000)
        expect(desk.locator("#pop-body")).to_contain_text(evil)
        expect(desk.locator("ol.transcript")).to_contain_text("<i>hi</i>")
        assert desk.evaluate("window.pwned") is None
        assert desk.locator("#pop img, #pop script, #pop i").count() == 0
        desk.keyboard.press("n")  # Reject: the call leaves dave
        expect(desk.locator("#pop")).to_be_hidden()
    finally:
        desk.close()
        _publish(server, [{"op": "caller_gone", "call_id": "xss-1", "key": "t:xss-1:gone"}])
        server.request("POST", "/agents/dave/away")


def test_a_burst_of_500_queued_calls_keeps_the_wallboard_equal_to_the_api(
        server: Server, browser: Browser, tmp_path: Path) -> None:
    for name in ("bob", "dave"):
        server.request("POST", f"/agents/{name}/away")  # staffed, nobody ready: they all wait
    board = _page(browser, server, "/wallboard", READER)
    desk = _page(browser, server, "/agent", BOB)
    try:
        _live(board)
        _live(desk)
        _publish(server, [_enqueue(f"burst-{i}") for i in range(500)])
        started = time.monotonic()
        slowest = 0.0
        while _board(board)["waiting"] != "500":
            t = time.monotonic()
            board.evaluate("1")  # the page answers while the burst arrives
            slowest = max(slowest, time.monotonic() - t)
            assert time.monotonic() - started < 30, _board(board)
            time.sleep(0.1)
        assert slowest < 1.0, slowest
        _wait(lambda: _matches_api(board, server), 10, "the wallboard equal to GET /queues")
        assert _queue(server)["waiting"] == 500
        expect(desk.locator("#state")).to_have_text("away")  # the agent page is unaffected
        desk.keyboard.press("w")
        assert board.locator("#conn").get_attribute("data-state") == "live"
    finally:
        _publish(server, [{"op": "caller_gone", "call_id": f"burst-{i}", "key": f"t:b{i}:gone"}
                          for i in range(500)])
        server.wait(lambda: _queue(server)["waiting"] == 0, 30, "the burst gone")
        board.close()
        desk.close()


def test_pages_show_disconnected_during_a_restart_then_resync(
        server: Server, browser: Browser) -> None:
    server.request("POST", "/agents/bob/away")
    board = _page(browser, server, "/wallboard", READER)
    desk = _page(browser, server, "/agent", BOB)
    try:
        _live(board)
        _live(desk)
        expect(desk.locator("#state")).to_have_text("away")
        server.stop()
        for page in (board, desk):
            expect(page.locator("#conn")).to_have_attribute(
                "data-state", re.compile("disconnected|stale"), timeout=15000)
            assert "not-live" in (page.locator("body").get_attribute("class") or "")
        new = restart_server(server)
        server.proc = new.proc  # the module's fixture stops the new one
        # while the server was down bob was set ready elsewhere: the pages catch up
        new.request("POST", "/agents/bob/ready")
        for page in (board, desk):
            _live(page, 30000)
        expect(desk.locator("#state")).to_have_text("ready")
        _wait(lambda: _matches_api(board, new), 10, "the wallboard equal to GET /queues")
        assert _board(board)["agents"]["ready"] == 1
    finally:
        board.close()
        desk.close()
