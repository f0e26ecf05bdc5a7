// Durable sandboxes from Node: stop and resume, and a persistent sandbox made by one process that
// another process drives by id through the daemon.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DaggerSandbox } from '../index.js'
import { skipDocker, busybox, rejectsWith, BUSYBOX } from './helpers.mjs'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const cli = join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'debug', 'dagger-sandbox')

test('a stopped sandbox rejects calls with STOPPED and resumes with its files and env', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    await sb.writeFile('kept.txt', 'kept')
    sb.withEnv('KEPT', 'yes')
    await sb.stop()
    assert.equal(sb.stopped, true)
    const e = await rejectsWith(sb.exec('true'), 'STOPPED')
    assert.match(e.message, /resume/)
    await rejectsWith(sb.readFile('kept.txt'), 'STOPPED')
    await sb.resume()
    assert.equal(sb.stopped, false)
    const r = await sb.exec('cat kept.txt; echo " $KEPT"')
    assert.equal(r.stdout, 'kept yes\n')
    assert.equal(sb.connected, false)
  } finally {
    await sb.close()
  }
})

function runChild(source, env) {
  const dir = mkdtempSync(join(tmpdir(), 'dsb-durable-'))
  const file = join(dir, 'child.mjs')
  writeFileSync(file, source)
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } })
  assert.equal(r.status, 0, `child failed: ${r.stderr}`)
  return r.stdout.trim()
}

test('a persistent sandbox outlives the process that made it; another process connects by id', { skip: skipDocker || (!existsSync(cli) && `${cli} is missing: cargo build -p dagger-sandbox-cli`) }, async () => {
  const stateDir = join(mkdtempSync(join(tmpdir(), 'dsb-state-')), 'state')
  const env = { DAGGER_SANDBOX_BIN: cli }
  const index = JSON.stringify(join(root, 'index.js'))
  try {
    // Process 1 creates it through the daemon (starting one), writes a file and exits without closing.
    const id = runChild(`
      import { DaggerSandbox } from ${index}
      const sb = await DaggerSandbox.create({ persistent: true, stateDir: ${JSON.stringify(stateDir)},
        backend: 'docker', image: ${JSON.stringify(BUSYBOX)}, env: { MADE_BY: 'process-one' } })
      await sb.writeFile('note.txt', 'from process one')
      if (!sb.connected) throw new Error('a persistent sandbox is owned by the daemon')
      console.log(sb.id)
    `, env)
    assert.match(id, /^sbx-[0-9a-f]{12}$/)
    // Process 2 connects by id and execs; its close() leaves the sandbox to the daemon.
    const out = runChild(`
      import { DaggerSandbox } from ${index}
      const sb = await DaggerSandbox.connect(${JSON.stringify(id)}, { stateDir: ${JSON.stringify(stateDir)} })
      const r = await sb.exec('cat note.txt; echo " $MADE_BY"')
      await sb.close()
      console.log(r.stdout.trim())
    `, env)
    assert.equal(out, 'from process one process-one')
    // Still there: this process connects, stops, resumes and deletes it.
    const sb = await DaggerSandbox.connect(id, { stateDir })
    await sb.stop()
    await sb.resume()
    assert.equal((await sb.readFile('note.txt')), 'from process one')
    await sb.close({ delete: true })
    const left = execFileSync('docker', ['ps', '-aq', '--filter', `label=dev.dagger-sandbox.sandbox=${id}`], { encoding: 'utf8' })
    assert.equal(left.trim(), '', 'delete removed the container')
    await rejectsWith(DaggerSandbox.connect(id, { stateDir }), 'CLOSED')
    await rejectsWith(DaggerSandbox.connect('sbx-000000000000', { stateDir }), 'NOT_FOUND')
    await rejectsWith(DaggerSandbox.create({ persistent: true, stateDir, ports: [80] }), 'INVALID_ARGUMENT')
  } finally {
    // Stop the daemon this test started (by the pid it recorded), only that one.
    if (existsSync(join(stateDir, 'daemon.json'))) {
      const { pid } = JSON.parse(readFileSync(join(stateDir, 'daemon.json'), 'utf8'))
      process.kill(pid, 'SIGTERM')
    }
  }
})
