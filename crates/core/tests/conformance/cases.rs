//! The conformance cases: every op of DESIGN.md §3 and the edges users hit, written once for every
//! backend. A case that only makes sense with container isolation says so in `CASES`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use dagger_sandbox::{
    BackendKind, CancellationToken, EntryKind, ErrorCode, ExecOptions, FileWrite, OutputStream, RefreshOptions,
    Sandbox, LABEL_SANDBOX,
};

use crate::harness::{expect_code, Harness, NODE_IMAGE};

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Which backends a case applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every backend.
    All,
    /// Only backends with container isolation (limits, network, images).
    Container,
    /// Only the local backend (host-escape checks).
    Local,
}

/// One conformance case.
pub struct Case {
    pub name: &'static str,
    pub scope: Scope,
    pub run: fn(Harness) -> CaseFuture,
}

macro_rules! cases {
    ($($scope:ident $name:ident),* $(,)?) => {
        pub const CASES: &[Case] = &[$(Case { name: stringify!($name), scope: Scope::$scope, run: |h| Box::pin($name(h)) }),*];
    };
}

cases! {
    All exec_returns_exit_code_and_separate_streams,
    All exec_takes_per_call_env_cwd_and_stdin,
    All env_and_workdir_persist_across_calls,
    All text_and_binary_files_round_trip_byte_exact,
    All write_files_puts_1000_files_in_one_call,
    All nested_dirs_and_list_directory_report_kinds,
    All file_modes_are_applied,
    All missing_paths_are_not_found,
    All restricted_paths_refuse_writes_and_deletes_and_write_nothing,
    All bad_input_gets_a_clear_error_and_loses_nothing,
    All delete_file_removes_files_and_directories,
    All fork_is_isolated_both_ways,
    All timeout_kills_the_command_tree_and_returns_partial_output,
    All cancel_kills_the_command_and_is_cancelled,
    All output_cap_keeps_head_and_tail,
    All streaming_delivers_chunks_in_order_before_the_result,
    All refresh_from_host_honours_excludes_and_export_copies_out,
    All close_is_idempotent_fails_later_calls_and_leaves_nothing,
    All close_during_an_exec_fails_it_with_closed,
    All twenty_sandboxes_created_concurrently_all_work,
    All timeout_applies_when_a_command_closes_its_output_early,
    All a_stream_receiver_that_never_reads_cannot_outlive_the_timeout,
    All writes_keep_the_mode_of_existing_directories,
    All fifos_and_directories_are_not_read_as_files,
    All fork_racing_close_or_a_dropped_call_leaks_nothing,
    All export_never_hands_the_host_a_setuid_file,
    All restricted_paths_cannot_be_reached_through_a_symlink,
    All a_symlinked_workdir_works,
    Container network_is_off_by_default,
    Container memory_and_pids_limits_are_applied,
    Container node_project_runs_its_tests,
    Local symlinks_and_dot_dot_never_reach_outside_the_sandbox,
    Local close_stops_processes_a_command_left_running,
}

async fn exec_returns_exit_code_and_separate_streams(h: Harness) {
    let sb = h.create().await;
    let r = sb.exec("echo out; echo err >&2; exit 3", ExecOptions::new()).await.unwrap();
    assert_eq!(r.exit_code, 3, "a non-zero exit is a result: {r:?}");
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    assert!(!r.truncated);
    let r = sb.exec("true", ExecOptions::new()).await.unwrap();
    assert!(r.success());
    let r = sb.exec("no-such-command-xyz", ExecOptions::new()).await.unwrap();
    assert_eq!(r.exit_code, 127, "{r:?}");
    sb.close().await.unwrap();
}

async fn exec_takes_per_call_env_cwd_and_stdin(h: Harness) {
    let sb = h.create().await;
    sb.write_file("sub/dir/marker.txt", "here").await.unwrap();
    let r = sb
        .exec(
            "echo \"$GREETING\"; cat marker.txt; echo; wc -c",
            ExecOptions::new().env("GREETING", "hi there").cwd("sub/dir").stdin(vec![b'x'; 100_000]),
        )
        .await
        .unwrap();
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    assert_eq!(lines, ["hi there", "here", "100000"], "{r:?}");
    let r = sb.exec("echo \"[$GREETING]\"; pwd", ExecOptions::new()).await.unwrap();
    assert!(r.stdout.starts_with("[]\n"), "per-call env must not persist: {r:?}");
    assert!(r.stdout.trim_end().ends_with("/workspace"), "{r:?}");
    sb.close().await.unwrap();
}

async fn env_and_workdir_persist_across_calls(h: Harness) {
    let sb = h.create_with(h.config().env("FROM_CONFIG", "c")).await;
    sb.with_env("ONE", "1").unwrap();
    sb.with_envs([("TWO", "2"), ("SPACES", "a b  c")]).unwrap();
    sb.set_workdir("proj").await.unwrap();
    assert_eq!(sb.workdir(), "/workspace/proj");
    sb.write_file("rel.txt", "relative").await.unwrap();
    let r = sb
        .exec("echo $FROM_CONFIG$ONE$TWO; echo \"$SPACES\"; cat rel.txt; echo; pwd", ExecOptions::new())
        .await
        .unwrap();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(&lines[..3], ["c12", "a b  c", "relative"], "{r:?}");
    assert!(lines[3].ends_with("/workspace/proj"), "{r:?}");
    assert_eq!(sb.read_file("/workspace/proj/rel.txt").await.unwrap(), b"relative");
    sb.set_workdir("/workspace").await.unwrap();
    assert_eq!(sb.read_file("proj/rel.txt").await.unwrap(), b"relative");
    sb.close().await.unwrap();
}

async fn text_and_binary_files_round_trip_byte_exact(h: Harness) {
    let sb = h.create().await;
    let text = "héllo wörld ✓ 日本語 🚀\nline two\r\n";
    sb.write_file("unicode.txt", text).await.unwrap();
    assert_eq!(sb.read_to_string("unicode.txt").await.unwrap(), text);
    let binary: Vec<u8> = (0..=255u8).cycle().take(256 * 40 + 7).collect();
    sb.write_file("bin/all-bytes.bin", &binary).await.unwrap();
    assert_eq!(sb.read_file("bin/all-bytes.bin").await.unwrap(), binary);
    let r = sb.exec("wc -c < bin/all-bytes.bin", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout.trim(), binary.len().to_string());
    // Bytes made inside the sandbox come out exact too.
    sb.exec("printf '\\000\\001\\377\\n\\200' > made.bin", ExecOptions::new()).await.unwrap();
    assert_eq!(sb.read_file("made.bin").await.unwrap(), [0u8, 1, 255, b'\n', 0x80]);
    expect_code(sb.read_to_string("made.bin").await, ErrorCode::InvalidArgument);
    // An empty file is a file.
    sb.write_file("empty", "").await.unwrap();
    assert_eq!(sb.read_file("empty").await.unwrap(), b"");
    sb.close().await.unwrap();
}

async fn write_files_puts_1000_files_in_one_call(h: Harness) {
    let sb = h.create().await;
    let files: Vec<FileWrite> =
        (0..1000).map(|i| FileWrite::new(format!("many/d{}/f{i}.txt", i % 10), format!("file {i}\n"))).collect();
    sb.write_files(files).await.unwrap();
    let r = sb.exec("find many -type f | wc -l; cat many/d7/f997.txt", ExecOptions::new()).await.unwrap();
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    assert_eq!(lines, ["1000", "file 997"], "{r:?}");
    assert_eq!(sb.list_directory("many").await.unwrap().len(), 10);
    sb.close().await.unwrap();
}

async fn nested_dirs_and_list_directory_report_kinds(h: Harness) {
    let sb = h.create().await;
    sb.write_files([("a/b/c/d.txt", "four"), ("a/top.txt", "1"), ("a/with space.txt", "s")]).await.unwrap();
    sb.exec("ln -s top.txt a/link", ExecOptions::new()).await.unwrap();
    let list = sb.list_directory("a").await.unwrap();
    let got: Vec<(&str, EntryKind)> = list.iter().map(|e| (e.name.as_str(), e.kind)).collect();
    assert_eq!(
        got,
        [
            ("b", EntryKind::Dir),
            ("link", EntryKind::Symlink),
            ("top.txt", EntryKind::File),
            ("with space.txt", EntryKind::File)
        ]
    );
    let deep = sb.list_directory("a/b/c").await.unwrap();
    assert_eq!(deep.len(), 1);
    assert_eq!((deep[0].name.as_str(), deep[0].kind, deep[0].size), ("d.txt", EntryKind::File, 4));
    assert_eq!(sb.read_file("a/link").await.unwrap(), b"1", "reads follow symlinks inside the sandbox");
    expect_code(sb.list_directory("a/top.txt").await, ErrorCode::InvalidArgument);
    assert!(sb.exists("a/b/c").await.unwrap());
    sb.close().await.unwrap();
}

async fn file_modes_are_applied(h: Harness) {
    let sb = h.create().await;
    sb.write_file_with_mode("run.sh", "#!/bin/sh\necho ran\n", 0o755).await.unwrap();
    let r = sb.exec("./run.sh", ExecOptions::new()).await.unwrap();
    assert_eq!((r.exit_code, r.stdout.as_str()), (0, "ran\n"), "{r:?}");
    sb.write_file("plain.sh", "echo x").await.unwrap();
    let r = sb.exec("test -x plain.sh", ExecOptions::new()).await.unwrap();
    assert_eq!(r.exit_code, 1, "default mode is 0644");
    sb.close().await.unwrap();
}

async fn missing_paths_are_not_found(h: Harness) {
    let sb = h.create().await;
    let e = expect_code(sb.read_file("nope.txt").await, ErrorCode::NotFound);
    let msg = e.to_string();
    assert!(msg.contains("/workspace/nope.txt") && msg.contains(sb.id()), "message names path and sandbox: {msg}");
    expect_code(sb.delete_file("nope.txt").await, ErrorCode::NotFound);
    expect_code(sb.list_directory("nope").await, ErrorCode::NotFound);
    expect_code(sb.exec("true", ExecOptions::new().cwd("nope")).await, ErrorCode::NotFound);
    expect_code(sb.export_directory("nope", std::env::temp_dir().join("dsbx-never")).await, ErrorCode::NotFound);
    assert!(!sb.exists("nope.txt").await.unwrap());
    sb.close().await.unwrap();
}

async fn restricted_paths_refuse_writes_and_deletes_and_write_nothing(h: Harness) {
    let sb = h.create_with(h.config().restricted_path("/workspace/secrets/**").restricted_path("**/.git/**")).await;
    sb.exec("mkdir -p secrets && echo keep > secrets/key", ExecOptions::new()).await.unwrap();
    let e = expect_code(sb.write_file("secrets/key", "overwritten").await, ErrorCode::RestrictedPath);
    assert!(e.to_string().contains("/workspace/secrets/**"), "{e}");
    // One bad path refuses the whole batch: nothing of it lands.
    expect_code(sb.write_files([("ok.txt", "fine"), ("repo/.git/config", "x")]).await, ErrorCode::RestrictedPath);
    assert!(!sb.exists("ok.txt").await.unwrap(), "a refused batch must write nothing");
    expect_code(sb.delete_file("secrets/key").await, ErrorCode::RestrictedPath);
    expect_code(sb.delete_file("secrets").await, ErrorCode::RestrictedPath);
    expect_code(sb.delete_file("/workspace").await, ErrorCode::RestrictedPath);
    assert_eq!(sb.read_file("secrets/key").await.unwrap(), b"keep\n");
    sb.write_file("free.txt", "ok").await.unwrap();
    sb.close().await.unwrap();
}

async fn bad_input_gets_a_clear_error_and_loses_nothing(h: Harness) {
    let sb = h.create().await;
    sb.write_file("keep.txt", "kept").await.unwrap();
    expect_code(sb.write_file("", "x").await, ErrorCode::InvalidPath);
    expect_code(sb.write_file("a\0b", "x").await, ErrorCode::InvalidPath);
    expect_code(sb.write_file("/", "x").await, ErrorCode::InvalidPath);
    expect_code(sb.with_env("BAD=NAME", "x"), ErrorCode::InvalidArgument);
    expect_code(sb.with_envs([("OK", "1"), ("", "x")]), ErrorCode::InvalidArgument);
    assert!(!sb.env().contains_key("OK"), "an invalid batch sets nothing");
    expect_code(sb.exec("true", ExecOptions::new().env("A=B", "x")).await, ErrorCode::InvalidArgument);
    expect_code(sb.exec("true", ExecOptions::new().timeout(Duration::ZERO)).await, ErrorCode::InvalidArgument);
    expect_code(sb.set_workdir("keep.txt").await, ErrorCode::InvalidArgument);
    assert_eq!(sb.workdir(), "/workspace", "a refused set_workdir changes nothing");
    expect_code(sb.read_file("/workspace").await, ErrorCode::InvalidArgument);
    expect_code(sb.delete_file("/").await, ErrorCode::InvalidPath);
    expect_code(sb.write_file("keep.txt/child", "x").await, ErrorCode::InvalidArgument);
    let r = RefreshOptions::exclude(["[unclosed"]);
    expect_code(sb.refresh_from_host(std::env::temp_dir(), "x", r).await, ErrorCode::InvalidArgument);
    assert_eq!(sb.read_file("keep.txt").await.unwrap(), b"kept");
    sb.close().await.unwrap();
}

async fn delete_file_removes_files_and_directories(h: Harness) {
    let sb = h.create().await;
    sb.write_files([("d/x/1.txt", "1"), ("d/2.txt", "2"), ("solo.txt", "s")]).await.unwrap();
    sb.delete_file("solo.txt").await.unwrap();
    assert!(!sb.exists("solo.txt").await.unwrap());
    sb.delete_file("d").await.unwrap();
    assert!(!sb.exists("d").await.unwrap());
    expect_code(sb.delete_file("d").await, ErrorCode::NotFound);
    sb.close().await.unwrap();
}

async fn fork_is_isolated_both_ways(h: Harness) {
    let parent = h.create().await;
    parent.write_file("shared.txt", "v1").await.unwrap();
    parent.with_env("INHERITED", "yes").unwrap();
    parent.set_workdir("app").await.unwrap();
    let child = parent.fork().await.unwrap();
    assert_ne!(child.id(), parent.id());
    assert_eq!(child.workdir(), "/workspace/app");
    assert_eq!(child.read_file("/workspace/shared.txt").await.unwrap(), b"v1");
    child.write_file("/workspace/shared.txt", "child").await.unwrap();
    child.write_file("only-child.txt", "c").await.unwrap();
    parent.write_file("only-parent.txt", "p").await.unwrap();
    assert_eq!(parent.read_file("/workspace/shared.txt").await.unwrap(), b"v1");
    assert!(!parent.exists("only-child.txt").await.unwrap());
    assert!(!child.exists("only-parent.txt").await.unwrap());
    let r = child.exec("echo $INHERITED; pwd", ExecOptions::new()).await.unwrap();
    assert!(r.stdout.starts_with("yes\n") && r.stdout.trim_end().ends_with("/workspace/app"), "{r:?}");
    child.with_env("INHERITED", "changed").unwrap();
    assert_eq!(parent.env()["INHERITED"], "yes");
    let grandchild = child.fork().await.unwrap();
    assert_eq!(grandchild.read_file("only-child.txt").await.unwrap(), b"c");
    // Closing a parent first must not break its fork.
    parent.close().await.unwrap();
    assert_eq!(child.read_file("only-child.txt").await.unwrap(), b"c");
    child.close().await.unwrap();
    grandchild.close().await.unwrap();
}

async fn timeout_kills_the_command_tree_and_returns_partial_output(h: Harness) {
    let sb = h.create().await;
    let started = std::time::Instant::now();
    let cmd = "echo started; echo to-err >&2; (sleep 2; touch late-child) & sleep 30; touch late-main";
    let e = expect_code(sb.exec(cmd, ExecOptions::new().timeout(Duration::from_millis(800))).await, ErrorCode::Timeout);
    let partial = e.partial_output().expect("a TIMEOUT carries the partial output");
    assert_eq!(partial.stdout, "started\n");
    assert_eq!(partial.stderr, "to-err\n");
    assert!(started.elapsed() < Duration::from_secs(20), "the call returned long after its timeout");
    assert!(e.to_string().contains("800 ms"), "{e}");
    // Had anything of it survived, these files would appear.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let r = sb.exec("ls late-child late-main 2>/dev/null | wc -l", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout.trim(), "0", "a process of the timed-out command survived: {r:?}");
    // The sandbox's default timeout applies when the call sets none.
    let short = h.create_with(h.config().timeout(Duration::from_millis(500))).await;
    expect_code(short.exec("sleep 10", ExecOptions::new()).await, ErrorCode::Timeout);
    short.close().await.unwrap();
    sb.close().await.unwrap();
}

async fn cancel_kills_the_command_and_is_cancelled(h: Harness) {
    let sb = h.create().await;
    let token = CancellationToken::new();
    let t2 = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        t2.cancel();
    });
    let e =
        expect_code(sb.exec("sleep 3; touch survived", ExecOptions::new().cancel(token)).await, ErrorCode::Cancelled);
    assert!(e.to_string().contains("cancelled"), "{e}");
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert!(!sb.exists("survived").await.unwrap(), "a cancelled command kept running");
    sb.close().await.unwrap();
}

async fn output_cap_keeps_head_and_tail(h: Harness) {
    let sb = h.create_with(h.config().output_cap_bytes(1000)).await;
    let r = sb
        .exec("echo HEAD-MARK; i=0; while [ $i -lt 2000 ]; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; echo TAIL-MARK", ExecOptions::new())
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0);
    assert!(r.truncated);
    assert!(r.stdout.starts_with("HEAD-MARK\n"), "head kept: {:?}", &r.stdout[..40]);
    assert!(r.stdout.ends_with("TAIL-MARK\n"), "tail kept");
    assert!(r.stdout_dropped > 70_000, "{}", r.stdout_dropped);
    assert!(r.stdout.contains(&format!("[... {} bytes dropped ...]", r.stdout_dropped)));
    assert!(r.stdout.len() < 1100, "{}", r.stdout.len());
    assert_eq!(r.stderr_dropped, 0);
    sb.close().await.unwrap();
}

async fn streaming_delivers_chunks_in_order_before_the_result(h: Harness) {
    let sb = h.create().await;
    let mut stream =
        sb.exec_stream("for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 0.2; done", ExecOptions::new());
    let mut out = String::new();
    let mut err = String::new();
    let mut chunks = 0;
    while let Some(c) = stream.next_chunk().await {
        chunks += 1;
        let text = String::from_utf8_lossy(&c.data).into_owned();
        match c.stream {
            OutputStream::Stdout => out.push_str(&text),
            OutputStream::Stderr => err.push_str(&text),
        }
        if chunks == 1 {
            assert_eq!(text, if c.stream == OutputStream::Stdout { "line1\n" } else { "err1\n" });
        }
    }
    assert!(chunks >= 3, "output came as it was written, not all at the end ({chunks} chunks)");
    let r = stream.finish().await.unwrap();
    assert_eq!(out, "line1\nline2\nline3\n");
    assert_eq!(err, "err1\nerr2\nerr3\n");
    assert_eq!((r.stdout, r.stderr), (out, err));
    sb.close().await.unwrap();
}

async fn refresh_from_host_honours_excludes_and_export_copies_out(h: Harness) {
    let sb = h.create().await;
    let host = tempfile::tempdir().unwrap();
    let p = host.path();
    for (f, c) in [
        ("src/index.ts", "export {}"),
        ("package.json", "{}"),
        ("node_modules/dep/i.js", "x"),
        (".git/HEAD", "ref"),
        ("debug.log", "l"),
    ] {
        std::fs::create_dir_all(p.join(f).parent().unwrap()).unwrap();
        std::fs::write(p.join(f), c).unwrap();
    }
    sb.refresh_from_host(p, "app", RefreshOptions::exclude(["node_modules", ".git", "*.log"])).await.unwrap();
    let names: Vec<String> = sb.list_directory("app").await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["package.json", "src"]);
    assert_eq!(sb.read_file("app/src/index.ts").await.unwrap(), b"export {}");
    // Refreshing again overwrites changed files.
    std::fs::write(p.join("package.json"), "{\"v\":2}").unwrap();
    sb.refresh_from_host(p, "app", RefreshOptions::exclude(["node_modules", ".git", "*.log"])).await.unwrap();
    assert_eq!(sb.read_file("app/package.json").await.unwrap(), b"{\"v\":2}");
    sb.exec(
        "mkdir -p app/dist/js && echo built > app/dist/js/out.js && printf '\\377' > app/dist/b.bin",
        ExecOptions::new(),
    )
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    sb.export_directory("app/dist", out.path().join("dist")).await.unwrap();
    assert_eq!(std::fs::read(out.path().join("dist/js/out.js")).unwrap(), b"built\n");
    assert_eq!(std::fs::read(out.path().join("dist/b.bin")).unwrap(), [0xff]);
    expect_code(sb.export_directory("app/package.json", out.path()).await, ErrorCode::InvalidArgument);
    sb.close().await.unwrap();
}

/// Engine resources still labelled with `sandbox` (docker), or its directory (local).
async fn leftovers(h: &Harness, sb: &Sandbox) -> Vec<String> {
    match h.kind {
        BackendKind::Local => {
            let dir = std::path::PathBuf::from(sb.resource_id());
            if dir.exists() {
                vec![dir.display().to_string()]
            } else {
                vec![]
            }
        }
        _ => {
            use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder};
            let docker = bollard::Docker::connect_with_defaults().unwrap();
            let filters = HashMap::from([("label", vec![format!("{LABEL_SANDBOX}={}", sb.id())])]);
            let mut out: Vec<String> = docker
                .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
                .await
                .unwrap()
                .into_iter()
                .map(|c| format!("container {:?}", c.id))
                .collect();
            let images =
                docker.list_images(Some(ListImagesOptionsBuilder::default().filters(&filters).build())).await.unwrap();
            out.extend(images.into_iter().map(|i| format!("image {}", i.id)));
            out
        }
    }
}

async fn close_is_idempotent_fails_later_calls_and_leaves_nothing(h: Harness) {
    let sb = h.create().await;
    sb.write_file("x.txt", "x").await.unwrap();
    let fork = sb.fork().await.unwrap();
    let fork2 = fork.fork().await.unwrap();
    // Close in an awkward order: the middle of the family first.
    fork.close().await.unwrap();
    fork.close().await.unwrap();
    sb.close().await.unwrap();
    fork2.close().await.unwrap();
    sb.close().await.unwrap();
    assert!(sb.is_closed());
    expect_code(sb.exec("true", ExecOptions::new()).await, ErrorCode::Closed);
    expect_code(sb.read_file("x.txt").await, ErrorCode::Closed);
    expect_code(sb.write_file("y.txt", "y").await, ErrorCode::Closed);
    expect_code(sb.fork().await, ErrorCode::Closed);
    expect_code(sb.with_env("A", "1"), ErrorCode::Closed);
    for s in [&sb, &fork, &fork2] {
        let left = leftovers(&h, s).await;
        assert!(left.is_empty(), "sandbox {} left {left:?}", s.id());
    }
}

async fn close_during_an_exec_fails_it_with_closed(h: Harness) {
    let sb = h.create().await;
    let sb2 = sb.clone();
    let running = tokio::spawn(async move { sb2.exec("sleep 30", ExecOptions::new()).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    sb.close().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), running).await.expect("exec returned after close").unwrap();
    expect_code(r, ErrorCode::Closed);
    assert!(leftovers(&h, &sb).await.is_empty());
}

async fn twenty_sandboxes_created_concurrently_all_work(h: Harness) {
    let creates = (0..20).map(|i| {
        let h = h.clone();
        async move {
            let sb = h.create_with(h.config().env("N", i.to_string())).await;
            sb.write_file("n.txt", format!("{i}")).await.unwrap();
            let r = sb.exec("echo $N-$(cat n.txt)", ExecOptions::new()).await.unwrap();
            assert_eq!(r.stdout, format!("{i}-{i}\n"));
            sb
        }
    });
    let all = futures_util::future::join_all(creates).await;
    let ids: std::collections::HashSet<_> = all.iter().map(|s| s.id().to_string()).collect();
    assert_eq!(ids.len(), 20);
    futures_util::future::join_all(all.iter().map(|s| s.close())).await.into_iter().for_each(|r| r.unwrap());
}

async fn network_is_off_by_default(h: Harness) {
    let sb = h.create().await;
    let r = sb.exec("ls /sys/class/net", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout.split_whitespace().collect::<Vec<_>>(), ["lo"], "{r:?}");
    let on = h.create_with(h.config().network(true)).await;
    let r = on.exec("ls /sys/class/net", ExecOptions::new()).await.unwrap();
    assert!(r.stdout.contains("eth0"), "network: true gives an interface: {r:?}");
    sb.close().await.unwrap();
    on.close().await.unwrap();
}

async fn memory_and_pids_limits_are_applied(h: Harness) {
    let sb = h.create_with(h.config().memory_mb(256).pids_limit(64)).await;
    let r = sb
        .exec("cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes", ExecOptions::new())
        .await
        .unwrap();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines, ["64", &(256u64 * 1024 * 1024).to_string()], "{r:?}");
    sb.close().await.unwrap();
}

async fn node_project_runs_its_tests(h: Harness) {
    let sb = h.create_with(h.config().image(NODE_IMAGE)).await;
    sb.write_files([
        ("package.json", r#"{"name":"demo","version":"1.0.0","type":"module"}"#),
        ("sum.js", "export const sum = (a, b) => a + b;\n"),
        ("sum.test.js", "import test from 'node:test';\nimport assert from 'node:assert';\nimport { sum } from './sum.js';\ntest('adds', () => assert.strictEqual(sum(2, 3), 5));\n"),
        ("fail.test.js", "import test from 'node:test';\nimport assert from 'node:assert';\ntest('fails', () => assert.strictEqual(1, 2));\n"),
    ])
    .await
    .unwrap();
    let ok = sb.exec("node --test sum.test.js", ExecOptions::new()).await.unwrap();
    assert_eq!(ok.exit_code, 0, "{ok:?}");
    assert!(ok.stdout.contains("pass 1"), "{ok:?}");
    let bad = sb.exec("node --test fail.test.js", ExecOptions::new()).await.unwrap();
    assert_eq!(bad.exit_code, 1, "a failing test suite is a result: {bad:?}");
    sb.close().await.unwrap();
}

async fn symlinks_and_dot_dot_never_reach_outside_the_sandbox(h: Harness) {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target.txt");
    std::fs::write(&target, "original").unwrap();
    let sb = h.create().await;
    // Commands plant links that point out of the sandbox, absolute and relative.
    let cmd = format!(
        "ln -s {dir} out-dir && ln -s {file} out-file && ln -s ../../../../../../../../.. up",
        dir = outside.path().display(),
        file = target.display()
    );
    assert_eq!(sb.exec(&cmd, ExecOptions::new()).await.unwrap().exit_code, 0);
    expect_code(sb.write_file("out-dir/new.txt", "x").await, ErrorCode::InvalidPath);
    expect_code(sb.read_file("out-dir/target.txt").await, ErrorCode::InvalidPath);
    expect_code(sb.read_file("out-file").await, ErrorCode::InvalidPath);
    expect_code(sb.list_directory("out-dir").await, ErrorCode::InvalidPath);
    expect_code(sb.exec("true", ExecOptions::new().cwd("out-dir")).await, ErrorCode::InvalidPath);
    expect_code(sb.write_file(&format!("up{}/x", outside.path().display()), "x").await, ErrorCode::InvalidPath);
    // Writing to the link's own path replaces the link; it never writes through it.
    sb.write_file("out-file", "replaced").await.unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "original");
    assert_eq!(sb.read_file("out-file").await.unwrap(), b"replaced");
    // `..` is resolved inside the sandbox: it stops at the sandbox root.
    sb.write_file("../../../../../escape.txt", "inside").await.unwrap();
    assert_eq!(sb.read_file("/escape.txt").await.unwrap(), b"inside");
    assert!(std::path::Path::new(&sb.resource_id()).join("escape.txt").exists());
    // Deleting through a link removes the link only.
    sb.delete_file("out-dir").await.unwrap();
    assert!(target.exists());
    assert!(!outside.path().join("new.txt").exists());
    sb.close().await.unwrap();
}

async fn timeout_applies_when_a_command_closes_its_output_early(h: Harness) {
    let sb = h.create().await;
    let t = std::time::Instant::now();
    let e = expect_code(
        sb.exec("echo bye; exec >/dev/null 2>&1; sleep 30", ExecOptions::new().timeout(Duration::from_secs(1))).await,
        ErrorCode::Timeout,
    );
    assert_eq!(e.partial_output().unwrap().stdout, "bye\n");
    assert!(t.elapsed() < Duration::from_secs(15), "the call outlived its timeout: {:?}", t.elapsed());
    sb.close().await.unwrap();
}

async fn a_stream_receiver_that_never_reads_cannot_outlive_the_timeout(h: Harness) {
    let sb = h.create().await;
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let t = std::time::Instant::now();
    let r = sb
        .exec("yes streaming | head -c 20000000", ExecOptions::new().output(tx).timeout(Duration::from_millis(1500)))
        .await;
    expect_code(r, ErrorCode::Timeout);
    assert!(t.elapsed() < Duration::from_secs(15), "a stuck receiver held the call for {:?}", t.elapsed());
    sb.close().await.unwrap();
}

async fn writes_keep_the_mode_of_existing_directories(h: Harness) {
    let sb = h.create().await;
    sb.exec("mkdir -p shared && chmod 1777 shared", ExecOptions::new()).await.unwrap();
    sb.write_file("shared/a/b.txt", "x").await.unwrap();
    sb.write_files([("shared/c.txt", "c")]).await.unwrap();
    let r = sb.exec("stat -c %a shared", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout.trim(), "1777", "a write reset the mode of an existing directory");
    if h.is_container() {
        sb.write_file("/tmp/x.txt", "x").await.unwrap();
        let r = sb.exec("stat -c %a /tmp", ExecOptions::new()).await.unwrap();
        assert_eq!(r.stdout.trim(), "1777", "/tmp lost its sticky bit");
    }
    sb.close().await.unwrap();
}

async fn fifos_and_directories_are_not_read_as_files(h: Harness) {
    let sb = h.create().await;
    sb.exec("mkfifo pipe && mkdir -p d/e && ln -s d dirlink", ExecOptions::new()).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(20), sb.read_file("pipe")).await.expect("reading a FIFO hung");
    expect_code(read, ErrorCode::InvalidArgument);
    expect_code(sb.read_file("/").await, ErrorCode::InvalidArgument);
    expect_code(sb.read_file("dirlink").await, ErrorCode::InvalidArgument);
    sb.close().await.unwrap();
}

/// Managed engine resources carrying `label=value`, or (local) nothing to count by label.
async fn labelled(h: &Harness, value: &str) -> usize {
    if h.kind == BackendKind::Local {
        return 0;
    }
    use bollard::query_parameters::{ListContainersOptionsBuilder, ListImagesOptionsBuilder};
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let filters = HashMap::from([("label", vec![format!("dsbx-test-case={value}")])]);
    let c = docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
        .await
        .unwrap()
        .len();
    let i =
        docker.list_images(Some(ListImagesOptionsBuilder::default().filters(&filters).build())).await.unwrap().len();
    c + i
}

async fn fork_racing_close_or_a_dropped_call_leaks_nothing(h: Harness) {
    let tag = uuid_like();
    let cfg = h.config().label("dsbx-test-case", tag.clone());
    let sb = h.create_with(cfg.clone()).await;
    sb.write_file("f.txt", "x").await.unwrap();
    let (fork, closed) = tokio::join!(sb.fork(), sb.close());
    closed.unwrap();
    if let Ok(child) = fork {
        child.close().await.unwrap();
    }
    // A caller that gives up early: the create and the fork still finish, then free themselves.
    let sb2 = h.create_with(cfg.clone()).await;
    let _ = tokio::time::timeout(Duration::from_millis(1), sb2.fork()).await;
    let _ = tokio::time::timeout(Duration::from_millis(1), Sandbox::create(cfg.clone())).await;
    sb2.close().await.unwrap();
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = labelled(&h, &tag).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "containers or images of this case were left behind");
    assert!(!std::path::Path::new(&sb.resource_id()).exists() || h.is_container());
}

fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

async fn export_never_hands_the_host_a_setuid_file(h: Harness) {
    use std::os::unix::fs::PermissionsExt;
    let sb = h.create().await;
    sb.exec("mkdir -p out && echo x > out/tool && chmod 4755 out/tool", ExecOptions::new()).await.unwrap();
    let host = tempfile::tempdir().unwrap();
    sb.export_directory("out", host.path()).await.unwrap();
    let mode = std::fs::metadata(host.path().join("tool")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o755, "mode {:o}", mode & 0o7777);
    sb.close().await.unwrap();
}

async fn restricted_paths_cannot_be_reached_through_a_symlink(h: Harness) {
    let sb = h.create_with(h.config().restricted_path("/workspace/secrets/**")).await;
    sb.exec("mkdir secrets && ln -s secrets door && ln -s /workspace/secrets abs", ExecOptions::new()).await.unwrap();
    expect_code(sb.write_file("door/key", "x").await, ErrorCode::InvalidPath);
    expect_code(sb.write_files([("ok.txt", "x"), ("abs/key", "x")]).await, ErrorCode::InvalidPath);
    expect_code(sb.delete_file("door/anything").await, ErrorCode::InvalidPath);
    assert!(!sb.exists("secrets/key").await.unwrap());
    assert!(!sb.exists("ok.txt").await.unwrap());
    sb.close().await.unwrap();
}

async fn a_symlinked_workdir_works(h: Harness) {
    let sb = h.create().await;
    sb.exec("mkdir real && ln -s real link", ExecOptions::new()).await.unwrap();
    sb.set_workdir("link").await.unwrap();
    let r = sb.exec("echo hi > f.txt", ExecOptions::new()).await.unwrap();
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert_eq!(sb.read_file("/workspace/real/f.txt").await.unwrap(), b"hi\n");
    sb.close().await.unwrap();
}

async fn close_stops_processes_a_command_left_running(h: Harness) {
    let sb = h.create().await;
    let r = sb.exec("nohup sleep 600 >/dev/null 2>&1 & echo $!", ExecOptions::new()).await.unwrap();
    let pid: i32 = r.stdout.trim().parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "the background process started");
    sb.close().await.unwrap();
    let mut alive = true;
    for _ in 0..50 {
        let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        alive = !state.is_empty() && !state.contains("State:\tZ");
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive, "a process of the closed sandbox is still running");
}
