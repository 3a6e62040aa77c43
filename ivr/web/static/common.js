"use strict";
// Shared by the pages: sign-in with an API token, API calls, the live stream, text-only DOM.
// The stream is server-sent events read over fetch(), so the token travels in the
// Authorization header (never in a URL); it reconnects on its own and every connection starts
// with a snapshot that replaces what the page shows. A page that hears nothing for 2.5
// heartbeats marks itself stale and reconnects.
const IVR = (() => {
  const KEY = "ivr-token";
  const token = () => sessionStorage.getItem(KEY) || "";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));  // text, never markup
    }
    return node;
  }

  function setText(id, value) {
    const node = typeof id === "string" ? document.getElementById(id) : id;
    if (node) node.textContent = value === null || value === undefined ? "–" : String(value);
  }

  async function api(method, path, body) {
    const headers = {"Authorization": "Bearer " + token(), "Accept": "application/json"};
    const init = {method, headers, cache: "no-store"};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    let doc = null;
    try { doc = await r.json(); } catch (e) { doc = null; }
    if (!r.ok) {
      const err = new Error((doc && doc.error) || r.statusText || String(r.status));
      err.status = r.status;
      throw err;
    }
    return doc;
  }

  const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

  // handlers: {snapshot(doc), <kind>(doc)...}; onStatus(state, detail):
  // connecting | live | stale | disconnected | unauthorized
  function stream(handlers, onStatus) {
    let stopped = false, heartbeat = 10, lastHeard = 0, ctrl = null, status = "";
    const set = (s, detail) => { if (s !== status) { status = s; onStatus(s, detail); } };
    const watchdog = setInterval(() => {
      if (status === "live" && Date.now() - lastHeard > heartbeat * 2500) {
        set("stale");
        if (ctrl) ctrl.abort();
      }
    }, 1000);

    function dispatch(block) {
      let kind = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      lastHeard = Date.now();
      if (!data) return;
      const doc = JSON.parse(data);
      if (kind === "snapshot") {
        heartbeat = doc.heartbeat_s || heartbeat;
        set("live");
      }
      const fn = handlers[kind];
      if (fn) fn(doc);
    }

    async function loop() {
      let delay = 500;
      while (!stopped) {
        set(status === "" ? "connecting" : status);
        ctrl = new AbortController();
        try {
          const r = await fetch("/events", {headers: {"Authorization": "Bearer " + token(),
                                                      "Accept": "text/event-stream"},
                                            signal: ctrl.signal, cache: "no-store"});
          if (r.status === 401 || r.status === 403) {
            set("unauthorized");
            stopped = true;
            break;
          }
          if (!r.ok) throw new Error("HTTP " + r.status);
          delay = 500;
          const reader = r.body.getReader();
          const decoder = new TextDecoder();
          let buf = "";
          for (;;) {
            const {value, done} = await reader.read();
            if (done) break;
            buf += decoder.decode(value, {stream: true});
            let i;
            while ((i = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              dispatch(block);
            }
          }
        } catch (e) {
          // network error, server gone, or the watchdog's abort: reconnect below
        }
        if (stopped) break;
        if (status !== "stale") set("disconnected");
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
      clearInterval(watchdog);
    }
    loop();
    return {stop() { stopped = true; if (ctrl) ctrl.abort(); }};
  }

  // The sign-in form: calls start() once a token is given (kept for this tab only).
  function signIn(start) {
    const form = document.getElementById("signin");
    const input = document.getElementById("token");
    const app = document.getElementById("app");
    const show = (signedIn) => {
      form.hidden = signedIn;
      app.hidden = !signedIn;
      if (!signedIn) input.focus();
      else { app.setAttribute("tabindex", "-1"); app.focus(); }  // keys now go to the page
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      sessionStorage.setItem(KEY, t);
      input.value = "";
      setText("signin-error", "");
      show(true);
      start();
    });
    const out = document.getElementById("signout");
    if (out) out.addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
    if (token()) { show(true); start(); } else show(false);
  }

  function rejected(message) {
    // a wrong token: drop it and everything shown, back to the sign-in form
    sessionStorage.removeItem(KEY);
    const app = document.getElementById("app");
    app.hidden = true;
    for (const node of app.querySelectorAll("[data-clear]")) node.replaceChildren();
    document.getElementById("signin").hidden = false;
    setText("signin-error", message);
  }

  function connection(state) {
    const labels = {connecting: "Connecting…", live: "Live", stale: "Stale – reconnecting…",
                    disconnected: "Disconnected – reconnecting…", unauthorized: "Not signed in"};
    const node = document.getElementById("conn");
    node.textContent = labels[state] || state;
    node.dataset.state = state;
    document.body.classList.toggle("not-live", state !== "live");
  }

  const secs = (s) => {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, Math.round(s));
    return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
  };
  const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(0)}%`);

  return {el, setText, api, stream, signIn, rejected, connection, secs, pct, token};
})();
