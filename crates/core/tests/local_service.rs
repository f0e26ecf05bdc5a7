//! `serve` on the local backend: the service gets its own env, answers on the port it was given
//! (a host process binds the host port itself), and one that dies first fails with the end of its
//! stderr, however much it printed.

use std::time::Duration;

use dagger_sandbox::{BackendChoice, ErrorCode, Sandbox, SandboxConfig, ServeOptions};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_service_gets_its_env_and_port_and_a_dying_one_reports_its_stderr_tail() {
    let port = free_port();
    let sb = Sandbox::create(SandboxConfig::new().backend(BackendChoice::Local).port(port)).await.unwrap();
    let server = format!(
        "printf %s \"$GREETING\" > greeting.txt; exec python3 -c 'import http.server as h; \
         h.HTTPServer((\"127.0.0.1\", {port}), h.SimpleHTTPRequestHandler).serve_forever()'"
    );
    let opts = ServeOptions::new().env("GREETING", "hello-service").ready_timeout(Duration::from_secs(20));
    let svc = sb.serve(&server, opts).await.unwrap();
    assert_eq!(svc.ports().len(), 1);
    assert_eq!((svc.ports()[0].container_port, svc.ports()[0].host_port), (port, port), "{svc:?}");
    assert!(dagger_sandbox::engines::serves_on_loopback(port).await);
    assert_eq!(sb.read_to_string("greeting.txt").await.unwrap(), "hello-service", "the service's own env");
    assert!(!sb.env().contains_key("GREETING"), "a service's env is its own, not the sandbox's");
    svc.stop().await;
    assert!(svc.ended());

    // Dies before listening, after 10 kB of stderr: the error ends with the last of it.
    let noisy = "i=0; while [ $i -lt 200 ]; do echo \"noise line $i of the failing service\" >&2; i=$((i+1)); done; \
                 echo 'fatal: config missing' >&2; exit 3";
    let e = sb.serve(noisy, ServeOptions::new().ready_timeout(Duration::from_secs(20))).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::EngineError, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("exit code 3") && msg.trim_end().ends_with("fatal: config missing"), "{msg}");
    assert!(!msg.contains("noise line 0 "), "only the tail is kept: {} bytes", msg.len());
    sb.close().await.unwrap();
}
