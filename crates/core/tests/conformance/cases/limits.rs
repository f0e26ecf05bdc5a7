//! Conformance cases for size and time limits: a sandbox can hold a 64 GB file or replace its own
//! tools with hostile ones, and no call may then exhaust the host's memory or hang.

use std::time::Duration;

use dagger_sandbox::{ErrorCode, ExecOptions, READ_FILE_LIMIT};
use tokio::io::AsyncReadExt;

use crate::harness::{expect_code, Harness};

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// How long a call against a hostile tool may take before the case counts it as hung.
const HANG: Duration = Duration::from_secs(60);

pub(super) async fn a_huge_file_is_too_large_to_read_into_memory_and_streams_instead(h: Harness) {
    let sb = h.create().await;
    let r = sb.exec("truncate -s 64G big && truncate -s 100M mid", ExecOptions::new()).await.unwrap();
    assert_eq!(r.exit_code, 0, "{r:?}");
    // The cap is checked before a byte is read: a 64 GB file is a quick, typed refusal.
    let e = expect_code(sb.read_file("big").await, ErrorCode::TooLarge);
    assert!(e.to_string().contains(&(64 * GIB).to_string()), "the message gives the size: {e}");
    expect_code(sb.read_to_string("big").await, ErrorCode::TooLarge);
    // Just over the cap is refused too, and the streaming read takes it whole.
    const { assert!(100 * MIB > READ_FILE_LIMIT) };
    expect_code(sb.read_file("mid").await, ErrorCode::TooLarge);
    let host = tempfile::tempdir().unwrap();
    let dest = host.path().join("mid");
    let mut out = tokio::fs::File::create(&dest).await.unwrap();
    assert_eq!(sb.read_file_to("mid", &mut out).await.unwrap(), 100 * MIB);
    drop(out);
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), 100 * MIB);
    // An open reader says the size first, and reads the bytes as they are.
    let mut reader = sb.open_file("mid").await.unwrap();
    assert_eq!(reader.size(), 100 * MIB);
    let mut head = [1u8; 4096];
    reader.read_exact(&mut head).await.unwrap();
    assert!(head.iter().all(|b| *b == 0));
    drop(reader);
    // Streaming writes: from a host file, and from any reader.
    let src = host.path().join("src.bin");
    let data: Vec<u8> = (0..=255u8).cycle().take(3 * MIB as usize + 5).collect();
    std::fs::write(&src, &data).unwrap();
    assert_eq!(sb.write_file_from_host("up/from-host.bin", &src, 0o640).await.unwrap(), data.len() as u64);
    let reader = std::io::Cursor::new(data.clone());
    assert_eq!(sb.write_file_from("up/from-reader.bin", reader, 0o644).await.unwrap(), data.len() as u64);
    let r = sb
        .exec(
            "cmp up/from-host.bin up/from-reader.bin && wc -c < up/from-host.bin && stat -c %a up/*",
            ExecOptions::new(),
        )
        .await
        .unwrap();
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    assert_eq!(lines, [data.len().to_string().as_str(), "640", "644"], "{r:?}");
    assert_eq!(sb.read_file("up/from-reader.bin").await.unwrap(), data);
    sb.close().await.unwrap();
}

pub(super) async fn export_streams_a_big_file_to_disk(h: Harness) {
    let sb = h.create().await;
    let r = sb.exec("mkdir -p out/sub && truncate -s 200M out/sub/big && echo hi > out/small", ExecOptions::new());
    assert_eq!(r.await.unwrap().exit_code, 0);
    let host = tempfile::tempdir().unwrap();
    sb.export_directory("out", host.path().join("x")).await.unwrap();
    assert_eq!(std::fs::metadata(host.path().join("x/sub/big")).unwrap().len(), 200 * MIB);
    assert_eq!(std::fs::read(host.path().join("x/small")).unwrap(), b"hi\n");
    sb.close().await.unwrap();
}

pub(super) async fn fork_copies_a_huge_sparse_file_through_the_filesystem(h: Harness) {
    let sb = h.create().await;
    let r = sb.exec("truncate -s 64G big && echo kept > small", ExecOptions::new()).await.unwrap();
    assert_eq!(r.exit_code, 0, "{r:?}");
    let child = tokio::time::timeout(HANG, sb.fork()).await.expect("a fork of a sparse file is quick").unwrap();
    let r = child.exec("stat -c %s big; du -k big | cut -f1; cat small", ExecOptions::new()).await.unwrap();
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    assert_eq!(lines[0], (64 * GIB).to_string(), "{r:?}");
    assert!(lines[1].parse::<u64>().unwrap() < 1024, "the copy stays sparse: {r:?}");
    assert_eq!(lines[2], "kept");
    child.close().await.unwrap();
    sb.close().await.unwrap();
}

/// Replaces the tool `name` in the sandbox with a script running `body`.
async fn replace_tool(sb: &dagger_sandbox::Sandbox, name: &str, body: &str) {
    let script = format!("#!/bin/sh\n{body}\n");
    sb.write_file_with_mode(&format!("/tmp/{name}"), script, 0o755).await.unwrap();
    let r = sb.exec(&format!("mv -f /tmp/{name} \"$(which {name})\""), ExecOptions::new()).await.unwrap();
    assert_eq!(r.exit_code, 0, "{r:?}");
}

pub(super) async fn a_hostile_rm_cannot_hang_delete_file(h: Harness) {
    let sb = h.create_with(h.config().timeout(Duration::from_secs(3))).await;
    sb.write_file("victim.txt", "x").await.unwrap();
    replace_tool(&sb, "rm", "exec sleep 1000").await;
    let r = tokio::time::timeout(HANG, sb.delete_file("victim.txt")).await.expect("delete_file hung");
    if sb.agent_running().await {
        // The in-sandbox agent deletes by itself: the image's tools play no part.
        r.unwrap();
        assert!(!sb.exists("victim.txt").await.unwrap());
        return sb.close().await.unwrap();
    }
    let e = expect_code(r, ErrorCode::Timeout);
    assert!(e.to_string().contains("rm"), "{e}");
    assert!(sb.exists("victim.txt").await.unwrap());
    sb.close().await.unwrap();
}

pub(super) async fn a_hostile_stat_cannot_grow_a_listing_without_bound(h: Harness) {
    // Debian's coreutils: busybox's shell runs its own `stat` whatever is on disk.
    let image = h.node_image.clone().expect("docker has the node image");
    let sb = h.create_with(h.config().image(image).timeout(Duration::from_secs(30))).await;
    sb.write_file("d/a.txt", "x").await.unwrap();
    replace_tool(&sb, "stat", "exec yes").await;
    let r = tokio::time::timeout(HANG, sb.list_directory("d")).await.expect("list_directory hung");
    if sb.agent_running().await {
        // The in-sandbox agent lists by itself: the image's tools play no part.
        assert_eq!(r.unwrap().into_iter().map(|e| e.name).collect::<Vec<_>>(), ["a.txt"]);
        return sb.close().await.unwrap();
    }
    expect_code(r, ErrorCode::TooLarge);
    sb.close().await.unwrap();
}
