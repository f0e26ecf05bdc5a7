//! The main job in miniature: write a generated Node project into a fresh Docker sandbox, run its
//! `node --test` suite there, print the verdict, and clean up.
//!
//! Run: `cargo run -p dagger-sandbox --example validate_node [IMAGE]`
//! (IMAGE defaults to `dagger-sandbox-test/node:latest`, built offline by `scripts/engine.sh`).

use std::time::Instant;

use dagger_sandbox::{BackendChoice, ExecOptions, Sandbox, SandboxConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let image = std::env::args().nth(1).unwrap_or_else(|| "dagger-sandbox-test/node:latest".into());
    let t = Instant::now();
    let sb = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Docker).image(&image)).await?;
    println!("sandbox {} on {} ({} isolation), image {image}", sb.id(), sb.backend(), sb.isolation());

    sb.write_files([
        ("package.json", r#"{"name":"generated-app","version":"1.0.0","type":"module","scripts":{"test":"node --test"}}"#),
        ("src/slugify.js", "export const slugify = (s) => s.toLowerCase().trim().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');\n"),
        (
            "test/slugify.test.js",
            "import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { slugify } from '../src/slugify.js';\n\
             test('slugifies titles', () => assert.equal(slugify('  Hello, World! '), 'hello-world'));\n\
             test('keeps digits', () => assert.equal(slugify('Top 10 Tips'), 'top-10-tips'));\n",
        ),
    ])
    .await?;

    let result = sb.exec("node --version && node --test", ExecOptions::new()).await;
    sb.close().await?;
    let r = result?;
    println!("{}", r.stdout.trim_end());
    if !r.stderr.is_empty() {
        eprintln!("{}", r.stderr.trim_end());
    }
    let verdict = if r.success() { "PASS" } else { "FAIL" };
    println!(
        "verdict: {verdict} (exit {}, tests took {} ms, whole run {} ms)",
        r.exit_code,
        r.duration_ms,
        t.elapsed().as_millis()
    );
    std::process::exit(if r.success() { 0 } else { 1 });
}
