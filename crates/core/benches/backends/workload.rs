//! What every engine is measured on: the file sets, the projects, and the sample statistics.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

/// 1,000 small files in 20 directories, paths relative to `/`.
pub fn files_1000() -> Vec<(String, Vec<u8>)> {
    (0..1000)
        .map(|i| (format!("workspace/bench/d{}/f{i}.txt", i % 20), format!("content of file {i}\n").into_bytes()))
        .collect()
}

/// A tar of `files` (paths relative to `/`), as raw engine calls send it.
pub fn raw_tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes a project of 5,000 source files (50 directories of 100 files of about 200 bytes) plus
/// what every refresh must leave out: `node_modules` (2,000 files) and `.git` (100 files).
pub fn project_5000(root: &Path) {
    let line = "export const value = 'the same line of generated source code, repeated';\n";
    for d in 0..50 {
        let dir = root.join(format!("src/m{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f}.ts")), format!("// {d}/{f}\n{}", line.repeat(2))).unwrap();
        }
    }
    for d in 0..20 {
        let dir = root.join(format!("node_modules/pkg{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("i{f}.js")), "module.exports = 1;\n").unwrap();
        }
    }
    std::fs::create_dir_all(root.join(".git/objects")).unwrap();
    for f in 0..100 {
        std::fs::write(root.join(format!(".git/objects/o{f}")), "blob").unwrap();
    }
}

/// The directories a refresh leaves out.
pub const EXCLUDES: [&str; 2] = ["node_modules", ".git"];

/// A small Node project with real tests (node's own runner, no dependencies to install).
pub fn node_project(root: &Path) {
    std::fs::create_dir_all(root.join("test")).unwrap();
    std::fs::write(
        root.join("package.json"),
        r#"{"name":"bench-app","version":"1.0.0","scripts":{"test":"node --test"}}"#,
    )
    .unwrap();
    std::fs::write(root.join("sum.js"), "module.exports = (a, b) => a + b;\n").unwrap();
    std::fs::write(
        root.join("test/sum.test.js"),
        "const test = require('node:test');\nconst assert = require('node:assert');\nconst sum = require('../sum');\n\
         test('adds', () => assert.strictEqual(sum(2, 3), 5));\ntest('adds negatives', () => assert.strictEqual(sum(-2, -3), -5));\n",
    )
    .unwrap();
}

/// The install and test steps of the Node project (the test image has node but no npm).
pub const NODE_INSTALL: &str = "node --version";
/// See [`NODE_INSTALL`].
pub const NODE_TEST: &str = "node --test";

/// Timings of one operation.
#[derive(Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Times `f`, keeping its value.
    pub async fn time<T, F: Future<Output = T>>(&mut self, f: F) -> T {
        let t = Instant::now();
        let v = f.await;
        self.0.push(t.elapsed());
        v
    }

    /// The `p` quantile in ms, or `None` without samples.
    pub fn pct(&self, p: f64) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Some(v[((v.len() - 1) as f64 * p).round() as usize])
    }
}

/// One operation measured through our API and as raw engine calls.
#[derive(Default)]
pub struct Pair {
    pub ours: Samples,
    pub raw: Samples,
}

fn cell(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// Prints one row: median ours, median raw, ratio, for docker then dagger.
pub fn row(op: &str, docker: &Pair, dagger: &Pair) {
    let (dk_o, dk_r) = (docker.ours.pct(0.5), docker.raw.pct(0.5));
    let (dg_o, dg_r) = (dagger.ours.pct(0.5), dagger.raw.pct(0.5));
    println!(
        "| {op} | {} | {} | {} | {} | {} | {} |",
        cell(dk_o),
        cell(dk_r),
        ratio(dk_o, dk_r),
        cell(dg_o),
        cell(dg_r),
        ratio(dg_o, dg_r)
    );
}
