// AIP console: theme, live refresh, log streaming, YAML validation as you type.
// Hand-written, no dependencies. Text from the server is set with textContent only; refreshed
// regions are the server's own autoescaped HTML for the same page, parsed with DOMParser.
"use strict";

(function applyStoredTheme() {
  const theme = localStorage.getItem("aip-theme");
  if (theme === "dark" || theme === "light") document.documentElement.dataset.theme = theme;
})();

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function setupThemeToggle() {
  const button = document.getElementById("theme-toggle");
  if (!button) return;
  button.addEventListener("click", () => {
    const root = document.documentElement;
    const dark = root.dataset.theme === "dark" || (!root.dataset.theme &&
      window.matchMedia("(prefers-color-scheme: dark)").matches);
    root.dataset.theme = dark ? "light" : "dark";
    localStorage.setItem("aip-theme", root.dataset.theme);
  });
}

// Regions marked data-live are replaced by the same regions of a fresh copy of the page,
// every body[data-refresh] ms (0: never; a job page stops once the job is final). The copy
// comes from body[data-refresh-url] when set: a page shown as the answer to a form's POST
// (an endpoint's try-a-request) refreshes from its own address, not the POST's.
function setupLiveRefresh() {
  let interval = parseInt(document.body.dataset.refresh || "0", 10);
  const dot = document.getElementById("live-dot");
  if (!interval || !document.querySelector("[data-live]")) return;
  if (dot) dot.className = "live-dot on";
  const schedule = () => { if (interval > 0) window.setTimeout(tick, interval); };
  async function tick() {
    if (document.hidden) { schedule(); return; }
    try {
      const response = await fetch(document.body.dataset.refreshUrl || window.location.href, {
        headers: { "X-AIP-Live": "1", "Accept": "text/html" },
        credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        window.location.assign("/login?next=" +
          encodeURIComponent(window.location.pathname + window.location.search));
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of document.querySelectorAll("[data-live]")) {
        const next = fresh.getElementById(region.id);
        if (next && !region.contains(document.activeElement)) {
          region.replaceWith(document.importNode(next, true));
        }
      }
      interval = parseInt(fresh.body.dataset.refresh || "0", 10);
      if (dot) dot.className = interval > 0 ? "live-dot on" : "live-dot";
    } catch (error) {
      if (dot) { dot.className = "live-dot off"; dot.title = "Refresh failed: " + error.message; }
    }
    schedule();
  }
  schedule();
}

// Logs: server-sent events per replica; each event's data is one or more lines.
function setupLogs() {
  const pre = document.getElementById("logs");
  if (!pre) return;
  const follow = document.getElementById("log-follow");
  let source = null;
  function open(replica) {
    if (source) source.close();
    pre.textContent = "";
    let opened = false;
    const url = pre.dataset.stream + (replica ? "?replica=" + encodeURIComponent(replica) : "");
    source = new EventSource(url);
    source.onopen = () => { if (opened) pre.textContent = ""; opened = true; };
    source.onmessage = (event) => {
      pre.append(document.createTextNode(event.data + "\n"));
      if (!follow || follow.checked) pre.scrollTop = pre.scrollHeight;
    };
    source.addEventListener("end", () => { source.close(); pre.dataset.ended = "true"; });
  }
  const tabs = document.querySelectorAll("[data-log-replica]");
  tabs.forEach((tab) => tab.addEventListener("click", () => {
    tabs.forEach((other) => other.classList.toggle("active", other === tab));
    open(tab.dataset.logReplica);
  }));
  const active = document.querySelector("[data-log-replica].active");
  open(active ? active.dataset.logReplica : "");
}

// The YAML editor: line numbers, and the server's JobSpec verdict as you type.
function setupYamlEditor() {
  const area = document.getElementById("yaml");
  if (!area) return;
  const gutter = document.getElementById("yaml-gutter");
  const status = document.getElementById("yaml-status");
  const list = document.getElementById("yaml-errors");
  let badLines = new Set();
  let timer = null;
  let sequence = 0;
  function drawGutter() {
    const count = area.value.split("\n").length;
    const spans = [];
    for (let line = 1; line <= count; line++) {
      const span = document.createElement("span");
      span.textContent = String(line);
      if (badLines.has(line)) span.className = "bad";
      spans.push(span);
    }
    gutter.replaceChildren(...spans);
    gutter.scrollTop = area.scrollTop;
  }
  function show(result) {
    badLines = new Set();
    list.replaceChildren();
    const line = document.createElement("p");
    if (result.valid) {
      line.className = "ok";
      line.textContent = "✓ valid job spec";
    } else {
      line.className = "error";
      line.textContent = result.errors.length + " problem" + (result.errors.length > 1 ? "s" : "");
      for (const error of result.errors) {
        const item = document.createElement("li");
        const field = document.createElement("code");
        field.textContent = error.field;
        item.append(field, document.createTextNode(": " + error.message));
        item.dataset.field = error.field;
        list.append(item);
        if (error.line) badLines.add(error.line);
      }
    }
    status.replaceChildren(line);
    drawGutter();
  }
  async function validate() {
    const mine = ++sequence;
    try {
      const response = await fetch(area.dataset.validate, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify({ yaml: area.value }) });
      if (mine !== sequence) return;
      const body = await response.json();
      if (!response.ok) {
        show({ valid: false, errors: [{ field: body.code || "error", message: body.message }] });
        return;
      }
      show(body);
    } catch (error) {
      if (mine === sequence) show({ valid: false, errors: [{ field: "network", message: error.message }] });
    }
  }
  area.addEventListener("input", () => {
    drawGutter();
    window.clearTimeout(timer);
    timer = window.setTimeout(validate, 250);
  });
  area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });
  drawGutter();
  if (area.value.trim()) validate();
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  setupThemeToggle();
  setupLiveRefresh();
  setupLogs();
  setupYamlEditor();
});
