//! The lockfile-keyed `node_modules` store: after a successful `npm ci` the installed trees are
//! saved in the `node-modules` cache under a key of `package.json`, `package-lock.json`, the Node
//! major and the CPU; the next validation of an unchanged project restores them, and its install
//! step (`npm install --prefer-offline`) then checks the tree against the lockfile and finds
//! nothing to do. Saving is atomic (a temp file renamed), so concurrent validations never read
//! half an entry; the store is bounded in size, least recently used entries going first.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The variable (set by the core when the `node-modules` cache is mounted) naming the store.
pub const STORE_ENV: &str = dagger_sandbox::caches::NODE_MODULES_CACHE_ENV;
/// Most MiB the store keeps (`DAGGER_SANDBOX_NODE_MODULES_CACHE_MB` overrides); older entries are
/// evicted after each save.
pub const DEFAULT_STORE_MB: u64 = 4096;
/// The install step run over a restored tree: it checks the tree against the lockfile.
pub const WARM_INSTALL: &str = "npm install --prefer-offline --no-audit --no-fund";

/// The key of a project's installed tree, from its manifest and lockfile; `None` without a lockfile.
pub fn project_key(dir: &Path) -> Option<String> {
    let lock = std::fs::read(dir.join("package-lock.json")).ok()?;
    let manifest = std::fs::read(dir.join("package.json")).ok()?;
    let mut h = Sha256::new();
    h.update(b"package.json\0");
    h.update(&manifest);
    h.update(b"\0package-lock.json\0");
    h.update(&lock);
    let hex: String = h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    Some(hex)
}

/// The shell prelude naming the entry: `$C` the store, `$k` the key with Node major and CPU.
fn prelude(key: &str) -> String {
    format!(
        "C=\"${STORE_ENV}\"; k=\"{key}-node$(node -p 'process.versions.node.split(\".\")[0]' 2>/dev/null || echo none)-$(uname -m)\"; "
    )
}

/// Restores the entry when there is one; prints `hit`, `miss` or `corrupt: why` (then every
/// partly restored tree is removed again).
pub fn restore_script(key: &str) -> String {
    prelude(key)
        + r#"if [ ! -f "$C/$k.tar" ]; then echo miss; exit 0; fi
if err=$(tar -xf "$C/$k.tar" 2>&1); then touch "$C/$k.tar" 2>/dev/null; echo hit; exit 0; fi
find . -name node_modules -prune -type d -exec rm -rf {} + 2>/dev/null
echo "corrupt: $(printf '%s' "$err" | tail -n 2 | tr '\n' ' ')""#
}

/// Saves the installed trees (every top-level `node_modules`, workspaces' too, without
/// `node_modules/.cache`) as the entry, then evicts the least recently used entries over `max_mb`.
pub fn save_script(key: &str, max_mb: u64) -> String {
    prelude(key)
        + &format!(
            r#"t="$C/.tmp-$k-$$"
dirs=$(find . -name node_modules -prune -type d)
[ -n "$dirs" ] || {{ echo "no node_modules to save" >&2; exit 0; }}
n=; command -v nice >/dev/null 2>&1 && n="nice -n 19"
$n tar -cf "$t" --exclude='node_modules/.cache' $dirs && mv -f "$t" "$C/$k.tar" || {{ rm -f "$t"; echo "saving the node_modules cache failed" >&2; exit 1; }}
maxk={max_kb}; total=$(du -sk "$C" | cut -f1)
for f in $(ls -tr "$C"/*.tar 2>/dev/null); do
  [ "$total" -le "$maxk" ] && break
  [ "$f" = "$C/$k.tar" ] && continue
  s=$(du -k "$f" | cut -f1); rm -f "$f"; total=$((total - s))
done"#,
            max_kb = max_mb.saturating_mul(1024)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_manifest_and_the_lockfile_only() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(project_key(d.path()), None, "no lockfile, no key");
        std::fs::write(d.path().join("package.json"), "{}").unwrap();
        std::fs::write(d.path().join("package-lock.json"), "{\"lockfileVersion\":3}").unwrap();
        let k1 = project_key(d.path()).unwrap();
        std::fs::write(d.path().join("index.js"), "edited").unwrap();
        assert_eq!(project_key(d.path()).unwrap(), k1, "a source edit keeps the key");
        std::fs::write(d.path().join("package-lock.json"), "{\"lockfileVersion\":3,\"x\":1}").unwrap();
        assert_ne!(project_key(d.path()).unwrap(), k1, "a lockfile change makes a new key");
    }

    /// The scripts against a real shell and tar: save, restore, corrupt entry, LRU bound.
    #[test]
    fn save_restore_and_a_corrupt_entry_behave_in_a_real_shell() {
        let d = tempfile::tempdir().unwrap();
        let store = d.path().join("store");
        let proj = d.path().join("proj");
        std::fs::create_dir_all(store.clone()).unwrap();
        std::fs::create_dir_all(proj.join("node_modules/left-pad")).unwrap();
        std::fs::create_dir_all(proj.join("packages/a/node_modules/x")).unwrap();
        std::fs::write(proj.join("node_modules/left-pad/index.js"), "module.exports=1").unwrap();
        std::fs::create_dir_all(proj.join("node_modules/.cache")).unwrap();
        let sh = |script: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(&proj)
                .env(STORE_ENV, &store)
                .output()
                .unwrap();
            (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        assert_eq!(sh(&restore_script("k1")).1, "miss");
        assert!(sh(&save_script("k1", 100)).0);
        std::fs::remove_dir_all(proj.join("node_modules")).unwrap();
        std::fs::remove_dir_all(proj.join("packages/a/node_modules")).unwrap();
        assert_eq!(sh(&restore_script("k1")).1, "hit");
        assert!(proj.join("node_modules/left-pad/index.js").is_file());
        assert!(proj.join("packages/a/node_modules/x").is_dir(), "workspace trees are kept too");
        assert!(!proj.join("node_modules/.cache").exists(), "tool caches are left out");
        // A corrupt entry is reported and leaves no half tree behind.
        for e in std::fs::read_dir(&store).unwrap() {
            std::fs::write(e.unwrap().path(), "garbage").unwrap();
        }
        std::fs::remove_dir_all(proj.join("node_modules")).unwrap();
        let (_, said) = sh(&restore_script("k1"));
        assert!(said.starts_with("corrupt"), "{said}");
        assert!(!proj.join("node_modules").exists());
        // LRU: with a bound of 0 MiB only the newest entry stays.
        std::fs::create_dir_all(proj.join("node_modules/y")).unwrap();
        assert!(sh(&save_script("k2", 0)).0);
        assert!(sh(&save_script("k3", 0)).0);
        let left: Vec<_> = std::fs::read_dir(&store).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].to_string_lossy().starts_with("k3-"), "{left:?}");
    }
}
