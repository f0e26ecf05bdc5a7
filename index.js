// The `dagger-sandbox` package: a thin layer over the generated napi-rs loader (binding.js) for
// what the native side cannot do alone: real `SandboxError` instances with `.code`, AbortSignal
// plumbing (an already-aborted signal, listeners that do not clobber `signal.onabort`), and
// onStdout/onStderr as text decoded across chunk boundaries.
'use strict'

const {
  NativeSandbox,
  ExecCanceller,
  cleanupOrphans: nativeCleanupOrphans,
  listSnapshots,
  inspectSnapshot,
  deleteSnapshot,
} = require('./binding.js')

/** An error from a sandbox call; `code` is the core's stable code (`NOT_FOUND`, `CLOSED`, ...). */
class SandboxError extends Error {
  constructor(code, message, options) {
    super(message, options)
    this.name = 'SandboxError'
    this.code = code
  }
}

// Async napi methods can only reject with a napi status, so the core code travels as a prefix.
const CODED = /^\[([A-Z_]+)\] ([\s\S]*)$/

function toSandboxError(e) {
  if (e instanceof SandboxError) return e
  const m = e && typeof e.message === 'string' ? CODED.exec(e.message) : null
  if (m) return new SandboxError(m[1], m[2])
  // Anything else is napi refusing an argument of the wrong type before the core saw it.
  return new SandboxError('INVALID_ARGUMENT', `invalid argument: ${e && e.message ? e.message : e}`, { cause: e })
}

async function call(fn) {
  try {
    return await fn()
  } catch (e) {
    throw toSandboxError(e)
  }
}

function callSync(fn) {
  try {
    return fn()
  } catch (e) {
    throw toSandboxError(e)
  }
}

// napi ignores object keys it does not know, so a misspelt option (`imagee`) would silently fall
// back to a default. These lists (held to binding.d.ts by __tests__/hostile.test.mjs) make it an
// error, as the bridge and the REST API do.
const SANDBOX_OPTIONS = [
  'backend', 'image', 'template', 'workdir', 'timeoutMs', 'env', 'envPassthrough', 'restrictedPaths', 'network',
  'memoryMb', 'pidsLimit', 'outputCapBytes', 'fallback', 'labels', 'caCertificates', 'caches',
]
// Options of a sandbox the daemon owns: made through it (`persistent`), and where its daemon is.
const DAEMON_OPTIONS = ['persistent', 'stateDir', 'ttlSeconds']
const CONNECT_OPTIONS = ['stateDir', 'timeoutMs', 'restrictedPaths', 'outputCapBytes', 'env']
const EXEC_OPTIONS = ['env', 'cwd', 'timeoutMs', 'stdin', 'signal', 'onStdout', 'onStderr']

/** Refuses a `what` that is not a plain object (absent is fine unless `required`) or has unknown keys. */
function checkObject(what, value, { known, required = false } = {}) {
  if ((value === undefined || value === null) && !required) return
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Buffer.isBuffer(value)) {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value
    throw new SandboxError('INVALID_ARGUMENT', `invalid argument: ${what} must be an object, got ${got}`)
  }
  if (!known) return
  const unknown = Object.keys(value).find((k) => !known.includes(k))
  if (unknown !== undefined) {
    throw new SandboxError(
      'INVALID_ARGUMENT',
      `invalid argument: unknown ${what} key ${JSON.stringify(unknown)}; known: ${known.join(', ')}`,
    )
  }
}

// Only `create()`, `fromSnapshot()` and `fork()` may construct a DaggerSandbox.
const kNative = Symbol('dagger-sandbox.native')

/** An isolated sandbox; see index.d.ts for the API. */
class DaggerSandbox {
  #native

  constructor(token, native) {
    if (token !== kNative) throw new TypeError('use `await DaggerSandbox.create(options)` to make a sandbox')
    this.#native = native
  }

  static async create(options) {
    checkObject('options', options, { known: [...SANDBOX_OPTIONS, ...DAEMON_OPTIONS] })
    const { persistent, stateDir, ttlSeconds, ...rest } = options ?? {}
    if (persistent !== undefined && typeof persistent !== 'boolean') {
      throw new SandboxError('INVALID_ARGUMENT', 'invalid argument: persistent must be a boolean')
    }
    if (!persistent) {
      if (stateDir !== undefined || ttlSeconds !== undefined) {
        throw new SandboxError('INVALID_ARGUMENT', 'invalid argument: stateDir and ttlSeconds need persistent: true')
      }
      return new DaggerSandbox(kNative, await call(() => NativeSandbox.create(rest)))
    }
    return new DaggerSandbox(kNative, await call(() => NativeSandbox.createPersistent(rest, stateDir, ttlSeconds)))
  }

  static async connect(id, options) {
    if (typeof id !== 'string') throw new SandboxError('INVALID_ARGUMENT', 'invalid argument: id must be a string')
    checkObject('connect options', options, { known: CONNECT_OPTIONS })
    const { stateDir, ...rest } = options ?? {}
    return new DaggerSandbox(kNative, await call(() => NativeSandbox.connect(id, rest, stateDir)))
  }

  static async fromSnapshot(reference, options) {
    checkObject('options', options, { known: SANDBOX_OPTIONS })
    return new DaggerSandbox(kNative, await call(() => NativeSandbox.fromSnapshot(reference, options)))
  }

  static listSnapshots() {
    return call(() => listSnapshots())
  }

  static inspectSnapshot(reference) {
    return call(() => inspectSnapshot(reference))
  }

  static deleteSnapshot(reference) {
    return call(() => deleteSnapshot(reference))
  }

  get id() {
    return this.#native.id
  }
  get backend() {
    return this.#native.backend
  }
  get isolation() {
    return this.#native.isolation
  }
  get workdir() {
    return this.#native.workdir
  }
  get closed() {
    return this.#native.closed
  }
  get stopped() {
    return this.#native.stopped
  }
  get connected() {
    return this.#native.connected
  }

  async exec(command, options) {
    checkObject('exec options', options, { known: EXEC_OPTIONS })
    const { signal, onStdout, onStderr, ...rest } = options ?? {}
    if (signal?.aborted) {
      throw new SandboxError('CANCELLED', `sandbox ${this.id}: exec ${command} was cancelled before it started`, {
        cause: signal.reason,
      })
    }
    const canceller = signal ? new ExecCanceller() : undefined
    const onAbort = () => canceller.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    let callbackError
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() }
    const callbacks = { stdout: onStdout, stderr: onStderr }
    const deliver = (stream, text) => {
      if (!text || !callbacks[stream] || callbackError) return
      try {
        callbacks[stream](text)
      } catch (e) {
        callbackError = e
      }
    }
    const onOutput =
      onStdout || onStderr
        ? (chunk) => deliver(chunk.stream, decoders[chunk.stream].decode(chunk.data, { stream: true }))
        : undefined
    try {
      const result = await call(() => this.#native.exec(command, rest, canceller, onOutput))
      if (onOutput) for (const s of ['stdout', 'stderr']) deliver(s, decoders[s].decode())
      if (callbackError) {
        throw new SandboxError('INVALID_ARGUMENT', `sandbox ${this.id}: an output callback threw`, {
          cause: callbackError,
        })
      }
      return result
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  writeFile(path, contents, options) {
    return call(() => {
      checkObject('writeFile options', options, { known: ['mode'] })
      return this.#native.writeFile(path, contents, options?.mode)
    })
  }
  writeFiles(files) {
    return call(() => {
      checkObject('files', files, { required: true })
      return this.#native.writeFiles(files)
    })
  }
  readFile(path) {
    return call(() => this.#native.readFile(path))
  }
  readFileBytes(path) {
    return call(() => this.#native.readFileBytes(path))
  }
  readFileToHost(path, hostPath) {
    return call(() => this.#native.readFileToHost(path, hostPath))
  }
  writeFileFromHost(path, hostPath, options) {
    return call(() => this.#native.writeFileFromHost(path, hostPath, options?.mode))
  }
  deleteFile(path) {
    return call(() => this.#native.deleteFile(path))
  }
  listDirectory(path = '.') {
    return call(() => this.#native.listDirectory(path))
  }
  setWorkdir(path) {
    return call(() => this.#native.setWorkdir(path))
  }
  withEnv(key, value) {
    callSync(() => this.#native.withEnv(key, value))
    return this
  }
  withEnvs(vars) {
    callSync(() => {
      checkObject('env', vars, { required: true })
      this.#native.withEnvs(vars)
    })
    return this
  }
  exportDirectory(containerPath, hostPath) {
    return call(() => this.#native.exportDirectory(containerPath, hostPath))
  }
  refreshFromHost(hostPath, containerPath, options) {
    return call(() => {
      checkObject('refreshFromHost options', options, { known: ['exclude'] })
      return this.#native.refreshFromHost(hostPath, containerPath, options?.exclude)
    })
  }
  async fork() {
    return new DaggerSandbox(kNative, await call(() => this.#native.fork()))
  }
  snapshot(name) {
    return call(() => this.#native.snapshot(name))
  }
  stop() {
    return call(() => this.#native.stop())
  }
  resume() {
    return call(() => this.#native.resume())
  }
  close(options) {
    checkObject('close options', options, { known: ['delete'] })
    if (options?.delete) return call(() => this.#native.delete())
    return call(() => this.#native.close())
  }
  [Symbol.asyncDispose]() {
    return this.close()
  }
}

/** Removes sandboxes left behind by processes that exited without closing them. */
function cleanupOrphans() {
  return call(() => nativeCleanupOrphans())
}

module.exports = { DaggerSandbox, SandboxError, cleanupOrphans }
