// Hostile input through the Node binding: wrong types, out-of-range numbers, NUL bytes, paths that
// leave the sandbox, huge strings, calls on closed sandboxes. Each one is a SandboxError with a
// stable code (never a crash, a plain TypeError or a hang), and the sandbox keeps working after it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { DaggerSandbox, SandboxError } from '../index.js'

const CODES = new Set([
  'ENGINE_UNAVAILABLE', 'TIMEOUT', 'NOT_FOUND', 'RESTRICTED_PATH', 'INVALID_PATH', 'INVALID_ARGUMENT',
  'CLOSED', 'CANCELLED', 'ENGINE_ERROR', 'IO_ERROR',
])

/** Runs `call` (sync throw or async rejection) and returns the SandboxError it fails with. */
async function failure(call) {
  let value
  try {
    value = await call()
  } catch (e) {
    return e
  }
  if (value instanceof DaggerSandbox) await value.close()
  return null
}

test('every hostile input is a typed SandboxError and the sandbox keeps working', async () => {
  const sb = await DaggerSandbox.create({ backend: 'local', restrictedPaths: ['secrets/**'] })
  const closed = await DaggerSandbox.create({ backend: 'local' })
  await closed.close()
  const huge = 'x'.repeat(1 << 20)
  // [what, call, expected code]
  const cases = [
    // create options
    ['create: unknown backend', () => DaggerSandbox.create({ backend: 'podman' }), 'INVALID_ARGUMENT'],
    ['create: backend of the wrong type', () => DaggerSandbox.create({ backend: 7 }), 'INVALID_ARGUMENT'],
    ['create: fractional timeout', () => DaggerSandbox.create({ backend: 'local', timeoutMs: 1.5 }), 'INVALID_ARGUMENT'],
    ['create: negative timeout', () => DaggerSandbox.create({ backend: 'local', timeoutMs: -1 }), 'INVALID_ARGUMENT'],
    ['create: zero timeout', () => DaggerSandbox.create({ backend: 'local', timeoutMs: 0 }), 'INVALID_ARGUMENT'],
    ['create: NaN timeout', () => DaggerSandbox.create({ backend: 'local', timeoutMs: NaN }), 'INVALID_ARGUMENT'],
    ['create: relative workdir', () => DaggerSandbox.create({ backend: 'local', workdir: 'rel' }), 'INVALID_ARGUMENT'],
    ['create: unknown template', () => DaggerSandbox.create({ template: 'cobol' }), 'INVALID_ARGUMENT'],
    ['create: empty image', () => DaggerSandbox.create({ backend: 'docker', image: '' }), 'INVALID_ARGUMENT'],
    ['create: bad glob', () => DaggerSandbox.create({ backend: 'local', restrictedPaths: ['[x'] }), 'INVALID_ARGUMENT'],
    ['create: env name with =', () => DaggerSandbox.create({ backend: 'local', env: { 'A=B': 'x' } }), 'INVALID_ARGUMENT'],
    ['create: env value with NUL', () => DaggerSandbox.create({ backend: 'local', env: { A: 'x\0' } }), 'INVALID_ARGUMENT'],
    ['create: unknown option', () => DaggerSandbox.create({ backend: 'local', imagee: 'x' }), 'INVALID_ARGUMENT'],
    ['create: options not an object', () => DaggerSandbox.create('local'), 'INVALID_ARGUMENT'],
    ['create: options an array', () => DaggerSandbox.create([]), 'INVALID_ARGUMENT'],
    // exec
    ['exec: negative timeout', () => sb.exec('true', { timeoutMs: -5 }), 'INVALID_ARGUMENT'],
    ['exec: zero timeout', () => sb.exec('true', { timeoutMs: 0 }), 'INVALID_ARGUMENT'],
    ['exec: env name empty', () => sb.exec('true', { env: { '': 'x' } }), 'INVALID_ARGUMENT'],
    ['exec: env value with NUL', () => sb.exec('true', { env: { A: '\0' } }), 'INVALID_ARGUMENT'],
    ['exec: cwd with NUL', () => sb.exec('true', { cwd: 'a\0' }), 'INVALID_PATH'],
    ['exec: cwd missing', () => sb.exec('true', { cwd: '/nonexistent' }), 'NOT_FOUND'],
    ['exec: command not a string', () => sb.exec(42), 'INVALID_ARGUMENT'],
    ['exec: options not an object', () => sb.exec('true', 'fast'), 'INVALID_ARGUMENT'],
    ['exec: already aborted', () => sb.exec('true', { signal: AbortSignal.abort() }), 'CANCELLED'],
    // files
    ['readFile: NUL in path', () => sb.readFile('a\0b'), 'INVALID_PATH'],
    ['readFile: empty path', () => sb.readFile(''), 'INVALID_PATH'],
    ['readFile: missing', () => sb.readFile('missing.txt'), 'NOT_FOUND'],
    ['readFile: escaping ..', () => sb.readFile('../../../../etc/shadow'), 'NOT_FOUND'],
    ['readFile: a directory', () => sb.readFile('/'), 'INVALID_ARGUMENT'],
    ['readFile: huge path', () => sb.readFile(huge), 'IO_ERROR'],
    ['readFileBytes: path not a string', () => sb.readFileBytes(5), 'INVALID_ARGUMENT'],
    ['writeFile: over the root', () => sb.writeFile('/', 'x'), 'INVALID_PATH'],
    ['writeFile: empty path', () => sb.writeFile('', 'x'), 'INVALID_PATH'],
    ['writeFile: contents a number', () => sb.writeFile('x', 42), 'INVALID_ARGUMENT'],
    ['writeFile: contents an object', () => sb.writeFile('x', { a: 1 }), 'INVALID_ARGUMENT'],
    ['writeFile: mode above 0o7777', () => sb.writeFile('x', 'y', { mode: 0o10000 }), 'INVALID_ARGUMENT'],
    ['writeFile: negative mode', () => sb.writeFile('x', 'y', { mode: -1 }), 'INVALID_ARGUMENT'],
    ['writeFile: restricted path', () => sb.writeFile('secrets/key.txt', 'k'), 'RESTRICTED_PATH'],
    ['writeFile: unknown option', () => sb.writeFile('x', 'y', { mdoe: 0o600 }), 'INVALID_ARGUMENT'],
    ['exec: unknown option', () => sb.exec('true', { timeout: 5 }), 'INVALID_ARGUMENT'],
    ['refreshFromHost: unknown option', () => sb.refreshFromHost('/tmp', '/workspace', { excludes: [] }), 'INVALID_ARGUMENT'],
    ['writeFiles: not an object', () => sb.writeFiles('x'), 'INVALID_ARGUMENT'],
    ['writeFiles: an empty path', () => sb.writeFiles({ '': 'x' }), 'INVALID_PATH'],
    ['deleteFile: the root', () => sb.deleteFile('/'), 'INVALID_PATH'],
    ['deleteFile: missing', () => sb.deleteFile('nope/nope'), 'NOT_FOUND'],
    ['listDirectory: missing', () => sb.listDirectory('/nope'), 'NOT_FOUND'],
    ['setWorkdir: NUL', () => sb.setWorkdir('a\0'), 'INVALID_PATH'],
    ['withEnv: name with =', () => sb.withEnv('BAD=KEY', 'v'), 'INVALID_ARGUMENT'],
    ['withEnv: value with NUL', () => sb.withEnv('A', 'x\0'), 'INVALID_ARGUMENT'],
    ['withEnvs: not an object', () => sb.withEnvs('A=1'), 'INVALID_ARGUMENT'],
    ['exportDirectory: missing source', () => sb.exportDirectory('nope', '/nonexistent/out'), 'NOT_FOUND'],
    ['refreshFromHost: missing host dir', () => sb.refreshFromHost('/nonexistent/dir', '/workspace'), 'IO_ERROR'],
    // a closed sandbox
    ['closed: exec', () => closed.exec('true'), 'CLOSED'],
    ['closed: readFile', () => closed.readFile('x'), 'CLOSED'],
    ['closed: writeFile', () => closed.writeFile('x', 'y'), 'CLOSED'],
    ['closed: fork', () => closed.fork(), 'CLOSED'],
    ['closed: withEnv', () => closed.withEnv('A', 'b'), 'CLOSED'],
  ]
  let typed = 0
  const wrong = []
  for (const [what, call, code] of cases) {
    const e = await failure(call)
    if (e instanceof SandboxError && CODES.has(e.code) && e.code === code && e.message.length > 0) {
      typed += 1
    } else {
      wrong.push(`${what}: expected ${code}, got ${e === null ? 'no error' : `${e?.name} ${e?.code}: ${e?.message}`}`)
    }
    // Still working after every input.
    await sb.writeFile('alive.txt', 'yes')
  }
  console.log(`node binding hostile inputs: ${cases.length}, typed errors: ${typed}`)
  assert.deepEqual(wrong, [])
  assert.ok(cases.length >= 40)
  assert.equal((await sb.exec('cat alive.txt')).stdout, 'yes')
  await sb.close()
})

test('the option lists that refuse unknown keys know every option binding.d.ts declares', async () => {
  const dts = readFileSync(new URL('../binding.d.ts', import.meta.url), 'utf8')
  const keys = (name) => {
    const body = dts.match(new RegExp(`export interface ${name} \\{([\\s\\S]*?)\\n\\}`))[1]
    return [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1])
  }
  const createKeys = keys('SandboxOptions')
  const execKeys = keys('ExecOptions')
  assert.ok(createKeys.includes('image') && execKeys.includes('cwd'), `${createKeys} ${execKeys}`)
  // A key the native side declares is never refused as unknown (undefined values are defaults).
  const sb = await DaggerSandbox.create(Object.fromEntries([...createKeys.map((k) => [k, undefined]), ['backend', 'local']]))
  try {
    const r = await sb.exec('echo ok', Object.fromEntries(execKeys.map((k) => [k, undefined])))
    assert.equal(r.stdout, 'ok\n')
  } finally {
    await sb.close()
  }
})
