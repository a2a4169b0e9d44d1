/* RQ Monitor admin pages: live views over SSE with a polling fallback, actions with the CSRF header.
   URLs come from data- attributes rendered by the server; tokens live only in HttpOnly cookies. */
(() => {
  'use strict';

  const ds = document.body.dataset;
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const integer = new Intl.NumberFormat('en-US');
  const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
  const STATE_DONE = ['completed', 'failed', 'canceled', 'stopped'];

  // --- formatting -----------------------------------------------------------------------------------
  const num = (value) => (value === null || value === undefined ? '—' : integer.format(value));
  const pct = (value) => (value === null || value === undefined ? '—' : `${value.toFixed(2)} %`);
  function duration(ms) {
    if (ms === null || ms === undefined || ms === '') return '—';
    ms = Number(ms);
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = Math.floor(ms / 1000);
    if (s < 60) return `${decimal.format(ms / 1000)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
    const h = Math.floor(m / 60);
    if (h < 24) return `${h} h ${String(m % 60).padStart(2, '0')} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }
  function when(iso) {
    if (!iso) return '—';
    const date = new Date(iso);
    const sameDay = date.toDateString() === new Date().toDateString();
    return sameDay ? date.toLocaleTimeString() : date.toLocaleString();
  }
  const pretty = (value) => (value === undefined ? '' : JSON.stringify(value, null, 2));

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ''));
    return node;
  }
  const queuePage = (queue) => ds.queuePage.replace('__QUEUE__', encodeURIComponent(queue));
  const jobPage = (queue, job) =>
    ds.jobPage.replace('__QUEUE__', encodeURIComponent(queue)).replace('__JOB__', encodeURIComponent(job));
  const retryUrl = (queue, job) =>
    ds.retryTemplate.replace('__QUEUE__', encodeURIComponent(queue)).replace('__JOB__', encodeURIComponent(job));
  const jobLink = (queue, job) => el('a', { href: jobPage(queue, job), class: 'mono', text: job.length > 14 ? `${job.slice(0, 12)}…` : job, title: job });

  function status(text, tone = '') {
    const node = $('#live-status');
    if (!node) return;
    node.textContent = text;
    node.className = `status ${tone}`;
  }

  // --- API calls: cookie session, CSRF header, silent renewal -------------------------------------
  function cookie(name) {
    const match = document.cookie.split('; ').find((part) => part.startsWith(`${name}=`));
    return match ? decodeURIComponent(match.slice(name.length + 1)) : '';
  }
  function toLogin() {
    window.location.assign(`${ds.loginUrl}?reason=expired&next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  async function renewSession() {
    const response = await fetch(ds.refreshUrl, {
      method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-TOKEN': cookie('csrf_refresh_token') },
    });
    return response.ok;
  }
  async function api(url, { method = 'GET', body } = {}, renewed = false) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers['X-CSRF-TOKEN'] = cookie('csrf_access_token');
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(url, {
      method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && !renewed) {
      if (await renewSession()) return api(url, { method, body }, true);
      toLogin();
      throw new Error('Your session has expired');
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error((data && data.error && data.error.message) || response.statusText);
      error.status = response.status;
      error.details = (data && data.error && data.error.details) || {};
      throw error;
    }
    return data;
  }

  // --- live: EventSource first, polling every 5 s when the stream fails, back to the stream when it returns
  class Live {
    constructor(streamUrl, poll, onData) {
      Object.assign(this, { streamUrl, poll, onData, source: null, pollTimer: null, probeTimer: null });
    }
    start() { this.open(); }
    open() {
      if (this.source) this.source.close();
      const source = new EventSource(this.streamUrl, { withCredentials: true });
      this.source = source;
      let received = false;
      source.onmessage = (event) => {
        received = true;
        if (this.pollTimer) this.stopPolling();
        status('Live — updates every 2 seconds.', 'ok');
        this.onData(JSON.parse(event.data));
      };
      source.onerror = () => {
        source.close();
        if (this.source !== source) return;
        this.source = null;
        if (received && !this.pollTimer) {
          // A stream that was live has ended (the access token expired, a web process restarted): renew the
          // session and reopen at once, without a polling phase.
          renewSession().catch(() => false).then(() => this.open());
          return;
        }
        // Refused (401, 5xx) or cut before any event: poll until a probe gets the stream back.
        this.startPolling();
      };
    }
    startPolling() {
      if (this.pollTimer) return;
      status('The live stream is unavailable — polling every 5 seconds.', 'warn');
      const tick = () => this.poll().then(this.onData).catch((error) => status(`Could not refresh: ${error.message}`, 'warn'));
      tick();
      this.pollTimer = setInterval(tick, 5000);
      // Try the stream again; renew the session first, as EventSource cannot (its access cookie may have expired).
      this.probeTimer = setInterval(() => renewSession().catch(() => false).then(() => this.open()), 15000);
    }
    stopPolling() {
      clearInterval(this.pollTimer);
      clearInterval(this.probeTimer);
      this.pollTimer = this.probeTimer = null;
    }
  }
  window.rqMonitor = { Live }; // lets tests and curious operators look at the live state

  // --- navigation badge: stuck jobs on every page ---------------------------------------------------
  const SEVERITIES = ['low', 'medium', 'high', 'critical'];
  // The stuck bands in minutes, from the server's configuration (STUCK_THRESHOLDS_MINUTES).
  const stuckThresholds = (ds.stuckThresholds || '').split(',').filter(Boolean).map(Number);
  const minutesText = (m) => (m >= 60 && m % 60 === 0 ? `${m / 60} h` : m >= 1 ? `${decimal.format(m)} min` : `${Math.round(m * 60)} s`);
  function showStuckBadge(summary) {
    const badge = $('#stuck-badge');
    if (!badge) return;
    badge.hidden = summary.total === 0;
    badge.textContent = num(summary.total);
    const worst = [...SEVERITIES].reverse().find((level) => summary.bySeverity[level] > 0);
    badge.className = `badge badge-count${worst ? ` sev-${worst}` : ''}`;
    badge.setAttribute('aria-label', `${summary.total} stuck jobs`);
  }
  function watchStuckBadge() {
    const refresh = () => api(ds.stuckSummaryUrl).then(showStuckBadge).catch(() => {});
    refresh();
    setInterval(refresh, 10000);
  }

  // --- pages ----------------------------------------------------------------------------------------
  function overviewPage() {
    const render = (metrics) => {
      for (const key of ['waiting', 'active', 'completed', 'failed', 'delayed']) $(`#total-${key}`).textContent = num(metrics.totals[key]);
      $('#success-rate').textContent = pct(metrics.successRate);
      $('#processing-rate').textContent = decimal.format(metrics.processingRate);
      $('#updated').textContent = when(metrics.timestamp);
      $('#updated').setAttribute('datetime', metrics.timestamp);
      const rows = metrics.queues.map((queue) => el('tr', { 'data-queue': queue.queueName },
        el('th', { scope: 'row' }, el('a', { href: queuePage(queue.queueName), text: queue.queueName }),
          queue.paused ? el('span', { class: 'badge badge-paused', text: 'Paused' }) : ''),
        ...['waiting', 'prioritized', 'active', 'completed', 'failed', 'delayed'].map((key) =>
          el('td', { class: `num${key === 'failed' && queue.failed ? ' bad' : ''}`, 'data-count': key, text: num(queue[key]) })),
        el('td', { class: 'num', text: pct(queue.successRate) }),
        el('td', { class: 'num', text: decimal.format(queue.processingRate || 0) })));
      $('#queues-body').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 9, class: 'muted', text: 'No queues yet.' }))]));
    };
    new Live(ds.liveUrl, () => api(ds.metricsUrl), render).start();
  }

  function queuePage_() {
    const queue = ds.queue;
    let state = 'waiting';
    let page = 1;
    let counts = {};
    const perPage = 25;

    async function loadJobs() {
      const url = `${ds.jobsUrl}?state=${state}&page=${page}&perPage=${perPage}`;
      const data = await api(url);
      const rows = data.jobs.map((job) => el('tr', {},
        el('td', {}, jobLink(queue, job.jobId)),
        el('td', { class: 'mono' }, job.dataError ? el('span', { class: 'bad', text: 'unreadable payload' }) : job.jobName),
        el('td', { text: when(job.timestamp) }), el('td', { text: when(job.finishedOn) }),
        el('td', { class: 'bad', text: job.failedReason || job.dataError || '' })));
      $('#jobs-body').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'muted', text: `No ${state} jobs.` }))]));
      const pages = Math.max(1, Math.ceil(data.total / perPage));
      $('#page-info').textContent = `Page ${num(page)} of ${num(pages)} · ${num(data.total)} ${state}`;
      $('#prev-page').disabled = page <= 1;
      $('#next-page').disabled = page >= pages;
    }
    function render(doc) {
      const previous = counts;
      counts = doc.queue;
      for (const key of ['waiting', 'prioritized', 'active', 'completed', 'failed', 'delayed']) $(`#count-${key}`).textContent = num(counts[key]);
      $('#paused-badge').hidden = !counts.paused;
      if ($('#pause-btn')) { $('#pause-btn').hidden = counts.paused; $('#resume-btn').hidden = !counts.paused; }
      $('#updated').textContent = when(doc.timestamp);
      const rows = (doc.activeJobs || []).map((job) => el('tr', {},
        el('td', {}, jobLink(queue, job.jobId)), el('td', { class: 'mono', text: job.jobName || '—' }),
        el('td', { class: 'num', text: duration(job.runningFor) }), el('td', { class: 'mono', text: job.workerName || '—' }),
        el('td', { class: 'num', text: num(job.attemptsMade) })));
      $('#active-body').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'Nothing is running.' }))]));
      if (previous[state] !== counts[state]) loadJobs().catch((error) => status(error.message, 'warn'));
    }
    async function poll() {
      const [metrics, active] = await Promise.all([api(ds.metricsUrl), api(`${ds.jobsUrl}?state=active&perPage=50`)]);
      const entry = metrics.queues.find((q) => q.queueName === queue) || {};
      const now = Date.now();
      return {
        timestamp: metrics.timestamp, queue: entry,
        activeJobs: active.jobs.map((job) => ({ ...job, runningFor: job.processedOn ? now - Date.parse(job.processedOn) : null })),
      };
    }
    for (const tab of $$('[role=tab][data-state]')) {
      tab.addEventListener('click', () => {
        state = tab.dataset.state;
        page = 1;
        $$('[role=tab][data-state]').forEach((t) => t.setAttribute('aria-selected', String(t === tab)));
        loadJobs().catch((error) => status(error.message, 'warn'));
      });
    }
    $('#prev-page').addEventListener('click', () => { page -= 1; loadJobs(); });
    $('#next-page').addEventListener('click', () => { page += 1; loadJobs(); });
    for (const [id, url] of [['#pause-btn', ds.pauseUrl], ['#resume-btn', ds.resumeUrl]]) {
      const button = $(id);
      if (!button) continue;
      button.addEventListener('click', async () => {
        try {
          const result = await api(url, { method: 'PATCH' });
          status(result.paused ? `Queue ${queue} is paused: running jobs finish, no new job starts.` : `Queue ${queue} resumed.`, 'ok');
          counts = { ...counts, paused: result.paused };
          $('#paused-badge').hidden = !result.paused;
          $('#pause-btn').hidden = result.paused;
          $('#resume-btn').hidden = !result.paused;
        } catch (error) { status(`Could not change the queue: ${error.message}`, 'warn'); }
      });
    }
    const dialog = $('#confirm-dialog');
    for (const button of $$('[data-clear]')) {
      button.addEventListener('click', () => {
        const type = button.dataset.clear;
        const completed = type === 'failed' ? 0 : counts.completed || 0;
        const failed = type === 'completed' ? 0 : counts.failed || 0;
        const parts = [completed && `${num(completed)} completed`, failed && `${num(failed)} failed`].filter(Boolean);
        $('#confirm-text').textContent = parts.length
          ? `Delete ${parts.join(' and ')} job${completed + failed === 1 ? '' : 's'} of queue ${queue}, with their data and results? Waiting, running and delayed jobs are not touched. This cannot be undone.`
          : `There are no ${type === 'all' ? 'finished' : type} jobs in queue ${queue} to delete.`;
        dialog.dataset.type = type;
        dialog.returnValue = '';
        dialog.showModal();
      });
    }
    dialog.addEventListener('close', async () => {
      if (dialog.returnValue !== 'confirm') return;
      try {
        const result = await api(`${ds.clearUrl}?type=${dialog.dataset.type}`, { method: 'DELETE' });
        status(`Removed ${num(result.removed.completed)} completed and ${num(result.removed.failed)} failed jobs.`, 'ok');
        loadJobs();
      } catch (error) { status(`Could not clear: ${error.message}`, 'warn'); }
    });
    loadJobs().catch((error) => status(error.message, 'warn'));
    new Live(ds.queueLiveUrl, poll, render).start();
  }

  function jobPage_() {
    let timer = null;
    function fact(label, value) { return [el('dt', { text: label }), el('dd', {}, value)]; }
    function render(job) {
      const badge = $('#job-state');
      badge.textContent = job.state;
      badge.className = `badge state-${job.state}`;
      const links = (id) => (id ? jobLink(job.queueName, id) : '—');
      $('#job-facts').replaceChildren(...[
        fact('Function', el('span', { class: 'mono', text: job.jobName || '—' })),
        fact('Description', job.description || '—'),
        fact('Enqueued', when(job.timestamp)), fact('Started', when(job.processedOn)), fact('Finished', when(job.finishedOn)),
        fact('Attempts', `${num(job.attemptsMade)} made · ${num(job.attemptsStarted)} started · ${num(job.opts && job.opts.attempts)} allowed`),
        fact('Worker', el('span', { class: 'mono', text: job.workerName || '—' })),
        fact('Retried from', links(job.retriedFrom)), fact('Retried as', links(job.retriedAs)),
      ].flat());
      $('#job-data').textContent = job.dataError ? job.dataError : pretty(job.data);
      $('#job-opts').textContent = pretty(job.opts);
      $('#job-result').textContent = job.returnValue === null || job.returnValue === undefined ? '—' : pretty(job.returnValue);
      $('#job-error').textContent = job.failedReason || 'No error.';
      $('#job-error').className = job.failedReason ? 'error-text' : 'muted'; // red only for a real error
      $('#job-traces').replaceChildren(...(job.stacktrace || []).map((trace, index) =>
        el('details', { open: index === job.stacktrace.length - 1 },
          el('summary', { text: `Attempt ${index + 1} of ${job.stacktrace.length}` }), el('pre', { class: 'code', text: trace }))));
    }
    async function load() {
      try {
        const job = await api(ds.jobUrl);
        render(job);
        timer = setTimeout(load, STATE_DONE.includes(job.state) ? 10000 : 2000);
      } catch (error) {
        status(error.status === 404 ? 'This job no longer exists (it may have expired or been removed).' : error.message, 'warn');
        if (error.status !== 404) timer = setTimeout(load, 5000);
      }
    }
    load();
    const form = $('#retry-form');
    if (!form) return;
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      $$('.field-error', form).forEach((node) => { node.textContent = ''; });
      $('#retry-error').hidden = true;
      const body = {};
      const value = (id) => $(id).value.trim();
      if (value('#retry-priority') !== '') body.priority = Number(value('#retry-priority'));
      if (value('#retry-attempts') !== '') body.attempts = Number(value('#retry-attempts'));
      if (value('#retry-backoff-type') !== '' || value('#retry-backoff-delay') !== '') {
        body.backoff = { type: value('#retry-backoff-type') || 'fixed', delay: Number(value('#retry-backoff-delay') || 0) };
      }
      if (value('#retry-overrides') !== '') {
        try {
          body.dataOverrides = JSON.parse(value('#retry-overrides'));
          if (typeof body.dataOverrides !== 'object' || body.dataOverrides === null || Array.isArray(body.dataOverrides)) throw new Error('not an object');
        } catch (error) {
          $('[data-field="dataOverrides"]', form).textContent = 'Enter a JSON object, for example {"customParam": "newValue"}.';
          return;
        }
      }
      if ($('#retry-remove').checked) body.removeOriginal = true;
      try {
        const result = await api(ds.retryUrl, { method: 'POST', body });
        clearTimeout(timer);
        window.location.assign(jobPage(ds.queue, result.newJobId));
      } catch (error) {
        const unplaced = [];
        for (const [field, message] of Object.entries(error.details || {})) {
          const slot = $(`[data-field="${field}"]`, form) || $(`[data-field="${field.split('.')[0]}"]`, form);
          if (slot) slot.textContent = message; else unplaced.push(`${field}: ${message}`);
        }
        $('#retry-error').textContent = [error.message, ...unplaced].join(' — ');
        $('#retry-error').hidden = false;
      }
    });
  }

  function alertsPage() {
    const canAct = ['admin', 'super_admin'].includes(ds.role);
    async function retry(alert, button) {
      button.disabled = true;
      try {
        const result = await api(retryUrl(alert.queueName, alert.jobId), { method: 'POST', body: {} });
        status(`Job ${alert.jobId} retried as ${result.newJobId}.`, 'ok');
      } catch (error) { status(`Could not retry: ${error.message}`, 'warn'); button.disabled = false; }
    }
    async function stop(alert, button) {
      button.disabled = true;
      const url = ds.stopTemplate.replace('__QUEUE__', encodeURIComponent(alert.queueName)).replace('__JOB__', encodeURIComponent(alert.jobId));
      try {
        const result = await api(url, { method: 'POST', body: {} });
        status(result.stopped ? `Job ${alert.jobId} stopped; it can be retried from the failed jobs.` : `Stop sent to job ${alert.jobId}; it has not ended yet.`, 'ok');
        refresh();
      } catch (error) { status(`Could not stop: ${error.message}`, 'warn'); button.disabled = false; }
    }
    function render(alerts, summary) {
      showStuckBadge(summary);
      $('#updated').textContent = when(new Date().toISOString());
      const counts = SEVERITIES.map((level) => `${num(summary.bySeverity[level])} ${level}`).join(', ');
      $('#stuck-counts').textContent = summary.total
        ? `Showing ${num(alerts.length)} of ${num(summary.total)} stuck runs (${counts}).` : '';
      const rows = alerts.map((alert) => {
        const actions = el('td', { class: 'row-actions' });
        if (canAct) {
          const button = el('button', { type: 'button', text: 'Retry' });
          button.addEventListener('click', () => retry(alert, button));
          const stopButton = el('button', { type: 'button', text: 'Stop', title: 'Stop this run now (it ends stopped, retryable)' });
          stopButton.addEventListener('click', () => stop(alert, stopButton));
          actions.append(stopButton, button, el('a', { href: `${jobPage(alert.queueName, alert.jobId)}#retry-title`, text: 'Retry with overrides' }));
        } else actions.append(el('a', { href: jobPage(alert.queueName, alert.jobId), text: 'Open' }));
        return el('tr', { class: `row-sev row-sev-${alert.severity}`, 'data-severity': alert.severity },
          el('td', {}, el('span', { class: `sev sev-${alert.severity}`, text: alert.severity })),
          el('td', {}, jobLink(alert.queueName, alert.jobId)),
          el('td', {}, el('a', { href: queuePage(alert.queueName), text: alert.queueName })),
          el('td', { class: 'mono', text: alert.jobName || '—' }),
          el('td', { class: 'num', text: duration(alert.stuckDuration) }), el('td', { text: when(alert.startedAt) }),
          el('td', { class: 'num', text: num(alert.attemptsMade) }), actions);
      });
      $('#alerts-body').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 8, class: 'muted', text: `No stuck jobs. All runs started less than ${minutesText(stuckThresholds[0])} ago.` }))]));
    }
    const refresh = () => Promise.all([api(ds.stuckUrl), api(ds.stuckSummaryUrl)])
      .then(([alerts, summary]) => { status('Updates every 5 seconds.', 'ok'); render(alerts, summary); })
      .catch((error) => status(`Could not refresh: ${error.message}`, 'warn'));
    refresh();
    setInterval(refresh, 5000);
  }

  function trendsPage() {
    $$('.fmt-int').forEach((node) => { node.textContent = num(Number(node.textContent)); });
    $$('.fmt-ms').forEach((node) => { node.textContent = node.textContent.trim() === '' ? '—' : duration(Number(node.textContent)); });
  }

  function loginPage() {
    const form = $('#login-form');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const error = $('#login-error');
      error.hidden = true;
      const username = $('#username').value.trim();
      const password = $('#password').value;
      if (!username || !password) { error.textContent = 'Enter your username and password.'; error.hidden = false; return; }
      const response = await fetch(ds.loginPost, {
        method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ username, password }),
      });
      if (response.ok) { window.location.assign(ds.next); return; }
      const body = response.status === 429 ? await response.json().catch(() => null) : null;
      error.textContent = response.status === 429 ? `${(body && body.error && body.error.message) || 'Too many failed sign-ins; try again later'}.`
        : response.status === 401 ? 'Wrong username or password.' : 'Could not sign in. Try again.';
      error.hidden = false;
    });
  }

  function common() {
    const logout = $('#logout');
    if (logout) {
      logout.addEventListener('click', async () => {
        try { const result = await api(ds.logoutUrl, { method: 'POST' }); window.location.assign(result.next); } catch (e) { toLogin(); }
      });
    }
    if (ds.role && ds.page !== 'login' && ds.page !== 'alerts') watchStuckBadge();
  }

  const pages = { overview: overviewPage, queue: queuePage_, job: jobPage_, alerts: alertsPage, trends: trendsPage, login: loginPage };
  common();
  (pages[ds.page] || (() => {}))();
})();
