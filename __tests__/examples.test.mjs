// The TypeScript examples compile under --strict and do what they say on the docker backend.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { symlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NODE_IMAGE, skipDocker, tempDir } from './helpers.mjs'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const examples = join(root, 'examples/typescript')
const out = tempDir('dsb-examples-')
// The examples import '../../index.js'; compiled under `out`, that is `out/index.js`.
symlinkSync(join(root, 'index.js'), join(out, 'index.js'))

test('examples type-check under --strict and compile', () => {
  const tsc = join(root, 'node_modules/typescript/bin/tsc')
  execFileSync(process.execPath, [tsc, '-p', join(examples, 'tsconfig.json'), '--outDir', out, '--rootDir', root], {
    stdio: 'pipe',
  })
})

function run(name) {
  const env = { ...process.env, DAGGER_SANDBOX_IMAGE: NODE_IMAGE }
  return spawnSync(process.execPath, [join(out, 'examples/typescript', name)], { encoding: 'utf8', env, timeout: 120_000 })
}

test('validate-project prints a passing verdict', { skip: skipDocker }, () => {
  const r = run('validate-project.js')
  assert.equal(r.status, 0, r.stderr)
  const verdict = JSON.parse(r.stdout.trim())
  assert.equal(verdict.passed, true)
  assert.match(verdict.sandbox, /^sbx-/)
})

test('fork-two-fixes finds the right fix and leaves the base untouched', { skip: skipDocker }, () => {
  const r = run('fork-two-fixes.js')
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout, 'before: fail\noff-by-one: fail\nreduce-from-zero: pass\nbase still failing: true\n')
})
