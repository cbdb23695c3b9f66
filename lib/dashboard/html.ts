/**
 * The dashboard page: static, public HTML (it holds no data). Its script asks for the admin token, keeps it in
 * sessionStorage and reads GET /v1/dashboard with it. Script and styles are separate files so that the page's CSP
 * allows no inline code at all.
 */
export const dashboardHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>spendgate dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<header class="top">
  <h1>spendgate</h1>
  <span id="status" role="status" aria-live="polite"></span>
  <span class="spacer"></span>
  <button id="refresh" type="button" hidden>Refresh</button>
  <button id="sign-out" type="button" hidden>Forget token</button>
</header>

<form id="sign-in" class="sign-in" hidden>
  <h2>Admin token</h2>
  <p>The dashboard reads <code>GET /v1/dashboard</code> with the <code>admin</code> token. It is kept in this tab only
  (sessionStorage) and sent to this server alone.</p>
  <label for="token">Token</label>
  <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required>
  <button type="submit">Show the dashboard</button>
  <p id="sign-in-error" class="error" role="alert"></p>
</form>

<main id="board" hidden>
  <section class="cards" aria-label="Totals">
    <div class="card"><h2>Settled spend</h2><p class="big" id="spend-total"></p><p class="sub" id="spend-hours"></p></div>
    <div class="card"><h2>Holds in flight</h2><p class="big" id="holds-count"></p><p class="sub" id="holds-amount"></p></div>
    <div class="card"><h2>Refusals, 24 h</h2><p class="big" id="refusals-total"></p><p class="sub" id="refusals-types"></p></div>
    <div class="card"><h2>Scopes</h2><p class="big" id="scope-count"></p><p class="sub">named or limited</p></div>
    <div class="card"><h2>Webhook outbox</h2><p class="big" id="undelivered"></p><p class="sub" id="webhook-state"></p></div>
  </section>

  <section class="panel">
    <h2>Spend per hour <span class="note">settled cost by settle time, UTC</span></h2>
    <svg id="chart" role="img" aria-label="Settled spend per hour"></svg>
  </section>

  <section class="panel">
    <h2>Scopes by spend <span class="note">current budget period; dark is spent, light is held</span></h2>
    <table id="scopes">
      <thead><tr><th>scope</th><th class="num">spend</th><th class="num">reserved</th><th class="num">max budget</th>
        <th class="util-head">utilization</th><th>period</th><th>resets</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>

  <div class="columns">
    <section class="panel">
      <h2>Holds in flight <span class="note">oldest first</span></h2>
      <table id="holds">
        <thead><tr><th>reservation</th><th>model</th><th>scopes</th><th class="num">held</th><th>age</th><th>expires</th></tr></thead>
        <tbody></tbody>
      </table>
    </section>
    <section class="panel">
      <h2>Refusals <span class="note">last 24 hours</span></h2>
      <ul id="refusal-types" class="chips"></ul>
      <table id="refusals">
        <thead><tr><th>when</th><th>reason</th><th>scope</th></tr></thead>
        <tbody></tbody>
      </table>
    </section>
  </div>

  <section class="panel">
    <h2>Recent events <span class="note">budget thresholds and refusals; delivered by webhook when one is set</span></h2>
    <table id="events">
      <thead><tr><th>when</th><th>event</th><th>scope</th><th>detail</th><th>delivery</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
</body>
</html>
`;
