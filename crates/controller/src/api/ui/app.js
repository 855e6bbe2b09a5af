// The fos web view: nodes, applications drawn as graphs with their placements, events, and an instance's log.
// Everything is read from the fos API with the bearer token the user gives (kept in this tab's sessionStorage, or
// passed once as `#token=…`); the API's watch stream (`/v1/watch`) says when something changed, and the view is
// read again then.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const state = { token: null, system: null, selected: null, timer: null, streams: 0 };

function el(tag, attrs = {}, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  if (r.status === 401) throw new Error("the token was refused");
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()));
  return r;
}

const json = async (path) => (await api(path)).json();

function bytes(b) {
  const n = Number(String(b).replace(/[^0-9.]/g, ""));
  if (!/^\d+$/.test(String(b))) return String(b);
  for (const [u, s] of [["Ti", 40], ["Gi", 30], ["Mi", 20], ["Ki", 10]]) {
    if (n >= 2 ** s) return (n / 2 ** s).toFixed(1).replace(/\.0$/, "") + u;
  }
  return String(n);
}

function renderNodes(nodes) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren();
  for (const n of nodes) {
    const s = n.spec || {};
    const devices = [...(s.io || []).map((d) => d.type + ":" + d.name),
      ...(s.accelerators || []).map((a) => a.type + ":" + a.name)].join(", ");
    const row = el("tr", { "data-node": n.metadata.name });
    for (const cell of [n.metadata.name, String(n.status.ready), s.arch, String((s.cpu || {}).count),
      bytes(s.memory), bytes(s.disk), (s.runtimes || []).join(","), devices || "-", n.status.address || "-"]) {
      row.append(el("td", {}, cell));
    }
    body.append(row);
  }
}

function components(object) {
  if (object.kind === "Entity") return [{ name: object.metadata.name, need: [], proximity: [] }];
  return (object.spec.components || []).map((c) => ({
    name: c.name, need: c.need || [],
    proximity: (Array.isArray(c.proximity) ? c.proximity : c.proximity ? [c.proximity] : [])
      .map((p) => (typeof p === "string" ? p : p.to)),
  }));
}

function stateClass(e) {
  const a = e && e.actual;
  if (!e || !e.node) return "unplaced";
  if (!a) return "starting";
  const st = a.state;
  if (st === "Error") return "error";
  if (st === "Running") return a.ready ? "ready" : "starting";
  if (st === "Paused") return "paused";
  return "stopped";
}

// Layers by `need`: a component is drawn below what it needs.
function depths(comps) {
  const by = Object.fromEntries(comps.map((c) => [c.name, c]));
  const memo = {};
  const depth = (n, seen = new Set()) => {
    if (n in memo) return memo[n];
    if (seen.has(n) || !by[n]) return 0;
    seen.add(n);
    memo[n] = Math.max(0, ...by[n].need.map((m) => depth(m, seen) + 1));
    return memo[n];
  };
  comps.forEach((c) => depth(c.name));
  return memo;
}

function renderApp(app, entities) {
  const obj = app.object;
  const name = obj.metadata.name;
  const phase = app.deleting ? "Deleting" : app.status ? app.status.phase : "Pending";
  const box = el("div", { class: "app", "data-app": name, "data-phase": phase });
  const title = el("h3", {}, obj.kind.toLowerCase() + " " + name + " ");
  title.append(el("span", { class: "phase phase-" + phase }, phase));
  box.append(title);
  if (app.status && app.status.message) box.append(el("div", { class: "error" }, app.status.message));

  const comps = components(obj);
  const depth = depths(comps);
  const mine = entities.filter((e) => e.id.endsWith("." + name + "." + (obj.metadata.tenant || "default")));
  // Graph nodes: each instance, or the component itself while it has none.
  const items = [];
  for (const c of comps) {
    const insts = mine.filter((e) => e.id.split(".")[0].replace(/-\d+$/, "") === c.name);
    if (insts.length === 0) items.push({ key: c.name, component: c.name, entity: null, node: null });
    for (const e of insts) items.push({ key: e.id.split(".")[0], component: c.name, entity: e, node: e.node });
  }
  const columns = [...new Set(items.map((i) => i.node || ""))].sort((a, b) => (a === "") - (b === "") || a.localeCompare(b));
  const W = 170, H = 48, GAPX = 60, GAPY = 26, PAD = 24;
  const pos = {};
  let height = 0;
  const svg = el("svg:svg", { class: "graph" });
  const defs = el("svg:defs");
  const marker = el("svg:marker", { id: "arrow-" + name, viewBox: "0 0 10 10", refX: "10", refY: "5",
    markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
  marker.append(el("svg:path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#37474f" }));
  defs.append(marker);
  svg.append(defs);
  columns.forEach((col, ci) => {
    const here = items.filter((i) => (i.node || "") === col)
      .sort((a, b) => depth[b.component] - depth[a.component] || a.key.localeCompare(b.key));
    const x = PAD + ci * (W + 2 * PAD + GAPX);
    const g = el("svg:g", { class: "cluster", "data-node": col || "-" });
    const rectH = here.length * (H + GAPY) + PAD;
    g.append(el("svg:rect", { x: x - PAD / 2, y: 8, width: W + PAD, height: rectH + 14, rx: 10 }));
    height = Math.max(height, 8 + rectH + 14 + 8);
    g.append(el("svg:text", { x: x - PAD / 2 + 8, y: 24 }, col ? "node " + col : "not placed"));
    svg.append(g);
    here.forEach((it, ri) => {
      const y = 36 + ri * (H + GAPY);
      pos[it.key] = { x, y, col: ci };
      const e = it.entity;
      const a = e && e.actual;
      const st = (a && a.state) || (e ? "-" : "not placed");
      const ig = el("svg:g", { class: "instance state-" + stateClass(e), "data-id": e ? e.id : it.key,
        "data-component": it.component, "data-state": st, "data-ready": String(!!(a && a.ready)),
        "data-restarts": String((a && a.restarts) || 0) });
      ig.append(el("svg:rect", { x, y, width: W, height: H, rx: 8 }));
      ig.append(el("svg:text", { x: x + 10, y: y + 19 }, it.key));
      const extra = a && a.restarts ? " · " + a.restarts + " restarts" : "";
      ig.append(el("svg:text", { x: x + 10, y: y + 37 }, st + (a && a.ready ? " · ready" : "") + extra));
      if (e) ig.addEventListener("click", () => showLog(e.id));
      svg.append(ig);
      height = Math.max(height, y + H + PAD + 10);
    });
  });
  // Edges: need (arrow to what is needed) and proximity (dashed, no arrow).
  const keysOf = (comp) => items.filter((i) => i.component === comp).map((i) => i.key);
  const edge = (from, to, kind) => {
    for (const a of keysOf(from)) for (const b of keysOf(to)) {
      const p = pos[a], q = pos[b];
      if (!p || !q) continue;
      let d;
      if (p.col === q.col) {
        const bend = kind === "need" ? 40 : 70;
        d = `M ${p.x + W} ${p.y + H / 2} C ${p.x + W + bend} ${p.y + H / 2}, ${q.x + W + bend} ${q.y + H / 2}, ${q.x + W} ${q.y + H / 2}`;
      } else {
        const [x1, x2] = p.x < q.x ? [p.x + W, q.x] : [p.x, q.x + W];
        d = `M ${x1} ${p.y + H / 2} L ${x2} ${q.y + H / 2}`;
      }
      const attrs = { class: "edge " + kind, d, "data-from": from, "data-to": to };
      if (kind === "need") attrs["marker-end"] = `url(#arrow-${name})`;
      svg.append(el("svg:path", attrs));
    }
  };
  for (const c of comps) {
    c.need.forEach((n) => edge(c.name, n, "need"));
    c.proximity.forEach((n) => edge(c.name, n, "proximity"));
  }
  svg.setAttribute("width", PAD + columns.length * (W + 2 * PAD + GAPX));
  svg.setAttribute("height", Math.max(height, 100));
  box.append(svg);
  return box;
}

function renderEvents(events) {
  const body = document.querySelector("#events tbody");
  body.replaceChildren();
  for (const e of events.slice().reverse().slice(0, 40)) {
    const row = el("tr");
    for (const c of [new Date(e.time).toLocaleTimeString(), e.app || "", e.reason, e.message]) row.append(el("td", {}, c));
    body.append(row);
  }
}

async function showLog(id) {
  state.selected = id;
  document.getElementById("log-section").hidden = false;
  document.getElementById("log-id").textContent = id;
  const pre = document.getElementById("log");
  try {
    pre.textContent = await (await api("/v1/logs/" + encodeURIComponent(id) + "?tail_bytes=16384")).text() || "(empty)";
  } catch (err) {
    pre.textContent = String(err);
  }
}

async function refresh() {
  const [nodes, apps, entities, events] = await Promise.all([
    json("/v1/nodes"), json("/v1/apps"), json("/v1/entities"), json("/v1/events?limit=40")]);
  renderNodes(nodes);
  const holder = document.getElementById("apps");
  holder.replaceChildren(...apps.map((a) => renderApp(a, entities.map((e) => ({
    id: e.id, node: e.node, desired: e.desired, actual: e.actual })))));
  if (apps.length === 0) holder.append(el("p", {}, "no applications"));
  renderEvents(events);
  document.body.dataset.refreshed = String(Date.now());
}

function scheduleRefresh() {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => refresh().catch(showError), 150);
}

function setLive() {
  const live = document.getElementById("live");
  live.className = "live " + (state.streams > 0 ? "on" : "off");
  live.textContent = state.streams > 0 ? "live" : "offline";
}

// Follows one watch stream (newline-delimited JSON); any change makes the view read again. Reconnects on its end.
async function watch(uri) {
  for (;;) {
    try {
      const r = await api("/v1/watch?uri=" + encodeURIComponent(uri));
      state.streams++;
      setLive();
      const reader = r.body.getReader();
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
        scheduleRefresh();
      }
    } catch (err) {
      console.warn("watch", uri, err);
    } finally {
      state.streams = Math.max(0, state.streams - 1);
      setLive();
    }
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

function showError(err) {
  document.getElementById("login-error").textContent = String(err.message || err);
  if (String(err).includes("refused")) signOut();
}

function signOut() {
  sessionStorage.removeItem("fos-token");
  location.reload();
}

async function start() {
  document.getElementById("login").hidden = true;
  const info = await json("/v1/system");
  state.system = info.system;
  document.getElementById("system").textContent = "system " + info.system + " · fos " + info.version;
  document.getElementById("main").hidden = false;
  document.getElementById("signout").hidden = false;
  await refresh();
  watch(`dfos://${state.system}/**`);
  watch(`afos://${state.system}/**`);
}

function init() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("fos-token", fromHash);
    history.replaceState(null, "", location.pathname);
  }
  state.token = sessionStorage.getItem("fos-token");
  document.getElementById("signout").addEventListener("click", signOut);
  document.getElementById("log-reload").addEventListener("click", () => state.selected && showLog(state.selected));
  document.getElementById("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("fos-token", document.getElementById("token").value.trim());
    location.reload();
  });
  if (!state.token) {
    document.getElementById("login").hidden = false;
    return;
  }
  start().catch((err) => {
    document.getElementById("login").hidden = false;
    showError(err);
  });
}

init();
