// gslb status page: fetches /api/v1/status every REFRESH_MS and redraws.
"use strict";
const REFRESH_MS = 2000;
const RTT_RED_MS = 300;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function time(epoch) {
  return epoch ? new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z" : "—";
}

function rttColour(ms) {
  // log scale: 1 ms green (hue 120) to RTT_RED_MS red (hue 0)
  const f = Math.min(1, Math.max(0, Math.log(Math.max(ms, 1)) / Math.log(RTT_RED_MS)));
  return `hsl(${Math.round(120 * (1 - f))} 60% 82%)`;
}

function fill(table, rows) {
  const body = table.querySelector("tbody");
  body.replaceChildren(...rows);
}

function drawMatrix(st) {
  const table = document.getElementById("matrix");
  table.querySelector("thead").replaceChildren(el("tr", {}, el("th", {}, "origin"),
    el("th", {}, "state"), ...st.vantages.map(v => el("th", {
      class: st.fresh_vantages.includes(v) ? null : "stale"}, v))));
  fill(table, st.origins.map(o => {
    const cells = st.vantages.map(v => {
      const r = o.vantages[v];
      if (!r) return el("td", {class: "cell none", "data-vantage": v}, "—");
      const state = r.state || (r.up ? "up" : "down");
      const td = el("td", {class: `cell state-${state}${r.fresh ? "" : " stale"}`,
        "data-vantage": v, "data-state": state, title: r.detail},
        state.toUpperCase(), el("br"), r.srtt_ms !== null ? `${r.srtt_ms.toFixed(1)} ms` : "");
      if (r.up && r.srtt_ms !== null) td.style.background = rttColour(r.srtt_ms);
      return td;
    });
    const why = o.drain ? `drained by ${o.drain.who}: ${o.drain.reason}` : (o.held ? "fewer than quorum fresh vantages: last known state held" : o.hold === "split" ? "no quorum of fresh vantages agrees: state held" : o.state === "degraded" ? "answered; a recent check failed (fewer than fall times)" : o.state === "unknown" ? "not checked yet: answered per health.unknown" : "");
    return el("tr", {"data-origin": o.name, "data-state": o.state},
      el("th", {title: [...o.ipv4, ...o.ipv6].join(" ")}, o.name),
      el("td", {class: `overall state-${o.state}`, title: why}, o.state.toUpperCase()),
      ...cells);
  }));
}

function answer(p, a) {
  if (a.kind !== "answer") return el("span", {class: "muted"}, a.kind);
  const via = [...new Set(a.leaves)].filter(leaf => leaf !== p.name);
  return el("span", {title: a.reason}, a.origins.join(", "),
    via.length ? ` via ${via.join(", ")}` : "", a.fallback ? " (fallback)" : "");
}

function members(p) {
  // a tree of pools: member pools are marked with an arrow
  return el("span", {}, ...p.members.flatMap((m, i) => [i ? ", " : "",
    m.kind === "pool" ? el("b", {"data-member-pool": m.name}, `→ ${m.name}`) : m.name]),
    p.min_healthy !== 1 ? ` (min_healthy ${p.min_healthy})` : "");
}

function drawPools(st) {
  fill(document.getElementById("pools"), st.pools.map(p => el("tr", {"data-pool": p.name},
    el("th", {}, p.name), el("td", {}, p.policy), el("td", {}, members(p)),
    el("td", {}, answer(p, p.answers.A)),
    el("td", {}, answer(p, p.answers.AAAA)),
    el("td", {class: p.in_fallback.length ? "state-down" : null},
      p.in_fallback.length ? `in fallback (${p.in_fallback.join(", ")})` : p.fallback))));
}

function draw(st) {
  document.getElementById("summary").textContent =
    `generation ${st.generation} · ${st.zones.length} zone(s) · ${st.origins.length} origin(s) · ` +
    (st.ready ? "ready" : `NOT READY: ${st.not_ready.join("; ")}`);
  document.getElementById("summary").className = st.ready ? "" : "state-down";
  drawMatrix(st);
  drawPools(st);
  fill(document.getElementById("overrides"), st.overrides.length ? st.overrides.map(d =>
    el("tr", {"data-origin": d.origin}, el("th", {}, d.origin), el("td", {}, d.reason),
      el("td", {}, d.who), el("td", {}, time(d.at)), el("td", {}, time(d.expires_at))))
    : [el("tr", {}, el("td", {colspan: 5, class: "muted"}, "none"))]);
  fill(document.getElementById("transitions"), st.transitions.map(t =>
    el("tr", {}, el("td", {}, time(t.at)), el("th", {}, t.origin),
      el("td", {class: `state-${t.state}`}, t.state), el("td", {}, t.cause))));
  document.getElementById("updated").textContent = `updated ${time(st.now)}`;
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const response = await fetch("/api/v1/status", {cache: "no-store"});
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    draw(await response.json());
    error.hidden = true;
    document.body.dataset.loaded = "yes";
  } catch (exc) {
    error.textContent = `cannot fetch /api/v1/status: ${exc.message}`;
    error.hidden = false;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
