# The claim page, served by the charger itself: one HTML file, one script, one style sheet, all
# in the firmware (no CDN, nothing fetched from elsewhere; the Content-Security-Policy header
# forbids it anyway). Text from the charger is only ever set with textContent.

_HTML = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Claim your charger</title><link rel="stylesheet" href="/app.css"></head>
<body><main>
<h1>Claim your charger</h1>
<p id="who" class="muted">Charger</p>
<form id="login">
<label>Connection password <small>(from the label)</small>
<input id="password" type="password" autocomplete="off" autocapitalize="off" required></label>
<button id="login-btn" type="submit">Connect</button>
</form>
<form id="claim" hidden>
<label>Charger name <input id="name" maxlength="32" required></label>
<label>Home Wi-Fi <select id="wifi_ssid_pick"></select></label>
<label id="ssid_row" hidden>Network name <input id="wifi_ssid" maxlength="32"></label>
<label>Wi-Fi password <input id="wifi_password" type="password" maxlength="64"
 autocomplete="off"></label>
<details><summary>Cloud (CSMS)</summary>
<label>CSMS URL <input id="csms_url" placeholder="wss://csms.example.com/ocpp"></label>
<label>Charge point id <input id="cp_id" maxlength="48"></label>
<label>Security profile <select id="security_profile">
<option value="0">0: none</option><option value="1">1: password</option>
<option value="2" selected>2: TLS + password</option></select></label>
<label id="key_row">AuthorizationKey <input id="auth_key" type="password"
 autocomplete="off" maxlength="40"></label>
<label id="ca_row">CA certificate (PEM) <textarea id="ca_pem" rows="4"></textarea></label>
</details>
<details><summary>Home automation (MQTT, optional)</summary>
<label>Broker URL <input id="mqtt_url" placeholder="mqtt://192.168.1.10:1883"></label>
<label>Broker user <input id="mqtt_user" autocomplete="off" maxlength="64"></label>
<label>Broker password <input id="mqtt_password" type="password" autocomplete="off"
 maxlength="64"></label>
<label>Broker CA (PEM, for mqtts://) <textarea id="mqtt_ca_pem" rows="4"></textarea></label>
</details>
<button id="claim-btn" type="submit">Claim</button>
</form>
<form id="fw" hidden><details><summary>Firmware update</summary>
<label>Signed bundle (.fw) <input id="fw_file" type="file" accept=".fw" required></label>
<button id="fw-btn" type="submit">Install</button>
<p id="fw_msg" role="status"></p></details></form>
<p id="msg" role="status"></p>
</main><script src="/app.js"></script></body></html>
"""

_JS = b"""'use strict';
var tok = null, $ = function (i) { return document.getElementById(i); };
function say(t, cls) {
  var m = $('msg'); m.textContent = t; m.className = cls || '';
  if (t) m.scrollIntoView({block: 'nearest'});
}
function api(method, path, body) {
  var h = {};
  if (tok) h.Authorization = 'Bearer ' + tok;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  return fetch(path, {method: method, headers: h, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body)})
    .then(function (r) { return r.json().catch(function () { return {}; })
      .then(function (d) { d._status = r.status; return d; }); });
}
function lost() { say('The charger did not answer: are you still on its Wi-Fi?', 'bad'); }
function relogin(d) {
  tok = null; $('claim').hidden = true; $('login').hidden = false;
  say(d.error || 'Log in again.', 'bad');
}
function field(d) {
  var f = d.field && $(d.field);
  if (f && f.id === 'wifi_ssid' && $('ssid_row').hidden) f = $('wifi_ssid_pick');
  if (!f) return;
  var box = f.closest('details');
  if (box) box.open = true;
  f.setAttribute('aria-invalid', 'true'); f.focus();
}
api('GET', '/api/identity').then(function (d) {
  $('who').textContent = (d.model || 'Charger') + ' ' + (d.cp_id || '') +
    (d.claimed ? ' (already claimed: a claim for another cloud erases what the old one' +
     ' left, its cards included)' : '');
  // (claimed: empty keeps the id in use, which may not be the label's)
  if (d.claimed) $('cp_id').placeholder = 'unchanged'; else $('cp_id').value = d.cp_id || '';
}).catch(lost);
$('login').addEventListener('submit', function (e) {
  e.preventDefault();
  $('login-btn').disabled = true;
  api('POST', '/api/login', {password: $('password').value}).then(function (d) {
    $('login-btn').disabled = false;
    if (d._status !== 200) { say(d.error || 'error ' + d._status, 'bad'); field(d); return; }
    tok = d.token; $('password').value = ''; $('login').hidden = true; $('claim').hidden = false;
    $('fw').hidden = false;
    say('');
    return api('GET', '/api/networks').then(function (n) {
      var s = $('wifi_ssid_pick');
      s.textContent = '';
      (n.networks || []).forEach(function (w) {
        var o = document.createElement('option'); o.value = w.ssid;
        o.textContent = w.ssid + (w.secure ? '' : ' (open)'); s.appendChild(o);
      });
      var o = document.createElement('option'); o.value = ''; o.textContent = 'Other...';
      s.appendChild(o); pick(); if (n.why) say(n.why);
    });
  }).catch(function () { $('login-btn').disabled = false; lost(); });
});
function pick() { $('ssid_row').hidden = $('wifi_ssid_pick').value !== ''; }
function prof() {
  var p = $('security_profile').value;
  $('key_row').hidden = p === '0'; $('ca_row').hidden = p !== '2';
}
$('wifi_ssid_pick').addEventListener('change', pick);
$('security_profile').addEventListener('change', prof); prof();
function poll(name) {
  api('GET', '/api/claim').then(function (d) {
    if (d._status === 401) { relogin(d); return; }
    if (d._status !== 200) { say(d.error || 'error ' + d._status, 'bad'); busy(false); return; }
    if (d.state === 'done') {
      $('claim').hidden = true;
      say(name + ' (' + d.cp_id + ') is claimed and going online. The charger closes this ' +
        'Wi-Fi now: you can rejoin your own.', 'ok');
      return;
    }
    if (d.state === 'failed') {
      say(d.message || d.error, 'bad'); busy(false);
      field({field: {wifi_wrong_password: 'wifi_password', wifi_not_found: 'wifi_ssid',
        csms_tls: 'ca_pem'}[d.error]});
      return;
    }
    say(d.state === 'checking_csms' ? 'Reaching the cloud...' : 'Joining your Wi-Fi...');
    setTimeout(function () { poll(name); }, 700);
  }).catch(function () { setTimeout(function () { poll(name); }, 1500); });
}
function busy(b) { $('claim-btn').disabled = b; }
$('claim').addEventListener('submit', function (e) {
  e.preventDefault();
  var p = +$('security_profile').value, b = {
    name: $('name').value, wifi_ssid: $('wifi_ssid_pick').value || $('wifi_ssid').value,
    wifi_password: $('wifi_password').value, csms_url: $('csms_url').value.trim(),
    cp_id: $('cp_id').value.trim(), security_profile: p};
  if (p > 0) b.auth_key = $('auth_key').value;
  if (p === 2) b.ca_pem = $('ca_pem').value;
  var mu = $('mqtt_url').value.trim();
  if (mu) {
    b.mqtt_url = mu;
    if ($('mqtt_user').value) b.mqtt_user = $('mqtt_user').value;
    if ($('mqtt_password').value) b.mqtt_password = $('mqtt_password').value;
    if (mu.indexOf('mqtts://') === 0) b.mqtt_ca_pem = $('mqtt_ca_pem').value;
  }
  document.querySelectorAll('[aria-invalid]').forEach(function (x) { x.removeAttribute('aria-invalid'); });
  busy(true); say('Sending...');
  api('POST', '/api/claim', b).then(function (d) {
    if (d._status === 202) { poll(b.name); return; }
    busy(false);
    if (d._status === 401) { relogin(d); return; }
    say(d.error || 'error ' + d._status, 'bad'); field(d);
  }).catch(function () { busy(false); lost(); });
});
function fwsay(t, cls) { var m = $('fw_msg'); m.textContent = t; m.className = cls || ''; }
var FW = {Downloaded: 'Checking the signature and every file...',
  Installing: 'Installing: the charger restarts when it is done...'};
function fwpoll(ver) {
  // While it installs, then while it restarts (no answer), then until it runs the new version.
  var next = function () { setTimeout(function () { fwpoll(ver); }, 700); };
  if (ver) {
    api('GET', '/api/identity').then(function (d) {
      if (d.firmware === ver) { fwsay('Version ' + ver + ' is running.', 'ok'); return; }
      next();
    }).catch(next);
    return;
  }
  api('GET', '/api/firmware').then(function (d) {
    if (d._status !== 200) { fwsay(d.error || 'error ' + d._status, 'bad'); return; }
    if (/Failed$/.test(d.status)) {
      fwsay('Not installed: ' + (d.why || d.status), 'bad'); $('fw-btn').disabled = false;
      return;
    }
    fwsay(FW[d.status] || d.status);
    if (d.phase === 'trial' || (d.status === 'Installing' && d.version)) { fwpoll(d.version); return; }
    next();
  }).catch(next);
}
$('fw').addEventListener('submit', function (e) {
  e.preventDefault();
  var f = $('fw_file').files[0];
  if (!f) return;
  $('fw-btn').disabled = true; fwsay('Sending ' + f.size + ' bytes...');
  fetch('/api/firmware', {method: 'PUT', body: f, cache: 'no-store', headers: {
    Authorization: 'Bearer ' + tok, 'Content-Type': 'application/octet-stream'}})
    .then(function (r) { return r.json().then(function (d) { d._status = r.status; return d; }); })
    .then(function (d) {
      if (d._status !== 202) { fwsay(d.error || 'error ' + d._status, 'bad');
        $('fw-btn').disabled = false; return; }
      fwpoll(null);
    }).catch(function () { $('fw-btn').disabled = false; lost(); });
});
"""

_CSS = b"""[hidden]{display:none!important}
body{font:16px/1.4 system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2733}
main{max-width:28rem;margin:0 auto;padding:1rem}h1{font-size:1.4rem}
label{display:block;margin:.8rem 0}input,select,textarea,button{display:block;width:100%;
box-sizing:border-box;font:inherit;padding:.6rem;margin-top:.25rem;border:1px solid #9aa5b1;
border-radius:.4rem;background:#fff}button{background:#0b6e4f;color:#fff;border:0;margin-top:1rem}
button:disabled{opacity:.5}[aria-invalid]{border-color:#c62828}.muted{color:#52606d}
.bad{color:#c62828}.ok{color:#0b6e4f}#msg{min-height:1.5em;font-weight:600}
summary{margin-top:1rem;padding:.4rem 0;cursor:pointer}
"""

ASSETS = {
    "/": ("text/html; charset=utf-8", _HTML),
    "/app.js": ("text/javascript; charset=utf-8", _JS),
    "/app.css": ("text/css; charset=utf-8", _CSS),
}
