/* Workers pages: the list (live over /api/v1/workers/live-stream), one worker's page, the queue status on the
   overview and a queue's workers on its page. Helpers come from app.js (window.RQMon, window.rqMonitor.Live). */
(() => {
  'use strict';

  const { $, el, api, relative, when, duration, num, notify, confirmAction, fill, jobPage, breakable } = window.RQMon;
  const { Live } = window.rqMonitor;
  const ds = document.body.dataset;
  const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
  const canAct = ds.canAct === 'true';
  const ACTION_TEXT = {
    pause: ['Pause', 'It finishes its current job and starts no new one until resumed.'],
    resume: ['Resume', 'It takes jobs again.'],
    stop: ['Stop', 'It finishes its current job, then the process exits (a pool does not restart it until started).'],
    restart: ['Restart', 'It finishes its current job, then its pool starts it again.'],
    start: ['Start', 'Its pool starts this slot again.'],
  };

  const fromTemplate = (template, name) => template.replace('__NAME__', encodeURIComponent(name));
  // The workers pages carry the URL templates on <body>; the overview and queue pages on their section.
  const workerPageTemplate = ds.workerPage || ($('[data-worker-page]') || { dataset: {} }).dataset.workerPage;
  const workerLink = (name) => el('a', { href: fromTemplate(workerPageTemplate, name) }, breakable(name, 'mono name'));
  const seconds = (value) => (value === null || value === undefined ? '—' : duration(value * 1000));
  const mb = (value) => (value === null || value === undefined ? '—' : `${decimal.format(value)} MB`);
  const percent = (value) => (value === null || value === undefined ? '—' : `${decimal.format(value)} %`);
  const badge = (text, className) => el('span', { class: `badge ${className}`, text });

  function statusBadges(worker) {
    const badges = [badge(worker.status, `st-${worker.status}`)];
    if (worker.liveness !== 'stale') badges.push(badge(worker.liveness, `lv-${worker.liveness}`));
    if (!worker.monitored) badges.push(badge('plain rq', 'plain'));
    return badges;
  }

  function currentJob(job) {
    if (!job) return el('span', { class: 'muted', text: 'idle' });
    const link = job.queue
      ? el('a', { href: jobPage(job.queue, job.job_id), class: 'mono', title: job.job_id }, job.job_name || job.job_id)
      : el('span', { class: 'mono', text: job.job_id });
    return el('span', {}, link, el('span', { class: 'worker-sub', text: `running ${seconds(job.running_for)}` }));
  }

  // --- actions: confirmed, and what the worker answered is shown ------------------------------------
  async function control(name, action, after) {
    const [label, meaning] = ACTION_TEXT[action];
    if (!(await confirmAction(`${label} ${name}?`, [meaning], label))) return;
    try {
      const response = await api(`${fromTemplate(ds.workerControlUrl, name)}?action=${encodeURIComponent(action)}`, { method: 'POST' });
      const result = response.result;
      if (result.acknowledged) notify('ok', `${label}: acknowledged by ${name} — now ${result.status_after}. ${response.message}`);
      else notify('warn', `${label}: not acknowledged (${result.error || 'no answer'}). ${response.message}`);
    } catch (error) {
      notify('bad', `${label} refused: ${error.message}`);
    }
    if (after) after();
  }

  async function remove(name, after) {
    if (!(await confirmAction(`Remove ${name}?`, ['Its registration is deleted; a job it was running is recovered as stalled.'], 'Remove'))) return;
    try {
      const result = await api(fromTemplate(ds.workerRemoveUrl, name), { method: 'DELETE' });
      notify('ok', `Removed ${name}${result.abandoned_job ? `; its job ${result.abandoned_job} was recovered` : ''}.`);
    } catch (error) {
      notify('bad', `Not removed: ${error.message}`);
    }
    if (after) after();
  }

  function actionButtons(worker, after) {
    const box = el('div', { class: 'worker-actions', role: 'group', 'aria-label': `Actions on ${worker.worker_name}` });
    for (const action of worker.control) {
      const button = el('button', { type: 'button', 'data-action': action, class: action === 'stop' ? 'danger' : '', text: ACTION_TEXT[action][0] });
      button.addEventListener('click', () => control(worker.worker_name, action, after));
      box.append(button);
    }
    if (worker.liveness === 'stale') {
      const button = el('button', { type: 'button', 'data-action': 'remove', class: 'danger', text: 'Remove' });
      button.addEventListener('click', () => remove(worker.worker_name, after));
      box.append(button);
    }
    return box;
  }

  // --- the workers page -----------------------------------------------------------------------------
  function banner(system) {
    const box = $('#workers-health');
    box.dataset.health = system.overall_health;
    $('#health-status').textContent = {
      healthy: 'Healthy', degraded: 'Degraded', critical: 'Critical',
    }[system.overall_health] || system.overall_health;
    $('#health-reasons').replaceChildren(...system.health_reasons.map((reason) => el('li', { text: reason })));
  }

  function workerRow(worker, refresh) {
    const host = [worker.hostname, worker.pid && `pid ${worker.pid}`, worker.pool && `pool ${worker.pool}`].filter(Boolean).join(' · ');
    const cells = [
      el('th', { scope: 'row' }, el('span', {}, workerLink(worker.worker_name), el('span', { class: 'worker-sub', text: host }))),
      el('td', {}, breakable(worker.queues.join(', '))),
      el('td', {}, el('span', {}, ...statusBadges(worker))),
      el('td', {}, currentJob(worker.current_job)),
      el('td', { class: 'num' }, el('span', {}, `${num(worker.tasks_processed)} / `, el('span', { class: worker.tasks_failed ? 'bad' : '', text: num(worker.tasks_failed) }))),
      el('td', { class: 'num', text: percent(worker.error_rate) }),
      el('td', { class: 'num', text: seconds(worker.avg_processing_time) }),
      el('td', { class: 'num', text: mb(worker.memory_usage_mb) }),
      el('td', { text: worker.seconds_since_heartbeat === null ? '—' : `${seconds(worker.seconds_since_heartbeat)} ago` }),
    ];
    if (canAct) cells.push(el('td', {}, actionButtons(worker, refresh)));
    return el('tr', { 'data-worker': worker.worker_name, class: worker.liveness === 'stale' ? 'worker-stale' : '' }, ...cells);
  }

  function activityRow(entry) {
    const job = entry.job_id && entry.queue ? el('a', { href: jobPage(entry.queue, entry.job_id), class: 'mono' }, entry.job_name || entry.job_id) : (entry.job_name || '—');
    return el('tr', {},
      el('td', {}, relative(entry.timestamp)),
      el('td', {}, entry.worker ? workerLink(entry.worker) : '—'),
      el('td', { class: entry.status === 'failed' ? 'bad' : '', text: entry.action }),
      el('td', {}, job),
      el('td', { class: 'num', text: duration(entry.duration_ms) }));
  }

  function workersPage() {
    let latest = null;
    const render = (document) => {
      const { system_overview: system, workers } = document.data;
      banner(system);
      $('#tile-active').textContent = `${num(system.active_workers)} / ${num(system.total_workers)}`;
      $('#tile-busy').textContent = num(system.busy_workers);
      $('#tile-utilization').textContent = percent(system.utilization);
      $('#tile-rate').textContent = decimal.format(system.jobs_per_minute || 0);
      $('#tile-stale').textContent = num(system.stale_workers);
      $('#updated').textContent = when(document.timestamp);
      fill($('#workers-body'), workers.map((worker) => workerRow(worker, refresh)), 'No worker is registered.', canAct ? 10 : 9);
      const cleanup = $('#cleanup');
      if (cleanup) cleanup.disabled = system.stale_workers === 0;
      latest = document;
    };
    const details = (overview) => {
      $('#tile-redis').textContent = mb(overview.performance_metrics.redis_memory_mb);
      fill($('#activity-body'), overview.recent_activity.map(activityRow), 'Nothing has happened yet.', 5);
    };
    const poll = () => api(ds.workersOverviewUrl).then((overview) => {
      details(overview);
      return { timestamp: overview.timestamp, data: { system_overview: overview.system_overview, workers: overview.workers } };
    });
    const refresh = () => poll().then(render).catch(() => {});
    new Live(ds.workersLiveUrl, poll, render).start();
    const activity = () => api(ds.workersOverviewUrl).then(details).catch(() => {});
    activity();
    setInterval(activity, 10000);
    const cleanup = $('#cleanup');
    if (cleanup) {
      cleanup.addEventListener('click', async () => {
        if (!(await confirmAction('Remove every stale worker?', ['Their registrations are deleted; their jobs are recovered as stalled.'], 'Remove'))) return;
        try {
          const result = await api(ds.workersCleanupUrl, { method: 'POST' });
          notify('ok', result.removed.length ? `Removed ${result.removed.join(', ')}.` : 'No stale worker was left to remove.');
        } catch (error) {
          notify('bad', `Not removed: ${error.message}`);
        }
        refresh();
      });
    }
    window.rqMonitor.workers = () => latest;
  }

  // --- one worker's page ----------------------------------------------------------------------------
  function fact(list, label, value) {
    list.append(el('dt', { text: label }), el('dd', {}, value ?? '—'));
  }

  function workerPage() {
    const name = ds.worker;
    const render = (details) => {
      const worker = details.worker;
      const stats = details.detailed_stats;
      $('#worker-badges').replaceChildren(...statusBadges(worker));
      $('#w-processed').textContent = num(worker.tasks_processed);
      $('#w-failed').textContent = num(worker.tasks_failed);
      $('#w-error-rate').textContent = percent(worker.error_rate);
      $('#w-avg').textContent = seconds(worker.avg_processing_time);
      $('#w-memory').textContent = `${mb(worker.memory_usage_mb)}${worker.memory_limit_mb ? ` of ${mb(worker.memory_limit_mb)}` : ''}`;
      $('#w-cpu').textContent = percent(worker.cpu_percent);
      const facts = $('#worker-facts');
      facts.replaceChildren();
      fact(facts, 'Host', worker.hostname);
      fact(facts, 'PID', worker.pid === null ? '—' : String(worker.pid));
      fact(facts, 'Pool', worker.pool ? `${worker.pool} (slot ${worker.slot})` : '—');
      fact(facts, 'Queues', breakable(worker.queues.join(', ')));
      fact(facts, 'Kind', worker.monitored ? 'MonitoredWorker' : 'plain rq worker');
      fact(facts, 'Started', relative(stats.birth));
      fact(facts, 'Uptime', seconds(worker.uptime_seconds));
      fact(facts, 'Last heartbeat', relative(worker.last_heartbeat));
      fact(facts, 'Last activity', relative(worker.last_activity));
      fact(facts, 'Total working time', seconds(stats.total_working_time));
      fact(facts, 'Jobs waiting on its queues', num(worker.current_queue_size));
      fact(facts, 'RQ / Python', `${stats.rq_version || '—'} / ${stats.python_version || '—'}`);
      $('#current-job').replaceChildren(currentJob(worker.current_job));
      const caps = $('#worker-capabilities');
      caps.replaceChildren();
      const entries = Object.entries(worker.capabilities || {});
      if (!entries.length) caps.append(el('dt', { text: 'None declared' }), el('dd', { class: 'muted', text: worker.monitored ? 'set RQMON_WORKER_CAPABILITIES' : 'plain rq workers declare none' }));
      for (const [key, value] of entries) fact(caps, key, JSON.stringify(value));
      fill($('#recent-body'), stats.recent_jobs.map((job) => el('tr', {},
        el('td', {}, relative(job.ended_at)),
        el('td', {}, job.job_id && job.queue ? el('a', { href: jobPage(job.queue, job.job_id), class: 'mono', text: job.job_id }) : '—'),
        el('td', {}, breakable(job.queue)),
        el('td', {}, breakable(job.job_name)),
        el('td', { class: job.status === 'success' ? '' : 'bad', text: job.status }),
        el('td', { class: 'num', text: duration(job.duration_ms) }))), 'No job ended on this worker yet.', 6);
      const controls = $('#worker-controls');
      if (controls) controls.replaceChildren(actionButtons(worker, load));
    };
    const load = () => api(fromTemplate(ds.workerDetailsUrl, name)).then(render).catch((error) => {
      if (error.status === 404) notify('warn', `${name} is no longer registered; its history stays in the performance metrics.`);
    });
    load();
    setInterval(load, 5000);
  }

  // --- queue status on the overview, a queue's workers on its page ---------------------------------
  function queueStatusSection() {
    const section = $('#queue-status');
    const render = (status) => {
      const rows = Object.entries(status.queues).map(([name, queue]) => {
        const unserved = queue.size > 0 && queue.workers === 0;
        return el('tr', { 'data-status-queue': name },
          el('th', { scope: 'row' }, breakable(name, 'name')),
          el('td', { class: 'num', text: num(queue.size) }),
          el('td', { class: 'num', text: seconds(queue.oldest_task_age_seconds) }),
          el('td', { class: 'num', text: decimal.format(queue.throughput_per_minute) }),
          el('td', { class: 'num', text: queue.size === 0 ? 'empty' : seconds(queue.estimated_completion_time) }),
          el('td', {}, unserved ? el('span', { class: 'no-listener', text: 'no worker listens to this queue' }) : num(queue.workers)));
      });
      fill($('#queue-status-body'), rows, 'No queues yet.', 6);
    };
    const load = () => api(section.dataset.url).then(render).catch(() => {});
    load();
    setInterval(load, 5000);
  }

  function queueWorkersSection() {
    const section = $('#queue-workers');
    const queue = section.dataset.queue;
    const render = (overview) => {
      const rows = overview.workers.filter((worker) => worker.queues.includes(queue)).map((worker) => el('tr', {
        class: worker.liveness === 'stale' ? 'worker-stale' : '',
      },
      el('th', { scope: 'row' }, workerLink(worker.worker_name)),
      el('td', {}, el('span', {}, ...statusBadges(worker))),
      el('td', {}, currentJob(worker.current_job)),
      el('td', { class: 'num', text: `${num(worker.tasks_processed)} / ${num(worker.tasks_failed)}` })));
      fill($('#queue-workers-body'), rows, 'No worker listens to this queue.', 4);
    };
    const load = () => api(section.dataset.url).then(render).catch(() => {});
    load();
    setInterval(load, 5000);
  }

  if (ds.page === 'workers') workersPage();
  if (ds.page === 'worker') workerPage();
  if ($('#queue-status')) queueStatusSection();
  if ($('#queue-workers')) queueWorkersSection();
})();
