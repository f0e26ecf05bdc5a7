// The dashboard of `dagger-sandbox serve`. It only uses the public REST API (docs/rest-api.md) with
// the bearer token. The token arrives in the page's URL (`/?token=...`); it is moved to
// sessionStorage and out of the address bar at once, and from then on only ever travels in the
// `Authorization` header, never in a URL (so no history entry, Referer or access log holds it).

import { snapshots } from './snapshots.js'

const TOKEN_KEY = 'dagger-sandbox.token'
const POLL_MS = 2500
const MAX_LOG_LINES = 2000

const $ = (id) => document.getElementById(id)

// --- token -------------------------------------------------------------------------------------

function takeTokenFromUrl() {
  const params = new URLSearchParams(location.search)
  if (!params.has('token')) return
  const token = params.get('token')
  params.delete('token')
  const rest = params.toString()
  history.replaceState(history.state, '', location.pathname + (rest ? `?${rest}` : '') + location.hash)
  if (token) sessionStorage.setItem(TOKEN_KEY, token)
}

const token = () => sessionStorage.getItem(TOKEN_KEY)

// --- API ---------------------------------------------------------------------------------------

/** An answer of the API that is not 2xx, with the `{"error": {code, message}}` body when there is one. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
  toString() {
    return `${this.code} (HTTP ${this.status}): ${this.message}`
  }
}

/** Turns a failed response into an ApiError; a 401 also switches the page to the token message. */
async function failure(res) {
  let code = `HTTP_${res.status}`
  let message = res.statusText || 'request failed'
  try {
    const body = await res.json()
    if (body?.error) ({ code, message } = body.error)
  } catch {
    // Not JSON (a proxy, a crash): keep the status line.
  }
  const err = new ApiError(res.status, code, message)
  if (res.status === 401) needToken(`The daemon refused the token: ${message}`)
  return err
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  let res
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  } catch (e) {
    throw new ApiError(0, 'UNREACHABLE', `the daemon did not answer (${e.message}); is it still running?`)
  }
  if (!res.ok) throw await failure(res)
  return res.json()
}

// --- alerts ------------------------------------------------------------------------------------

/** Shows an error in the alert region. A `key` replaces the previous alert with the same key. */
function showError(text, key) {
  const box = $('alerts')
  const existing = key && box.querySelector(`[data-key="${key}"]`)
  if (existing) {
    existing.querySelector('.alert-text').textContent = text
    return
  }
  const item = document.createElement('div')
  item.className = 'alert'
  if (key) item.dataset.key = key
  const p = document.createElement('p')
  p.className = 'alert-text'
  p.textContent = text
  const close = document.createElement('button')
  close.type = 'button'
  close.className = 'link'
  close.textContent = 'Dismiss'
  close.setAttribute('aria-label', `Dismiss: ${text}`)
  close.addEventListener('click', () => item.remove())
  item.append(p, close)
  box.append(item)
}

function clearError(key) {
  $('alerts').querySelector(`[data-key="${key}"]`)?.remove()
}

// --- formatting --------------------------------------------------------------------------------

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${s % 60}s`
  const h = Math.floor(m / 60)
  if (h < 24) return `${h}h ${m % 60}m`
  return `${Math.floor(h / 24)}d ${h % 24}h`
}

const shortId = (id) => id.replace(/^sbx-/, '').slice(0, 8)

/** Only http(s) URLs become links: a session's URL comes from the daemon, but a link is a link. */
const isWebUrl = (u) => typeof u === 'string' && /^https?:\/\/[^\s]+$/i.test(u)

// --- the list ----------------------------------------------------------------------------------

const rows = new Map() // id -> <tr>
let lastList = []
let pollTimer = null
let polling = false

function cell(label, cls) {
  const td = document.createElement('td')
  td.dataset.label = label
  if (cls) td.className = cls
  return td
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text
}

function makeRow(s) {
  const tr = document.createElement('tr')
  tr.dataset.id = s.id
  const id = cell('ID', 'id')
  const code = document.createElement('code')
  code.textContent = shortId(s.id)
  code.title = s.id
  code.setAttribute('aria-label', s.id)
  id.append(code)
  const actions = cell('Actions', 'actions')
  const logs = document.createElement('button')
  logs.type = 'button'
  logs.className = 'logs-btn'
  logs.textContent = 'Logs'
  logs.setAttribute('aria-label', `Follow the logs of ${s.id}`)
  logs.addEventListener('click', () => followLogs(s.id))
  const stop = document.createElement('button')
  stop.type = 'button'
  stop.className = 'stop-btn danger'
  stop.textContent = 'Stop'
  stop.setAttribute('aria-label', `Stop ${s.id}`)
  stop.addEventListener('click', () => stopOne(s.id, stop))
  // Pause keeps the sandbox's files (POST .../stop); Resume starts it again. Stop ends it.
  const pause = lifecycleButton(s.id, 'pause-btn', 'Pause', 'stop', `Pause ${s.id} (keep its files, free CPU and memory)`)
  const resume = lifecycleButton(s.id, 'resume-btn', 'Resume', 'resume', `Resume ${s.id}`)
  actions.append(logs, snaps.rowButton(s.id), pause, resume, stop)
  tr.append(
    id,
    cell('Project', 'project'),
    cell('Template / image', 'image'),
    cell('Backend', 'backend'),
    cell('Status', 'status'),
    cell('Age', 'age'),
    cell('Time left', 'left'),
    cell('URL', 'url'),
    actions,
  )
  return tr
}

function fillRow(tr, s, now) {
  const c = (cls) => tr.querySelector(`td.${cls}`)
  setText(c('project'), s.projectId ?? '—')
  const image = s.template ? `${s.template} · ${s.image}` : s.image
  setText(c('image'), image ?? '—')
  setText(c('backend'), `${s.backend} / ${s.isolation}`)
  const status = c('status')
  const label =
    s.status === 'terminated' && s.endedReason
      ? `terminated (${s.endedReason})`
      : s.status === 'stopped' && s.stoppedBy
        ? `stopped (${s.stoppedBy})`
        : s.status
  if (status.textContent !== label) {
    status.replaceChildren()
    const badge = document.createElement('span')
    badge.className = `badge ${s.status}`
    badge.textContent = label
    status.append(badge)
  }
  tr.dataset.status = s.status
  setText(c('age'), duration(now - Date.parse(s.createdAt)))
  const left = s.status === 'terminated' ? '—' : duration(Date.parse(s.expiresAt) - now)
  setText(c('left'), left)
  c('left').title = s.status === 'terminated' ? '' : `expires at ${new Date(s.expiresAt).toLocaleString()}`
  const url = c('url')
  const urls = (s.ports ?? []).filter((p) => isWebUrl(p.url))
  const urlKey = s.status === 'terminated' ? '' : urls.map((p) => p.url).join(' ')
  if (url.dataset.key !== urlKey) {
    url.dataset.key = urlKey
    url.replaceChildren()
    if (!urlKey) url.textContent = '—'
    for (const p of s.status === 'terminated' ? [] : urls) {
      const a = document.createElement('a')
      a.href = p.url
      a.target = '_blank'
      a.rel = 'noopener noreferrer'
      a.textContent = p.url
      a.title = `container port ${p.containerPort}`
      url.append(a)
    }
  }
  const stop = tr.querySelector('.stop-btn')
  stop.hidden = s.status === 'terminated'
  tr.querySelector('.snapshot-btn').hidden = s.status === 'terminated'
  tr.querySelector('.pause-btn').hidden = s.status !== 'active'
  tr.querySelector('.resume-btn').hidden = s.status !== 'stopped'
}

function render(list) {
  lastList = list
  const now = Date.now()
  const body = $('rows')
  const seen = new Set()
  let prev = null
  for (const s of list) {
    seen.add(s.id)
    let tr = rows.get(s.id)
    if (!tr) {
      tr = makeRow(s)
      rows.set(s.id, tr)
    }
    fillRow(tr, s, now)
    // Keep the server's order (newest first) without re-inserting rows that are in place, so a
    // focused button keeps its focus across refreshes.
    const want = prev ? prev.nextSibling : body.firstChild
    if (want !== tr) body.insertBefore(tr, want)
    prev = tr
  }
  for (const [id, tr] of rows) {
    if (!seen.has(id)) {
      tr.remove()
      rows.delete(id)
    }
  }
  const active = list.filter((s) => s.status === 'active').length
  const summary = list.length === 0 ? 'No sandboxes.' : `${list.length} sandbox${list.length === 1 ? '' : 'es'}, ${active} active.`
  setText($('list-status'), summary)
  $('empty').hidden = list.length !== 0
  $('sandboxes').hidden = list.length === 0
  $('stop-all').disabled = !list.some((s) => s.status !== 'terminated')
}

async function refresh() {
  try {
    const all = $('show-ended').checked ? '?all=true' : ''
    const { sandboxes } = await api('GET', `/api/sandbox${all}`)
    clearError('poll')
    render(sandboxes)
    await snaps.refresh()
  } catch (e) {
    if (e.status !== 401) showError(`Could not refresh the sandbox list: ${e}`, 'poll')
  }
}

/** Polls the list every few seconds while the tab is visible; a hidden tab costs the daemon nothing. */
function schedule() {
  clearTimeout(pollTimer)
  pollTimer = null
  if (!polling || document.hidden) return
  pollTimer = setTimeout(async () => {
    await refresh()
    schedule()
  }, POLL_MS)
}

function startPolling() {
  polling = true
  refresh().then(schedule)
}

function stopPolling() {
  polling = false
  clearTimeout(pollTimer)
}

document.addEventListener('visibilitychange', () => {
  if (!polling) return
  if (document.hidden) clearTimeout(pollTimer)
  else refresh().then(schedule)
})

// --- actions -----------------------------------------------------------------------------------

function lifecycleButton(id, className, text, action, label) {
  const b = document.createElement('button')
  b.type = 'button'
  b.className = className
  b.textContent = text
  b.setAttribute('aria-label', label)
  b.addEventListener('click', () => lifecycle(id, action, b, text))
  return b
}

async function lifecycle(id, action, button, text) {
  button.disabled = true
  button.textContent = action === 'stop' ? 'Pausing…' : 'Resuming…'
  try {
    await api('POST', `/api/sandbox/${encodeURIComponent(id)}/${action}`)
  } catch (e) {
    showError(`Could not ${action === 'stop' ? 'pause' : 'resume'} ${id}: ${e}`)
  } finally {
    button.disabled = false
    button.textContent = text
  }
  await refresh()
}

async function stopOne(id, button) {
  button.disabled = true
  button.textContent = 'Stopping…'
  try {
    await api('DELETE', `/api/sandbox/${encodeURIComponent(id)}`)
  } catch (e) {
    showError(`Could not stop ${id}: ${e}`)
  } finally {
    button.disabled = false
    button.textContent = 'Stop'
  }
  await refresh()
}

async function stopAll() {
  const open = lastList.filter((s) => s.status !== 'terminated').length
  if (!confirm(`Stop all ${open} running sandbox${open === 1 ? '' : 'es'}? Their containers are removed.`)) return
  const button = $('stop-all')
  button.disabled = true
  try {
    const { stopped } = await api('DELETE', '/api/sandbox')
    setText($('list-status'), `Stopped ${stopped} sandbox${stopped === 1 ? '' : 'es'}.`)
  } catch (e) {
    showError(`Could not stop all sandboxes: ${e}`)
  } finally {
    button.disabled = false
  }
  await refresh()
}

// --- create ------------------------------------------------------------------------------------

/** `90`, `30s`, `30m`, `1h`, `1h30m`, `2d` -> seconds; throws on anything else. */
function parseTtl(text) {
  const t = text.trim().toLowerCase()
  if (/^\d+$/.test(t)) return Number(t)
  const unit = { d: 86400, h: 3600, m: 60, s: 1 }
  if (!/^(\d+\s*[dhms]\s*)+$/.test(t)) throw new Error(`time to live "${text}" is not like 30m, 1h, 1h30m or 2d`)
  let total = 0
  for (const [, n, u] of t.matchAll(/(\d+)\s*([dhms])/g)) total += Number(n) * unit[u]
  return total
}

function parsePorts(text) {
  const parts = text.split(',').map((p) => p.trim()).filter(Boolean)
  return parts.map((p) => {
    const n = Number(p)
    if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new Error(`port "${p}" is not a number from 1 to 65535`)
    return n
  })
}

/** The create request from the form, or an Error naming the field to fix. */
function createRequest(form) {
  const v = (name) => form.elements[name].value.trim()
  const req = { backend: v('backend') }
  for (const [field, key] of [['template', 'template'], ['image', 'image'], ['projectId', 'projectId'], ['command', 'command']]) {
    if (v(field)) req[key] = v(field)
  }
  if (v('ttl')) {
    req.ttlSeconds = parseTtl(v('ttl'))
    if (req.ttlSeconds < 1) throw new Error('time to live must be at least 1 second')
  }
  const ports = parsePorts(v('ports'))
  if (ports.length) {
    if (!req.command) throw new Error('a command is required when ports are given: it is the service that listens on them')
    req.ports = ports
  }
  return req
}

async function create(ev) {
  ev.preventDefault()
  const form = ev.currentTarget
  const submit = $('create-submit')
  const error = $('create-error')
  const result = $('create-result')
  error.hidden = true
  error.textContent = ''
  let req
  try {
    req = createRequest(form)
  } catch (e) {
    error.textContent = `Check the form: ${e.message}.`
    error.hidden = false
    return
  }
  submit.disabled = true
  submit.textContent = 'Creating…'
  form.setAttribute('aria-busy', 'true')
  result.textContent = req.ports ? 'Creating; waiting for the service to listen…' : 'Creating…'
  try {
    const s = await api('POST', '/api/sandbox', req)
    result.replaceChildren(`Created ${s.id}`)
    if (isWebUrl(s.hostUrl)) {
      const a = document.createElement('a')
      a.href = s.hostUrl
      a.target = '_blank'
      a.rel = 'noopener noreferrer'
      a.textContent = s.hostUrl
      result.append(' at ', a)
    }
    result.append('.')
    await refresh()
  } catch (e) {
    result.textContent = ''
    error.textContent = `Could not create the sandbox: ${e}`
    error.hidden = false
  } finally {
    submit.disabled = false
    submit.textContent = 'Create'
    form.removeAttribute('aria-busy')
  }
}

// --- logs --------------------------------------------------------------------------------------

let logController = null

/** Reads a server-sent event stream from a fetch body, calling `onEvent(name, data)` per event. */
async function readSse(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  let buf = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buf += value
    // Events end with a blank line; a chunk may end mid-event, which stays in `buf`.
    let end
    while ((end = buf.search(/\r?\n\r?\n/)) !== -1) {
      const raw = buf.slice(0, end)
      buf = buf.slice(end).replace(/^\r?\n\r?\n/, '')
      let name = 'message'
      const data = []
      for (const line of raw.split(/\r?\n/)) {
        if (line.startsWith(':')) continue // keep-alive comment
        const i = line.indexOf(':')
        const field = i === -1 ? line : line.slice(0, i)
        const val = i === -1 ? '' : line.slice(i + 1).replace(/^ /, '')
        if (field === 'event') name = val
        else if (field === 'data') data.push(val)
      }
      if (data.length) onEvent(name, data.join('\n'))
    }
  }
}

function appendLog(stream, text) {
  const out = $('logs-output')
  const atBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 24
  const span = document.createElement('span')
  span.className = `line ${stream}`
  span.textContent = text.endsWith('\n') ? text : `${text}\n`
  out.append(span)
  while (out.childElementCount > MAX_LOG_LINES) out.firstElementChild.remove()
  if (atBottom) out.scrollTop = out.scrollHeight
}

function stopFollowing(note) {
  logController?.abort()
  logController = null
  $('logs-close').hidden = true
  if (note) setText($('logs-status'), note)
}

/**
 * Follows a session's logs with fetch() and a streamed body, not EventSource: EventSource cannot
 * send headers, so it would need the token in the URL, where history and access logs keep it.
 */
async function followLogs(id) {
  stopFollowing()
  const ctrl = new AbortController()
  logController = ctrl
  $('logs-output').replaceChildren()
  $('logs-close').hidden = false
  setText($('logs-status'), `Following ${id}…`)
  $('logs-heading').focus()
  $('logs').scrollIntoView({ block: 'nearest' })
  try {
    const res = await fetch(`/api/sandbox/${encodeURIComponent(id)}/logs?follow=true`, {
      headers: { Authorization: `Bearer ${token()}`, Accept: 'text/event-stream' },
      signal: ctrl.signal,
    })
    if (!res.ok) throw await failure(res)
    let ended = null
    await readSse(res.body, (name, data) => {
      const msg = JSON.parse(data)
      if (name === 'log') appendLog(msg.stream, msg.text)
      else if (name === 'end') ended = msg
    })
    if (logController === ctrl) {
      const why = ended ? `${ended.status}${ended.endedReason ? ` (${ended.endedReason})` : ''}` : 'the stream closed'
      stopFollowing(`Logs of ${id}: ended, ${why}.`)
    }
  } catch (e) {
    if (ctrl.signal.aborted) return
    if (logController === ctrl) stopFollowing(`Logs of ${id}: not following.`)
    if (e.status !== 401) showError(`Could not follow the logs of ${id}: ${e}`)
  }
}

// --- start -------------------------------------------------------------------------------------

function needToken(message) {
  sessionStorage.removeItem(TOKEN_KEY)
  stopPolling()
  stopFollowing()
  $('app').hidden = true
  $('auth').hidden = false
  setText($('daemon-info'), 'Not connected.')
  setText($('auth-message'), message)
}

async function start() {
  if (!token()) {
    needToken('No token was given to this page, so it cannot call the daemon.')
    return
  }
  try {
    const h = await api('GET', '/api/health')
    setText($('daemon-info'), `Daemon ${h.version}, pid ${h.pid}. The list refreshes every few seconds.`)
  } catch (e) {
    if (e.status === 401) return
    showError(`The daemon did not answer its health check: ${e}`, 'health')
  }
  $('auth').hidden = true
  $('app').hidden = false
  startPolling()
}

const snaps = snapshots({ api, $, setText, showError, clearError, refreshSandboxes: () => refresh() })
takeTokenFromUrl()
$('create-form').addEventListener('submit', create)
$('stop-all').addEventListener('click', stopAll)
$('refresh').addEventListener('click', refresh)
$('show-ended').addEventListener('change', refresh)
$('logs-close').addEventListener('click', () => stopFollowing('Not following any logs.'))
$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault()
  const value = $('token-input').value.trim()
  $('token-input').value = ''
  if (!value) return
  sessionStorage.setItem(TOKEN_KEY, value)
  start()
})
start()
