// The whole DaggerSandbox API on the docker backend, as a user drives it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { DaggerSandbox } from '../index.js'
import { busybox, skipDocker, tempDir } from './helpers.mjs'

test('create reports id, backend, isolation and workdir', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    assert.match(sb.id, /^sbx-[0-9a-f]{12}$/)
    assert.equal(sb.backend, 'docker')
    assert.equal(sb.isolation, 'container')
    assert.equal(sb.workdir, '/workspace')
    assert.equal(sb.closed, false)
  } finally {
    await sb.close()
  }
  assert.equal(sb.closed, true)
})

test('new DaggerSandbox() is refused: create() is the only way in', () => {
  assert.throws(() => new DaggerSandbox(), TypeError)
})

test('exec returns exit code, output and duration; non-zero exit is a result', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    const ok = await sb.exec('echo out; echo err >&2')
    assert.equal(ok.exitCode, 0)
    assert.equal(ok.stdout, 'out\n')
    assert.equal(ok.stderr, 'err\n')
    assert.equal(typeof ok.durationMs, 'number')
    assert.equal(ok.truncated, false)
    const bad = await sb.exec('exit 3')
    assert.equal(bad.exitCode, 3)
  } finally {
    await sb.close()
  }
})

test('exec options: env, cwd, stdin (text and bytes), and output cap', { skip: skipDocker }, async () => {
  const sb = await busybox({ outputCapBytes: 100 })
  try {
    assert.equal((await sb.exec('echo $A', { env: { A: 'from-call' } })).stdout, 'from-call\n')
    await sb.setWorkdir('/tmp/w')
    assert.equal((await sb.exec('pwd', { cwd: '/etc' })).stdout, '/etc\n')
    assert.equal((await sb.exec('pwd')).stdout, '/tmp/w\n')
    assert.equal((await sb.exec('cat', { stdin: 'hello' })).stdout, 'hello')
    assert.equal((await sb.exec('wc -c', { stdin: Buffer.from([0, 1, 2, 255]) })).stdout.trim(), '4')
    const big = await sb.exec('seq 1 1000')
    assert.equal(big.truncated, true)
    assert.ok(big.stdout.startsWith('1\n2\n'))
    assert.ok(big.stdout.endsWith('999\n1000\n'))
  } finally {
    await sb.close()
  }
})

test('files: write/read text and bytes, writeFiles, mode, list, delete', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    await sb.writeFile('a/b.txt', 'héllo')
    assert.equal(await sb.readFile('/workspace/a/b.txt'), 'héllo')
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    await sb.writeFile('bin.dat', bytes)
    const back = await sb.readFileBytes('bin.dat')
    assert.ok(Buffer.isBuffer(back))
    assert.deepEqual(back, bytes)
    await sb.writeFile('run.sh', '#!/bin/sh\necho ran\n', { mode: 0o755 })
    assert.equal((await sb.exec('./run.sh')).stdout, 'ran\n')
    await sb.writeFiles({ 'm/one.txt': '1', 'm/two.bin': Buffer.from('22') })
    assert.deepEqual(await sb.listDirectory('m'), [
      { name: 'one.txt', kind: 'file', size: 1 },
      { name: 'two.bin', kind: 'file', size: 2 },
    ])
    const root = await sb.listDirectory()
    assert.deepEqual(
      root.map((e) => [e.name, e.kind]),
      [['a', 'dir'], ['bin.dat', 'file'], ['m', 'dir'], ['run.sh', 'file']],
    )
    await sb.deleteFile('m')
    assert.equal((await sb.exec('test -e m')).exitCode, 1)
  } finally {
    await sb.close()
  }
})

test('big files: readFileBytes is capped with TOO_LARGE; host-path transfers stream any size', { skip: skipDocker }, async () => {
  const sb = await busybox()
  const dir = tempDir('dsbx-big-')
  try {
    const src = join(dir, 'src.bin')
    const data = Buffer.alloc(70 * 1024 * 1024, 7)
    writeFileSync(src, data)
    assert.equal(await sb.writeFileFromHost('big.bin', src, { mode: 0o600 }), data.length)
    assert.equal((await sb.exec('stat -c %a big.bin')).stdout, '600\n')
    await assert.rejects(sb.readFileBytes('big.bin'), { code: 'TOO_LARGE' })
    const out = join(dir, 'out.bin')
    assert.equal(await sb.readFileToHost('big.bin', out), data.length)
    assert.ok(readFileSync(out).equals(data), '70 MiB came back changed')
    await assert.rejects(sb.readFileToHost('nope', out), { code: 'NOT_FOUND' })
  } finally {
    await sb.close()
  }
})

test('withEnv and withEnvs persist for later execs and chain', { skip: skipDocker }, async () => {
  const sb = await busybox({ env: { BASE: 'b' } })
  try {
    assert.equal(sb.withEnv('ONE', '1').withEnvs({ TWO: '2', BASE: 'over' }), sb)
    assert.equal((await sb.exec('echo $ONE$TWO$BASE')).stdout, '12over\n')
  } finally {
    await sb.close()
  }
})

test('refreshFromHost imports a project with excludes; exportDirectory brings artifacts out', { skip: skipDocker }, async () => {
  const host = tempDir('dsb-node-')
  mkdirSync(join(host, 'src'))
  mkdirSync(join(host, 'node_modules'))
  writeFileSync(join(host, 'src', 'main.js'), 'console.log(1)')
  writeFileSync(join(host, 'node_modules', 'dep.js'), 'x')
  const sb = await busybox()
  try {
    await sb.refreshFromHost(host, '/workspace/proj', { exclude: ['node_modules'] })
    assert.equal(await sb.readFile('proj/src/main.js'), 'console.log(1)')
    assert.equal((await sb.exec('test -e proj/node_modules')).exitCode, 1)
    await sb.exec('mkdir -p dist && echo built > dist/out.txt')
    const out = join(host, 'out')
    await sb.exportDirectory('dist', out)
    assert.equal(readFileSync(join(out, 'out.txt'), 'utf8'), 'built\n')
    assert.ok(!existsSync(join(out, 'node_modules')))
  } finally {
    await sb.close()
  }
})

test('fork copies files, env and workdir; the two never see each other', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    await sb.writeFile('shared.txt', 'v1')
    sb.withEnv('WHO', 'parent')
    await sb.setWorkdir('/work2')
    const child = await sb.fork()
    try {
      assert.notEqual(child.id, sb.id)
      assert.equal(child.workdir, '/work2')
      child.withEnv('WHO', 'child')
      await child.writeFile('/workspace/shared.txt', 'v2')
      await sb.writeFile('/workspace/only-parent.txt', 'p')
      assert.equal(await sb.readFile('/workspace/shared.txt'), 'v1')
      assert.equal(await child.readFile('/workspace/shared.txt'), 'v2')
      assert.equal((await child.exec('test -e /workspace/only-parent.txt')).exitCode, 1)
      assert.equal((await sb.exec('echo $WHO')).stdout, 'parent\n')
      assert.equal((await child.exec('echo $WHO')).stdout, 'child\n')
    } finally {
      await child.close()
    }
  } finally {
    await sb.close()
  }
})

test('close is idempotent and asyncDispose closes', { skip: skipDocker }, async () => {
  const sb = await busybox()
  await sb.close()
  await sb.close()
  const sb2 = await busybox()
  await sb2[Symbol.asyncDispose]()
  assert.equal(sb2.closed, true)
})
