"use strict";
// Call search: CDRs (GET /calls) filtered here, one call's timeline from GET /calls/<id> and
// its queue context; inputs are shown as the CDR holds them (sensitive ones masked), the
// recording is fetched with the token and played from memory.
(() => {
  const {el, setText, api, secs} = IVR;
  let calls = [];
  const $ = (id) => document.getElementById(id);
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");
  const has = (v, q) => !q || String(v || "").toLowerCase().includes(q.toLowerCase());

  async function search() {
    setText("error", "");
    const since = $("f-since").value ? new Date($("f-since").value).getTime() / 1000 : Date.now() / 1000 - 86400;
    try {
      calls = (await api("GET", `/calls?since=${since}`)).calls;
    } catch (e) {
      if (e.status === 401) { IVR.rejected("That token is not valid here."); return; }
      if (e.status === 403) { IVR.rejected("Call search needs a read or admin token."); return; }
      setText("error", e.message);
      return;
    }
    IVR.connection("live");
    const shown = calls.filter((c) => has(c.caller, $("f-caller").value) && has(c.flow, $("f-flow").value) &&
      has(c.queue, $("f-queue").value) && (!$("f-kind").value || c.end_kind === $("f-kind").value) &&
      has(c.disposition && c.disposition.code, $("f-dispo").value)).reverse();
    setText("count", `${shown.length} of ${calls.length} calls`);
    $("results").replaceChildren(...shown.map((c) => {
      const tr = el("tr", {class: "pick", tabindex: 0, "data-call": c.call_id, "aria-label": `Call from ${c.caller || "unknown"} at ${when(c.started_at)}`},
        el("td", {}, when(c.started_at)), el("td", {}, c.caller || "–"), el("td", {}, c.flow || "–"),
        el("td", {}, c.end_kind || (c.ended_at ? "–" : "live")), el("td", {}, c.queue || "–"),
        el("td", {}, c.ended_at ? secs(c.ended_at - c.started_at) : "–"),
        el("td", {}, c.disposition ? c.disposition.code : "–"));
      tr.addEventListener("click", () => show(c.call_id));
      tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") show(c.call_id); });
      return tr;
    }));
  }

  function item(t, label, ...rest) {
    return el("li", {}, el("time", {}, t ? new Date(t * 1000).toLocaleTimeString() : ""), el("b", {}, label), " ", ...rest);
  }

  async function show(id) {
    setText("error", "");
    let cdr;
    try {
      cdr = await api("GET", `/calls/${encodeURIComponent(id)}`);
    } catch (e) { setText("error", e.message); return; }
    const acd = cdr.acd;
    setText("detail-title", `Call ${id}`);
    const items = [item(cdr.started_at, "Started", `${cdr.caller || "unknown"} dialled ${cdr.dialed || "–"} → flow ${cdr.flow || "–"} ${cdr.flow_version || ""}`)];
    if (cdr.answered_at) items.push(item(cdr.answered_at, "Answered by the IVR"));
    if (cdr.path && cdr.path.length) items.push(item(null, "Nodes", cdr.path.join(" → ")));
    for (const t of cdr.transcript || []) items.push(item(t.at || null, t.who === "caller" ? "Caller" : "IVR", String(t.text)));
    const vars = Object.entries(cdr.variables || {});
    if (vars.length) items.push(item(null, "Values", vars.map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ")));
    if (acd) {
      items.push(item(acd.enqueued_at, "Queue", `${acd.queue} (priority ${acd.priority ?? 0})`));
      if (acd.answered_at) items.push(item(acd.answered_at, "Agent", `agent ${acd.agent} answered after ${secs(acd.answered_at - acd.enqueued_at)}`));
      else items.push(item(acd.ended_at, "Left the queue", acd.outcome || "–"));
    } else if (cdr.queue) items.push(item(null, "Queue", cdr.queue));
    if (cdr.ended_at) items.push(item(cdr.ended_at, "Ended", `${cdr.end_kind || ""} ${cdr.end_reason ? "(" + cdr.end_reason + ")" : ""} at ${cdr.end_node || "–"}`));
    if (cdr.disposition) items.push(item(cdr.disposition.at, "Disposition", `${cdr.disposition.code} by ${cdr.disposition.agent}`, cdr.disposition.notes ? ` – ${cdr.disposition.notes}` : ""));
    $("timeline").replaceChildren(...items);
    const rec = $("recording");
    rec.replaceChildren();
    if (cdr.recording) {
      const btn = el("button", {type: "button"}, "Play the recording");
      btn.addEventListener("click", async () => {
        try {
          const r = await fetch(`/calls/${encodeURIComponent(id)}/recording`, {headers: {Authorization: "Bearer " + IVR.token()}});
          if (!r.ok) throw new Error(r.status === 404 ? "the recording is gone (retention)" : r.statusText);
          const url = URL.createObjectURL(await r.blob());
          rec.replaceChildren(el("audio", {controls: true, src: url, "aria-label": "Call recording"}));
        } catch (e) { setText("error", e.message); }
      });
      rec.append(btn);
    }
  }

  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
  IVR.signIn(search);
})();
