// Every rejection is a SandboxError with the core's stable code; cancellation really kills.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DaggerSandbox, SandboxError } from '../index.js'
import { busybox, rejectsWith, skipDocker } from './helpers.mjs'

test('NOT_FOUND names the sandbox and the path', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    const e = await rejectsWith(sb.readFile('missing.txt'), 'NOT_FOUND')
    assert.ok(e instanceof Error)
    assert.equal(e.name, 'SandboxError')
    assert.ok(e.message.includes(sb.id), e.message)
    assert.ok(e.message.includes('/workspace/missing.txt'), e.message)
    await rejectsWith(sb.deleteFile('missing.txt'), 'NOT_FOUND')
    await rejectsWith(sb.listDirectory('/nope'), 'NOT_FOUND')
    // Text reads refuse bytes that are not UTF-8 rather than mangling them; readFileBytes is exact.
    await sb.writeFile('bin', Buffer.from([0xff, 0xfe]))
    await rejectsWith(sb.readFile('bin'), 'INVALID_ARGUMENT')
    assert.deepEqual(await sb.readFileBytes('bin'), Buffer.from([0xff, 0xfe]))
  } finally {
    await sb.close()
  }
})

test('RESTRICTED_PATH, INVALID_PATH and INVALID_ARGUMENT', { skip: skipDocker }, async () => {
  const sb = await busybox({ restrictedPaths: ['/etc/**'] })
  try {
    const e = await rejectsWith(sb.writeFile('/etc/passwd', 'x'), 'RESTRICTED_PATH')
    assert.ok(e.message.includes('/etc/passwd'))
    const bad = await rejectsWith(sb.writeFile('/', 'x'), 'INVALID_PATH')
    assert.ok(bad.message.includes(sb.id), bad.message)
    await rejectsWith(sb.exec('true', { timeoutMs: -5 }), 'INVALID_ARGUMENT')
    await rejectsWith(sb.writeFile('x', 42), 'INVALID_ARGUMENT')
    assert.throws(() => sb.withEnv('BAD=KEY', 'v'), (err) => err instanceof SandboxError && err.code === 'INVALID_ARGUMENT')
  } finally {
    await sb.close()
  }
})

test('create rejects unknown options and bad backends with INVALID_ARGUMENT', async () => {
  await rejectsWith(DaggerSandbox.create({ backend: 'nope' }), 'INVALID_ARGUMENT')
  await rejectsWith(DaggerSandbox.create({ timeoutMs: 1.5 }), 'INVALID_ARGUMENT')
})

test('TIMEOUT kills the command', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    const started = Date.now()
    const e = await rejectsWith(sb.exec('sleep 30', { timeoutMs: 300 }), 'TIMEOUT')
    assert.ok(Date.now() - started < 10_000)
    assert.ok(e.message.includes('sleep 30'))
  } finally {
    await sb.close()
  }
})

test('an aborted signal rejects with CANCELLED and really stops the command', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    const ac = new AbortController()
    const started = Date.now()
    const p = sb.exec('sleep 2; echo late > /tmp/marker', { signal: ac.signal })
    setTimeout(() => ac.abort(), 300)
    await rejectsWith(p, 'CANCELLED')
    assert.ok(Date.now() - started < 1900, 'cancel did not wait for the command')
    await new Promise((r) => setTimeout(r, 2500))
    assert.equal((await sb.exec('test -e /tmp/marker')).exitCode, 1, 'the command kept running after abort')
    await rejectsWith(sb.exec('true', { signal: AbortSignal.abort() }), 'CANCELLED')
    // A user's own onabort handler survives (the signal is listened to, not overwritten).
    const ac2 = new AbortController()
    let own = false
    ac2.signal.onabort = () => (own = true)
    const p2 = sb.exec('sleep 5', { signal: ac2.signal })
    setTimeout(() => ac2.abort(), 100)
    await rejectsWith(p2, 'CANCELLED')
    assert.equal(own, true)
  } finally {
    await sb.close()
  }
})

test('after close() every call rejects with CLOSED, including one in flight', { skip: skipDocker }, async () => {
  const sb = await busybox()
  // The handler is attached at once: the rejection comes while close() is still awaited.
  const inFlight = rejectsWith(sb.exec('sleep 20'), 'CLOSED')
  await new Promise((r) => setTimeout(r, 300))
  await sb.close()
  await inFlight
  await rejectsWith(sb.exec('true'), 'CLOSED')
  await rejectsWith(sb.readFile('x'), 'CLOSED')
  await rejectsWith(sb.writeFile('x', 'y'), 'CLOSED')
  await rejectsWith(sb.fork(), 'CLOSED')
  assert.throws(() => sb.withEnv('A', 'b'), (e) => e instanceof SandboxError && e.code === 'CLOSED')
})
