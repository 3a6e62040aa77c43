"""The front: a Kamailio proxy generated, started and steered by the engine.

Why Kamailio and which of its features (all from the Debian `kamailio` package, no database):

- `tm`/`sl`/`rr`: stateful relaying with Record-Route, so BYE/re-INVITE from either side and
  CANCEL/ACK follow the dialog through the front (`loose_route` for in-dialog requests).
- `dispatcher`: the IVR workers are destination set 1, picked round robin (alg 4) among active ones.
  OPTIONS probing marks dead workers inactive and brings them back; `t_on_failure` fails over on
  408/500/503/timeout (marking the worker down) and overflows on 486/600 (worker full, not down).
  When no worker can take the call (above max_calls, or none alive) the caller gets 503 with
  Retry-After. The list lives in a file and is reloaded over the
  ctl socket (`kamcmd dispatcher.reload`) when the supervisor starts or stops workers.
- `sanity`: malformed requests are answered with a 4xx by the module itself (its reply mode), so a
  broken client learns why; garbage that cannot even be parsed (no usable Via) is dropped by the
  core because there is nowhere to send a reply.
- `pike`: per-source-IP flood detection; flooding sources are dropped silently. Trusted sources
  (trunk addresses, the workers themselves) are exempt, so a busy carrier is never throttled;
  so is loopback by default (local benchmarks and test calls are not a network flood).
- `ipops` `is_in_subnet`: the `allow_from` ACL (403 before any worker is touched) and the trusted
  list, rendered as one explicit test per CIDR (no address table, no database).
- A User-Agent regex drops SIP scanners (friendly-scanner, sipvicious, ...) without any reply.
- `usrloc`+`registrar` (written through to db_text in the runtime dir, so a restarted front keeps
  them): agent softphones REGISTER by name; a request for a registered
  user goes to its contact, any other goes to the IVR workers.
- `auth` + `htable`: every REGISTER is challenged (digest) and checked against the agent's HA1
  (loaded into htable from a 0600 db_text table that is removed once loaded); the auth user must
  be the user in To. Failed answers are counted per source address in htable; a source over the
  limit is ignored until its ban expires.
- `$ml` (513 above `max_message_bytes`) and a REFER check: a REFER not from a worker must name a
  target in `transfers.allow` (or an agent's configured uri), else 403.
- `ctl` on a unix socket inside our runtime dir so nothing touches /run/kamailio.
- `uac` remote registration (uac_reg) for trunks with a registrar: the front, and only the front,
  registers (digest auth, refreshed before expiry). The accounts are a `db_text` table written
  into the runtime dir with mode 0600, because it holds the passwords (taken from environment
  variables at startup); kamailio.cfg and every log only name the trunk. Calls the carrier sends
  to the registered contact (`sip:<trunk name>@front`) get the dialled number (To) as request user.
- `tls` for `tls:` listen sockets, with the certificate and key from `sip.tls` in a generated
  tls.cfg.

Where each job lives (this module only names them, for importers of the whole front):

- `ivr.front.settings`: FrontSettings and Registration, validated on construction; FrontError.
- `ivr.front.agent_secrets`: the agents' HA1s (0600 htdigest file or environment), `ivr agents secret`.
- `ivr/front/kamailio.cfg.j2`: the routing script itself, a jinja2 template of kamailio.cfg.
- `ivr.front.render`: renders it, and writes tls.cfg, the dispatcher list, uacreg and usrloc tables.
- `ivr.front.process`: Front, the Kamailio child process (start, readiness, stale reaping, stop).
- `ivr.front.rpc`: kamcmd over the ctl socket (dispatcher reload and state, registration state).
- `ivr.front.tools`: finding and running kamailio -c and kamcmd with a time bound.
"""
