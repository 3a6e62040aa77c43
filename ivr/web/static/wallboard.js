"use strict";
// The supervisors' wallboard: per queue the live figures of GET /queues (the server pushes the
// same view), today's service level, ASA and abandonment, a last-hour chart drawn as SVG, calls
// in self-service by flow and node, agents by state. Colours: times against the queue's
// service_level seconds (half of it: fine; past it: red), service level against 80 %.
(() => {
  const {el, setText, secs, pct} = IVR;
  const SVG = "http://www.w3.org/2000/svg";
  const STATES = ["ready", "ringing", "on_call", "wrap_up", "away", "logged_out"];
  const COLOURS = ["#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c"];
  let history = [], board = null;

  const timeLevel = (s, target) => (s === null || s === undefined ? "" : s < target / 2 ? "ok" : s < target ? "warn" : "bad");
  const slLevel = (v) => (v === null || v === undefined ? "" : v >= 0.8 ? "ok" : v >= 0.6 ? "warn" : "bad");

  function fig(field, label, value, level) {
    return el("div", {class: "fig", "data-field": field, "data-level": level || ""},
              el("b", {}, value), el("span", {}, label));
  }

  function queueCard(q) {
    const t = q.today || {};
    const target = q.service_level_s;
    const wait = q.waiting > 0 ? timeLevel(q.longest_wait_s, target) : "ok";
    return el("section", {class: "queue", "data-queue": q.name, "aria-label": `Queue ${q.name}`},
      el("h2", {}, el("span", {}, q.name), el("span", {class: "legend"}, `service level: ${target}s`)),
      el("div", {class: "figures"},
        fig("waiting", "waiting", q.waiting, wait),
        fig("longest_wait", "longest wait", secs(q.longest_wait_s), q.waiting > 0 ? wait : ""),
        fig("callbacks", "callbacks pending", q.callbacks, q.callbacks > 0 ? "warn" : ""),
        fig("service_level", `answered ≤ ${target}s today`, pct(t.service_level), slLevel(t.service_level)),
        fig("asa", "average speed of answer", t.asa_s === null || t.asa_s === undefined ? "–" : secs(t.asa_s), timeLevel(t.asa_s, target)),
        fig("abandonment", "abandoned today", pct(t.abandonment),
            t.abandonment === null || t.abandonment === undefined ? "" : t.abandonment <= 0.05 ? "ok" : t.abandonment <= 0.1 ? "warn" : "bad")),
      el("div", {class: "states", "aria-label": "Agents by state"},
        STATES.map((s) => el("span", {"data-state": s}, `${s.replace("_", " ")}: `,
                             el("b", {}, (q.agents || {})[s] || 0)))));
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function chart() {
    const W = 640, H = 200, L = 36, R = 36, T = 10, B = 22;
    const now = Date.now() / 1000;
    const points = history.slice();
    if (board) points.push({t: board.at, queues: Object.fromEntries(board.queues.map((q) =>
      [q.name, {waiting: q.waiting, service_level: (q.today || {}).service_level}]))});
    const names = board ? board.queues.map((q) => q.name) : [];
    const maxWait = Math.max(5, ...points.flatMap((p) => names.map((n) => (p.queues[n] || {}).waiting || 0)));
    const x = (t) => L + (W - L - R) * Math.max(0, 1 - (now - t) / 3600);
    const ySl = (v) => T + (H - T - B) * (1 - v);
    const yW = (w) => T + (H - T - B) * (1 - w / maxWait);
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
                             "aria-label": "Service level and waiting callers over the last hour"});
    for (const v of [0, 0.5, 0.8, 1]) {
      root.append(svg("line", {x1: L, x2: W - R, y1: ySl(v), y2: ySl(v), stroke: v === 0.8 ? "#1b7f3b" : "#e5e7eb", "stroke-dasharray": v === 0.8 ? "4 3" : ""}));
      root.append(svg("text", {x: 2, y: ySl(v) + 4, "font-size": 10, fill: "#4b5563"}, `${v * 100}%`));
    }
    root.append(svg("text", {x: W - R + 4, y: yW(maxWait) + 8, "font-size": 10, fill: "#4b5563"}, String(maxWait)));
    root.append(svg("text", {x: L, y: H - 6, "font-size": 10, fill: "#4b5563"}, "−60 min"));
    root.append(svg("text", {x: W - R - 20, y: H - 6, "font-size": 10, fill: "#4b5563"}, "now"));
    const bw = Math.max(2, (W - L - R) / 120 / Math.max(1, names.length));
    names.forEach((name, i) => {
      const colour = COLOURS[i % COLOURS.length];
      for (const p of points) {
        const w = (p.queues[name] || {}).waiting || 0;
        if (w > 0) root.append(svg("rect", {x: x(p.t) - bw * (names.length - i), y: yW(w), width: bw, height: H - B - yW(w), fill: colour, opacity: 0.35}));
      }
      const line = points.filter((p) => p.queues[name] && p.queues[name].service_level !== null && p.queues[name].service_level !== undefined)
        .map((p) => `${x(p.t).toFixed(1)},${ySl(p.queues[name].service_level).toFixed(1)}`);
      if (line.length) root.append(svg("polyline", {points: line.join(" "), fill: "none", stroke: colour, "stroke-width": 2}));
      root.append(svg("text", {x: L + 4 + 90 * i, y: T + 10, "font-size": 11, fill: colour}, name));
    });
    document.getElementById("chart").replaceChildren(root);
  }

  function render() {
    if (!board) return;
    document.getElementById("queues").replaceChildren(...board.queues.map(queueCard));
    document.getElementById("selfservice").replaceChildren(...(board.self_service.length ? board.self_service.map((r) =>
      el("tr", {}, el("td", {}, r.flow), el("td", {}, r.node), el("td", {}, r.calls))) :
      [el("tr", {}, el("td", {colspan: 3}, "No calls in self-service"))]));
    document.getElementById("agents").replaceChildren(...board.agents.map((a) =>
      el("tr", {"data-agent": a.name}, el("td", {}, a.name),
         el("td", {}, el("span", {class: "badge", "data-state": a.state}, a.state.replace("_", " "))),
         el("td", {}, secs(a.in_state_s)))));
    setText("updated", `updated ${new Date(board.at * 1000).toLocaleTimeString()}`);
    chart();
  }

  const handlers = {
    snapshot(doc) {
      if (!doc.wallboard) {
        IVR.rejected(doc.acd === false ? "The ACD is not running." : "The wallboard needs a read or admin token.");
        return;
      }
      history = doc.history || [];
      setText("sample-every", doc.history_every_s);
      board = doc.wallboard;
      render();
    },
    wallboard(doc) { board = doc; render(); },
    sample(doc) { history.push(doc); history = history.filter((p) => p.t > Date.now() / 1000 - 3600); },
  };

  IVR.signIn(() => IVR.stream(handlers, (s) => {
    IVR.connection(s);
    if (s === "unauthorized") IVR.rejected("That token is not valid here.");
  }));
})();
