// Validates a generated project in a sandbox: write its files (or import a host directory), run its
// tests, print the verdict as JSON. Exit code 0 when the tests pass.
//
//   node validate-project.js [host-project-dir]
// Tests run with `npm test`, or `node --test` in images without npm.
// DAGGER_SANDBOX_IMAGE picks the image (default: the core's node:20-alpine3.22).
// In your own project, import from 'dagger-sandbox'; the relative path keeps this example runnable
// from the repository.
import { DaggerSandbox } from '../../index.js'

const TEST = 'if command -v npm >/dev/null; then npm test; else node --test; fi'

// What a code generator might have produced: a tiny module and its tests.
const generated: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'generated', private: true, scripts: { test: 'node --test' } }),
  'src/slug.js': "exports.slug = (s) => s.trim().toLowerCase().replace(/[^a-z0-9]+/g, '-')\n",
  'test/slug.test.js': [
    "const test = require('node:test')",
    "const assert = require('node:assert')",
    "const { slug } = require('../src/slug')",
    "test('slug', () => assert.equal(slug(' Hello World '), 'hello-world'))",
  ].join('\n'),
}

async function main(): Promise<number> {
  await using sb = await DaggerSandbox.create({ image: process.env.DAGGER_SANDBOX_IMAGE, timeoutMs: 120_000 })
  const hostDir = process.argv[2]
  if (hostDir) await sb.refreshFromHost(hostDir, '/workspace', { exclude: ['node_modules', '.git'] })
  else await sb.writeFiles(generated)
  const r = await sb.exec(`(${TEST}) 2>&1`, { onStdout: (t) => process.stderr.write(t) })
  const verdict = { passed: r.exitCode === 0, exitCode: r.exitCode, durationMs: r.durationMs, sandbox: sb.id }
  console.log(JSON.stringify(verdict))
  return verdict.passed ? 0 : 1
}

main().then(
  (code) => (process.exitCode = code),
  (e) => {
    console.error(`${e.code ?? 'ERROR'}: ${e.message}`)
    process.exitCode = 2
  },
)
