/* RQ Monitor admin pages: live views over SSE with a polling fallback, actions with the CSRF header.
   URLs come from data- attributes rendered by the server; tokens live only in HttpOnly cookies. */
(() => {
  'use strict';

  const ds = document.body.dataset;
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const integer = new Intl.NumberFormat('en-US');
  const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
  // The server's words and stuck bands (app/domain/states.py, STUCK_THRESHOLDS_MINUTES): base.html's data-vocabulary.
  const VOCABULARY = JSON.parse(ds.vocabulary);
  const STATES = VOCABULARY.states; // { WAITING: 'waiting', ACTIVE: 'active', … }
  const STATE_DONE = VOCABULARY.finishedStates;

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
  function roughly(ms) {
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s} s`;
    const m = Math.round(s / 60);
    if (m < 60) return `${m} min`;
    const h = Math.floor(m / 60);
    if (h < 24) return `${h} h ${String(m % 60).padStart(2, '0')} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }
  const relativeText = (iso) => {
    const ms = Date.parse(iso) - Date.now();
    return ms >= 0 ? `in ${roughly(ms)}` : `${roughly(-ms)} ago`;
  };
  function relative(iso) { // "in 4 min" / "4 min ago", the exact time in the title; kept current by common()
    if (!iso) return '—';
    return el('time', { class: 'relative', datetime: iso, title: when(iso), text: relativeText(iso) });
  }
  const FAILED_STATES = VOCABULARY.failedStates;

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
  const jobLink = (queue, job) => el('a', { href: jobPage(queue, job), class: 'mono id', text: job.length > 14 ? `${job.slice(0, 12)}…` : job, title: job });
  const fullJobLink = (queue, job) => el('a', { href: jobPage(queue, job), class: 'mono', text: job });
  const jobApiUrl = (queue, job) =>
    ds.jobApiTemplate.replace('__QUEUE__', encodeURIComponent(queue)).replace('__JOB__', encodeURIComponent(job));
  function breakable(text, className = 'mono') { // dotted names and ids wrap at . _ : - / only, never mid-word
    const node = el('span', { class: className });
    String(text ?? '—').split(/(?<=[._:/-])/).forEach((part, index) => {
      if (index) node.append(el('wbr'));
      node.append(part);
    });
    return node;
  }
  const retriedAs = (queue, copy) => el('span', { class: 'retried-as' }, 'retried as ', jobLink(queue, copy));
  function fill(tbody, rows, empty, columns) {
    // Each cell is labelled with its column's heading: narrow screens show rows as cards (app.css).
    const headings = $$('thead th', tbody.closest('table')).map((th) => th.textContent.trim());
    for (const row of rows) Array.from(row.children).forEach((cell, index) => cell.setAttribute('data-label', headings[index] || ''));
    tbody.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: columns, class: 'muted', text: empty }))]));
  }

  function status(text, tone = '') {
    const node = $('#live-status');
    if (!node) return;
    node.textContent = text;
    node.className = `status ${tone}`;
  }
  // What an action did stays in its own region until dismissed or the next action (the live status line above
  // is rewritten on every update).
  function notify(tone, ...parts) {
    const box = $('#action-message');
    $('#action-text').replaceChildren(...parts);
    box.className = `flash ${tone}`;
    box.hidden = false;
  }
  function confirmAction(title, text, ok) {
    const dialog = $('#action-dialog');
    $('#action-dialog-title').textContent = title;
    $('#action-dialog-text').replaceChildren(...text.map((part) => (typeof part === 'string' ? el('p', { text: part }) : part)));
    $('#action-dialog-ok').textContent = ok;
    dialog.returnValue = '';
    dialog.showModal();
    return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true }));
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
      error.code = data && data.error && data.error.code;
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
  const SEVERITIES = VOCABULARY.severities;
  const stuckThresholds = VOCABULARY.stuckThresholdsMinutes; // where each band starts, in minutes
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
      for (const node of $$('[id^="total-"]')) node.textContent = num(metrics.totals[node.id.slice('total-'.length)]);
      $('#success-rate').textContent = pct(metrics.successRate);
      $('#processing-rate').textContent = decimal.format(metrics.processingRate);
      $('#updated').textContent = when(metrics.timestamp);
      $('#updated').setAttribute('datetime', metrics.timestamp);
      const rows = metrics.queues.map((queue) => el('tr', { 'data-queue': queue.queueName },
        el('th', { scope: 'row' }, el('span', {}, el('a', { href: queuePage(queue.queueName) }, breakable(queue.queueName, 'name')),
          queue.paused ? el('span', { class: 'badge badge-paused', text: 'Paused' }) : '')),
        ...VOCABULARY.browsableStates.map((key) =>
          el('td', { class: `num${key === STATES.FAILED && queue.failed ? ' bad' : ''}`, 'data-count': key, text: num(queue[key]) })),
        el('td', { class: 'num', text: pct(queue.successRate) }),
        el('td', { class: 'num', text: decimal.format(queue.processingRate || 0) })));
      fill($('#queues-body'), rows, 'No queues yet.', 9);
    };
    new Live(ds.liveUrl, () => api(ds.metricsUrl), render).start();
  }

  function queuePage_() {
    const queue = ds.queue;
    let state = VOCABULARY.browsableStates[0];
    let page = 1;
    let counts = {};
    const perPage = 25;

    async function loadJobs() {
      const url = `${ds.jobsUrl}?state=${state}&page=${page}&perPage=${perPage}`;
      const data = await api(url);
      const column = { delayed: ['Runs', (job) => relative(job.delayUntil)], active: ['Started', (job) => when(job.processedOn)] }[state]
        || ['Finished', (job) => when(job.finishedOn)];
      $('#when-column').textContent = column[0];
      const rows = data.jobs.map((job) => {
        const failed = FAILED_STATES.includes(job.state);
        const reEnqueued = job.enqueuedAt && Date.parse(job.enqueuedAt) - Date.parse(job.timestamp) > 1000;
        return el('tr', { 'data-job': job.jobId },
          el('td', {}, jobLink(queue, job.jobId), job.retriedAs ? retriedAs(queue, job.retriedAs) : ''),
          el('td', {}, job.dataError ? el('span', { class: 'bad', text: 'unreadable payload' }) : breakable(job.jobName)),
          el('td', {}, when(job.timestamp), reEnqueued ? el('span', { class: 'muted again', text: `last enqueued ${when(job.enqueuedAt)}` }) : ''),
          el('td', {}, column[1](job)),
          // an earlier attempt's error on a job that later completed is history, not the failure
          el('td', { class: failed || job.dataError ? 'bad' : 'muted' },
            job.dataError || (job.failedReason ? (failed ? job.failedReason : `earlier attempt: ${job.failedReason}`) : '')));
      });
      fill($('#jobs-body'), rows, `No ${state} jobs.`, 5);
      const pages = Math.max(1, Math.ceil(data.total / perPage));
      $('#page-info').textContent = `Page ${num(page)} of ${num(pages)} · ${num(data.total)} ${state}`;
      $('#prev-page').disabled = page <= 1;
      $('#next-page').disabled = page >= pages;
    }
    function render(doc) {
      const previous = counts;
      counts = doc.queue;
      for (const key of VOCABULARY.browsableStates) $(`#count-${key}`).textContent = num(counts[key]);
      $('#paused-badge').hidden = !counts.paused;
      if ($('#pause-btn')) { $('#pause-btn').hidden = counts.paused; $('#resume-btn').hidden = !counts.paused; }
      $('#updated').textContent = when(doc.timestamp);
      const rows = (doc.activeJobs || []).map((job) => el('tr', {},
        el('td', {}, jobLink(queue, job.jobId)), el('td', {}, breakable(job.jobName)),
        el('td', { class: 'num', text: duration(job.runningFor) }), el('td', {}, breakable(job.workerName)),
        el('td', { class: 'num', text: num(job.attemptsMade) })));
      fill($('#active-body'), rows, 'Nothing is running.', 5);
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
          notify('ok', result.paused ? `Queue ${queue} is paused: running jobs finish, no new job starts.` : `Queue ${queue} resumed.`);
          counts = { ...counts, paused: result.paused };
          $('#paused-badge').hidden = !result.paused;
          $('#pause-btn').hidden = result.paused;
          $('#resume-btn').hidden = !result.paused;
        } catch (error) { notify('warn', `Could not change the queue: ${error.message}`); }
      });
    }
    const dialog = $('#confirm-dialog');
    for (const button of $$('[data-clear]')) {
      button.addEventListener('click', () => {
        const type = button.dataset.clear;
        const completed = type === STATES.FAILED ? 0 : counts[STATES.COMPLETED] || 0;
        const failed = type === STATES.COMPLETED ? 0 : counts[STATES.FAILED] || 0;
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
        notify('ok', `Removed ${num(result.removed.completed)} completed and ${num(result.removed.failed)} failed jobs.`);
        loadJobs();
      } catch (error) { notify('warn', `Could not clear: ${error.message}`); }
    });
    loadJobs().catch((error) => status(error.message, 'warn'));
    new Live(ds.queueLiveUrl, poll, render).start();
  }

  function jobPage_() {
    let timer = null;
    let current = null;
    let prefilled = false;
    const stuckAfterMs = Math.round(stuckThresholds[0] * 60000);
    function fact(label, value) { return [el('dt', { text: label }), el('dd', {}, value)]; }
    function retryable(job) {
      if (FAILED_STATES.includes(job.state)) return true;
      return job.state === STATES.ACTIVE && Boolean(job.processedOn) && Date.now() - Date.parse(job.processedOn) >= stuckAfterMs;
    }
    function renderErrors(job) {
      const traces = job.stacktrace || [];
      const failed = FAILED_STATES.includes(job.state);
      const line = $('#job-error');
      if (failed) {
        line.textContent = job.failedReason || `The job ended ${job.state} without a recorded error message.`;
        line.className = 'error-text';
      } else {
        line.textContent = traces.length
          ? `No error now. ${traces.length === 1 ? 'An earlier attempt' : `${traces.length} earlier attempts`} failed (history below).`
          : 'No error.';
        line.className = 'muted';
      }
      $('#job-traces').replaceChildren(...traces.map((trace, index) =>
        el('details', { class: failed ? 'trace' : 'trace history', open: failed && index === traces.length - 1 },
          el('summary', { text: `Failed attempt ${index + 1} of ${traces.length}${failed ? '' : ' (earlier)'}` }),
          el('pre', { class: 'code', text: trace }))));
    }
    function render(job) {
      current = job;
      const badge = $('#job-state');
      badge.textContent = job.state;
      badge.className = `badge state-${job.state}`;
      const links = (id) => (id ? jobLink(job.queueName, id) : '—');
      $('#job-facts').replaceChildren(...[
        fact('Function', breakable(job.jobName)),
        fact('Description', job.description || '—'),
        fact('First enqueued', when(job.timestamp)), fact('Last enqueued', when(job.enqueuedAt)),
        ...(job.delayUntil ? [fact('Runs', relative(job.delayUntil))] : []),
        fact('Started', when(job.processedOn)), fact('Finished', when(job.finishedOn)),
        fact('Attempts', `${num(job.attemptsMade)} made · ${num(job.attemptsStarted)} started · ${num(job.opts && job.opts.attempts)} allowed`),
        fact('Worker', breakable(job.workerName)),
        fact('Retried from', links(job.retriedFrom)), fact('Retried as', links(job.retriedAs)),
        ...(job.schedule ? [fact('Schedule', el('span', {}, el('a', { href: ds.schedulePage.replace('__NAME__', encodeURIComponent(job.schedule.name)), class: 'mono', text: job.schedule.name }), ` (${job.schedule.trigger === 'manual' ? 'run now' : 'on schedule'})`))] : []),
      ].flat());
      $('#job-data').textContent = job.dataError ? job.dataError : pretty(job.data);
      $('#job-opts').textContent = pretty(job.opts);
      $('#job-result').textContent = job.returnValue === null || job.returnValue === undefined ? '—' : pretty(job.returnValue);
      renderErrors(job);
      renderRetry(job);
    }
    function renderRetry(job) {
      const form = $('#retry-form');
      if (!form) return;
      const offered = retryable(job);
      form.hidden = !offered;
      $('#retry-unavailable').hidden = offered;
      $('#retry-state').textContent = job.state === STATES.ACTIVE ? 'running, not stuck' : job.state;
      const copy = $('#retry-copy');
      copy.hidden = !job.retriedAs;
      if (job.retriedAs) copy.replaceChildren('This job was already retried as ', fullJobLink(job.queueName, job.retriedAs), '. Retrying it again makes another copy.');
      if (!offered || prefilled) return;
      prefilled = true; // once: the 2-second refresh must not overwrite what the user types
      const opts = job.opts || {};
      $('#retry-priority').placeholder = `${opts.priority ?? 0} (the original's)`;
      $('#retry-attempts').placeholder = `${opts.attempts ?? 1} (the original's)`;
      const backoff = opts.backoff;
      $('#retry-backoff-keep').textContent = backoff ? `original's: ${backoff.type}` : "original's: none";
      $('#retry-backoff-delay').placeholder = backoff ? `${backoff.delay} (the original's)` : '';
      if (job.data) {
        $('#retry-args').value = JSON.stringify(job.data.args);
        $('#retry-kwargs').value = JSON.stringify(job.data.kwargs, null, Object.keys(job.data.kwargs).length > 2 ? 2 : 0);
      }
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
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    function parseJson(id, field, kind) {
      try {
        const value = JSON.parse($(id).value);
        const ok = kind === 'array' ? Array.isArray(value) : typeof value === 'object' && value !== null && !Array.isArray(value);
        if (ok) return value;
      } catch (error) { /* reported below */ }
      $(`[data-field="${field}"]`, form).textContent = kind === 'array'
        ? 'Enter a JSON array, for example ["a@b.c", 3].' : 'Enter a JSON object, for example {"subject": "Hi"}.';
      return undefined;
    }
    function buildBody() {
      const body = {};
      const value = (id) => $(id).value.trim();
      const fieldError = (field, text) => { $(`[data-field="${field}"]`, form).textContent = text; };
      const original = (current && current.data) || null;
      let valid = true;
      if (value('#retry-args') !== '') {
        const args = parseJson('#retry-args', 'argsOverrides', 'array');
        if (args === undefined) valid = false;
        else if (!original || !same(args, original.args)) body.argsOverrides = args;
      }
      if (value('#retry-kwargs') !== '') {
        const kwargs = parseJson('#retry-kwargs', 'dataOverrides', 'object');
        if (kwargs === undefined) valid = false;
        else {
          const removed = original ? Object.keys(original.kwargs).filter((key) => !(key in kwargs)) : [];
          if (removed.length) {
            fieldError('dataOverrides', `A retry keeps every keyword argument of the original; put back ${removed.join(', ')} (you can change its value).`);
            valid = false;
          }
          const changed = Object.fromEntries(Object.entries(kwargs).filter(([key, v]) => !original || !(key in original.kwargs) || !same(v, original.kwargs[key])));
          if (Object.keys(changed).length) body.dataOverrides = changed;
        }
      }
      if (value('#retry-priority') !== '') body.priority = Number(value('#retry-priority'));
      if (value('#retry-attempts') !== '') body.attempts = Number(value('#retry-attempts'));
      if (value('#retry-backoff-type') !== '' || value('#retry-backoff-delay') !== '') {
        // Only what the user changed: a delay alone keeps the original's backoff type, a type alone its delay.
        const kept = (current && current.opts && current.opts.backoff) || null;
        const type = value('#retry-backoff-type') || (kept && ['fixed', 'exponential'].includes(kept.type) ? kept.type : '');
        const delay = value('#retry-backoff-delay') !== '' ? Number(value('#retry-backoff-delay')) : (kept ? kept.delay : null);
        if (!type) { fieldError('backoff.type', 'The original has no fixed or exponential backoff: choose one for this delay.'); valid = false; }
        if (delay === null || delay === undefined) { fieldError('backoff.delay', 'Enter the delay in milliseconds.'); valid = false; }
        body.backoff = { type, delay };
      }
      if ($('#retry-remove').checked) body.removeOriginal = true;
      return valid ? body : null;
    }
    function describe(body) {
      const lines = [];
      if (body.argsOverrides) lines.push(`Positional arguments: ${JSON.stringify(body.argsOverrides)}`);
      if (body.dataOverrides) lines.push(`Keyword arguments changed: ${JSON.stringify(body.dataOverrides)}`);
      if (body.priority !== undefined) lines.push(`Priority: ${body.priority}`);
      if (body.attempts !== undefined) lines.push(`Attempts: ${body.attempts}`);
      if (body.backoff) lines.push(`Backoff: ${body.backoff.type}, ${body.backoff.delay} ms`);
      if (!lines.length) lines.push('Same arguments and options as the original.');
      lines.push(body.removeOriginal ? 'The original job is removed.' : 'The original job is kept.');
      return el('ul', {}, ...lines.map((line) => el('li', { text: line })));
    }
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      $$('.field-error', form).forEach((node) => { node.textContent = ''; });
      $('#retry-error').hidden = true;
      const body = buildBody();
      if (!body) return;
      const copy = current && current.retriedAs;
      if (copy) body.force = true;
      const text = copy
        ? [el('p', {}, `Job ${ds.job} was already retried as `, fullJobLink(ds.queue, copy), '. Retry it again as another new job?'), describe(body)]
        : [`Retry job ${ds.job} of queue ${ds.queue} as a new job?`, describe(body)];
      if (!await confirmAction(copy ? 'Retry again?' : 'Retry this job?', text, copy ? 'Retry again' : 'Retry')) return;
      try {
        const result = await api(ds.retryUrl, { method: 'POST', body });
        clearTimeout(timer);
        if (body.removeOriginal && result.originalRemoved === false) { // its worker did not stop the run in time
          notify('warn', `Job ${ds.job} retried as `, fullJobLink(ds.queue, result.newJobId),
            '. The original was kept: its worker did not stop its run in time.');
          render({ ...current, retriedAs: result.newJobId });
          return;
        }
        window.location.assign(jobPage(ds.queue, result.newJobId));
      } catch (error) {
        if (error.code === 'already_retried' && error.details.retriedAs) { // retried meanwhile, by someone else
          render({ ...current, retriedAs: error.details.retriedAs });
        }
        const unplaced = [];
        for (const [field, message] of Object.entries(error.details || {})) {
          if (field === 'retriedAs') continue;
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
    const copies = new Map(); // job id -> the id of its retry, learned from the API
    const asked = new Set();
    let latest = [[], { total: 0, bySeverity: {} }];
    async function learnCopies(alerts) {
      // Stuck entries do not say whether a run was retried: ask each job once (a stuck run stays for minutes).
      const fresh = alerts.filter((alert) => !asked.has(alert.jobId));
      fresh.forEach((alert) => asked.add(alert.jobId));
      const details = await Promise.all(fresh.map((alert) => api(jobApiUrl(alert.queueName, alert.jobId)).catch(() => null)));
      let learned = false;
      for (const detail of details) if (detail && detail.retriedAs) { copies.set(detail.jobId, detail.retriedAs); learned = true; }
      if (learned) render(...latest);
    }
    async function retry(alert, button) {
      const copy = copies.get(alert.jobId);
      const name = alert.jobName || 'unreadable function';
      const text = copy
        ? [el('p', {}, `Job ${alert.jobId} was already retried as `, fullJobLink(alert.queueName, copy), '.'),
          `Retry it again? Another new job runs ${name} with the same arguments; the stuck run is not stopped.`]
        : [`Retry job ${alert.jobId} (${name}) of queue ${alert.queueName}?`,
          'A new job runs the same function with the same arguments and options; the stuck run is not stopped.'];
      if (!await confirmAction(copy ? 'Retry again?' : 'Retry this job?', text, copy ? 'Retry again' : 'Retry')) return;
      button.disabled = true;
      try {
        const result = await api(retryUrl(alert.queueName, alert.jobId), { method: 'POST', body: copy ? { force: true } : {} });
        copies.set(alert.jobId, result.newJobId);
        notify('ok', `Job ${alert.jobId} retried as `, fullJobLink(alert.queueName, result.newJobId), '.');
      } catch (error) {
        if (error.code === 'already_retried' && error.details.retriedAs) {
          copies.set(alert.jobId, error.details.retriedAs);
          notify('warn', `Job ${alert.jobId} was already retried as `, fullJobLink(alert.queueName, error.details.retriedAs), '. Use "Retry again" to make another copy.');
        } else notify('warn', `Could not retry job ${alert.jobId}: ${error.message}`);
      }
      render(...latest);
    }
    async function stop(alert, button) {
      const text = [`Stop job ${alert.jobId} (${alert.jobName || 'unreadable function'}) of queue ${alert.queueName} now?`,
        'Its work horse is killed: the run ends "stopped" among the failed jobs, from where it can be retried.'];
      if (!await confirmAction('Stop this run?', text, 'Stop')) return;
      button.disabled = true;
      const url = ds.stopTemplate.replace('__QUEUE__', encodeURIComponent(alert.queueName)).replace('__JOB__', encodeURIComponent(alert.jobId));
      try {
        const result = await api(url, { method: 'POST', body: {} });
        notify('ok', result.stopped ? `Job ${alert.jobId} stopped; it can be retried from the failed jobs.` : `Stop sent to job ${alert.jobId}; it has not ended yet.`);
        refresh();
      } catch (error) { notify('warn', `Could not stop job ${alert.jobId}: ${error.message}`); button.disabled = false; }
    }
    function render(alerts, summary) {
      latest = [alerts, summary];
      showStuckBadge(summary);
      $('#updated').textContent = when(new Date().toISOString());
      const counts = SEVERITIES.map((level) => `${num(summary.bySeverity[level])} ${level}`).join(', ');
      $('#stuck-counts').textContent = summary.total
        ? `Showing ${num(alerts.length)} of ${num(summary.total)} stuck runs (${counts}).` : '';
      const rows = alerts.map((alert) => {
        const actions = el('div', { class: 'row-actions' }); // flex inside the cell: a flex <td> leaves the table grid
        const copy = copies.get(alert.jobId);
        if (copy) actions.append(retriedAs(alert.queueName, copy));
        if (canAct) {
          const button = el('button', { type: 'button', text: copy ? 'Retry again…' : 'Retry…' });
          button.addEventListener('click', () => retry(alert, button));
          const stopButton = el('button', { type: 'button', text: 'Stop…', title: 'Stop this run now (it ends stopped, retryable)' });
          stopButton.addEventListener('click', () => stop(alert, stopButton));
          actions.append(stopButton, button, el('a', { href: `${jobPage(alert.queueName, alert.jobId)}#retry-title`, text: 'Retry with overrides' }));
        } else actions.append(el('a', { href: jobPage(alert.queueName, alert.jobId), text: 'Open' }));
        return el('tr', { class: `row-sev row-sev-${alert.severity}`, 'data-severity': alert.severity, 'data-job': alert.jobId },
          el('td', {}, el('span', { class: `sev sev-${alert.severity}`, text: alert.severity })),
          el('td', {}, jobLink(alert.queueName, alert.jobId)),
          el('td', {}, el('a', { href: queuePage(alert.queueName) }, breakable(alert.queueName, 'name'))),
          el('td', {}, breakable(alert.jobName)),
          el('td', { class: 'num', text: duration(alert.stuckDuration) }), el('td', { text: when(alert.startedAt) }),
          el('td', { class: 'num', text: num(alert.attemptsMade) }), el('td', {}, actions));
      });
      fill($('#alerts-body'), rows, `No stuck jobs. All runs started less than ${minutesText(stuckThresholds[0])} ago.`, 8);
    }
    const refresh = () => Promise.all([api(ds.stuckUrl), api(ds.stuckSummaryUrl)])
      .then(([alerts, summary]) => {
        status('Updates every 5 seconds.', 'ok');
        if ($('#action-dialog') && $('#action-dialog').open) { latest = [alerts, summary]; return; } // keep the rows still while asking
        render(alerts, summary);
        learnCopies(alerts);
      })
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
    setInterval(() => $$('time.relative').forEach((node) => { node.textContent = relativeText(node.getAttribute('datetime')); }), 15000);
    const dismiss = $('#action-dismiss');
    if (dismiss) dismiss.addEventListener('click', () => { $('#action-message').hidden = true; });
    const logout = $('#logout');
    if (logout) {
      logout.addEventListener('click', async () => {
        try { const result = await api(ds.logoutUrl, { method: 'POST' }); window.location.assign(result.next); } catch (e) { toLogin(); }
      });
    }
    if (ds.role && ds.page !== 'login' && ds.page !== 'alerts') watchStuckBadge();
  }

  // The helpers other page scripts build on (static/js/schedules.js).
  window.RQMon = { $, $$, el, api, relative, relativeText, when, duration, num, notify, confirmAction, fill, status, jobPage, breakable, VOCABULARY };
  const pages = { overview: overviewPage, queue: queuePage_, job: jobPage_, alerts: alertsPage, trends: trendsPage, login: loginPage };
  common();
  (pages[ds.page] || (() => {}))();
})();
