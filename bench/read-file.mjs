// Per-call overhead of the binding: `readFile` of a small file timed in Rust (the core call alone),
// through the native binding from JS, and through the public DaggerSandbox class, interleaved in
// rounds in one run so engine noise hits all three alike. Prints median and p99 in microseconds.
//
// Run: `node bench/read-file.mjs` after a build (needs Docker and the local test images);
// BENCH_N sets calls per round (default 200), BENCH_ROUNDS the rounds (default 5), BENCH_BACKEND the
// backend (default docker; `local` reads from the host disk, which shows the binding's own cost best).
import { createRequire } from 'node:module'
import { DaggerSandbox } from '../index.js'

const { NativeSandbox } = createRequire(import.meta.url)('../binding.js')
const N = Number(process.env.BENCH_N ?? 200)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const backend = process.env.BENCH_BACKEND ?? 'docker'
const opts = backend === 'docker' ? { backend, image: 'dagger-sandbox-test/busybox:latest' } : { backend }

async function timeJs(fn) {
  const out = []
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint()
    await fn()
    out.push(Number(process.hrtime.bigint() - t) / 1000)
  }
  return out
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))]
  return { median: at(0.5), p99: at(0.99) }
}

const native = await NativeSandbox.create(opts)
const wrapped = await DaggerSandbox.create(opts)
try {
  await native.writeFile('small.txt', 'x'.repeat(100))
  await wrapped.writeFile('small.txt', 'x'.repeat(100))
  const rust = []
  const binding = []
  const pub = []
  for (let r = 0; r < ROUNDS; r++) {
    rust.push(...(await native.benchReadFile('small.txt', N)))
    binding.push(...(await timeJs(() => native.readFile('small.txt'))))
    pub.push(...(await timeJs(() => wrapped.readFile('small.txt'))))
  }
  const rows = { 'Rust (core call)': stats(rust), 'JS -> binding': stats(binding), 'JS -> DaggerSandbox': stats(pub) }
  console.log(`readFile of a 100-byte file on ${backend}, ${ROUNDS} x ${N} calls each, microseconds`)
  for (const [name, s] of Object.entries(rows)) {
    console.log(`${name.padEnd(22)} median ${s.median.toFixed(0).padStart(7)}   p99 ${s.p99.toFixed(0).padStart(7)}`)
  }
  const over = rows['JS -> DaggerSandbox'].median - rows['Rust (core call)'].median
  console.log(`binding overhead per call (median difference): ${over.toFixed(0)} us`)
} finally {
  await native.close()
  await wrapped.close()
}
