//! Conformance cases for running commands: results, per-call and persisted env and workdir,
//! timeouts, cancellation, output caps and streaming.

use std::time::Duration;

use dagger_sandbox::{CancellationToken, ErrorCode, ExecOptions, OutputStream};

use crate::harness::{expect_code, Harness};

pub(super) async fn exec_returns_exit_code_and_separate_streams(h: Harness) {
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

pub(super) async fn exec_takes_per_call_env_cwd_and_stdin(h: Harness) {
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

pub(super) async fn env_and_workdir_persist_across_calls(h: Harness) {
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

pub(super) async fn timeout_kills_the_command_tree_and_returns_partial_output(h: Harness) {
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

pub(super) async fn cancel_kills_the_command_and_is_cancelled(h: Harness) {
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

pub(super) async fn output_cap_keeps_head_and_tail(h: Harness) {
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

pub(super) async fn streaming_delivers_chunks_in_order_before_the_result(h: Harness) {
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
        if chunks == 1 && h.streams_output() {
            assert_eq!(text, if c.stream == OutputStream::Stdout { "line1\n" } else { "err1\n" });
        }
    }
    if h.streams_output() {
        assert!(chunks >= 3, "output came as it was written, not all at the end ({chunks} chunks)");
    }
    let r = stream.finish().await.unwrap();
    assert_eq!(out, "line1\nline2\nline3\n");
    assert_eq!(err, "err1\nerr2\nerr3\n");
    assert_eq!((r.stdout, r.stderr), (out, err));
    sb.close().await.unwrap();
}

pub(super) async fn timeout_applies_when_a_command_closes_its_output_early(h: Harness) {
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

pub(super) async fn a_stream_receiver_that_never_reads_cannot_outlive_the_timeout(h: Harness) {
    let sb = h.create().await;
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let t = std::time::Instant::now();
    let r = sb
        .exec("yes streaming | head -c 20000000", ExecOptions::new().output(tx).timeout(Duration::from_millis(1500)))
        .await;
    if h.streams_output() {
        expect_code(r, ErrorCode::Timeout);
    } else if let Ok(done) = &r {
        // Output in one piece (Dagger): the command may end in time, its output capped in the
        // engine; the receiver got what fit, and the call did not wait for it.
        assert!(done.truncated && done.stdout_dropped > 0, "{:?}", done.stdout.len());
    } else {
        expect_code(r, ErrorCode::Timeout);
    }
    assert!(t.elapsed() < Duration::from_secs(15), "a stuck receiver held the call for {:?}", t.elapsed());
    sb.close().await.unwrap();
}

pub(super) async fn a_symlinked_workdir_works(h: Harness) {
    let sb = h.create().await;
    sb.exec("mkdir real && ln -s real link", ExecOptions::new()).await.unwrap();
    sb.set_workdir("link").await.unwrap();
    let r = sb.exec("echo hi > f.txt", ExecOptions::new()).await.unwrap();
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert_eq!(sb.read_file("/workspace/real/f.txt").await.unwrap(), b"hi\n");
    sb.close().await.unwrap();
}

pub(super) async fn any_exit_status_and_death_by_signal_is_a_result_with_output_and_files(h: Harness) {
    let sb = h.create().await;
    // 128-191 is where signal deaths live; Dagger's engine treats those exits as errors unless the
    // backend works around it, dropping the command's file changes and trimming its output.
    for (cmd, code) in [
        ("echo out-137; echo err-137 >&2; touch died-137; kill -9 $$", 137),
        ("echo out-139; touch died-139; kill -SEGV $$", 139),
        ("echo out-130; touch died-130; exit 130", 130),
        ("echo out-191; touch died-191; exit 191", 191),
        ("echo out-200; touch died-200; exit 200", 200),
    ] {
        let r = sb.exec(cmd, ExecOptions::new()).await.unwrap_or_else(|e| panic!("{cmd}: {e}"));
        assert_eq!(r.exit_code, code, "{cmd}: {r:?}");
        assert_eq!(r.stdout, format!("out-{code}\n"), "{cmd}");
        assert!(!r.stderr.contains("Killed"), "the shell's job report is not the command's output: {r:?}");
    }
    let r = sb.exec("ls died-*", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout, "died-130\ndied-137\ndied-139\ndied-191\ndied-200\n", "{r:?}");
    let err = sb.exec("echo e >&2; kill -9 $$", ExecOptions::new()).await.unwrap();
    assert_eq!((err.exit_code, err.stderr.as_str()), (137, "e\n"));
    sb.close().await.unwrap();
}

pub(super) async fn a_timed_out_command_keeps_the_files_it_wrote(h: Harness) {
    let sb = h.create().await;
    let e = expect_code(
        sb.exec(
            "echo partial; echo data > before-timeout; sleep 30",
            ExecOptions::new().timeout(Duration::from_secs(2)),
        )
        .await,
        ErrorCode::Timeout,
    );
    assert_eq!(e.partial_output().unwrap().stdout, "partial\n");
    let kept = sb
        .read_to_string("before-timeout")
        .await
        .unwrap_or_else(|e| panic!("the file written before the timeout: {e}"));
    assert_eq!(kept, "data\n");
    sb.close().await.unwrap();
}

pub(super) async fn one_exec_runs_once_so_its_output_and_files_agree(h: Harness) {
    let sb = h.create().await;
    // Engines that answer several queries about one exec must run it once: the printed value
    // and the file written in the same run are the same.
    for _ in 0..3 {
        let r = sb
            .exec(
                "u=$(cat /proc/sys/kernel/random/uuid); echo \"$u\" > stamp; echo \"$u\"; echo run >> runs",
                ExecOptions::new(),
            )
            .await
            .unwrap();
        assert_eq!(sb.read_to_string("stamp").await.unwrap(), r.stdout, "the kept state is from another run");
    }
    assert_eq!(sb.read_to_string("runs").await.unwrap(), "run\nrun\nrun\n");
    sb.close().await.unwrap();
}
