//! Creating and removing the containers and images of docker sandboxes: the image pulled when
//! missing, the container made and started (with the agent placed beside it), and removal.

use std::collections::HashMap;

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig, PortBinding};
use bollard::query_parameters::{CreateImageOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder};
use bollard::Docker;
use futures_util::TryStreamExt;

use super::{agent, describe, status, Spec};
use crate::backend::PortMapping;
use crate::error::{Error, Result};
use crate::owner::{host_id, LABEL_HOST, LABEL_OWNER, LABEL_SANDBOX};

/// Makes sure `image` exists locally, pulling it when it does not.
pub(super) async fn ensure_image(docker: &Docker, image: &str, id: &str) -> Result<()> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if status(&e) == Some(404) => {}
        Err(e) => return Err(Error::engine(id, "inspecting the image", describe(&e))),
    }
    tracing::info!(sandbox = id, image, "pulling image");
    let (repo, tag) = split_image(image);
    let opts = CreateImageOptionsBuilder::default().from_image(repo).tag(tag).build();
    let pulled: std::result::Result<Vec<_>, _> = docker.create_image(Some(opts), None, None).try_collect().await;
    pulled.map_err(|e| Error::Engine {
        sandbox: id.to_string(),
        op: format!("pulling image {image}"),
        message: format!(
            "{}. The image is not on this engine and could not be pulled; pull or build it (docker pull / docker import), \
             or name a local image",
            describe(&e)
        ),
    })?;
    Ok(())
}

/// Splits `repo[:tag][@digest]` into repo and tag (`latest` by default), minding registry ports.
pub(super) fn split_image(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

/// Where each of `ports` was published on the host, read from an inspected container.
pub(super) fn published_ports(info: &ContainerInspectResponse, ports: &[u16]) -> Vec<PortMapping> {
    let map = info.network_settings.as_ref().and_then(|n| n.ports.clone()).unwrap_or_default();
    ports
        .iter()
        .filter_map(|p| {
            let bindings = map.get(&format!("{p}/tcp"))?.as_ref()?;
            let host = bindings.iter().find_map(|b| b.host_port.as_deref()?.parse::<u16>().ok())?;
            Some(PortMapping::new(*p, host))
        })
        .collect()
}

/// [`start_container`] with the agent binary mounted when one is found; an engine that refuses
/// the mount gets the container without it (the sandbox then uses the Engine API). Returns the
/// container, its ports, and what the agent was given.
pub(super) async fn start_with_agent(
    docker: &Docker,
    spec: &mut Spec,
    id: &str,
) -> Result<(String, Vec<PortMapping>, agent::Placement)> {
    spec.mounts.retain(|m| !agent::place::is_agent_mount(m));
    let mut placement = agent::Placement::default();
    match agent::place::find() {
        Ok(binary) => {
            spec.mounts.push(agent::place::mount(&binary));
            placement.enabled = true;
            if let Some((dir, mount)) = agent::place::socket_dir(id) {
                spec.mounts.push(mount);
                placement.socket_dir = Some(dir);
            }
        }
        Err(why) => {
            if agent::place::turned_off() {
                tracing::debug!(sandbox = id, "the in-sandbox agent is turned off ({why})");
            } else {
                agent::place::note_unused(id, &why);
            }
            let (container, ports) = start_container(docker, spec, id).await?;
            return Ok((container, ports, placement));
        }
    }
    // The mounts are the sandbox's own: a fork gets new ones from this function.
    let mounts = spec.mounts.clone();
    spec.mounts.retain(|m| !agent::place::is_agent_mount(m));
    let with_agent = Spec { mounts, ..spec.clone() };
    match start_container(docker, &with_agent, id).await {
        Ok((container, ports)) => Ok((container, ports, placement)),
        Err(e) => {
            agent::place::note_unused(id, &format!("the engine refused its mount: {e}"));
            agent::place::remove_socket_dir(id);
            let (container, ports) = start_container(docker, spec, id).await?;
            Ok((container, ports, agent::Placement::default()))
        }
    }
}

/// Creates and starts a sandbox container; a half-made container is removed on failure. Returns
/// the container id and where its ports were published.
pub(super) async fn start_container(docker: &Docker, spec: &Spec, id: &str) -> Result<(String, Vec<PortMapping>)> {
    let mut labels = spec.labels.clone();
    labels.insert(LABEL_SANDBOX.into(), id.into());
    labels.insert(LABEL_OWNER.into(), spec.owner.clone());
    labels.insert(LABEL_HOST.into(), host_id().into());
    // A published port needs a network to reach; the host side binds loopback only.
    let network = spec.network || !spec.ports.is_empty();
    let port_key = |p: &u16| format!("{p}/tcp");
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
        .ports
        .iter()
        .map(|p| {
            let bind = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) };
            (port_key(p), Some(vec![bind]))
        })
        .collect();
    let mb = |n: u64| (n as i64).saturating_mul(1024 * 1024);
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        // The container only keeps the sandbox alive; every command is its own exec.
        entrypoint: Some(vec!["sleep".into(), "infinity".into()]),
        cmd: Some(vec![]),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: Some(spec.workdir.clone()),
        labels: Some(labels),
        exposed_ports: (!spec.ports.is_empty()).then(|| spec.ports.iter().map(port_key).collect()),
        // Without network, skipping libnetwork setup halves the start time (bollard research §2).
        network_disabled: Some(!network),
        stop_timeout: Some(1),
        host_config: Some(HostConfig {
            network_mode: Some(if network { "bridge" } else { "none" }.into()),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            memory: (spec.memory_mb > 0).then(|| mb(spec.memory_mb)),
            memory_swap: (spec.memory_mb > 0).then(|| mb(spec.memory_mb)),
            pids_limit: (spec.pids_limit > 0).then_some(spec.pids_limit),
            init: Some(true),
            cap_drop: Some(["NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP", "SYS_CHROOT"].map(String::from).to_vec()),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            auto_remove: Some(spec.disposable),
            mounts: (!spec.mounts.is_empty()).then(|| spec.mounts.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(None::<bollard::query_parameters::CreateContainerOptions>, body)
        .await
        .map_err(|e| Error::engine(id, "creating the container", describe(&e)))?;
    if let Err(e) = docker.start_container(&created.id, None::<bollard::query_parameters::StartContainerOptions>).await
    {
        let _ = remove_container(docker, &created.id).await;
        return Err(Error::engine(id, "starting the container", describe(&e)));
    }
    if spec.ports.is_empty() {
        return Ok((created.id, Vec::new()));
    }
    let ports = match docker.inspect_container(&created.id, None).await {
        Ok(info) => published_ports(&info, &spec.ports),
        Err(e) => {
            let _ = remove_container(docker, &created.id).await;
            return Err(Error::engine(id, "reading the published ports", describe(&e)));
        }
    };
    if ports.len() != spec.ports.len() {
        let _ = remove_container(docker, &created.id).await;
        return Err(Error::engine(
            id,
            "publishing ports",
            format!("the engine published {ports:?} for {:?}", spec.ports),
        ));
    }
    Ok((created.id, ports))
}

/// Removes a container and its anonymous volumes; already gone counts as success.
pub(crate) async fn remove_container(docker: &Docker, container: &str) -> std::result::Result<(), DockerError> {
    let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    match docker.remove_container(container, Some(opts)).await {
        Err(e) if matches!(status(&e), Some(404 | 409)) => Ok(()),
        r => r,
    }
}

/// Ends a container made with auto-remove: kills it (the engine answers once its processes are
/// gone), after which the engine removes it and its files by itself, whether or not this process
/// is still running. A container that had already stopped is removed here.
pub(crate) async fn kill_for_removal(docker: &Docker, container: &str) -> std::result::Result<(), DockerError> {
    match docker.kill_container(container, None::<bollard::query_parameters::KillContainerOptions>).await {
        Err(e) if status(&e) == Some(404) => Ok(()),
        Err(e) if status(&e) == Some(409) => remove_container(docker, container).await,
        r => r,
    }
}

/// Removes an image; `Ok(false)` when it is still in use and must wait.
pub(crate) async fn remove_image(docker: &Docker, image: &str) -> std::result::Result<bool, DockerError> {
    let opts = RemoveImageOptionsBuilder::default().force(true).build();
    match docker.remove_image(image, Some(opts), None).await {
        Ok(_) => Ok(true),
        Err(e) if status(&e) == Some(404) => Ok(true),
        Err(e) if status(&e) == Some(409) => Ok(false),
        Err(e) => Err(e),
    }
}
