// Type test: every public method and type of the package, checked by `tsc --noEmit --strict`.
import {
  DaggerSandbox,
  SandboxError,
  cleanupOrphans,
  type CleanupReport,
  type DirEntry,
  type ExecResult,
  type SandboxErrorCode,
  type SandboxOptions,
  type SnapshotInfo,
} from '../../index.js'

export async function everything(): Promise<void> {
  const options: SandboxOptions = { backend: 'docker', image: 'busybox', restrictedPaths: ['/etc/**'], timeoutMs: 5000 }
  await using sb = await DaggerSandbox.create(options)
  const id: string = sb.id
  const backend: 'dagger' | 'docker' | 'local' = sb.backend
  const isolation: 'container' | 'process' = sb.isolation
  const workdir: string = sb.workdir
  const closed: boolean = sb.closed
  const ac = new AbortController()
  const r: ExecResult = await sb.exec('echo hi', {
    env: { A: 'b' },
    cwd: '/tmp',
    timeoutMs: 1000,
    stdin: Buffer.from('x'),
    signal: ac.signal,
    onStdout: (t: string) => void t,
    onStderr: (t: string) => void t,
  })
  const n: number = r.exitCode + r.durationMs
  const text: string = r.stdout + r.stderr
  const cut: boolean = r.truncated
  await sb.writeFile('a.txt', 'text', { mode: 0o644 })
  await sb.writeFile('b.bin', Buffer.from([1]))
  await sb.writeFiles({ 'c.txt': 'c', 'd.bin': Buffer.alloc(1) })
  const s: string = await sb.readFile('a.txt')
  const b: Buffer = await sb.readFileBytes('b.bin')
  await sb.deleteFile('a.txt')
  const entries: DirEntry[] = await sb.listDirectory('/workspace')
  const kind: 'file' | 'dir' | 'symlink' | 'other' = entries[0].kind
  await sb.setWorkdir('/w')
  sb.withEnv('K', 'V').withEnvs({ X: 'y' })
  await sb.exportDirectory('/w', '/tmp/out')
  await sb.refreshFromHost('/tmp/in', '/w', { exclude: ['node_modules'] })
  const child: DaggerSandbox = await sb.fork()
  await child.close()
  const snap: SnapshotInfo = await sb.snapshot('after-setup')
  const snapBackend: 'dagger' | 'docker' | 'local' = snap.backend
  const secretNames: string[] = snap.secretEnv
  const restored: DaggerSandbox = await DaggerSandbox.fromSnapshot(snap.id, { env: { NPM_TOKEN: 't' } })
  await restored.close()
  const all: SnapshotInfo[] = await DaggerSandbox.listSnapshots()
  const one: SnapshotInfo = await DaggerSandbox.inspectSnapshot('after-setup')
  const gone: SnapshotInfo = await DaggerSandbox.deleteSnapshot(one.id)
  void [snapBackend, secretNames, all, gone]
  await sb[Symbol.asyncDispose]()
  const report: CleanupReport = await cleanupOrphans()
  try {
    await sb.readFile('x')
  } catch (e) {
    if (e instanceof SandboxError) {
      const code: SandboxErrorCode = e.code
      void code
    }
  }
  void [id, backend, isolation, workdir, closed, n, text, cut, s, b, kind, report]
}

// @ts-expect-error the constructor is private: sandboxes come from create() or fork()
new DaggerSandbox()
// @ts-expect-error results are read-only facts
export const bad = (sb: DaggerSandbox) => (sb.id = 'x')
// @ts-expect-error an unknown backend does not type-check
export const badBackend: SandboxOptions = { backend: 'podman' }
