"""SIPp scenario XML built from small parts, so each fault test reads as the SIP it sends.

All in-dialog requests use [next_url] and [routes] from the 200's Record-Route (rrs), since the
front record-routes.
"""

from __future__ import annotations

FROM = '"SIPp" <sip:+15550001111@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]'
TO = "<sip:[service]@[remote_ip]:[remote_port]>"


def sdp(payloads: str = "8 101", direction: str = "sendrecv") -> str:
    maps = {"0": "a=rtpmap:0 PCMU/8000", "8": "a=rtpmap:8 PCMA/8000", "18": "a=rtpmap:18 G729/8000",
            "13": "a=rtpmap:13 CN/8000",
            "101": "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-11,16"}
    lines = [maps[p] for p in payloads.split()]
    return "\n".join([
        "v=0", "o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]", "s=-",
        "c=IN IP[local_ip_type] [local_ip]", "t=0 0",
        f"m=audio [auto_media_port] RTP/AVP {payloads}", *lines, f"a={direction}",
    ])


def _send(text: str, retrans: bool = True) -> str:
    attr = ' retrans="500"' if retrans else ""
    return f"  <send{attr}>\n    <![CDATA[\n\n{text}\n\n    ]]>\n  </send>\n"


def invite(body: str | None = None, cseq: int = 1) -> str:
    content = ("Content-Type: application/sdp\nContent-Length: [len]\n\n" + body) if body is not None \
        else "Content-Length: 0"
    return _send(
        f"INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n"
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        f"From: {FROM}\nTo: {TO}\nCall-ID: [call_id]\nCSeq: {cseq} INVITE\n"
        f"Contact: sip:sipp@[local_ip]:[local_port]\nMax-Forwards: 70\n{content}"
    )


def in_dialog(method: str, cseq: int, body: str | None = None, retrans: bool = True) -> str:
    content = ("Content-Type: application/sdp\nContent-Length: [len]\n\n" + body) if body is not None \
        else "Content-Length: 0"
    return _send(
        f"{method} [next_url] SIP/2.0\n[routes]\n"
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        f"From: {FROM}\nTo: {TO}[peer_tag_param]\nCall-ID: [call_id]\nCSeq: {cseq} {method}\n"
        f"Contact: sip:sipp@[local_ip]:[local_port]\nMax-Forwards: 70\n{content}",
        retrans=retrans and method not in ("ACK",),
    )


def info_dtmf(digit: str, cseq: int) -> str:
    """DTMF by SIP INFO (application/dtmf-relay), for peers without RFC 4733."""
    return _send(
        f"INFO [next_url] SIP/2.0\n[routes]\n"
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        f"From: {FROM}\nTo: {TO}[peer_tag_param]\nCall-ID: [call_id]\nCSeq: {cseq} INFO\n"
        f"Contact: sip:sipp@[local_ip]:[local_port]\nMax-Forwards: 70\n"
        f"Content-Type: application/dtmf-relay\nContent-Length: [len]\n\n"
        f"Signal={digit}\nDuration=160"
    ) + recv(200)


def cancel(invite_back: int) -> str:
    """CANCEL of the INVITE sent `invite_back` scenario elements earlier (same branch)."""
    return _send(
        "CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n"
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-{invite_back}]\n"
        f"From: {FROM}\nTo: {TO}\nCall-ID: [call_id]\nCSeq: 1 CANCEL\nMax-Forwards: 70\n"
        "Content-Length: 0"
    )


def ack_for_error(invite_back: int) -> str:
    """ACK of a non-2xx final response: the INVITE's branch (`invite_back` elements earlier)."""
    return _send(
        "ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n"
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-{invite_back}]\n"
        f"From: {FROM}\nTo: {TO}[peer_tag_param]\nCall-ID: [call_id]\nCSeq: 1 ACK\n"
        "Max-Forwards: 70\nContent-Length: 0", retrans=False
    )


def recv(code: int | str, optional: bool = False, rrs: bool = False, timeout_ms: int = 0) -> str:
    kind = "request" if isinstance(code, str) else "response"
    attrs = f' {kind}="{code}"' + (' optional="true"' if optional else "") + \
        (' rrs="true"' if rrs else "") + (f' timeout="{timeout_ms}"' if timeout_ms else "")
    return f"  <recv{attrs}/>\n"


def answer_200(cseq: int = 2) -> str:
    """Reply 200 to a request the IVR sent us (its BYE)."""
    return reply("200 OK")


def reply(status: str) -> str:
    """Reply to the request the IVR just sent us (BYE, REFER...)."""
    return (f"  <send>\n    <![CDATA[\n\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:]\n"
            "[last_Call-ID:]\n[last_CSeq:]\nContact: <sip:sipp@[local_ip]:[local_port]>\n"
            "Content-Length: 0\n\n    ]]>\n  </send>\n")


def notify_refer_done(cseq: int) -> str:
    """The REFER's outcome (RFC 3515): the new call was answered."""
    return _send(
        f"NOTIFY [next_url] SIP/2.0\n[routes]\n"
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        f"From: {FROM}\nTo: {TO}[peer_tag_param]\nCall-ID: [call_id]\nCSeq: {cseq} NOTIFY\n"
        f"Contact: sip:sipp@[local_ip]:[local_port]\nMax-Forwards: 70\nEvent: refer\n"
        f"Subscription-State: terminated;reason=noresource\nContent-Type: message/sipfrag\n"
        f"Content-Length: [len]\n\nSIP/2.0 200 OK"
    ) + recv(200)


def pause(ms: int) -> str:
    return f'  <pause milliseconds="{ms}"/>\n'


def dtmf(digit: str) -> str:
    name = {"#": "pound", "*": "star"}.get(digit, digit)
    return f'  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_{name}.pcap"/>' \
           f"</action></nop>\n"


def call_setup() -> str:
    return invite(sdp()) + recv(100, optional=True) + recv(180, optional=True) + \
        recv(200, rrs=True) + in_dialog("ACK", 1)


def bye(cseq: int = 2) -> str:
    return in_dialog("BYE", cseq) + recv(200)


def scenario(name: str, *parts: str) -> str:
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'
            f'<scenario name="{name}">\n' + "".join(parts) + "</scenario>\n")


def registrar_scenario(username: str, password: str, contact: str, expires: int, rounds: int) -> str:
    """A registrar (SIPp UAS) that challenges every REGISTER with 401 and checks the digest
    answer with <verifyauth>: a wrong one gets 403 and fails the scenario (SIPp exits non-zero).
    `rounds` registrations are expected in one Call-ID: the first and its refreshes. `contact` is
    a regular expression the registered contact (user@host:port) must match."""
    reply = """  <send>
    <![CDATA[

SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
{extra}Content-Length: 0

    ]]>
  </send>
"""
    parts = []
    for i in range(rounds):
        parts.append(f"""  <recv request="REGISTER">
    <action>
      <ereg regexp="Contact: *&lt;sip:{contact}&gt;" search_in="msg" check_it="true" assign_to="c{i}"/>
      <ereg regexp="Authorization" search_in="msg" check_it_inverse="true" assign_to="n{i}"/>
    </action>
  </recv>
""")
        parts.append(reply.format(
            status="401 Unauthorized",
            extra=f'WWW-Authenticate: Digest realm="ivr-test", nonce="[pid]n{i}x[call_number]", '
                  'algorithm=MD5\n'))
        parts.append(f"""  <recv request="REGISTER">
    <action>
      <ereg regexp="Authorization: Digest .*username=.{username}." search_in="msg" check_it="true"
            assign_to="u{i}"/>
      <verifyauth assign_to="ok{i}" username="{username}" password="{password}"/>
    </action>
  </recv>
  <nop hide="true" test="ok{i}" next="good{i}"/>
""")
        parts.append(reply.format(status="403 Wrong Credentials", extra=""))
        parts.append('  <recv request="NEVER" timeout="200"/>\n')
        parts.append(f'  <label id="good{i}"/>\n')
        parts.append(reply.format(status="200 OK",
                                  extra=f"[last_Contact:];expires={expires}\n"))
    checks = ",".join(f"c{i},n{i},u{i}" for i in range(rounds))  # only checked, never read back
    parts.append(f'  <Reference variables="{checks}"/>\n')
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'
            '<scenario name="registrar with digest auth">\n' + "".join(parts) + "</scenario>\n")


def uas_answer_then_bye(payloads: str = "0 8 101", hold_ms: int = 3000) -> str:
    """A minimal agent phone (SIPp UAS): answers the IVR's INVITE with `payloads` in its SDP,
    stays `hold_ms`, then hangs up. Anything else the IVR sends meanwhile (a re-INVITE to lock
    a codec) is an unexpected message: SIPp fails the call."""
    answer = "\n".join(line.replace("[auto_media_port]", "[media_port]")
                       for line in sdp(payloads).splitlines())
    return scenario(
        "answer then bye",
        '  <recv request="INVITE" rrs="true">\n    <action>\n'
        '      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from"/>\n'
        '      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to"/>\n'
        "    </action>\n  </recv>\n",
        "  <send>\n    <![CDATA[\n\nSIP/2.0 180 Ringing\n[last_Via:]\n[last_From:]\n"
        "[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n[last_CSeq:]\n"
        "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\nContent-Length: 0\n\n"
        "    ]]>\n  </send>\n",
        '  <send retrans="500">\n    <![CDATA[\n\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n'
        "[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n[last_CSeq:]\n"
        "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n"
        f"Content-Type: application/sdp\nContent-Length: [len]\n\n{answer}\n\n    ]]>\n  </send>\n",
        recv("ACK"),
        pause(hold_ms),
        _send("BYE [next_url] SIP/2.0\n[routes]\n"
              "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
              "From: [$to];tag=[pid]SIPpTag01[call_number]\nTo: [$from]\nCall-ID: [call_id]\n"
              "CSeq: 1 BYE\nContact: <sip:[local_ip]:[local_port]>\nMax-Forwards: 70\n"
              "Content-Length: 0"),
        recv(200),
        '  <Reference variables="from,to"/>\n',
    )


def info_dtmf_bare(digit: str, cseq: int) -> str:
    """DTMF by SIP INFO with `application/dtmf`: the key alone as the body."""
    return _send(
        f"INFO [next_url] SIP/2.0\n[routes]\n"
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        f"From: {FROM}\nTo: {TO}[peer_tag_param]\nCall-ID: [call_id]\nCSeq: {cseq} INFO\n"
        f"Contact: sip:sipp@[local_ip]:[local_port]\nMax-Forwards: 70\n"
        f"Content-Type: application/dtmf\nContent-Length: [len]\n\n{digit}"
    ) + recv(200)


def play_pcap(path: str) -> str:
    """Send the RTP in a pcap file (SIPp rewrites addresses and ports to the negotiated ones)."""
    return f'  <nop><action><exec play_pcap_audio="{path}"/></action></nop>\n'
