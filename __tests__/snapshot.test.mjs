// Snapshots through the package, on docker and local: take one, change the sandbox, start a
// sandbox from it and find the old files, env and workdir; list, inspect, delete; typed refusals.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { DaggerSandbox } from '../index.js'
import { BUSYBOX, rejectsWith, skipDocker, tempDir } from './helpers.mjs'

// Local snapshots of this run go to a temp dir, never the user's data dir.
const snapshots = tempDir('dsb-node-snap-')
process.env.DAGGER_SANDBOX_SNAPSHOT_DIR = snapshots

const backends = [
  ['local', { backend: 'local' }, false],
  ['docker', { backend: 'docker', image: BUSYBOX }, skipDocker],
]

for (const [name, options, skip] of backends) {
  test(`${name}: snapshot, change, fromSnapshot brings back files, env and workdir`, { skip }, async () => {
    const sb = await DaggerSandbox.create(options)
    const made = []
    try {
      await sb.writeFiles({ 'a.txt': 'v1', 'app/b.txt': 'b' })
      await sb.setWorkdir('app')
      sb.withEnvs({ MODE: 'snap', NPM_TOKEN: 'tok-value' })
      const label = `node-${name}-${process.pid}`
      const snap = await sb.snapshot(label)
      assert.match(snap.id, /^snap-[0-9a-f]{12}$/)
      assert.equal(snap.name, label)
      assert.equal(snap.backend, name)
      assert.equal(snap.workdir, '/workspace/app')
      assert.equal(snap.source, sb.id)
      assert.deepEqual(snap.env, { MODE: 'snap' })
      assert.deepEqual(snap.secretEnv, ['NPM_TOKEN'])
      assert.ok(snap.size > 0, JSON.stringify(snap))
      assert.ok(!Number.isNaN(Date.parse(snap.createdAt)))

      await sb.writeFile('/workspace/a.txt', 'v2')
      await sb.deleteFile('b.txt')
      const restored = await DaggerSandbox.fromSnapshot(label, { env: { NPM_TOKEN: 'again' } })
      made.push(restored)
      assert.equal(restored.backend, name)
      assert.equal(restored.workdir, '/workspace/app')
      assert.equal(await restored.readFile('/workspace/a.txt'), 'v1')
      assert.equal(await restored.readFile('b.txt'), 'b')
      assert.equal((await restored.exec('echo "$MODE $NPM_TOKEN"')).stdout, 'snap again\n')
      assert.equal(await sb.readFile('/workspace/a.txt'), 'v2', 'the source keeps its own changes')

      assert.ok((await DaggerSandbox.listSnapshots()).some((s) => s.id === snap.id))
      assert.equal((await DaggerSandbox.inspectSnapshot(label)).id, snap.id)
      await rejectsWith(sb.snapshot(label), 'INVALID_ARGUMENT')
      await rejectsWith(DaggerSandbox.fromSnapshot(label, { image: 'busybox' }), 'INVALID_ARGUMENT')
      await rejectsWith(DaggerSandbox.fromSnapshot(label, { imagee: 'typo' }), 'INVALID_ARGUMENT')

      const gone = await DaggerSandbox.deleteSnapshot(snap.id)
      assert.equal(gone.id, snap.id)
      await rejectsWith(DaggerSandbox.inspectSnapshot(snap.id), 'NOT_FOUND')
      await rejectsWith(DaggerSandbox.fromSnapshot(label), 'NOT_FOUND')
      await rejectsWith(DaggerSandbox.deleteSnapshot(snap.id), 'NOT_FOUND')
      assert.equal((await restored.exec('cat /workspace/a.txt || cat ../a.txt')).exitCode, 0, 'a sandbox from a deleted snapshot keeps working')
    } finally {
      for (const s of made) await s.close()
      await sb.close()
    }
    await rejectsWith(sb.snapshot(), 'CLOSED')
    assert.deepEqual(readdirSync(snapshots), [], 'nothing left in the snapshots directory')
  })
}
