//! A daemon that cannot start says why, in words that name what to change, and leaves nothing
//! held: the state dir's lock is free again, so the corrected start right after works. Also where
//! the state dir is by default; one test, as that sets process-wide variables.

use std::time::Duration;

use dagger_sandbox_server::state::{default_state_dir, STATE_DIR_ENV};
use dagger_sandbox_server::templates::TEMPLATES_FILE;
use dagger_sandbox_server::{start, ServeOptions};

fn options(state_dir: &std::path::Path) -> ServeOptions {
    ServeOptions { addr: "127.0.0.1:0".parse().unwrap(), state_dir: state_dir.to_path_buf(), ..Default::default() }
}

/// Starts with `opts` and returns the whole error chain as text.
async fn refused(opts: ServeOptions) -> String {
    match start(opts).await {
        Ok(server) => {
            server.shutdown().await;
            panic!("the daemon started")
        }
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_bad_options_says_what_to_change_and_holds_nothing_and_the_default_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();

    let e = refused(ServeOptions { reap_interval: Duration::ZERO, ..options(state) }).await;
    assert!(e.contains("reap interval must be greater than 0"), "{e}");
    let e = refused(ServeOptions { max_sandboxes: 0, ..options(state) }).await;
    assert!(e.contains("maximum of sandboxes must be at least 1"), "{e}");
    let e = refused(ServeOptions { body_timeout: Duration::ZERO, ..options(state) }).await;
    assert!(e.contains("read timeouts must be greater than 0"), "{e}");

    // An address another program holds: the hint names the flag to change.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e = refused(ServeOptions { addr: taken.local_addr().unwrap(), ..options(state) }).await;
    assert!(e.contains(&format!("cannot listen on {}", taken.local_addr().unwrap())), "{e}");
    assert!(e.contains("pass another --addr"), "{e}");

    // A pool of a template nobody defined: the error lists the ones there are.
    let e = refused(ServeOptions { pools: vec![("nope".into(), 1)], ..options(state) }).await;
    assert!(e.contains("--pool: unknown template \"nope\"") && e.contains("node"), "{e}");

    // templates.json that cannot be used: each mistake named, with the file.
    let file = state.join(TEMPLATES_FILE);
    for (text, says) in [
        (r#"{" ": {"image": "busybox"}}"#, "a template name must not be empty"),
        (r#"{"x": {"image": " "}}"#, "template \"x\": image must not be empty"),
        (r#"{"x": {"image": "busybox", "ports": [0]}}"#, "template \"x\": ports must be 1-65535"),
    ] {
        std::fs::write(&file, text).unwrap();
        let e = refused(options(state)).await;
        assert!(e.contains(says) && e.contains(TEMPLATES_FILE), "{text}: {e}");
    }
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let e = refused(options(state)).await;
    assert!(e.contains(TEMPLATES_FILE), "a templates.json that cannot be read is named: {e}");
    std::fs::remove_dir(&file).unwrap();

    // A token path that cannot be read (a directory): the error says which file.
    std::fs::remove_file(state.join("token")).unwrap();
    std::fs::create_dir(state.join("token")).unwrap();
    let e = refused(options(state)).await;
    assert!(e.contains("reading or creating the token"), "{e}");
    std::fs::remove_dir(state.join("token")).unwrap();

    // Nothing of the refused starts is held: the same state dir starts now.
    let server = start(options(state)).await.expect("the corrected start works");
    assert!(server.sessions().live_count() == 0);
    server.shutdown().await;
    drop(taken);

    // Where the state dir is by default (read here, after every start above).
    std::env::set_var(STATE_DIR_ENV, "/srv/sandbox-state");
    assert_eq!(default_state_dir(), std::path::Path::new("/srv/sandbox-state"));
    std::env::remove_var(STATE_DIR_ENV);
    std::env::set_var("XDG_STATE_HOME", "/xdg/state");
    assert_eq!(default_state_dir(), std::path::Path::new("/xdg/state/dagger-sandbox"));
    std::env::remove_var("XDG_STATE_HOME");
    let home = std::env::var_os("HOME");
    std::env::set_var("HOME", "");
    let fallback = default_state_dir();
    assert!(fallback.starts_with(std::env::temp_dir()), "{}", fallback.display());
    assert!(fallback.display().to_string().contains("dagger-sandbox-state"), "{}", fallback.display());
    match home {
        Some(h) => std::env::set_var("HOME", h),
        None => std::env::remove_var("HOME"),
    }
}
