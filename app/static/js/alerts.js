/* Health and alert rules (ALERTS.md): the navigation's health badge on every page, live from the `alerts` stream
   (polling /api/v1/health when the stream fails), and the Alerts page's Rules tab (firing alerts with since, value
   and threshold; recent resolutions). Built on app.js's helpers (window.RQMon). */
(() => {
  'use strict';

  const { $, $$, el, api, relative, fill, num, VOCABULARY } = window.RQMon;
  const ds = document.body.dataset;
  const HEALTH = VOCABULARY.healthStatuses; // best first: healthy, degraded, critical
  const WORST = HEALTH[HEALTH.length - 1];
  const STATUS_TEXT = Object.fromEntries(HEALTH.map((word) => [word, word[0].toUpperCase() + word.slice(1)]));
  const CRITICAL = VOCABULARY.alertSeverities[VOCABULARY.alertSeverities.length - 1];
  const REFRESH_MS = 5000;

  function showHealth(summary) {
    const badge = $('#health-badge');
    if (!badge) return;
    const status = summary.status in STATUS_TEXT ? summary.status : WORST;
    badge.dataset.status = status;
    badge.className = `health health-${status}`;
    $('#health-text').textContent = STATUS_TEXT[status];
    const count = $('#alerts-firing-count');
    count.hidden = !summary.firing;
    count.textContent = num(summary.firing);
    const words = summary.firing === 1 ? '1 alert firing' : `${num(summary.firing)} alerts firing`;
    badge.setAttribute('aria-label', `Health: ${STATUS_TEXT[status]}, ${words}`);
    badge.title = summary.message || words;
  }

  // /api/v1/health answers 503 with a critical document while Redis is away: read the body whatever the status.
  async function pollHealth() {
    const response = await fetch(ds.healthUrl, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    const health = await response.json();
    const alerts = health.alerts || { critical: 0, warning: 0 };
    showHealth({ status: health.status, firing: alerts.critical + alerts.warning, message: health.message });
  }

  function watchHealth() {
    let pollTimer = null;
    const startPolling = () => {
      if (pollTimer) return;
      const tick = () => pollHealth().catch(() => showHealth({ status: WORST, firing: 0, message: 'The monitor does not answer' }));
      tick();
      pollTimer = setInterval(tick, 10000);
    };
    const open = () => {
      const source = new EventSource(ds.alertsLiveUrl, { withCredentials: true });
      source.onmessage = (event) => {
        if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
        showHealth(JSON.parse(event.data));
      };
      source.onerror = () => { source.close(); startPolling(); setTimeout(open, 15000); };
    };
    open();
  }

  const subjectText = (alert) => `${alert.subject.kind} ${alert.subject.name}`;
  const valueText = (value) => (Number.isInteger(value) ? num(value) : String(Math.round(value * 100) / 100));
  const sevClass = (severity) => (severity === CRITICAL ? 'critical' : 'medium'); // the stuck bands' colours
  const sev = (severity) => el('span', { class: `sev sev-${sevClass(severity)}`, text: severity });

  function renderRules(answer) {
    const firing = answer.firing.map((alert) => el('tr', { 'data-alert': alert.id, 'data-severity': alert.severity, class: `row-sev row-sev-${sevClass(alert.severity)}` },
      el('td', {}, sev(alert.severity)),
      el('td', { class: 'mono', text: alert.rule }),
      el('td', { text: subjectText(alert) }),
      el('td', { class: 'num', text: valueText(alert.value) }),
      el('td', { class: 'num', text: valueText(alert.threshold) }),
      el('td', {}, relative(alert.since)),
      el('td', { text: alert.message })));
    fill($('#rules-firing-body'), firing, 'No alert is firing.', 7);
    const recent = answer.recent.slice(0, 20).map((alert) => el('tr', { 'data-alert': alert.id },
      el('td', {}, sev(alert.severity)),
      el('td', { class: 'mono', text: alert.rule }),
      el('td', { text: subjectText(alert) }),
      el('td', {}, relative(alert.since)),
      el('td', {}, relative(alert.resolved_at)),
      el('td', { text: alert.message })));
    fill($('#rules-recent-body'), recent, 'Nothing resolved recently.', 6);
    $('#rules-count').textContent = String(answer.firing.length);
  }

  function rulesTab() {
    const tabs = $$('[role="tab"]');
    const select = (id) => {
      for (const tab of tabs) {
        const selected = tab.id === id;
        tab.setAttribute('aria-selected', String(selected));
        $(`#${tab.getAttribute('aria-controls')}`).hidden = !selected;
      }
    };
    for (const tab of tabs) {
      tab.addEventListener('click', () => {
        select(tab.id);
        history.replaceState(null, '', tab.id === 'tab-rules' ? '#rules' : '#stuck');
      });
    }
    if (location.hash === '#rules') select('tab-rules');
    const refresh = () => api(ds.alertsUrl).then(renderRules).catch(() => {});
    refresh();
    setInterval(refresh, REFRESH_MS);
  }

  if (ds.role && ds.alertsLiveUrl) watchHealth();
  if (ds.page === 'alerts' && $('#tab-rules')) rulesTab();
})();
