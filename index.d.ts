// Types of the `dagger-sandbox` package (index.js). Records come from the generated binding.d.ts,
// which napi-rs writes from the Rust doc comments; only the JS layer's own shapes are declared here.
/// <reference types="node" />
/// <reference lib="esnext.disposable" />
import type {
  CleanupReport,
  DirEntry,
  EntryKind,
  ExecOptions as NativeExecOptions,
  ExecResult,
  SandboxOptions,
  SnapshotInfo,
} from './binding'

export type { CleanupReport, DirEntry, EntryKind, ExecResult, SandboxOptions, SnapshotInfo }

/** The stable codes of `SandboxError.code`, identical on every surface (JS, bridge, REST, CLI). */
export type SandboxErrorCode =
  | 'ENGINE_UNAVAILABLE'
  | 'TIMEOUT'
  | 'NOT_FOUND'
  | 'RESTRICTED_PATH'
  | 'INVALID_PATH'
  | 'INVALID_ARGUMENT'
  | 'CLOSED'
  | 'CANCELLED'
  | 'ENGINE_ERROR'
  | 'IO_ERROR'
  | 'TOO_LARGE'
  | 'STOPPED'

/** `create()` options for a sandbox the daemon owns. */
export interface PersistentOptions {
  /** Create it through the daemon (started when none runs), so it outlives this process. */
  persistent?: boolean
  /** The daemon's state dir (default `$DAGGER_SANDBOX_STATE_DIR`, then `~/.local/state/dagger-sandbox`). */
  stateDir?: string
  /** The session's lifetime in the daemon (default one hour). */
  ttlSeconds?: number
}

/** `connect()` options: where the daemon is, and settings of this handle only. */
export interface ConnectOptions {
  /** The daemon's state dir (default as for `persistent`). */
  stateDir?: string
  /** Default exec timeout of this handle. */
  timeoutMs?: number
  /** Restricted paths enforced by this handle (added to the sandbox's own). */
  restrictedPaths?: string[]
  /** Output cap of this handle's execs. */
  outputCapBytes?: number
  /** Extra env for this handle's execs. */
  env?: Record<string, string>
}

/** Every rejection of this package: an `Error` with the core's stable `code`. */
export declare class SandboxError extends Error {
  /** The stable code to branch on. */
  readonly code: SandboxErrorCode
  readonly name: 'SandboxError'
  constructor(code: SandboxErrorCode, message: string, options?: { cause?: unknown })
}

/** Per-call exec settings: the native ones plus cancellation and streaming. */
export interface ExecOptions extends NativeExecOptions {
  /** Aborting kills the command; the call rejects with `CANCELLED`. */
  signal?: AbortSignal
  /** Called with stdout text as it is written, in order, before `exec` resolves. */
  onStdout?: (text: string) => void
  /** Called with stderr text as it is written, in order, before `exec` resolves. */
  onStderr?: (text: string) => void
}

/** Options of `writeFile`. */
export interface WriteFileOptions {
  /** Permission bits, e.g. `0o755` (default `0o644`). */
  mode?: number
}

/** Options of `refreshFromHost`. */
export interface RefreshOptions {
  /** Globs left out: a name (`node_modules`, `*.log`) matches anywhere, a path with `/` from the root. */
  exclude?: string[]
}

/**
 * An isolated sandbox: a filesystem, a working directory and an environment. Make one with
 * `await DaggerSandbox.create(options)`, free it with `close()` or `await using`.
 */
export declare class DaggerSandbox implements AsyncDisposable {
  private constructor()
  /**
   * Creates a sandbox; by default the `auto` backend and the `node:20-alpine3.22` image. With
   * `persistent: true` the daemon creates it (started when none runs), so it outlives this
   * process; reach it again with `DaggerSandbox.connect(id)`.
   */
  static create(options?: SandboxOptions & PersistentOptions): Promise<DaggerSandbox>
  /**
   * A handle on a sandbox the daemon owns, by id, from any process. `close()` frees only the
   * handle; `close({ delete: true })` deletes the sandbox.
   */
  static connect(id: string, options?: ConnectOptions): Promise<DaggerSandbox>
  /**
   * A new sandbox with the files, env and workdir of a snapshot (its id or name), on the snapshot's
   * backend. `options` gives the rest (no `image` or `template`; `backend` unset or the snapshot's);
   * its `env` is added over the snapshot's and brings back secrets the snapshot did not keep.
   */
  static fromSnapshot(reference: string, options?: SandboxOptions): Promise<DaggerSandbox>
  /** Every snapshot on the engines that answer, oldest first. */
  static listSnapshots(): Promise<SnapshotInfo[]>
  /** The snapshot with this id or name; `NOT_FOUND` when none has it. */
  static inspectSnapshot(reference: string): Promise<SnapshotInfo>
  /** Deletes a snapshot and its data (sandboxes made from it keep running); resolves to what was deleted. */
  static deleteSnapshot(reference: string): Promise<SnapshotInfo>
  /** The sandbox id (`sbx-` and 12 hex digits), also a label on its engine resources. */
  readonly id: string
  /** The engine it runs on. */
  readonly backend: 'dagger' | 'docker' | 'local'
  /** How isolated it is from the host. */
  readonly isolation: 'container' | 'process'
  /** The working directory of later execs and relative paths. */
  readonly workdir: string
  /** Whether `close()` has been called. */
  readonly closed: boolean
  /** Whether the sandbox is stopped (files kept, nothing running) until `resume()`. */
  readonly stopped: boolean
  /** Whether the daemon owns it (persistent or connected): `close()` then frees only the handle. */
  readonly connected: boolean
  /** Runs `sh -c command` in the workdir; a non-zero exit is a result, not an error. */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>
  /** Writes one file (text as UTF-8, or bytes), creating parent directories. */
  writeFile(path: string, contents: string | Buffer, options?: WriteFileOptions): Promise<void>
  /** Writes many files in one engine round trip; nothing is written if any path is refused. */
  writeFiles(files: Record<string, string | Buffer>): Promise<void>
  /** Reads a UTF-8 text file (`INVALID_ARGUMENT` if it is not UTF-8; at most 64 MiB, `TOO_LARGE` above). */
  readFile(path: string): Promise<string>
  /** Reads a file byte for byte: at most 64 MiB, a bigger file is `TOO_LARGE` (use `readFileToHost`). */
  readFileBytes(path: string): Promise<Buffer>
  /** Copies a file of any size out to `hostPath`, streamed, never held in memory; resolves to the bytes copied. */
  readFileToHost(path: string, hostPath: string): Promise<number>
  /** Writes one file from the host file `hostPath`, streamed (any size); resolves to the bytes written. */
  writeFileFromHost(path: string, hostPath: string, options?: WriteFileOptions): Promise<number>
  /** Deletes a file or directory (recursively); a missing path is `NOT_FOUND`. */
  deleteFile(path: string): Promise<void>
  /** Lists a directory (default the workdir), sorted by name. */
  listDirectory(path?: string): Promise<DirEntry[]>
  /** Makes `path` the working directory (created if missing). */
  setWorkdir(path: string): Promise<void>
  /** Sets one variable for every later exec; returns this sandbox. */
  withEnv(key: string, value: string): this
  /** Sets many variables for every later exec (none if any is invalid); returns this sandbox. */
  withEnvs(vars: Record<string, string>): this
  /** Copies the sandbox directory `containerPath` to `hostPath` on the host. */
  exportDirectory(containerPath: string, hostPath: string): Promise<void>
  /** Copies the host directory `hostPath` into the sandbox at `containerPath` in one upload. */
  refreshFromHost(hostPath: string, containerPath: string, options?: RefreshOptions): Promise<void>
  /** An independent sandbox with the same files, env and workdir; close both. */
  fork(): Promise<DaggerSandbox>
  /**
   * Saves the files, env and workdir as a snapshot, named `name` (unique) if given. Env values whose
   * names match `secretPatterns` are kept by name only (`secretEnv`). The snapshot outlives this
   * sandbox and this process until `DaggerSandbox.deleteSnapshot`.
   */
  snapshot(name?: string): Promise<SnapshotInfo>
  /** Frees CPU and memory, keeps the files; later calls reject with `STOPPED` until `resume()`. */
  stop(): Promise<void>
  /** Brings a stopped sandbox back with the same files, env and workdir. */
  resume(): Promise<void>
  /**
   * Frees every engine resource; idempotent. In-flight and later calls reject with `CLOSED`. On a
   * sandbox the daemon owns it frees only this handle, unless `{ delete: true }`.
   */
  close(options?: { delete?: boolean }): Promise<void>
  /** `close()`, so `await using sb = await DaggerSandbox.create()` frees it at scope end. */
  [Symbol.asyncDispose](): Promise<void>
}

/**
 * Removes sandboxes whose owning process exited without closing them (labelled containers, their
 * snapshot images, local sandbox directories). Live sandboxes are never touched. Run it at startup
 * of a long-lived service, or from a cron, to reclaim what crashed processes left.
 */
export declare function cleanupOrphans(): Promise<CleanupReport>
