// The ferrox console's script. It does three things:
//  - shows every <time> in the viewer's time zone (the page carries UTC);
//  - makes the action buttons call the operator API with the session's
//    CSRF token, then shows the page again without a reload (and keeps
//    refreshing while the page says an outcome is still to come);
//  - sends the log search's times as UTC.
'use strict';
(() => {
  const LIVE_REFRESH_MS = 1000;
  const LIVE_REFRESH_TIMES = 120;

  const csrf = () => document.querySelector('meta[name="ferrox-csrf"]')?.content ?? '';
  const pad = (n) => String(n).padStart(2, '0');

  function localize(root) {
    for (const t of root.querySelectorAll('time[datetime]')) {
      const utc = t.getAttribute('datetime');
      const d = new Date(utc);
      if (Number.isNaN(d.getTime())) continue;
      t.title = utc;
      t.textContent = d.toLocaleString(undefined, {
        year: 'numeric', month: 'short', day: 'numeric',
        hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
      });
    }
    for (const input of root.querySelectorAll('input[type="datetime-local"][data-utc]')) {
      const d = new Date(input.dataset.utc);
      if (!input.dataset.utc || Number.isNaN(d.getTime())) continue;
      // The field holds wall-clock time: the instant moved by the zone's
      // offset at that instant. Set as a number, no browser's text format
      // for seconds can drop it.
      input.valueAsNumber = d.getTime() - d.getTimezoneOffset() * 60000;
      if (!input.value) {
        input.value = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
          `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
      }
    }
  }

  function announce(text, failed) {
    const status = document.getElementById('status');
    if (!status) return;
    status.textContent = text;
    status.classList.toggle('failed', Boolean(failed));
  }

  // Fetches this page again and swaps its content in; keeps the focus on
  // the same button when it is still there.
  async function refresh() {
    const focused = document.activeElement?.dataset?.post;
    const answer = await fetch(location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
    if (answer.redirected || !answer.ok) return false;
    const page = new DOMParser().parseFromString(await answer.text(), 'text/html');
    const fresh = page.getElementById('content');
    const main = document.getElementById('content');
    if (!fresh || !main) return false;
    main.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
    localize(main);
    const again = focused && main.querySelector(`[data-post="${CSS.escape(focused)}"]`);
    if (again) again.focus();
    return true;
  }

  let refreshing = false;
  async function refreshWhileLive() {
    if (refreshing) return;
    refreshing = true;
    try {
      for (let i = 0; i < LIVE_REFRESH_TIMES; i++) {
        if (!(await refresh())) return;
        if (!document.querySelector('#content [data-live]')) return;
        await new Promise((done) => setTimeout(done, LIVE_REFRESH_MS));
      }
    } finally {
      refreshing = false;
    }
  }

  async function act(button) {
    const label = button.dataset.label;
    button.disabled = true;
    announce(`${label}…`);
    try {
      const answer = await fetch(button.dataset.post, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'X-Ferrox-Csrf': csrf(), Accept: 'application/json' },
      });
      if (answer.ok) {
        announce(`${label}: done.`);
        await refreshWhileLive();
      } else {
        let text = `${answer.status} ${answer.statusText}`;
        try {
          const body = await answer.json();
          text = body?.Meta?.Errors?.[0]?.Text ?? text;
        } catch (_) { /* not JSON: the status says enough */ }
        announce(`${label} failed: ${text}`, true);
        button.disabled = false;
      }
    } catch (e) {
      announce(`${label} failed: ${e.message}`, true);
      button.disabled = false;
    }
  }

  document.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-post]');
    if (!button) return;
    event.preventDefault();
    act(button);
  });

  // The search form: times typed in the viewer's zone go out as UTC, and
  // empty fields stay out of the address.
  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!form.matches('form.filters')) return;
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (!value) continue;
      const input = form.elements[name];
      if (input?.type === 'datetime-local') {
        const d = new Date(value);
        if (!Number.isNaN(d.getTime())) { query.set(name, d.toISOString()); continue; }
      }
      query.set(name, value);
    }
    const search = query.toString();
    location.assign(form.action + (search ? `?${search}` : ''));
  });

  localize(document);
})();
