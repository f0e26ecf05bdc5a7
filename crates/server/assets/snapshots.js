// The dashboard's snapshots: a Snapshot button on each live sandbox, and the list of snapshots
// (GET /api/snapshot) with Restore (a new sandbox from it) and Delete. Like the rest of the page it
// uses only the public REST API; app.js hands in its API call and its helpers.

/** Wires the snapshot panel; returns what app.js calls: the row button and the list refresh. */
export function snapshots({ api, $, setText, showError, clearError, refreshSandboxes }) {
  const rows = new Map() // snapshot id -> <tr>

  const size = (n) =>
    typeof n !== 'number' ? '—' : n < 1e3 ? `${n} B` : n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : n < 1e9 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e9).toFixed(1)} GB`

  function td(label, cls, text) {
    const c = document.createElement('td')
    c.dataset.label = label
    c.className = cls
    if (text !== undefined) c.textContent = text
    return c
  }

  function button(text, label, cls, onClick) {
    const b = document.createElement('button')
    b.type = 'button'
    b.className = cls
    b.textContent = text
    b.setAttribute('aria-label', label)
    b.addEventListener('click', () => onClick(b))
    return b
  }

  function makeRow(s) {
    const tr = document.createElement('tr')
    tr.dataset.id = s.id
    const id = td('ID', 'id')
    const code = document.createElement('code')
    code.textContent = s.id
    id.append(code)
    const actions = td('Actions', 'actions')
    actions.append(
      button('Restore', `Start a sandbox from ${s.id}`, 'restore-btn', (b) => restore(s, b)),
      button('Delete', `Delete ${s.id}`, 'delete-btn danger', (b) => remove(s, b)),
    )
    const created = new Date(s.createdAt)
    tr.append(
      id,
      td('Name', 'name', s.name ?? '—'),
      td('Backend', 'backend', s.backend),
      td('Size', 'size', size(s.size)),
      td('Workdir', 'workdir', s.workdir),
      td('From', 'source', s.source),
      td('Taken', 'created', created.toLocaleString()),
      actions,
    )
    return tr
  }

  function render(list) {
    const body = $('snapshot-rows')
    const seen = new Set(list.map((s) => s.id))
    for (const s of list) {
      if (!rows.has(s.id)) {
        const tr = makeRow(s)
        rows.set(s.id, tr)
        body.append(tr)
      }
    }
    for (const [id, tr] of rows) {
      if (!seen.has(id)) {
        tr.remove()
        rows.delete(id)
      }
    }
    $('snapshots-empty').hidden = list.length !== 0
    $('snapshots').hidden = list.length === 0
  }

  async function refresh() {
    try {
      const { snapshots } = await api('GET', '/api/snapshot')
      clearError('snapshots')
      render(snapshots)
    } catch (e) {
      if (e.status !== 401) showError(`Could not refresh the snapshot list: ${e}`, 'snapshots')
    }
  }

  async function take(id, b) {
    b.disabled = true
    setText($('snapshot-status'), `Taking a snapshot of ${id}…`)
    try {
      const s = await api('POST', `/api/sandbox/${encodeURIComponent(id)}/snapshot`, {})
      setText($('snapshot-status'), `Took ${s.id} of ${id}.`)
    } catch (e) {
      setText($('snapshot-status'), '')
      showError(`Could not take a snapshot of ${id}: ${e}`)
    } finally {
      b.disabled = false
    }
    await refresh()
  }

  async function restore(s, b) {
    b.disabled = true
    setText($('snapshot-status'), `Starting a sandbox from ${s.id}…`)
    try {
      const created = await api('POST', '/api/sandbox', { fromSnapshot: s.id })
      setText($('snapshot-status'), `Started ${created.id} from ${s.id}.`)
    } catch (e) {
      setText($('snapshot-status'), '')
      showError(`Could not start a sandbox from ${s.id}: ${e}`)
    } finally {
      b.disabled = false
    }
    await refreshSandboxes()
  }

  async function remove(s, b) {
    if (!confirm(`Delete snapshot ${s.id}${s.name ? ` (${s.name})` : ''}? Its data is removed; sandboxes made from it keep running.`)) return
    b.disabled = true
    try {
      await api('DELETE', `/api/snapshot/${encodeURIComponent(s.id)}`)
      setText($('snapshot-status'), `Deleted ${s.id}.`)
    } catch (e) {
      showError(`Could not delete ${s.id}: ${e}`)
      b.disabled = false
    }
    await refresh()
  }

  /** The Snapshot button of a sandbox row. */
  function rowButton(id) {
    return button('Snapshot', `Take a snapshot of ${id}`, 'snapshot-btn', (b) => take(id, b))
  }

  $('snapshots-refresh').addEventListener('click', refresh)
  return { refresh, rowButton }
}
