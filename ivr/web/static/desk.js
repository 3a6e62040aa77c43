"use strict";
// The agent desktop: state buttons, the screen pop on an offer (before the phone rings),
// accept/reject, wrap-up countdown, disposition. Everything shown is set as text.
(() => {
  const {el, setText, api, secs} = IVR;
  let me = null, agent = null, offer = null, call = null, lastCall = null, wrapUntil = 0;
  let offerAt = 0;

  const $ = (id) => document.getElementById(id);

  function row(label, value, cls) {
    return el("div", {class: "kv" + (cls ? " " + cls : "")},
              el("dt", {}, label), el("dd", {}, value === null || value === undefined || value === "" ? "–" : value));
  }

  function plain(v) {
    if (v === null || v === undefined) return "–";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  // what the queue node handed on: caller, flow/path, intent, tier, values, transcript, wait
  function context(ctx, waitId) {
    const c = ctx.context || {};
    const caller = ctx.caller && typeof ctx.caller === "object" ? ctx.caller.number : ctx.caller;
    const tier = c["customer.tier"] ?? c.tier ?? (ctx.variables || {})["customer.tier"];
    const vip = (ctx.priority || 0) > 0 || tier === "gold" || tier === "vip";
    const facts = el("dl", {class: "facts"},
      row("Caller", caller, "big"),
      row("Waiting", secs(ctx.wait_s), "wait"),
      row("Intent", c.intent ?? (ctx.variables || {}).intent, "big"),
      row("Tier", tier ? (vip ? `★ ${tier}` : tier) : (vip ? "★ priority" : null), vip ? "vip" : ""),
      row("Queue", `${ctx.queue || "–"} (priority ${ctx.priority ?? 0})`),
      row("Flow", `${ctx.flow || "–"}: ${(ctx.path || []).join(" → ")}`),
      row("Call", ctx.call_id, "mono"));
    if (waitId) facts.querySelector(".wait dd").id = waitId;
    const values = el("dl", {class: "values", "aria-label": "Values from the flow"},
      Object.entries(c).map(([k, v]) => row(k, plain(v), String(v).startsWith("****") ? "masked" : "")));
    const transcript = el("ol", {class: "transcript", "aria-label": "Self-service transcript"},
      (ctx.transcript || []).map((t) => el("li", {class: t.who === "caller" ? "caller" : "ivr"},
        el("b", {}, t.who === "caller" ? "Caller" : "IVR"), " ", plain(t.text))));
    return [facts, el("h3", {}, "Values"), values, el("h3", {}, "Transcript"), transcript];
  }

  function render() {
    const state = agent ? agent.state : "unknown";
    setText("state", state.replace("_", " "));
    $("state").dataset.state = state;
    $("ready").disabled = !agent || ["ready", "ringing", "on_call"].includes(state);
    $("away").disabled = !agent || ["away", "ringing", "on_call"].includes(state);
    $("logout").disabled = !agent || ["logged_out", "on_call"].includes(state);
    $("pop").hidden = !offer;
    if (offer) {
      $("pop-body").replaceChildren(...context(offer, "pop-wait"));
      $("accept").disabled = false;
      $("reject").disabled = false;
      $("accept").focus();
    }
    $("call").hidden = !call || !!offer;
    if (call && !offer) {
      setText("call-title", state === "wrap_up" ? "Call ended – wrap-up" : "On a call");
      $("call-body").replaceChildren(...context(call));
    }
    const dispoFor = call || lastCall;
    $("dispo").hidden = !dispoFor || state === "ringing" || !!offer;
    if (dispoFor) setText("dispo-call", dispoFor.call_id);
    $("idle").hidden = !!(offer || call || dispoFor);
    tick();
  }

  function tick() {
    const left = wrapUntil - Date.now() / 1000;
    const wrap = $("wrapup");
    wrap.hidden = !(agent && agent.state === "wrap_up" && left > 0);
    if (!wrap.hidden) wrap.textContent = `Wrap-up: ${Math.ceil(left)}s left`;
    if (offer) setText("pop-wait", secs((offer.wait_s || 0) + (Date.now() - offerAt) / 1000));
  }
  setInterval(tick, 500);

  function setAgent(a) {
    agent = a;
    if (a && a.state === "wrap_up") wrapUntil = Date.now() / 1000 + (a.wrap_up_left_s || 0);
  }

  function onSnapshot(doc) {
    const desk = doc.desk;
    if (!desk || !desk.agent) {
      IVR.rejected(doc.desk ? "This token's agent is not configured." :
                   "The agent desktop needs an agent token (agent:<name>).");
      return;
    }
    me = desk.agent.name;
    setText("me", me);
    const codes = $("dispo-code");
    codes.replaceChildren(el("option", {value: ""}, "Choose…"),
      ...doc.dispositions.map((c) => el("option", {value: c}, c.replace(/_/g, " "))));
    setAgent(desk.agent);
    offer = desk.offer;
    offerAt = Date.now();
    call = desk.call;
    if (call) lastCall = call;
    render();
  }

  const handlers = {
    snapshot: onSnapshot,
    agent(a) { if (a.name !== me) return; setAgent(a);
      if (a.state === "ready" || a.state === "away" || a.state === "logged_out") { offer = null; call = null; }
      render(); },
    offer(ctx) { offer = ctx; offerAt = Date.now(); setText("pop-note", ""); render(); },
    cancel(d) { if (offer && offer.call_id === d.call_id) { offer = null; setText("action-error", `Offer withdrawn (${d.reason.replace(/_/g, " ")})`); } render(); },
    connected(d) { if (offer && offer.call_id === d.call_id) { call = offer; lastCall = offer; offer = null; setText("dispo-status", ""); } render(); },
    accepted(d) { if (offer && offer.call_id === d.call_id) setText("pop-note", "Accepted – pick up your phone"); },
    rejected(d) { if (offer && offer.call_id === d.call_id) { offer = null; render(); } },
    closed(d) { if (call && call.call_id === d.call_id) { lastCall = call; } render(); },
  };

  async function act(fn) {
    setText("action-error", "");
    try { await fn(); } catch (e) { setText("action-error", e.message); }
  }
  const state = (action) => act(() => api("POST", `/agents/${encodeURIComponent(me)}/${action}`).then((a) => { setAgent(a); render(); }));
  const onOffer = (action) => offer && act(async () => {
    const id = offer.call_id;
    await api("POST", `/calls/${encodeURIComponent(id)}/offer/${action}`);
    if (action === "accept") setText("pop-note", "Accepted – pick up your phone");
  });

  $("ready").addEventListener("click", () => state("ready"));
  $("away").addEventListener("click", () => state("away"));
  $("logout").addEventListener("click", () => state("logout"));
  $("accept").addEventListener("click", () => onOffer("accept"));
  $("reject").addEventListener("click", () => onOffer("reject"));
  $("dispo-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const target = call || lastCall;
    if (!target) return;
    act(async () => {
      await api("POST", `/calls/${encodeURIComponent(target.call_id)}/disposition`,
                {code: $("dispo-code").value, notes: $("dispo-notes").value});
      setText("dispo-status", `Saved (${$("dispo-code").value.replace(/_/g, " ")})`);
      $("dispo-notes").value = "";
      if (!call) { lastCall = null; render(); }
    });
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || !me) return;
    const t = ev.target;
    if (t && ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) && !t.closest("[hidden]")) return;
    const key = ev.key.toLowerCase();
    const map = {r: "ready", w: "away", l: "logout", y: "accept", n: "reject"};
    if (key === "d" && !$("dispo").hidden) { $("dispo-code").focus(); ev.preventDefault(); return; }
    const id = map[key];
    if (id && !$(id).disabled && !$(id).closest("[hidden]")) { $(id).click(); ev.preventDefault(); }
  });

  IVR.signIn(() => IVR.stream(handlers, (s) => {
    IVR.connection(s);
    if (s === "unauthorized") IVR.rejected("That token is not valid here.");
  }));
})();
