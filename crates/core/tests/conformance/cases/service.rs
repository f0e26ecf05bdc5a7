//! Conformance cases for services with forwarded ports (`serve`) and for taking a sandbox back
//! after its handle was lost (`reattach`), what the daemon builds its sessions on.

use std::time::Duration;

use dagger_sandbox::{ErrorCode, ExecOptions, OutputStream, Sandbox, ServeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::lifecycle::leftovers;
use crate::harness::{expect_code, Harness};

/// A port for the service: inside a container any fixed one works; a local service binds the
/// host, so it needs one that is free there.
fn service_port(h: &Harness) -> u16 {
    if h.is_container() {
        8080
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }
}

/// The body of `GET /` on 127.0.0.1:`port`, or `None` when nothing answers with HTTP.
async fn http_get(port: u16) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").await.ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await.ok()?.ok()?;
    out.starts_with("HTTP/").then_some(out)
}

pub(super) async fn serve_forwards_a_port_streams_output_and_stops(h: Harness) {
    let port = service_port(&h);
    let sb = h.create_with(h.config().port(port)).await;
    let ports = sb.ports();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0].container_port, port);
    assert_eq!(ports[0].url, format!("http://127.0.0.1:{}", ports[0].host_port));
    sb.write_file("www/index.html", "hello from the sandbox\n").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let cmd = format!("echo service starting; exec busybox httpd -f -p {port} -h www");
    let service = sb
        .serve(&cmd, ServeOptions::new().output(tx).ready_timeout(Duration::from_secs(30)))
        .await
        .unwrap_or_else(|e| panic!("serve: {e}"));
    assert!(!service.ended());
    let body = http_get(ports[0].host_port).await.expect("the service answers on its host port");
    assert!(body.ends_with("hello from the sandbox\n"), "{body}");
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
    assert_eq!(first.stream, OutputStream::Stdout);
    assert_eq!(&first.data[..], b"service starting\n");
    // The sandbox stays usable while its service runs.
    assert_eq!(sb.exec("cat www/index.html", ExecOptions::new()).await.unwrap().exit_code, 0);
    service.stop().await;
    assert!(service.ended());
    assert_eq!(service.exit_code(), None, "a stopped service has no exit code of its own");
    assert_eq!(http_get(ports[0].host_port).await, None, "the service still answers after stop()");
    sb.close().await.unwrap();
    assert!(leftovers(&h, &sb).await.is_empty());
}

pub(super) async fn serve_reports_a_service_that_dies_or_never_listens(h: Harness) {
    let port = service_port(&h);
    let sb = h.create_with(h.config().port(port)).await;
    let e = sb.serve("echo boom >&2; exit 3", ServeOptions::new()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::EngineError, "{e}");
    let text = e.to_string();
    assert!(text.contains("exit code 3") && text.contains("boom") && text.contains(&port.to_string()), "{text}");
    let e = sb
        .serve("echo waiting; sleep 3217", ServeOptions::new().ready_timeout(Duration::from_millis(800)))
        .await
        .unwrap_err();
    let partial = expect_code::<()>(Err(e), ErrorCode::Timeout).partial_output().cloned().unwrap();
    assert_eq!(partial.stdout, "waiting\n");
    // The timed-out service was killed: nothing is left sleeping.
    let ps = sb.exec("ps -o args 2>/dev/null || ps ax", ExecOptions::new()).await.unwrap();
    assert!(!ps.stdout.contains("sleep 3217"), "{}", ps.stdout);
    expect_code(sb.serve("  ", ServeOptions::new()).await, ErrorCode::InvalidArgument);
    sb.close().await.unwrap();
    expect_code(sb.serve("true", ServeOptions::new()).await, ErrorCode::Closed);
    expect_code(Sandbox::create(h.config().port(0)).await, ErrorCode::InvalidArgument);
}

pub(super) async fn reattach_takes_back_a_sandbox_whose_handle_was_lost(h: Harness) {
    let owner = format!("daemon:conformance-{}", super::lifecycle::uuid_like());
    let cfg = h.config().owner(owner).env("FROM_CONFIG", "1");
    let sb = h.create_with(cfg.clone()).await;
    sb.write_file("kept.txt", "work in progress").await.unwrap();
    let (id, resource) = (sb.id().to_string(), sb.resource_id());
    // A daemon that shuts down lets go of its handles without freeing what they hold.
    sb.detach();
    drop(sb);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Daemon-owned sandboxes are the daemon's to reconcile, even while no process holds them.
    dagger_sandbox::cleanup_orphans().await.unwrap();
    let back = Sandbox::reattach(cfg.clone(), &id, &resource).await.unwrap_or_else(|e| panic!("reattach: {e}"));
    assert_eq!(back.id(), id);
    assert_eq!(back.read_to_string("kept.txt").await.unwrap(), "work in progress");
    let r = back.exec("echo $FROM_CONFIG", ExecOptions::new()).await.unwrap();
    assert_eq!(r.stdout, "1\n");
    expect_code(Sandbox::reattach(cfg.clone(), "not an id", &resource).await, ErrorCode::InvalidArgument);
    back.close().await.unwrap();
    assert!(leftovers(&h, &back).await.is_empty());
    expect_code(Sandbox::reattach(cfg, &id, &resource).await, ErrorCode::NotFound);
}
