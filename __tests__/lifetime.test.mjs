// The process exits promptly after close; `await using` closes; require() and import both work.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync, execFileSync } from 'node:child_process'
import { writeFileSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { skipDocker, BUSYBOX, tempDir } from './helpers.mjs'

const root = dirname(dirname(fileURLToPath(import.meta.url)))

function runChild(source, ext = '.mjs', nodeArgs = []) {
  const dir = tempDir('dsb-child-')
  const file = join(dir, `child${ext}`)
  writeFileSync(file, source)
  const started = Date.now()
  const r = spawnSync(process.execPath, [...nodeArgs, file], { encoding: 'utf8', timeout: 30_000 })
  return { ...r, ms: Date.now() - started }
}

test('the process exits by itself right after close()', { skip: skipDocker }, () => {
  const r = runChild(`
    import { DaggerSandbox } from ${JSON.stringify(join(root, 'index.js'))}
    const sb = await DaggerSandbox.create({ backend: 'docker', image: ${JSON.stringify(BUSYBOX)} })
    const r = await sb.exec('echo hi', { onStdout: () => {}, signal: new AbortController().signal })
    await sb.close()
    console.log('closed', r.stdout.trim())
    globalThis.closedAt = Date.now()
  `)
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.signal, null, 'the child had to be killed: something kept the event loop alive')
  assert.match(r.stdout, /closed hi/)
  assert.ok(r.ms < 15_000, `took ${r.ms} ms`)
})

function containersOf(id) {
  return execFileSync('docker', ['ps', '-aq', '--filter', `label=dev.dagger-sandbox.sandbox=${id}`], { encoding: 'utf8' }).trim()
}

test('a forgotten sandbox does not hold the process; cleanupOrphans removes what it left', { skip: skipDocker }, async () => {
  const r = runChild(`
    import { DaggerSandbox } from ${JSON.stringify(join(root, 'index.js'))}
    const sb = await DaggerSandbox.create({ backend: 'docker', image: ${JSON.stringify(BUSYBOX)} })
    await sb.exec('true')
    console.log(sb.id)
  `)
  assert.equal(r.status, 0, r.stderr)
  assert.ok(r.ms < 15_000, `took ${r.ms} ms`)
  const id = r.stdout.trim()
  assert.match(id, /^sbx-/)
  assert.notEqual(containersOf(id), '', 'expected the forgotten container to outlive its process')
  const { cleanupOrphans } = await import('../index.js')
  const report = await cleanupOrphans()
  assert.ok(report.containers >= 1)
  assert.equal(containersOf(id), '')
})

test('a garbage-collected sandbox frees its container', { skip: skipDocker }, async () => {
  // The child keeps collecting and waits (bounded) for the engine to report the container gone:
  // freeing happens in the background, and how soon GC runs is V8's business, not a fixed delay.
  const r = runChild(`
    import { execFileSync } from 'node:child_process'
    import { DaggerSandbox } from ${JSON.stringify(join(root, 'index.js'))}
    let collected = false
    const registry = new FinalizationRegistry(() => { collected = true })
    let sb = await DaggerSandbox.create({ backend: 'docker', image: ${JSON.stringify(BUSYBOX)} })
    const id = sb.id
    console.log(id)
    registry.register(sb, 'sandbox')
    sb = null
    const left = () => execFileSync('docker', ['ps', '-aq', '--filter', 'label=dev.dagger-sandbox.sandbox=' + id]).toString().trim()
    const deadline = Date.now() + 20000
    while (Date.now() < deadline && left() !== '') {
      globalThis.gc()
      await new Promise((r) => setTimeout(r, 200))
    }
    console.log(collected ? 'collected' : 'not collected')
  `, '.mjs', ['--expose-gc'])
  assert.equal(r.status, 0, r.stderr)
  const [id, gc] = r.stdout.trim().split('\n')
  assert.match(id, /^sbx-/)
  assert.equal(gc, 'collected', 'V8 never collected the dropped sandbox')
  assert.equal(containersOf(id), '', 'the GC-ed sandbox left its container running')
})

test('require() and ESM named imports both load the package', () => {
  const require = createRequire(import.meta.url)
  const cjs = require('../index.js')
  assert.equal(typeof cjs.DaggerSandbox.create, 'function')
  assert.equal(typeof cjs.cleanupOrphans, 'function')
  const r = runChild(`
    import { DaggerSandbox, SandboxError, cleanupOrphans } from ${JSON.stringify(join(root, 'index.js'))}
    console.log(typeof DaggerSandbox, typeof SandboxError, typeof cleanupOrphans)
  `)
  assert.equal(r.stdout.trim(), 'function function function', r.stderr)
})

test('cleanupOrphans resolves to a report', async () => {
  const { cleanupOrphans } = await import('../index.js')
  const report = await cleanupOrphans()
  for (const k of ['containers', 'images', 'directories']) assert.equal(typeof report[k], 'number')
})

test('`await using` (compiled by tsc) closes the sandbox at scope end', { skip: skipDocker }, () => {
  const dir = tempDir('dsb-using-')
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
  writeFileSync(
    join(dir, 'using.ts'),
    `import { DaggerSandbox } from ${JSON.stringify(join(root, 'index.js'))}
    let kept: DaggerSandbox | undefined
    async function main(): Promise<void> {
      await using sb = await DaggerSandbox.create({ backend: 'docker', image: ${JSON.stringify(BUSYBOX)} })
      kept = sb
      console.log('open', sb.closed)
    }
    main().then(() => console.log('after', kept!.closed))
    `,
  )
  execFileSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '--strict', '--target', 'es2022', '--module', 'commonjs',
      '--lib', 'es2022,esnext.disposable', '--types', 'node', '--skipLibCheck', join(dir, 'using.ts')],
    { cwd: dir, stdio: 'pipe' },
  )
  const r = spawnSync(process.execPath, [join(dir, 'using.js')], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(r.stdout, 'open false\nafter true\n', r.stderr)
})
