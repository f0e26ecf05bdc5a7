//! Raw Docker Engine API calls (bollard alone) that the benchmarks compare our API with: a
//! container made like ours, an exec run to its exit code, a removal. Shared by the `backends`
//! and `agent` benchmarks.

use std::collections::HashMap;

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

/// The same container settings our backend uses, so the comparison is like for like.
pub fn raw_body(image: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.into()),
        entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
        cmd: Some(vec![]),
        working_dir: Some("/workspace".into()),
        labels: Some(HashMap::from([("dev.dagger-sandbox.bench".to_string(), "1".to_string())])),
        network_disabled: Some(true),
        stop_timeout: Some(1),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            memory: Some(2048 << 20),
            memory_swap: Some(2048 << 20),
            pids_limit: Some(1024),
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates and starts a container of `image` as our backend would.
pub async fn raw_create(d: &Docker, image: &str) -> String {
    let c =
        d.create_container(None::<bollard::query_parameters::CreateContainerOptions>, raw_body(image)).await.unwrap();
    d.start_container(&c.id, None::<bollard::query_parameters::StartContainerOptions>).await.unwrap();
    c.id
}

/// Removes a container and its volumes.
pub async fn raw_remove(d: &Docker, id: &str) {
    let _ = d.remove_container(id, Some(RemoveContainerOptionsBuilder::default().force(true).v(true).build())).await;
}

/// Runs `sh -c cmd` as one Engine API exec and returns its exit code.
pub async fn raw_exec(d: &Docker, id: &str, cmd: &str) -> i64 {
    let config = ExecConfig {
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), cmd.into()]),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        working_dir: Some("/workspace".into()),
        ..Default::default()
    };
    let e = d.create_exec(id, config).await.unwrap();
    let opts = StartExecOptions { detach: false, tty: false, output_capacity: None };
    if let StartExecResults::Attached { mut output, .. } = d.start_exec(&e.id, Some(opts)).await.unwrap() {
        while output.next().await.is_some() {}
    }
    loop {
        let i = d.inspect_exec(&e.id).await.unwrap();
        if i.running != Some(true) {
            return i.exit_code.unwrap_or(-1);
        }
    }
}
