/* Schedules pages (SCHEDULES.md): the list with live next-run times and run strips, one schedule with its run
   history, and the admins' create/edit form with its preview of the next five runs. Built on app.js's helpers. */
(() => {
  'use strict';

  const { $, $$, el, api, relative, relativeText, when, duration, num, notify, confirmAction, fill, status, jobPage, breakable } = window.RQMon;
  const ds = document.body.dataset;
  const canAct = Boolean($('#schedule-dialog'));
  const scheduleApi = (name, suffix = '') => ds.scheduleApi.replace('__NAME__', encodeURIComponent(name)) + suffix;
  const schedulePage = (name) => ds.schedulePage.replace('__NAME__', encodeURIComponent(name));
  const REFRESH_MS = 5000;

  const stateBadge = (state) => el('span', { class: `badge state-${state}`, text: state || '—' });
  function strip(states) {
    const node = el('span', { class: 'strip', role: 'img', 'aria-label': `last ${states.length} runs: ${states.join(', ')}` });
    for (const state of states) node.append(el('span', { class: `run-${state}`, title: state }));
    return node;
  }
  function scheduleCell(schedule) {
    const raw = schedule.cron ? schedule.cron : `${schedule.intervalSeconds} s`;
    return el('span', {}, el('span', { class: 'schedule-words', text: schedule.schedule.replace(/^cron .*$/, 'cron') }),
      el('code', { class: 'schedule-raw', text: schedule.cron ? `${raw} UTC` : raw }));
  }
  function lastRunCell(schedule) {
    const last = schedule.lastRun;
    if (!last) return el('span', { class: 'muted', text: 'never run' });
    return el('span', {}, stateBadge(last.state), strip(last.recent || [last.state]));
  }

  // --- actions ---------------------------------------------------------------------------------------
  async function act(schedule, action, onDone) {
    try {
      if (action === 'run') {
        const result = await api(scheduleApi(schedule.name, '/run'), { method: 'POST' });
        notify('ok', `Run of ${schedule.name} enqueued: `, el('a', { href: jobPage(schedule.queue, result.jobId), class: 'mono', text: result.jobId }));
      } else if (action === 'delete') {
        const text = [`Delete the schedule ${schedule.name} and its run history?`, 'Runs already enqueued stay in their queue.'];
        if (!await confirmAction('Delete this schedule?', text, 'Delete')) return;
        await api(scheduleApi(schedule.name), { method: 'DELETE' });
        notify('ok', `Schedule ${schedule.name} deleted.`);
      } else {
        await api(scheduleApi(schedule.name, `/${action}`), { method: 'POST' });
        notify('ok', `Schedule ${schedule.name} ${action === 'pause' ? 'paused' : 'resumed'}.`);
      }
      onDone(action);
    } catch (error) {
      notify('warn', `Could not ${action} ${schedule.name}: ${error.message}`);
    }
  }
  function actionButtons(schedule, onDone) {
    const box = el('div', { class: 'row-actions' });
    if (!schedule.editable) { box.append(el('span', { class: 'muted', text: 'read-only (rq cron)' })); return box; }
    const button = (label, action, cls = '') => {
      const node = el('button', { type: 'button', class: cls, text: label, 'data-action': action, 'aria-label': `${label} ${schedule.name}` });
      node.addEventListener('click', () => (action === 'edit' ? openForm(schedule, onDone) : act(schedule, action, onDone)));
      return node;
    };
    box.append(button('Run now', 'run'), schedule.enabled ? button('Pause', 'pause') : button('Resume', 'resume'),
      button('Edit', 'edit'), button('Delete', 'delete', 'danger'));
    return box;
  }

  // --- the form ----------------------------------------------------------------------------------------
  let editing = null;
  let previewTimer = null;
  function timing() {
    const cron = $('input[name=timing]:checked').value === 'cron';
    return cron ? { cron: $('#f-cron').value.trim() } : { intervalSeconds: Number($('#f-interval').value) };
  }
  function clearErrors() { $$('.field-error', $('#schedule-form')).forEach((node) => { node.hidden = true; node.textContent = ''; }); }
  function showErrors(details, message) {
    let shown = false;
    for (const [field, text] of Object.entries(details || {})) {
      const node = $(`#error-${field.split('.')[0]}`) || $('#error-body');
      node.textContent = `${node.textContent ? `${node.textContent} ` : ''}${text}`;
      node.hidden = false;
      shown = true;
    }
    if (!shown) { $('#error-body').textContent = message; $('#error-body').hidden = false; }
  }
  async function updatePreview() {
    const list = $('#preview-list');
    const params = new URLSearchParams(Object.entries(timing()).map(([k, v]) => [k, String(v)]));
    try {
      const result = await api(`${ds.periodicPreviewUrl}?${params}`);
      $('#preview-words').textContent = `(${result.schedule})`;
      list.replaceChildren(...result.nextRuns.map((iso) => el('li', {}, el('time', { datetime: iso, text: when(iso) }), ` — ${iso.slice(0, 16).replace('T', ' ')} UTC`)));
      for (const id of ['#error-cron', '#error-intervalSeconds']) $(id).hidden = true;
    } catch (error) {
      $('#preview-words').textContent = '';
      list.replaceChildren(el('li', { class: 'field-error', text: Object.values(error.details || {})[0] || error.message }));
    }
  }
  function schedulePreview() { clearTimeout(previewTimer); previewTimer = setTimeout(updatePreview, 250); }
  function openForm(schedule, onDone) {
    editing = schedule;
    const form = $('#schedule-form');
    form.reset();
    clearErrors();
    $('#schedule-form-title').textContent = schedule ? `Edit ${schedule.name}` : 'New schedule';
    if (schedule) {
      $('#f-name').value = schedule.name;
      $('#f-description').value = schedule.description || '';
      $('#f-func').value = schedule.func;
      $('#f-args').value = JSON.stringify(schedule.args || []);
      $('#f-kwargs').value = JSON.stringify(schedule.kwargs || {});
      $('#f-queue').value = schedule.queue;
      $(`input[name=timing][value=${schedule.cron ? 'cron' : 'interval'}]`).checked = true;
      $('#f-cron').value = schedule.cron || '';
      $('#f-interval').value = schedule.intervalSeconds || 300;
      $('#f-overlap').value = schedule.overlap;
      $('#f-timeout').value = schedule.timeout || '';
      $('#f-attempts').value = schedule.attempts || 1;
      $('#f-enabled').checked = schedule.enabled;
    }
    $('#schedule-dialog').onDone = onDone;
    $('#schedule-dialog').showModal();
    updatePreview();
  }
  function parseJson(field, fallback) {
    const text = $(`#f-${field}`).value.trim();
    if (!text) return fallback;
    try { return JSON.parse(text); } catch (error) { throw Object.assign(new Error('not valid JSON'), { details: { [field]: 'is not valid JSON' } }); }
  }
  async function save(event) {
    event.preventDefault();
    clearErrors();
    try {
      const body = {
        name: $('#f-name').value.trim(), description: $('#f-description').value.trim() || null, func: $('#f-func').value.trim(),
        args: parseJson('args', []), kwargs: parseJson('kwargs', {}), queue: $('#f-queue').value.trim(), ...timing(),
        overlap: $('#f-overlap').value, timeout: $('#f-timeout').value ? Number($('#f-timeout').value) : null,
        attempts: Number($('#f-attempts').value || 1), enabled: $('#f-enabled').checked,
      };
      const saved = editing
        ? await api(scheduleApi(editing.name), { method: 'PUT', body })
        : await api(ds.periodicUrl, { method: 'POST', body });
      $('#schedule-dialog').close();
      notify('ok', `Schedule ${saved.name} saved; next run `, relative(saved.nextRunAt));
      ($('#schedule-dialog').onDone || (() => {}))(editing ? 'edit' : 'create', saved);
    } catch (error) {
      showErrors(error.details, error.message);
    }
  }
  function setUpForm() {
    if (!canAct) return;
    $('#schedule-form').addEventListener('submit', save);
    $('#schedule-cancel').addEventListener('click', () => $('#schedule-dialog').close());
    for (const id of ['#f-cron', '#f-interval']) $(id).addEventListener('input', schedulePreview);
    $$('input[name=timing]').forEach((radio) => radio.addEventListener('change', updatePreview));
    $('#f-cron').addEventListener('focus', () => { $('input[name=timing][value=cron]').checked = true; schedulePreview(); });
    $('#f-interval').addEventListener('focus', () => { $('input[name=timing][value=interval]').checked = true; schedulePreview(); });
  }

  // --- the list ----------------------------------------------------------------------------------------
  function renderStatus(result) {
    const box = $('#scheduler-status');
    const lines = [];
    if (result.scheduler && result.isMonitoringActive) {
      lines.push(el('p', { class: 'ok-line' }, `Scheduler ${result.scheduler.name} is running (heartbeat `, relative(result.scheduler.lastHeartbeat), ').'));
    }
    for (const alert of result.alerts) lines.push(el('p', { class: `alert-line ${alert.severity}`, role: 'alert', 'data-rule': alert.rule, text: alert.message }));
    lines.push(el('p', { class: 'muted', text: `Runs today: ${num(result.totalRunsToday)} · missed runs: ${num(result.missedRuns)}` }));
    box.replaceChildren(...lines);
  }
  function listPage() {
    let page = 1;
    let lastRows = null;
    const perPage = 50;
    const refresh = async () => {
      try {
        const [list, state] = await Promise.all([api(`${ds.periodicUrl}?page=${page}&perPage=${perPage}`), api(ds.periodicStatusUrl)]);
        renderStatus(state);
        if ($('#schedule-dialog') && $('#schedule-dialog').open) return;
        if ($('#action-dialog') && $('#action-dialog').open) return;
        lastRows = list.schedules;
        const rows = list.schedules.map((s) => el('tr', { 'data-name': s.name },
          el('th', { scope: 'row' }, s.editable ? el('a', { href: schedulePage(s.name) }, breakable(s.name)) : breakable(s.name),
            s.enabled ? '' : el('span', { class: 'badge badge-paused', text: 'Paused' })),
          el('td', {}, breakable(s.func)),
          el('td', {}, breakable(s.queue)),
          el('td', {}, scheduleCell(s)),
          el('td', { class: 'next-run' }, s.enabled ? relative(s.nextRunAt) : el('span', { class: 'muted', text: 'paused' })),
          el('td', {}, lastRunCell(s)),
          el('td', { class: 'num', text: num(s.runsToday) }),
          el('td', { class: `num ${s.missedRuns ? 'missed' : ''}`, text: num(s.missedRuns) }),
          ...(canAct ? [el('td', {}, actionButtons(s, () => refresh()))] : [])));
        fill($('#schedules-body'), rows, 'No schedules yet.', canAct ? 9 : 8);
        const pages = Math.max(1, Math.ceil(list.total / perPage));
        $('#page-info').textContent = `Page ${page} of ${pages} · ${num(list.total)} schedules`;
        $('#prev-page').disabled = page <= 1;
        $('#next-page').disabled = page >= pages;
        status(`Updates every ${REFRESH_MS / 1000} seconds.`, 'ok');
      } catch (error) {
        status(`Could not refresh: ${error.message}`, 'warn');
      }
    };
    $('#prev-page').addEventListener('click', () => { page -= 1; refresh(); });
    $('#next-page').addEventListener('click', () => { page += 1; refresh(); });
    if (canAct) $('#new-schedule').addEventListener('click', () => openForm(null, () => refresh()));
    refresh();
    setInterval(refresh, REFRESH_MS);
    return () => lastRows;
  }

  // --- one schedule --------------------------------------------------------------------------------------
  function detailPage() {
    const name = ds.scheduleName;
    let current = null;
    const fact = (term, ...value) => [el('dt', { text: term }), el('dd', {}, ...value)];
    const refresh = async () => {
      try {
        const filter = $('#runs-filter').value;
        const [schedule, history] = await Promise.all([
          api(scheduleApi(name)), api(scheduleApi(name, `/runs?limit=100${filter ? `&status=${filter}` : ''}`)),
        ]);
        current = schedule;
        $('#paused-badge').hidden = schedule.enabled;
        $('#schedule-description').textContent = schedule.description || '';
        $('#schedule-facts').replaceChildren(
          ...fact('Function', breakable(schedule.func)), ...fact('Arguments', el('code', { text: JSON.stringify(schedule.args) }), ' ', el('code', { text: JSON.stringify(schedule.kwargs) })),
          ...fact('Queue', breakable(schedule.queue)), ...fact('Schedule', scheduleCell(schedule)),
          ...fact('Next run', schedule.enabled ? relative(schedule.nextRunAt) : 'paused'),
          ...fact('Overlap', schedule.overlap), ...fact('Runs today', num(schedule.runsToday)), ...fact('Missed runs', num(schedule.missedRuns)));
        if (canAct && !($('#action-dialog') && $('#action-dialog').open)) {
          $('#detail-actions').replaceChildren(actionButtons(schedule, (action) => (action === 'delete' ? window.location.assign(ds.schedulesPage) : refresh())));
        }
        const rows = history.runs.map((run) => el('tr', {},
          el('td', {}, run.jobId ? el('a', { href: jobPage(run.queue || schedule.queue, run.jobId), class: 'mono id', title: run.jobId, text: `${run.jobId.slice(0, 12)}…` }) : el('span', { class: 'muted', text: '—' })),
          el('td', { text: run.trigger }),
          el('td', {}, run.dueAt ? el('time', { datetime: run.dueAt, text: when(run.dueAt) }) : '—'),
          el('td', {}, run.enqueuedAt ? el('time', { datetime: run.enqueuedAt, text: when(run.enqueuedAt) }) : '—'),
          el('td', {}, stateBadge(run.state)),
          el('td', { class: 'num', text: duration(run.durationMs) }),
          el('td', { class: 'error-text', text: run.failedReason || '' })));
        fill($('#runs-body'), rows, filter ? `No ${filter} runs.` : 'No runs yet.', 7);
        status(`Updates every ${REFRESH_MS / 1000} seconds.`, 'ok');
      } catch (error) {
        status(`Could not refresh: ${error.message}`, 'warn');
      }
    };
    $('#runs-filter').addEventListener('change', refresh);
    refresh();
    setInterval(refresh, REFRESH_MS);
    return () => current;
  }

  setUpForm();
  // Next-run times count down every second ("in 42 s"); app.js refreshes the others every 15 s.
  setInterval(() => $$('td.next-run time.relative, dl.facts time.relative').forEach((node) => { node.textContent = relativeText(node.getAttribute('datetime')); }), 1000);
  if (ds.page === 'schedules') listPage();
  if (ds.page === 'schedule') detailPage();
})();
