// The HUD: posts a phrase to /api/generate and shows the streamed server-sent events on three scrolling lines.
// Opened as /?token=… when the app requires pairing; the token is sent back in the X-Pairing-Token header.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const labels = { translate: "TRANSLATE EN→IT", answer: "SHORT ANSWER", summary: "CAPTION SUMMARY" };
const $ = (id) => document.getElementById(id);
let current = null;   // the AbortController of the generation in flight

function headers(extra) {
  const h = Object.assign({}, extra);
  if (token) h["X-Pairing-Token"] = token;
  return h;
}

function line(cls, text) {
  const p = document.createElement("p");
  if (cls) p.className = cls;
  p.textContent = text;
  $("lines").appendChild(p);
  while ($("lines").children.length > 12) $("lines").firstElementChild.remove();
  scroll();
  return p;
}

function scroll() { $("lines").scrollTop = $("lines").scrollHeight; }

async function info() {
  try {
    const r = await fetch("api/info", { headers: headers() });
    if (!r.ok) { $("state").textContent = r.status === 401 ? "NOT PAIRED" : "ERROR " + r.status; return; }
    const i = await r.json();
    $("profile").textContent = i.profile;
    $("text").maxLength = i.maxInputChars;
  } catch (e) { $("state").textContent = "OFFLINE"; }
}

// Parses "event: x\ndata: {...}\n\n" blocks out of the streamed body.
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const l of block.split("\n")) {
        if (l.startsWith("event:")) name = l.slice(6).trim();
        else if (l.startsWith("data:")) data += l.slice(5).trim();
      }
      yield { name, data: data ? JSON.parse(data) : null };
    }
  }
}

async function ask(mode, text) {
  if (current) current.abort();          // a new phrase replaces the one in flight (the server stops it)
  const controller = new AbortController();
  current = controller;
  $("mode-label").textContent = labels[mode];
  $("state").textContent = "…";
  line("prompt", "› " + text);
  const out = line("answer", "");
  try {
    const r = await fetch("api/generate", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ mode, text }),
      signal: controller.signal,
    });
    if (!r.ok) {
      let message = "error " + r.status;
      try { message = (await r.json()).error; } catch (e) { /* not JSON */ }
      out.className = "error";
      out.textContent = r.status === 503 ? "Busy — try again" : message;
      $("state").textContent = "ERROR " + r.status;
      return;
    }
    $("state").textContent = "STREAMING";
    for await (const e of events(r)) {
      if (e.name === "piece") { out.textContent += e.data.text; scroll(); }
      else if (e.name === "done") {
        $("ttft").textContent = "TTFT " + (e.data.ttftMs == null ? "—" : Math.round(e.data.ttftMs) + " ms");
        $("speed").textContent = (e.data.tokensPerSecond == null ? "—" : Math.round(e.data.tokensPerSecond)) + " tok/s";
        if (!out.textContent.trim()) out.textContent = "(no answer)";
        $("state").textContent = "DONE";
        document.body.dataset.done = String(Number(document.body.dataset.done || 0) + 1);
      } else if (e.name === "error") {
        out.className = "error";
        out.textContent = e.data.error;
        $("state").textContent = "ERROR";
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") { out.className = "error"; out.textContent = String(e.message || e); $("state").textContent = "ERROR"; }
  } finally {
    if (current === controller) current = null;
  }
}

$("mode").addEventListener("change", () => { $("mode-label").textContent = labels[$("mode").value]; });
$("ask").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (text) ask($("mode").value, text);
  $("text").value = "";
});
info();
