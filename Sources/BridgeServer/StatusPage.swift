/// `GET /`: one self-contained page (no external asset, no build step) that renders from
/// `/events` as things happen: a `snapshot` first, then `routed`, `delivery`, `subscription` and
/// `status` messages; `EventSource` reconnects by itself, sending its `Last-Event-ID`.
/// Everything it shows is inserted as text (`textContent`, never `innerHTML`), so event fields
/// cannot inject markup.
enum StatusPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>graph-bridge</title>
    <style>
      body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
      h1 { font-size: 1.3em; margin: 0 0 .4em; } h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
      table { border-collapse: collapse; width: 100%; }
      th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #ddd; font-variant-numeric: tabular-nums; vertical-align: top; }
      th { background: #f4f4f4; }
      .bad { color: #b00020; font-weight: 600; } .muted { color: #777; } .ok { color: #1b7f3b; } .warn { color: #a15c00; }
      #state.live { color: #1b7f3b; } #state.down { color: #b00020; }
      .sink { display: inline-block; margin-right: .6em; white-space: nowrap; } .time { white-space: nowrap; }
      svg text { font: 11px system-ui, sans-serif; fill: #555; }
      .legend span { margin-right: 1.2em; } .swatch { display: inline-block; width: .8em; height: .8em; margin-right: .3em; vertical-align: -1px; }
    </style>
    </head>
    <body>
    <h1>graph-bridge <span id="state" class="muted">connecting…</span></h1>
    <h2>Notifications and deliveries per minute, last hour</h2>
    <svg id="chart" width="720" height="130" viewBox="0 0 720 130" role="img" aria-label="notifications and deliveries per minute"></svg>
    <div class="legend muted"><span><i class="swatch" style="background:#3366cc"></i>notifications</span><span><i class="swatch" style="background:#1b7f3b"></i>deliveries</span><span><i class="swatch" style="background:#b00020"></i>failed attempts</span></div>
    <h2>Subscriptions</h2>
    <table id="subscriptions"><thead><tr><th>name</th><th>Graph id</th><th>resource</th><th>expires</th><th>expires in</th><th>last notification</th></tr></thead><tbody></tbody></table>
    <h2>Sinks</h2>
    <p id="unrouted" class="muted"></p>
    <table id="sinks"><thead><tr><th>sink</th><th>queued</th><th>delivered</th><th>failed attempts</th><th>last error</th><th>dead letters</th></tr></thead><tbody></tbody></table>
    <h2>Last 100 events</h2>
    <table id="events"><thead><tr><th>received</th><th>subscription</th><th>change</th><th>resource</th><th>sinks and outcome</th></tr></thead><tbody></tbody></table>
    <script>
    'use strict';
    const model = { subscriptions: [], sinks: new Map(), events: [], chart: null, skew: 0, unrouted: 0, through: 0 };
    // What a reconnection sends again after its snapshot is already counted in the snapshot.
    function seen(m) { return m.lastEventId !== '' && Number(m.lastEventId) <= model.through; }
    const MINUTES = 60;

    function el(tag, text, className) {
      const node = document.createElement(tag);
      if (text !== undefined && text !== null) node.textContent = String(text);
      if (className) node.className = className;
      return node;
    }
    function row(cells) {
      const tr = document.createElement('tr');
      for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el('td', cell));
      return tr;
    }
    // An ISO time without its milliseconds, on one line; the full value is the tooltip.
    function time(iso) {
      const td = el('td', iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-', 'time');
      if (iso) td.title = iso;
      return td;
    }
    function countdown(expires) {
      if (!expires) return el('td', '-');
      const left = Date.parse(expires) - (Date.now() + model.skew);
      if (left <= 0) return el('td', 'expired', 'bad');
      const s = Math.floor(left / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
      const text = (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
      return el('td', text, left < 3600e3 ? 'bad' : '');
    }
    function renderSubscriptions() {
      document.querySelector('#subscriptions tbody').replaceChildren(...model.subscriptions.map(x => {
        const tr = row([x.name, x.id ?? (x.managed === false ? '' : '(being created)'), x.resource ?? '', time(x.expires), countdown(x.expires), x.lastNotification ? time(x.lastNotification) : 'never']);
        tr.dataset.subscription = x.name;
        return tr;
      }));
    }
    function sink(name) {
      if (!model.sinks.has(name)) model.sinks.set(name, { name, queued: 0, deadLetters: 0, delivered: 0, failures: 0 });
      return model.sinks.get(name);
    }
    function renderSinks() {
      document.getElementById('unrouted').textContent = 'events waiting to be routed: ' + model.unrouted;
      document.querySelector('#sinks tbody').replaceChildren(...[...model.sinks.values()].map(s => {
        const dead = el('td', s.deadLetters, s.deadLetters > 0 ? 'bad dead' : 'dead');
        const tr = row([s.name, s.queued, s.delivered, el('td', s.failures, s.failures > 0 ? 'warn' : ''), el('td', s.lastError ? s.lastError + ' (' + s.lastErrorAt + ')' : ''), dead]);
        tr.dataset.sink = s.name;
        return tr;
      }));
    }
    function outcomeText(o) {
      if (!o) return ['queued', 'muted'];
      if (o.outcome === 'success') return ['delivered', 'ok'];
      if (o.outcome === 'retry') return ['retrying (attempt ' + o.attempt + ')', 'warn'];
      return ['dead letter', 'bad'];
    }
    function renderEvents() {
      document.querySelector('#events tbody').replaceChildren(...model.events.map(e => {
        const sinks = el('td');
        if (e.dropped) sinks.appendChild(el('span', 'dropped before routing', 'muted'));
        else if (e.replayed) sinks.appendChild(el('span', 'replayed from the store (outcomes not kept)', 'muted'));
        else if (!e.sinks.length) sinks.appendChild(el('span', 'no route matched', 'muted'));
        for (const name of e.sinks ?? []) {
          const o = e.outcomes[name];
          const [text, cls] = outcomeText(o);
          const span = el('span', name + ': ' + text, 'sink ' + cls);
          if (o && o.error) span.title = o.error;
          span.dataset.sink = name;
          span.dataset.outcome = o ? o.outcome : 'queued';
          sinks.appendChild(span);
        }
        const tr = row([time(e.receivedAt), e.subscription?.name ?? '', e.changeType ?? ('lifecycle: ' + e.lifecycleEvent) + (e.resync ? ' (resync)' : ''), e.resource ?? '', sinks]);
        tr.dataset.eventId = e.id;
        return tr;
      }));
    }
    function currentMinute() { return Math.floor((Date.now() + model.skew) / 60000); }
    function shiftChart() {
      const c = model.chart, now = currentMinute();
      if (!c) return;
      while (c.last < now) {
        for (const k of ['notifications', 'deliveries', 'failures']) { c[k].shift(); c[k].push(0); }
        c.last += 1;
      }
    }
    function renderChart() {
      const svg = document.getElementById('chart'), ns = 'http://www.w3.org/2000/svg';
      const c = model.chart;
      if (!c) return;
      shiftChart();
      const w = 720, h = 110, left = 34, step = (w - left) / MINUTES;
      const top = Math.max(1, ...c.notifications, ...c.deliveries, ...c.failures);
      const nodes = [];
      function line(x1, y1, x2, y2, stroke) {
        const l = document.createElementNS(ns, 'line');
        l.setAttribute('x1', x1); l.setAttribute('y1', y1); l.setAttribute('x2', x2); l.setAttribute('y2', y2); l.setAttribute('stroke', stroke);
        return l;
      }
      function label(x, y, text) {
        const t = document.createElementNS(ns, 'text');
        t.setAttribute('x', x); t.setAttribute('y', y); t.textContent = text;
        return t;
      }
      nodes.push(line(left, h, w, h, '#999'), line(left, 4, left, h, '#999'), label(2, 12, String(top)), label(2, h, '0'));
      nodes.push(label(left, h + 16, '-60 min'), label(w - 30, h + 16, 'now'));
      // Three thin bars per minute: notifications, deliveries, failed attempts.
      const bar = Math.max(1, (step - 2) / 3);
      [['notifications', '#3366cc'], ['deliveries', '#1b7f3b'], ['failures', '#b00020']].forEach(([key, color], k) => {
        const group = document.createElementNS(ns, 'g');
        group.setAttribute('fill', color);
        group.dataset.series = key;
        group.dataset.total = String(c[key].reduce((a, b) => a + b, 0));
        c[key].forEach((v, i) => {
          if (!v) return;
          const r = document.createElementNS(ns, 'rect'), height = Math.max(1, v / top * (h - 6));
          r.setAttribute('x', (left + i * step + 1 + k * bar).toFixed(1)); r.setAttribute('width', bar.toFixed(1));
          r.setAttribute('y', (h - height).toFixed(1)); r.setAttribute('height', height.toFixed(1));
          const tip = document.createElementNS(ns, 'title');
          tip.textContent = v + ' ' + key + ', ' + (MINUTES - 1 - i) + ' min ago';
          r.appendChild(tip);
          group.appendChild(r);
        });
        nodes.push(group);
      });
      svg.replaceChildren(...nodes);
    }
    function count(key) {
      if (!model.chart) return;
      shiftChart();
      model.chart[key][MINUTES - 1] += 1;
    }
    function applyStatus(s) {
      if (s.subscriptions) model.subscriptions = s.subscriptions;
      if (s.unrouted !== undefined) model.unrouted = s.unrouted;
      for (const x of s.sinks ?? []) Object.assign(sink(x.name), { queued: x.queued, deadLetters: x.deadLetters });
    }
    function renderAll() { renderSubscriptions(); renderSinks(); renderEvents(); renderChart(); }

    const source = new EventSource('events');
    source.onopen = () => { const s = document.getElementById('state'); s.textContent = 'live'; s.className = 'live'; };
    source.onerror = () => { const s = document.getElementById('state'); s.textContent = 'reconnecting…'; s.className = 'down'; };
    source.addEventListener('snapshot', m => {
      const s = JSON.parse(m.data);
      model.skew = Date.parse(s.now) - Date.now();
      model.through = Number(s.lastEventId);
      model.sinks = new Map();
      applyStatus(s);
      for (const a of s.sinkActivity ?? []) Object.assign(sink(a.name), a);
      const known = new Set((s.events ?? []).map(e => e.id));
      model.events = (s.events ?? []).concat(model.events.filter(e => !known.has(e.id))).slice(0, 100);
      const first = Math.floor(Date.parse(s.chart.firstMinute) / 60000);
      model.chart = { notifications: s.chart.notifications, deliveries: s.chart.deliveries, failures: s.chart.failures, last: first + MINUTES - 1 };
      renderAll();
    });
    source.addEventListener('routed', m => {
      const e = JSON.parse(m.data);
      if (!e.replayed && seen(m)) return;
      e.outcomes = {};
      e.sinks = e.sinks ?? [];
      model.events = [e].concat(model.events.filter(x => x.id !== e.id)).slice(0, 100);
      if (!e.replayed) count('notifications');
      renderEvents(); renderChart();
    });
    source.addEventListener('delivery', m => {
      if (seen(m)) return;
      const d = JSON.parse(m.data);
      const e = model.events.find(x => x.id === d.event);
      if (e) e.outcomes[d.sink] = d;
      const s = sink(d.sink);
      if (d.outcome === 'success') { s.delivered += 1; count('deliveries'); }
      else { s.failures += 1; s.lastError = d.error ?? ''; s.lastErrorAt = d.at; count('failures'); }
      renderEvents(); renderSinks(); renderChart();
    });
    source.addEventListener('subscription', m => {
      if (seen(m)) return;
      const x = JSON.parse(m.data);
      const found = model.subscriptions.find(s => s.name === x.name);
      if (found) {
        if (x.change === 'removed') { delete found.id; delete found.expires; }
        else { found.id = x.id; found.expires = x.expires; }
      } else if (x.change !== 'removed') {
        model.subscriptions.push({ name: x.name, id: x.id, expires: x.expires, managed: true });
      }
      renderSubscriptions();
    });
    source.addEventListener('status', m => { applyStatus(JSON.parse(m.data)); renderSubscriptions(); renderSinks(); });
    // Only the countdowns and the chart's time axis move by themselves; nothing is fetched.
    setInterval(() => { renderSubscriptions(); renderChart(); }, 1000);
    </script>
    </body>
    </html>
    """#

    /// The page `GET /` answers (with 401) when `server.admin.token` is set and the browser has no
    /// session yet: a form that POSTs the token to `/login`. `message` is fixed text, never input.
    static func signIn(message: String?) -> String {
        let note = message.map { #"<p class="bad">\#($0)</p>"# } ?? ""
        return #"""
            <!doctype html>
            <html lang="en">
            <head><meta charset="utf-8"><title>graph-bridge: sign in</title>
            <style>body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; } .bad { color: #b00020; } input { font: inherit; }</style></head>
            <body>
            <h1>graph-bridge</h1>
            <p>The admin listener needs its token (<code>server.admin.token</code>).</p>
            \#(note)
            <form method="post" action="login">
            <input type="password" name="token" id="token" autocomplete="current-password" autofocus required>
            <button type="submit" id="sign-in">Sign in</button>
            </form>
            </body>
            </html>
            """#
    }
}
