// Many sandboxes at once, and a real `node --test` run inside the node test image.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DaggerSandbox } from '../index.js'
import { busybox, NODE_IMAGE, skipDocker } from './helpers.mjs'

test('10 concurrent sandboxes stay independent', { skip: skipDocker }, async () => {
  const sbs = await Promise.all(Array.from({ length: 10 }, () => busybox()))
  try {
    assert.equal(new Set(sbs.map((s) => s.id)).size, 10)
    await Promise.all(sbs.map((s, i) => s.writeFile('n.txt', String(i))))
    const outs = await Promise.all(sbs.map((s) => s.exec('cat n.txt')))
    assert.deepEqual(
      outs.map((r) => r.stdout),
      sbs.map((_, i) => String(i)),
    )
  } finally {
    await Promise.all(sbs.map((s) => s.close()))
  }
})

test('node --test runs inside the node image and its verdict comes back', { skip: skipDocker }, async () => {
  const sb = await DaggerSandbox.create({ backend: 'docker', image: NODE_IMAGE })
  try {
    await sb.writeFiles({
      'pass.test.js': "require('node:test')('adds', () => require('node:assert').equal(1 + 1, 2))",
      'fail.test.js': "require('node:test')('breaks', () => require('node:assert').equal(1 + 1, 3))",
    })
    const ok = await sb.exec('node --test pass.test.js')
    assert.equal(ok.exitCode, 0, ok.stdout + ok.stderr)
    assert.match(ok.stdout, /# pass 1/)
    const bad = await sb.exec('node --test fail.test.js')
    assert.notEqual(bad.exitCode, 0)
    assert.match(bad.stdout, /# fail 1/)
  } finally {
    await sb.close()
  }
})
