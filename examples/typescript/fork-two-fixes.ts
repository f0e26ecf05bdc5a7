// Forks a sandbox holding a failing project to try two candidate fixes in parallel; each fork is
// independent, so the attempts cannot see each other. Prints which fixes make the tests pass.
//
//   node fork-two-fixes.js
// Tests run with `npm test`, or `node --test` in images without npm.
// DAGGER_SANDBOX_IMAGE picks the image (default: the core's node:20-alpine3.22).
import { DaggerSandbox } from '../../index.js'

const TEST = 'if command -v npm >/dev/null; then npm test; else node --test; fi'

const fixes: Record<string, string> = {
  'off-by-one': 'exports.sum = (xs) => xs.reduce((a, b) => a + b, 1)\n',
  'reduce-from-zero': 'exports.sum = (xs) => xs.reduce((a, b) => a + b, 0)\n',
}

async function main(): Promise<number> {
  await using base = await DaggerSandbox.create({ image: process.env.DAGGER_SANDBOX_IMAGE, timeoutMs: 120_000 })
  await base.writeFiles({
    'package.json': JSON.stringify({ name: 'buggy', private: true, scripts: { test: 'node --test' } }),
    'src/sum.js': 'exports.sum = (xs) => xs.reduce((a, b) => a + b)\n',
    'test/sum.test.js': [
      "const test = require('node:test')",
      "const assert = require('node:assert')",
      "const { sum } = require('../src/sum')",
      "test('empty', () => assert.equal(sum([]), 0))",
      "test('some', () => assert.equal(sum([1, 2, 3]), 6))",
    ].join('\n'),
  })
  const before = await base.exec(TEST)
  console.log(`before: ${before.exitCode === 0 ? 'pass' : 'fail'}`)

  const results = await Promise.all(
    Object.entries(fixes).map(async ([name, code]) => {
      await using attempt = await base.fork()
      await attempt.writeFile('src/sum.js', code)
      const r = await attempt.exec(TEST)
      return { name, passed: r.exitCode === 0 }
    }),
  )
  for (const r of results) console.log(`${r.name}: ${r.passed ? 'pass' : 'fail'}`)
  // The base sandbox is untouched by either attempt.
  console.log(`base still failing: ${(await base.exec(TEST)).exitCode !== 0}`)
  return results.some((r) => r.passed) ? 0 : 1
}

main().then(
  (code) => (process.exitCode = code),
  (e) => {
    console.error(`${e.code ?? 'ERROR'}: ${e.message}`)
    process.exitCode = 2
  },
)
