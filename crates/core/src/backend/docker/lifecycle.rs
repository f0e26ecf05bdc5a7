//! Stop and resume of a docker sandbox: the container is stopped (its processes end, its memory is
//! freed, its filesystem layer stays) and started again; published ports are read back, since the
//! engine may give them new host numbers.

use bollard::query_parameters::{StartContainerOptions, StopContainerOptionsBuilder};

use super::{describe, published_ports, status, DockerEngine};
use crate::error::{Error, Result};

/// Seconds the engine waits after SIGTERM before it kills what is left.
const STOP_GRACE_SECONDS: i32 = 1;

/// Stops the container; already stopped is fine, gone is `NOT_FOUND`.
pub(super) async fn stop(e: &DockerEngine) -> Result<()> {
    let opts = StopContainerOptionsBuilder::default().t(STOP_GRACE_SECONDS).build();
    match e.docker.stop_container(&e.container, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(err) if status(&err) == Some(304) => Ok(()),
        Err(err) if status(&err) == Some(404) => Err(Error::not_found(&e.id, "container", e.container.clone())),
        Err(err) => Err(Error::engine(&e.id, "stopping the container", describe(&err))),
    }
}

/// Starts the stopped container again and reads where its ports landed.
pub(super) async fn resume(e: &DockerEngine) -> Result<()> {
    match e.docker.start_container(&e.container, None::<StartContainerOptions>).await {
        Ok(()) => {}
        Err(err) if status(&err) == Some(304) => {}
        Err(err) if status(&err) == Some(404) => {
            return Err(Error::not_found(&e.id, "container", e.container.clone()));
        }
        Err(err) => return Err(Error::engine(&e.id, "starting the container again", describe(&err))),
    }
    if e.spec.ports.is_empty() {
        return Ok(());
    }
    let info = e
        .docker
        .inspect_container(&e.container, None)
        .await
        .map_err(|err| Error::engine(&e.id, "reading the published ports", describe(&err)))?;
    *e.ports.lock().unwrap_or_else(|p| p.into_inner()) = published_ports(&info, &e.spec.ports);
    Ok(())
}
