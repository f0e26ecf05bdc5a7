// Shared setup: the docker probe that decides whether docker tests run or are skipped visibly.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DaggerSandbox, SandboxError } from '../index.js'

const tempDirs = []
// Each test file runs in a process of its own: its temp dirs go when it exits, pass or fail.
process.on('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})

/** A fresh private dir under the OS temp dir, removed when this test process exits. */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.push(dir)
  return dir
}

export const BUSYBOX = 'dagger-sandbox-test/busybox:latest'
export const NODE_IMAGE = 'dagger-sandbox-test/node:latest'

async function probeDocker() {
  try {
    const sb = await DaggerSandbox.create({ backend: 'docker', image: BUSYBOX })
    await sb.close()
    return null
  } catch (e) {
    if (process.env.DAGGER_SANDBOX_REQUIRE_DOCKER === '1') throw e
    return `docker is not reachable (${e.code}: ${e.message}); set DAGGER_SANDBOX_REQUIRE_DOCKER=1 to fail instead`
  }
}

/** A reason to skip docker tests, or `false` when docker answers. */
export const skipDocker = (await probeDocker()) ?? false
if (skipDocker) console.warn(`# SKIPPING docker tests: ${skipDocker}`)

/** A busybox sandbox on docker, with `opts` on top. */
export function busybox(opts = {}) {
  return DaggerSandbox.create({ backend: 'docker', image: BUSYBOX, ...opts })
}

/** Asserts `promise` rejects with a SandboxError of `code`, and returns it. */
export async function rejectsWith(promise, code) {
  try {
    await promise
  } catch (e) {
    if (!(e instanceof SandboxError)) throw new Error(`expected a SandboxError, got ${e?.stack ?? e}`)
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`)
    return e
  }
  throw new Error(`expected a rejection with ${code}, but it resolved`)
}
