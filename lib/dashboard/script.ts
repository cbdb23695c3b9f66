/**
 * The dashboard's browser script, served as /dashboard/app.js. Plain ES2020 with no dependencies and no build
 * step. Every value from the server goes into the page as text (textContent, SVG attributes), never as HTML:
 * scope ids and refusal messages are the callers' strings. Amounts are shown as the exact decimal strings the API
 * gives; numbers parsed from them only size the bars.
 */
export const dashboardScript = String.raw`'use strict';
(() => {
  const TOKEN_KEY = 'spendgate.adminToken';
  const REFRESH_MS = 30000;
  const SVG = 'http://www.w3.org/2000/svg';
  const byId = (id) => document.getElementById(id);
  let timer = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // "12.300000" -> "$12.30"; never rounds: "0.000123" stays "$0.000123".
  function money(value) {
    if (value === null || value === undefined) return '—';
    const [whole, fraction = ''] = String(value).split('.');
    const trimmed = fraction.replace(/0+$/, '');
    return '$' + whole + '.' + (trimmed.length >= 2 ? trimmed : (trimmed + '00').slice(0, 2));
  }

  const time = (iso) => Date.parse(String(iso).replace(/(\.\d{3})\d*/, '$1'));
  const utc = (iso) => (iso ? String(iso).slice(0, 16).replace('T', ' ') + ' UTC' : '—');

  function relative(iso, nowIso) {
    if (!iso) return '—';
    const seconds = Math.round((time(iso) - time(nowIso)) / 1000);
    const size = Math.abs(seconds);
    const text = size < 60 ? size + ' s' : size < 3600 ? Math.round(size / 60) + ' min'
      : size < 172800 ? Math.round(size / 3600) + ' h' : Math.round(size / 86400) + ' d';
    return seconds >= 0 ? 'in ' + text : text + ' ago';
  }

  function when(iso, nowIso) {
    return el('time', { datetime: iso, title: utc(iso) }, relative(iso, nowIso));
  }

  function scopeName(scope) {
    if (!scope) return '—';
    let name = scope.kind + ' ' + scope.id;
    if (scope.model) name += ' · model ' + scope.model;
    if (scope.window) name += ' · window ' + scope.window;
    return name;
  }

  const reasons = {
    budget_exceeded: 'budget', rate_limit_exceeded: 'rate limit', parallel_limit_exceeded: 'parallel limit',
  };
  const eventNames = {
    soft_budget: 'soft budget reached', budget_80: '80% of budget', budget_100: '100% of budget',
    budget_refused: 'refused by budget',
  };

  function utilization(part) {
    const spent = Number(part.spend_percent);
    const held = Number(part.reserved_percent);
    if (part.spend_percent === null || part.spend_percent === undefined) {
      return el('div', { class: 'util-none' }, 'no budget');
    }
    const level = spent + held >= 100 ? 'full' : spent + held >= 80 ? 'high' : 'ok';
    const bar = el('div', { class: 'bar ' + level, role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100,
                            'aria-valuenow': Math.min(100, spent + held) });
    const spentPart = el('span', { class: 'spent' });
    spentPart.style.width = Math.min(100, spent) + '%';
    const heldPart = el('span', { class: 'held' });
    heldPart.style.width = Math.max(0, Math.min(100 - Math.min(100, spent), held)) + '%';
    bar.append(spentPart, heldPart);
    return el('div', { class: 'util' }, bar,
      el('span', { class: 'util-text' }, part.spend_percent + '% spent' + (held > 0 ? ' + ' + part.reserved_percent + '% held' : '')));
  }

  function period(part) {
    if (!part.budget_duration) return '—';
    return part.budget_duration + (part.budget_align && part.budget_align !== 'rolling' ? ' ' + part.budget_align : '');
  }

  function fill(tableId, rows, empty, columns) {
    const body = byId(tableId).tBodies[0];
    body.replaceChildren(...(rows.length > 0 ? rows : [el('tr', { class: 'empty' }, el('td', { colspan: columns }, empty))]));
  }

  function renderCards(data) {
    byId('spend-total').textContent = money(data.spend_total);
    byId('spend-hours').textContent = 'in the last ' + data.spend.length + ' hours';
    byId('holds-count').textContent = String(data.holds.count);
    byId('holds-amount').textContent = money(data.holds.amount) + ' held';
    const types = Object.entries(data.refusals.by_type);
    byId('refusals-total').textContent = String(types.reduce((sum, [, n]) => sum + n, 0));
    byId('refusals-types').textContent = types.length ? types.map(([t, n]) => (reasons[t] || t) + ' ' + n).join(' · ') : 'none';
    byId('scope-count').textContent = String(data.scope_count);
    byId('undelivered').textContent = data.webhook_configured ? String(data.undelivered_events) : '—';
    byId('webhook-state').textContent = data.webhook_configured ? 'events not yet delivered' : 'no webhook configured';
  }

  function renderScopes(data) {
    const rows = [];
    for (const s of data.scopes) {
      rows.push(el('tr', { 'data-scope': s.kind + '/' + s.id },
        el('td', { class: 'scope' }, el('span', { class: 'kind' }, s.kind), ' ', s.id),
        el('td', { class: 'num spend' }, money(s.spend)),
        el('td', { class: 'num reserved' }, money(s.reserved)),
        el('td', { class: 'num max' }, money(s.max_budget)),
        el('td', { class: 'util-cell' }, utilization(s)),
        el('td', null, period(s)),
        el('td', null, s.resets_at ? when(s.resets_at, data.at) : '—')));
      s.windows.forEach((w, i) => {
        rows.push(el('tr', { class: 'window', 'data-scope': s.kind + '/' + s.id, 'data-window': i + 1 },
          el('td', { class: 'scope' }, '↳ budget window ' + (i + 1)),
          el('td', { class: 'num spend' }, money(w.spend)),
          el('td', { class: 'num reserved' }, money(w.reserved)),
          el('td', { class: 'num max' }, money(w.max_budget)),
          el('td', { class: 'util-cell' }, utilization(w)),
          el('td', null, period(w)),
          el('td', null, w.resets_at ? when(w.resets_at, data.at) : '—')));
      });
    }
    fill('scopes', rows, 'No scope has been named or limited yet.', 7);
  }

  function renderHolds(data) {
    fill('holds', data.holds.oldest.map((h) => el('tr', { 'data-reservation': h.id },
      el('td', { class: 'mono', title: h.id }, h.id.slice(0, 8)),
      el('td', null, h.model || '—'),
      el('td', null, h.scopes.map(scopeName).join(', ')),
      el('td', { class: 'num' }, money(h.reserved_cost)),
      el('td', null, when(h.created_at, data.at)),
      el('td', null, when(h.expires_at, data.at)))), 'No hold in flight.', 6);
  }

  function renderRefusals(data) {
    byId('refusal-types').replaceChildren(...Object.entries(data.refusals.by_type).map(([type, n]) =>
      el('li', { 'data-type': type }, el('strong', null, String(n)), ' ', reasons[type] || type)));
    fill('refusals', data.refusals.latest.map((r) => el('tr', { 'data-type': r.type },
      el('td', null, when(r.created_at, data.at)),
      el('td', { title: r.message || '' }, reasons[r.type] || r.type),
      el('td', null, scopeName(r.scope)))), 'No refusal in the last 24 hours.', 3);
  }

  function eventDetail(e) {
    const d = e.details || {};
    if (e.type === 'budget_refused') return 'asked ' + money(d.requested) + ' with ' + money(d.used) + ' used of ' + money(d.limit);
    return money(d.spend) + ' spent + ' + money(d.reserved) + ' held of ' + money(d.max_budget || d.soft_budget);
  }

  function delivery(e, data) {
    if (e.delivered_at) return 'delivered ' + relative(e.delivered_at, data.at);
    if (!data.webhook_configured) return '—';
    if (e.attempts === 0) return 'pending';
    return 'failed ' + e.attempts + '×' + (e.last_error ? ' (' + e.last_error + ')' : '') + ', retry ' + relative(e.next_attempt_at, data.at);
  }

  function renderEvents(data) {
    fill('events', data.events.map((e) => el('tr', { 'data-event': e.event_id, 'data-type': e.type },
      el('td', null, when(e.created_at, data.at)),
      el('td', null, eventNames[e.type] || e.type),
      el('td', null, scopeName(e.scope)),
      el('td', null, eventDetail(e)),
      el('td', null, delivery(e, data)))), 'No event yet.', 5);
  }

  function renderChart(data) {
    const chart = byId('chart');
    const width = 960, height = 220, left = 72, right = 8, top = 14, bottom = 26;
    chart.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    chart.replaceChildren();
    const hours = data.spend;
    let peak = hours[0];
    for (const h of hours) if (Number(h.cost) > Number(peak.cost)) peak = h;
    const plotHeight = height - top - bottom;
    const step = (width - left - right) / hours.length;
    chart.append(svg('line', { class: 'axis', x1: left, x2: width - right, y1: top + plotHeight, y2: top + plotHeight }));
    chart.append(svg('text', { class: 'label', x: left - 6, y: top + plotHeight, 'text-anchor': 'end' }, '$0'));
    if (Number(peak.cost) > 0) {
      chart.append(svg('line', { class: 'grid', x1: left, x2: width - right, y1: top, y2: top }));
      chart.append(svg('text', { class: 'label', x: left - 6, y: top + 4, 'text-anchor': 'end', id: 'chart-peak' }, money(peak.cost)));
    } else {
      chart.append(svg('text', { class: 'label', x: left + (width - left - right) / 2, y: top + plotHeight / 2, 'text-anchor': 'middle' },
        'No settled spend in this period'));
    }
    hours.forEach((h, i) => {
      const x = left + i * step;
      const barHeight = Number(peak.cost) > 0 ? (Number(h.cost) / Number(peak.cost)) * plotHeight : 0;
      const bar = svg('rect', { class: 'hour', x: x + 1, y: top + plotHeight - barHeight, width: Math.max(1, step - 2),
                                height: barHeight, 'data-hour': h.hour, 'data-cost': h.cost });
      bar.append(svg('title', {}, utc(h.hour) + ': ' + money(h.cost) + ' (' + h.settled + ' settled)'));
      chart.append(bar);
      // Every sixth UTC hour is labelled; midnight with its date.
      const hourOfDay = Number(h.hour.slice(11, 13));
      if (hourOfDay % 6 === 0) {
        chart.append(svg('text', { class: 'label', x: x + step / 2, y: height - 8, 'text-anchor': 'middle' },
          hourOfDay === 0 ? h.hour.slice(5, 10) : h.hour.slice(11, 16)));
      }
    });
  }

  function render(data) {
    renderCards(data);
    renderChart(data);
    renderScopes(data);
    renderHolds(data);
    renderRefusals(data);
    renderEvents(data);
    byId('status').textContent = 'Data as of ' + utc(data.at).replace(' UTC', ':' + data.at.slice(17, 19) + ' UTC');
    document.body.dataset.loaded = 'true';
  }

  function showSignIn(message) {
    clearTimeout(timer);
    byId('board').hidden = true;
    byId('sign-out').hidden = true;
    byId('refresh').hidden = true;
    byId('sign-in').hidden = false;
    byId('sign-in-error').textContent = message || '';
    byId('status').textContent = '';
    byId('token').focus();
  }

  async function load() {
    clearTimeout(timer);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return showSignIn('');
    let response;
    try {
      response = await fetch('/v1/dashboard', { headers: { authorization: 'Bearer ' + token }, cache: 'no-store' });
    } catch (error) {
      byId('status').textContent = 'Cannot reach spendgate; retrying.';
      timer = setTimeout(load, REFRESH_MS);
      return;
    }
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      return showSignIn(response.status === 401 ? 'That token was not accepted.' : 'The dashboard needs the admin token.');
    }
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      byId('status').textContent = 'spendgate answered ' + response.status + (body && body.error ? ': ' + body.error.message : '');
      timer = setTimeout(load, REFRESH_MS);
      return;
    }
    render(await response.json());
    byId('sign-in').hidden = true;
    byId('board').hidden = false;
    byId('sign-out').hidden = false;
    byId('refresh').hidden = false;
    timer = setTimeout(load, REFRESH_MS);
  }

  byId('sign-in').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = byId('token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    byId('token').value = '';
    load();
  });
  byId('sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn('');
  });
  byId('refresh').addEventListener('click', () => load());
  load();
})();
`;
