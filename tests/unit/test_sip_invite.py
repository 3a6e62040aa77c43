"""What a worker reads from SIP: the INVITE (dialled number, caller, the contact a callback
dials) and an agent leg's final status (the ACD's failure reason)."""

from __future__ import annotations

from ivr.sip.session import parse_invite

INVITE = (
    "INVITE sip:4000@127.0.0.1:5060 SIP/2.0\r\n"
    "Record-Route: <sip:127.0.0.1:5060;lr>\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:40000;rport;branch=z9hG4bK1\r\n"
    'From: "Carol" <sip:carol@127.0.0.1>;tag=1\r\n'
    "To: <sip:4000@127.0.0.1:5060>\r\n"
    "Contact: <sip:carol@127.0.0.1:40000;ob>;expires=60\r\n"
    "X-Account: 42\r\n"
    "Content-Length: 0\r\n\r\n"
)


def test_the_contact_uri_is_kept_for_a_callback() -> None:
    info = parse_invite(INVITE)
    assert (info["dialed"], info["number"], info["name"]) == ("4000", "carol", "Carol")
    assert info["contact"] == "sip:carol@127.0.0.1:40000;ob"
    assert info["sip_headers"] == {"X-Account": "42"}


def test_a_bare_contact_and_none_at_all() -> None:
    bare = INVITE.replace("Contact: <sip:carol@127.0.0.1:40000;ob>;expires=60",
                          "Contact: sip:carol@127.0.0.1:40000;expires=60")
    assert parse_invite(bare)["contact"] == "sip:carol@127.0.0.1:40000"
    none = INVITE.replace("Contact: <sip:carol@127.0.0.1:40000;ob>;expires=60\r\n", "")
    assert parse_invite(none)["contact"] == ""


def test_an_agent_legs_final_status_is_the_acds_failure_reason() -> None:
    from ivr.sip.legs import failure_reason

    assert [failure_reason(c) for c in (486, 600)] == ["busy", "busy"]
    assert [failure_reason(c) for c in (403, 603, 488)] == ["reject"] * 3
    # nobody there: ring timeout, unavailable, unknown user, unreachable, never sent
    assert {failure_reason(c) for c in (408, 480, 404, 503, 0)} == {"no_answer"}


def test_handoff_headers_carry_chinese_as_utf8_and_no_control_characters() -> None:
    from ivr.sip.legs import handoff_headers

    h = handoff_headers("c1", {"intent": "人工服务", "fault_label": "上网速度慢",
                               "note": "a\r\nX-Evil: 1", "ticket": None})
    assert h["X-IVR-Intent"] == "人工服务" and h["X-IVR-Fault-Label"] == "上网速度慢"
    assert h["X-IVR-Note"] == "a  X-Evil: 1"  # one header: the CR LF cannot start another
    assert "X-IVR-Ticket" not in h and "X-Evil" not in h
