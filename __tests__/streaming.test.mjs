// onStdout/onStderr deliver text as it is written, in order, all before exec resolves.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { busybox, skipDocker } from './helpers.mjs'

test('output callbacks arrive in order, live, and match the result', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    const out = []
    const err = []
    let firstAt = 0
    const started = Date.now()
    const r = await sb.exec('for i in 1 2 3 4 5; do echo line$i; echo e$i >&2; sleep 0.2; done', {
      onStdout: (t) => {
        firstAt ||= Date.now()
        out.push(t)
      },
      onStderr: (t) => err.push(t),
    })
    assert.equal(out.join(''), 'line1\nline2\nline3\nline4\nline5\n')
    assert.equal(err.join(''), 'e1\ne2\ne3\ne4\ne5\n')
    assert.equal(out.join(''), r.stdout)
    assert.ok(out.length > 1, 'output came in one piece, not streamed')
    assert.ok(firstAt - started < r.durationMs, 'first chunk only arrived at the end')
  } finally {
    await sb.close()
  }
})

test('multi-byte UTF-8 split across chunks is decoded whole', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    const out = []
    // é is two bytes; the sleep between them forces two chunks.
    await sb.exec("printf '\\303'; sleep 0.3; printf '\\251!'", { onStdout: (t) => out.push(t) })
    assert.equal(out.join(''), 'é!')
  } finally {
    await sb.close()
  }
})

test('a throwing callback rejects exec instead of crashing the process', { skip: skipDocker }, async () => {
  const sb = await busybox()
  try {
    await assert.rejects(
      sb.exec('echo hi', {
        onStdout: () => {
          throw new Error('boom')
        },
      }),
      (e) => e.code === 'INVALID_ARGUMENT' && e.cause.message === 'boom',
    )
  } finally {
    await sb.close()
  }
})
