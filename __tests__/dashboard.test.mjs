// The dashboard served by `dagger-sandbox serve`, end to end in headless Chromium (Debian's
// /usr/bin/chromium, installed by scripts/browser.sh, driven by playwright-core): open it with the
// token, create a service sandbox from the form, follow its URL and logs, take a snapshot of a
// sandbox and start one from it, stop it, "stop all", and the message a page without the token shows. Saves a screenshot to a temp dir, or to
// docs/dashboard.png for the README when DAGGER_SANDBOX_UPDATE_DOCS=1 (a test run never changes
// tracked files otherwise).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { skipDocker, BUSYBOX } from './helpers.mjs'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
// Where cargo put the debug daemon: CARGO_TARGET_DIR (relative to the checkout) or ./target.
const BIN = join(resolve(root, process.env.CARGO_TARGET_DIR || 'target'), 'debug', 'dagger-sandbox')
const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOT =
  process.env.DAGGER_SANDBOX_UPDATE_DOCS === '1'
    ? join(root, 'docs', 'dashboard.png')
    : join(mkdtempSync(join(tmpdir(), 'dsbx-dashboard-')), 'dashboard.png')
// The snapshot panel's screenshot: always a temp dir.
const SNAPSHOT_SHOT = join(mkdtempSync(join(tmpdir(), 'dsbx-dashboard-snap-')), 'dashboard-snapshots.png')
const SERVICE = 'mkdir -p /www && echo hello-dashboard > /www/index.html && busybox httpd -f -v -p 8080 -h /www'
// Creating a service waits for its port; allow for a slow engine, but never wait forever.
const CREATE_MS = 90_000
const UI_MS = 15_000

function browserSkip() {
  if (existsSync(CHROMIUM)) return false
  const why = `${CHROMIUM} is missing (bash scripts/browser.sh installs it)`
  if (process.env.DAGGER_SANDBOX_REQUIRE_DOCKER === '1') throw new Error(`${why}; DAGGER_SANDBOX_REQUIRE_DOCKER=1 requires it`)
  return why
}
const skip = skipDocker || browserSkip()
if (skip) console.warn(`# SKIPPING dashboard browser test: ${skip}`)

/** Starts the daemon on a free port and resolves with its URL once it prints the listening line. */
function startDaemon(stateDir) {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run cargo build -p dagger-sandbox-cli`)
  const child = spawn(BIN, ['serve', '--addr', '127.0.0.1:0', '--state-dir', stateDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' },
  })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon printed no URL within 60 s; stderr:\n${stderr}`)), 60_000)
    child.stdout.on('data', (d) => {
      stdout += d
      const m = stdout.match(/listening on (http:\/\/\S+\?token=\S+)/)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the daemon exited (${code ?? signal}) before listening; stderr:\n${stderr}`))
    })
  })
  return { child, url, stderr: () => stderr }
}

/** SIGTERM to the daemon we spawned (never a process group), SIGKILL if it lingers past 15 s. */
async function stopDaemon(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  process.kill(child.pid, 'SIGTERM')
  const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 15_000)
  await exited
  clearTimeout(timer)
}

function containersOf(owner) {
  const out = execFileSync('docker', ['ps', '-aq', '--filter', `label=dev.dagger-sandbox.owner=${owner}`], { encoding: 'utf8' })
  return out.split('\n').filter(Boolean)
}

describe('dashboard in a real browser', { skip }, () => {
  let stateDir, owner, daemon, base, token, browser, page
  const requests = []
  const pageErrors = []

  before(async () => {
    // The owner label names the canonical state dir (the daemon canonicalizes it).
    stateDir = realpathSync(mkdtempSync(join(tmpdir(), 'dsb-dashboard-')))
    owner = `daemon:${stateDir}`
    daemon = startDaemon(stateDir)
    const url = new URL(await daemon.url)
    token = url.searchParams.get('token')
    base = url.origin
    const { chromium } = await import('playwright-core')
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  })

  after(async () => {
    // Runs even when a test failed: nothing may outlive the test.
    await browser?.close().catch(() => {})
    if (daemon) await stopDaemon(daemon.child)
    if (owner) {
      const left = containersOf(owner)
      if (left.length) execFileSync('docker', ['rm', '-f', ...left], { stdio: 'ignore' })
    }
    if (stateDir) rmSync(stateDir, { recursive: true, force: true })
  })

  /** The daemon's own view, through the same public API, to check what the page claims. */
  async function apiList() {
    const r = await fetch(`${base}/api/sandbox?all=true`, { headers: { Authorization: `Bearer ${token}` } })
    assert.equal(r.status, 200)
    return (await r.json()).sandboxes
  }

  it('without the token, the page says to open the URL `dagger-sandbox serve` printed', async () => {
    const ctx = await browser.newContext()
    const p = await ctx.newPage()
    await p.goto(`${base}/`)
    const auth = p.locator('#auth')
    await auth.waitFor({ state: 'visible', timeout: UI_MS })
    assert.match(await auth.innerText(), /Open the URL that dagger-sandbox serve printed/)
    assert.match(await p.locator('#auth-message').innerText(), /No token/)
    assert.equal(await p.locator('#app').isVisible(), false, 'the sandbox list is hidden without a token')
    // A wrong token gets the daemon's 401 message, not a blank page.
    await p.goto(`${base}/?token=not-the-token`)
    await p.locator('#auth-message').filter({ hasText: /refused the token/ }).waitFor({ timeout: UI_MS })
    assert.ok(!p.url().includes('not-the-token'), 'even a wrong token leaves the address bar')
    await ctx.close()
  })

  it('opens with the token, then keeps it out of the address bar', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    page = await ctx.newPage()
    page.on('request', (r) => requests.push({ url: r.url(), referer: r.headers().referer ?? '' }))
    page.on('pageerror', (e) => pageErrors.push(String(e)))
    page.on('console', (m) => /Content Security Policy/i.test(m.text()) && pageErrors.push(m.text()))
    await page.goto(`${base}/?token=${encodeURIComponent(token)}`)
    await page.locator('#app').waitFor({ state: 'visible', timeout: UI_MS })
    assert.equal(page.url(), `${base}/`, 'the token left the address bar')
    await page.locator('#empty').waitFor({ state: 'visible', timeout: UI_MS })
    assert.match(await page.locator('#empty').innerText(), /No sandboxes yet/)
    assert.match(await page.locator('#daemon-info').innerText(), /Daemon \S+, pid \d+/)
  })

  it('shows a form mistake and an API error in the page', async () => {
    await page.getByLabel('Ports', { exact: true }).fill('8080')
    await page.getByRole('button', { name: 'Create', exact: true }).click()
    const err = page.locator('#create-error')
    await err.filter({ hasText: /command is required when ports are given/ }).waitFor({ timeout: UI_MS })
    // 400 days is past the daemon's 366-day limit: its INVALID_ARGUMENT message is shown as is.
    await page.getByLabel('Ports', { exact: true }).fill('')
    await page.getByLabel('Time to live', { exact: true }).fill('400d')
    await page.getByRole('button', { name: 'Create', exact: true }).click()
    await err.filter({ hasText: /INVALID_ARGUMENT \(HTTP 400\)/ }).waitFor({ timeout: UI_MS })
    assert.equal((await apiList()).length, 0, 'a refused create leaves nothing behind')
  })

  let first, hostUrl
  it('creates a service sandbox from the form and shows it active with a working URL', async () => {
    await page.getByLabel('Image', { exact: true }).fill(BUSYBOX)
    await page.getByLabel('Backend', { exact: true }).selectOption('docker')
    await page.getByLabel('Project', { exact: true }).fill('dashboard-demo')
    await page.getByLabel('Time to live', { exact: true }).fill('30m')
    await page.getByLabel('Ports', { exact: true }).fill('8080')
    await page.getByLabel('Command', { exact: true }).fill(SERVICE)
    const submit = page.getByRole('button', { name: 'Create', exact: true })
    await submit.click()
    assert.ok(await page.locator('#create-submit').isDisabled(), 'the submit button is disabled while creating')
    const result = page.locator('#create-result').filter({ hasText: /Created sbx-/ })
    await result.waitFor({ timeout: CREATE_MS })
    first = (await result.innerText()).match(/sbx-[0-9a-f]+/)[0]
    assert.equal(await page.locator('#create-error').isVisible(), false)
    assert.ok(await page.locator('#create-submit').isEnabled())

    const row = page.locator(`tr[data-id="${first}"]`)
    await row.locator('.badge', { hasText: 'active' }).waitFor({ timeout: UI_MS })
    assert.equal(await row.locator('td.project').innerText(), 'dashboard-demo')
    assert.equal(await row.locator('td.backend').innerText(), 'docker / container')
    assert.match(await row.locator('td.left').innerText(), /^(29|30)m/)
    assert.equal(await row.locator('td.id code').getAttribute('title'), first, 'the full id is in the title')
    const link = row.locator('td.url a')
    const href = await link.getAttribute('href')
    assert.match(href, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(await link.getAttribute('target'), '_blank')
    assert.match(await link.getAttribute('rel'), /\bnoopener\b/)
    const session = (await apiList()).find((s) => s.id === first)
    assert.equal(href, session.hostUrl, 'the link is the session URL the API reports')
    hostUrl = href
    const body = await (await fetch(href)).text()
    assert.equal(body.trim(), 'hello-dashboard')
  })

  it("follows the sandbox's logs", async () => {
    const row = page.locator(`tr[data-id="${first}"]`)
    await row.getByRole('button', { name: `Follow the logs of ${first}` }).click()
    const out = page.locator('#logs-output')
    const served = out.locator('span.line', { hasText: 'response:200' })
    // The request above is in the backlog...
    await served.first().waitFor({ timeout: UI_MS })
    const before = await served.count()
    // ...and a new one arrives while following.
    assert.equal((await (await fetch(hostUrl)).text()).trim(), 'hello-dashboard')
    await page.waitForFunction(
      (n) => document.querySelectorAll('#logs-output span.line').length > 0 &&
        [...document.querySelectorAll('#logs-output span.line')].filter((s) => s.textContent.includes('response:200')).length > n,
      before,
      { timeout: UI_MS },
    )
    assert.match(await page.locator('#logs-status').innerText(), new RegExp(`Following ${first}`))
  })

  let second
  it('lists a second sandbox and saves a screenshot of the populated list', async () => {
    await page.getByLabel('Ports', { exact: true }).fill('')
    await page.getByLabel('Command', { exact: true }).fill('')
    await page.getByLabel('Project', { exact: true }).fill('dashboard-scratch')
    await page.getByLabel('Time to live', { exact: true }).fill('1h')
    await page.getByRole('button', { name: 'Create', exact: true }).click()
    const result = page.locator('#create-result').filter({ hasText: new RegExp(`Created sbx-(?!${first.slice(4)})`) })
    await result.waitFor({ timeout: CREATE_MS })
    second = (await result.innerText()).match(/sbx-[0-9a-f]+/)[0]
    await page.locator(`tr[data-id="${second}"] .badge`, { hasText: 'active' }).waitFor({ timeout: UI_MS })
    assert.equal(await page.locator('#rows tr').count(), 2)
    assert.match(await page.locator('#list-status').innerText(), /2 sandboxes, 2 active/)
    await page.locator('#sandboxes-heading').scrollIntoViewIfNeeded()
    await page.screenshot({ path: SCREENSHOT })
  })

  it('takes a snapshot of a sandbox, lists it, starts a sandbox from it and deletes it', async () => {
    // Other snapshots on the engine may be listed too: only this one is looked at.
    await page.getByRole('button', { name: `Take a snapshot of ${second}` }).click()
    const taken = page.locator('#snapshot-status').filter({ hasText: new RegExp(`Took snap-[0-9a-f]{12} of ${second}`) })
    await taken.waitFor({ timeout: CREATE_MS })
    const snap = (await taken.innerText()).match(/snap-[0-9a-f]{12}/)[0]
    const row = page.locator(`#snapshot-rows tr[data-id="${snap}"]`)
    await row.waitFor({ timeout: UI_MS })
    assert.equal(await row.locator('td.source').innerText(), second)
    assert.equal(await row.locator('td.backend').innerText(), 'docker')
    assert.equal(await row.locator('td.workdir').innerText(), '/app')
    assert.match(await row.locator('td.size').innerText(), /\d(\.\d)? (B|kB|MB|GB)$/)
    await page.locator('#snapshots-heading').scrollIntoViewIfNeeded()
    await page.screenshot({ path: SNAPSHOT_SHOT })

    // Restore: a third sandbox, from the snapshot, joins the list; stop it again from its row.
    await row.getByRole('button', { name: `Start a sandbox from ${snap}` }).click()
    const started = page.locator('#snapshot-status').filter({ hasText: new RegExp(`Started sbx-[0-9a-f]+ from ${snap}`) })
    await started.waitFor({ timeout: CREATE_MS })
    const third = (await started.innerText()).match(/sbx-[0-9a-f]+/)[0]
    await page.locator(`tr[data-id="${third}"] .badge`, { hasText: 'active' }).waitFor({ timeout: UI_MS })
    await page.getByRole('button', { name: `Stop ${third}` }).click()
    await page.locator(`tr[data-id="${third}"]`).waitFor({ state: 'detached', timeout: CREATE_MS })

    // Delete asks first; then the row, the snapshot and its image are gone.
    let asked = ''
    page.once('dialog', (d) => {
      asked = d.message()
      d.accept()
    })
    await row.getByRole('button', { name: `Delete ${snap}` }).click()
    await row.waitFor({ state: 'detached', timeout: CREATE_MS })
    assert.match(asked, new RegExp(`Delete snapshot ${snap}`))
    const r = await fetch(`${base}/api/snapshot/${snap}`, { headers: { Authorization: `Bearer ${token}` } })
    assert.equal(r.status, 404)
    const images = execFileSync('docker', ['images', '-aq', '--filter', `label=dev.dagger-sandbox.snapshot=${snap}`], { encoding: 'utf8' })
    assert.equal(images.trim(), '', 'the snapshot image is removed')
    assert.match(await page.locator('#list-status').innerText(), /2 active/)
  })

  it('stays usable at a narrow width', async () => {
    await page.setViewportSize({ width: 400, height: 800 })
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at 400px`)
    // Rows become cards that label each value.
    const label = await page.locator(`tr[data-id="${first}"] td.status`).evaluate((td) => getComputedStyle(td, '::before').content)
    assert.equal(label, '"Status"')
    await page.setViewportSize({ width: 1280, height: 800 })
  })

  it('pauses a sandbox (shown stopped, files kept) and resumes it with the Resume button', async () => {
    const row = page.locator(`tr[data-id="${second}"]`)
    await row.getByRole('button', { name: `Pause ${second}` }).click()
    await row.locator('.badge', { hasText: 'stopped (user)' }).waitFor({ timeout: CREATE_MS })
    assert.equal(await row.getByRole('button', { name: `Pause ${second}` }).isVisible(), false)
    let s = (await apiList()).find((x) => x.id === second)
    assert.deepEqual([s.status, s.stoppedBy], ['stopped', 'user'])
    const running = execFileSync('docker', ['inspect', '-f', '{{.State.Running}}', s.containerId], { encoding: 'utf8' })
    assert.equal(running.trim(), 'false', 'the container is stopped, not removed')
    await page.locator('#sandboxes-heading').scrollIntoViewIfNeeded()
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-stopped.png') })
    await row.getByRole('button', { name: `Resume ${second}` }).click()
    await row.locator('.badge', { hasText: 'active' }).waitFor({ timeout: CREATE_MS })
    s = (await apiList()).find((x) => x.id === second)
    assert.deepEqual([s.status, s.stoppedBy], ['active', null])
  })

  it('stops one sandbox from the keyboard, and it leaves the list', async () => {
    const stop = page.getByRole('button', { name: `Stop ${first}` })
    await stop.focus()
    await page.keyboard.press('Enter')
    await page.locator(`tr[data-id="${first}"]`).waitFor({ state: 'detached', timeout: CREATE_MS })
    // The log follower got the end of the stream.
    await page.locator('#logs-status').filter({ hasText: /ended, terminated \(stopped\)/ }).waitFor({ timeout: UI_MS })
    const s = (await apiList()).find((x) => x.id === first)
    assert.deepEqual([s.status, s.endedReason], ['terminated', 'stopped'])
    await assert.rejects(fetch(s.hostUrl), 'the service URL stops answering')
  })

  it('"Stop all" asks first, then stops the rest and shows the empty state', async () => {
    let asked = ''
    page.once('dialog', (d) => {
      asked = d.message()
      d.accept()
    })
    await page.getByRole('button', { name: 'Stop all', exact: true }).click()
    await page.locator('#empty').waitFor({ state: 'visible', timeout: CREATE_MS })
    assert.match(asked, /Stop all 1 running sandbox\b/)
    assert.equal(await page.locator('#rows tr').count(), 0)
    const s = (await apiList()).find((x) => x.id === second)
    assert.deepEqual([s.status, s.endedReason], ['terminated', 'stopped'])
    assert.deepEqual(containersOf(owner), [], 'stopping removed the containers')
  })

  it('never put the token in a URL or Referer after the first load, and ran no blocked script', () => {
    assert.ok(requests.length > 5, `saw ${requests.length} requests`)
    const [firstLoad, ...rest] = requests
    assert.ok(firstLoad.url.includes(token), 'the page was opened with the token')
    for (const r of rest) {
      assert.ok(!r.url.includes(token), `token in a URL: ${r.url}`)
      assert.ok(!r.referer.includes(token), `token in the Referer of ${r.url}`)
      assert.ok(r.url.startsWith(`${base}/`), `a request left the daemon: ${r.url}`)
    }
    assert.deepEqual(pageErrors, [])
    assert.ok(!daemon.stderr().includes(token), "the token is not in the daemon's log")
  })
})
