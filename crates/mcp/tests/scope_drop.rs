//! A connection's scope that is dropped while the runtime shuts down (a daemon or `mcp` process
//! exiting with a connection still open) must let the process end normally. Its `Drop` hands the
//! closing to a task; on a runtime that is shutting down that task is dropped at once, and the
//! scope it held must not hand the closing on again (that recursed until the stack overflowed and
//! the process aborted).

use dagger_sandbox_mcp::{Hub, McpOptions};

#[test]
fn a_scope_dropped_while_the_runtime_shuts_down_lets_the_process_end() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let hub = Hub::new(McpOptions::default(), None);
    let scope = hub.scope();
    // A connection's task holds its scope and never finishes by itself, as a server's does.
    rt.spawn(async move {
        let _connection = scope;
        std::future::pending::<()>().await
    });
    drop(rt);
    assert_eq!(std::sync::Arc::strong_count(&hub), 1, "nothing of the hub is left behind");
}
