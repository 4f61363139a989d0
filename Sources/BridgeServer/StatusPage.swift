/// `GET /`: one self-contained page that polls `/status.json` every two seconds. Everything it
/// shows is inserted as text (never as HTML), so event fields cannot inject markup.
enum StatusPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <title>graph-bridge</title>
    <style>
      body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
      h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 1.6em; }
      table { border-collapse: collapse; width: 100%; }
      th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #ddd; font-variant-numeric: tabular-nums; }
      th { background: #f4f4f4; }
      .bad { color: #b00020; font-weight: 600; } .muted { color: #777; }
      code { font-size: 0.95em; }
    </style>
    </head>
    <body>
    <h1>graph-bridge <span id="updated" class="muted"></span></h1>
    <h2>Subscriptions</h2>
    <table id="subscriptions"><thead><tr><th>name</th><th>Graph id</th><th>resource</th><th>expires</th><th>last notification</th></tr></thead><tbody></tbody></table>
    <h2>Sinks</h2>
    <p id="unrouted" class="muted"></p>
    <table id="sinks"><thead><tr><th>sink</th><th>queued</th><th>dead letters</th></tr></thead><tbody></tbody></table>
    <h2>Recent events</h2>
    <table id="events"><thead><tr><th>received</th><th>subscription</th><th>change</th><th>resource</th><th>id</th></tr></thead><tbody></tbody></table>
    <script>
    function fill(id, rows) {
      const body = document.querySelector('#' + id + ' tbody');
      body.replaceChildren(...rows.map(cells => {
        const tr = document.createElement('tr');
        for (const cell of cells) {
          const td = document.createElement('td');
          td.textContent = cell.text ?? cell;
          if (cell.bad) td.className = 'bad';
          tr.appendChild(td);
        }
        return tr;
      }));
    }
    async function refresh() {
      try {
        const s = await (await fetch('status.json', {cache: 'no-store'})).json();
        const now = Date.now();
        fill('subscriptions', s.subscriptions.map(x => [x.name, x.id ?? '(being created)', x.resource ?? '',
          x.expires ? {text: x.expires, bad: Date.parse(x.expires) - now < 3600e3} : '-', x.lastNotification ?? 'never']));
        document.getElementById('unrouted').textContent = 'events waiting to be routed: ' + s.unrouted;
        fill('sinks', s.sinks.map(x => [x.name, x.queued, {text: x.deadLetters, bad: x.deadLetters > 0}]));
        fill('events', s.recentEvents.map(e => [e.receivedAt, e.subscription?.name ?? '', e.changeType ?? ('lifecycle: ' + e.lifecycleEvent),
          e.resource ?? '', e.id]));
        document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      } catch (e) {
        document.getElementById('updated').textContent = 'not reachable: ' + e;
      }
    }
    refresh(); setInterval(refresh, 2000);
    </script>
    </body>
    </html>
    """#
}
