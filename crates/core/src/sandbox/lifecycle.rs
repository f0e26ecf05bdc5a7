//! Stop and resume: a stopped sandbox frees its CPU and memory (its container stopped, or its
//! processes killed) but keeps its filesystem, env and workdir; `resume` brings it back as it was.
//! Calls on a stopped sandbox fail with `STOPPED` instead of failing somewhere in the engine.

use std::sync::atomic::Ordering;

use super::Sandbox;
use crate::backend;
use crate::config::SandboxConfig;
use crate::error::{Error, Result};

impl Sandbox {
    /// Whether the sandbox is stopped (see [`stop`](Self::stop)).
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Acquire)
    }

    /// `STOPPED` when the sandbox is stopped.
    pub(crate) fn check_running(&self) -> Result<()> {
        if self.is_stopped() {
            return Err(Error::Stopped { sandbox: self.inner.id.clone() });
        }
        Ok(())
    }

    /// Frees the sandbox's CPU and memory and keeps its files: on docker the container is stopped,
    /// on local its processes are killed (the directory stays), on dagger nothing runs between
    /// calls, so only the handle is marked. Commands still running (services included) are ended.
    /// Later calls fail with `STOPPED` until [`resume`](Self::resume); `close` still frees it all.
    /// Idempotent.
    pub async fn stop(&self) -> Result<()> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let _one = self.inner.lifecycle.lock().await;
        if self.is_stopped() {
            return Ok(());
        }
        // Marked first: a call that starts meanwhile gets `STOPPED`, not an engine error.
        self.inner.stopped.store(true, Ordering::Release);
        // A connected handle asks the sandbox's owner, which keeps its records in step.
        let stopped = match self.inner.owned.get() {
            Some(o) => o.owner.stop().await,
            None => self.inner.engine.stop().await,
        };
        if let Err(e) = stopped {
            self.inner.stopped.store(false, Ordering::Release);
            return Err(e);
        }
        tracing::info!(sandbox = %self.inner.id, "sandbox stopped");
        Ok(())
    }

    /// Brings a stopped sandbox back with the same files, env and workdir. Ports published on the
    /// host may get new numbers ([`ports`](Self::ports) says where). Idempotent: a running sandbox
    /// is left as it is.
    pub async fn resume(&self) -> Result<()> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let _one = self.inner.lifecycle.lock().await;
        if !self.is_stopped() {
            return Ok(());
        }
        match self.inner.owned.get() {
            Some(o) => o.owner.resume().await?,
            None => self.inner.engine.resume().await?,
        }
        self.inner.stopped.store(false, Ordering::Release);
        tracing::info!(sandbox = %self.inner.id, "sandbox resumed");
        Ok(())
    }

    /// Takes back a sandbox that was stopped (see [`reattach`](Self::reattach), which wants it
    /// running): the handle comes back stopped, ready for [`resume`](Self::resume). A resource
    /// found running is stopped, so the handle and the engine agree.
    pub async fn reattach_stopped(config: SandboxConfig, id: &str, resource_id: &str) -> Result<Sandbox> {
        let cfg = config.resolve()?;
        super::check_id(id)?;
        let (engine, env) = backend::reattach_any(&cfg, id, resource_id).await?;
        let sb = Sandbox::from_reattached(id, engine, env, cfg);
        sb.inner.engine.stop().await?;
        sb.inner.stopped.store(true, Ordering::Release);
        tracing::info!(sandbox = id, resource = resource_id, "stopped sandbox reattached");
        Ok(sb)
    }
}

#[cfg(test)]
mod tests {
    //! The stop/resume state machine over an engine that keeps nothing running between calls,
    //! as the dagger backend does (the trait's default `stop` and `resume`), offline: no Dagger
    //! engine runs on the test machines. Docker and local run it live in the conformance suite.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::super::{Sandbox, State};
    use crate::backend::{BackendKind, DirEntry, Engine, EntryKind, ExecSpec, Isolation};
    use crate::config::SandboxConfig;
    use crate::error::{Error, ErrorCode, Result};
    use crate::exec::{ExecOptions, RunningExec};
    use crate::paths::SandboxPath;
    use crate::stream::{ByteStream, FileReader};

    /// Counts the engine calls; `fail_stop` makes `stop` fail like an engine that refuses it.
    #[derive(Default)]
    struct Stateless {
        calls: AtomicUsize,
        fail_stop: bool,
    }

    impl Stateless {
        fn called(&self) -> Result<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::engine("sbx-test", "a call", "the fake engine runs nothing"))
        }
    }

    #[async_trait]
    impl Engine for Stateless {
        fn kind(&self) -> BackendKind {
            BackendKind::Dagger
        }
        fn isolation(&self) -> Isolation {
            Isolation::Container
        }
        fn resource_id(&self) -> String {
            "dagger:test".into()
        }
        async fn start_exec(&self, _: ExecSpec) -> Result<Box<dyn RunningExec>> {
            self.called().map(|_| unreachable!())
        }
        async fn upload_tar(&self, _: ByteStream) -> Result<()> {
            self.called()
        }
        async fn download_tar(&self, _: &SandboxPath) -> Result<ByteStream> {
            self.called().map(|_| unreachable!())
        }
        async fn read_file(&self, _: &SandboxPath, _: u64) -> Result<FileReader> {
            self.called().map(|_| unreachable!())
        }
        async fn stat(&self, _: &SandboxPath) -> Result<Option<EntryKind>> {
            self.called().map(|_| None)
        }
        async fn remove(&self, _: &SandboxPath) -> Result<()> {
            self.called()
        }
        async fn list_dir(&self, _: &SandboxPath) -> Result<Vec<DirEntry>> {
            self.called().map(|_| vec![])
        }
        async fn fork(&self, _: &str) -> Result<Box<dyn Engine>> {
            self.called().map(|_| unreachable!())
        }
        async fn snapshot(&self, _: crate::snapshot::Record) -> Result<crate::snapshot::Snapshot> {
            self.called().map(|_| unreachable!())
        }
        async fn close(&self) -> Result<()> {
            Ok(())
        }
        async fn stop(&self) -> Result<()> {
            if self.fail_stop {
                return Err(Error::engine("sbx-test", "stopping", "refused"));
            }
            Ok(()) // the dagger backend's: nothing runs between calls
        }
    }

    fn sandbox(engine: Arc<Stateless>) -> Sandbox {
        let cfg = SandboxConfig::new().resolve().unwrap();
        let state = State { workdir: cfg.workdir.clone(), env: Default::default() };
        Sandbox::from_parts("sbx-test".into(), engine, cfg, state, None)
    }

    #[tokio::test]
    async fn a_stopped_stateless_sandbox_refuses_calls_without_reaching_the_engine_and_resumes() {
        let engine = Arc::new(Stateless::default());
        let sb = sandbox(engine.clone());
        sb.stop().await.unwrap();
        sb.stop().await.unwrap();
        assert!(sb.is_stopped());
        let e = sb.exec("true", ExecOptions::new()).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Stopped);
        assert_eq!(sb.read_file("f").await.unwrap_err().code(), ErrorCode::Stopped);
        assert_eq!(sb.fork().await.unwrap_err().code(), ErrorCode::Stopped);
        assert_eq!(engine.calls.load(Ordering::SeqCst), 0, "no call reached the engine");
        sb.resume().await.unwrap();
        assert!(!sb.is_stopped());
        // Running again: calls reach the engine (which fails them here).
        assert_eq!(sb.exec("true", ExecOptions::new()).await.unwrap_err().code(), ErrorCode::EngineError);
        assert_eq!(engine.calls.load(Ordering::SeqCst), 1);
        sb.close().await.unwrap();
        assert_eq!(sb.stop().await.unwrap_err().code(), ErrorCode::Closed);
    }

    #[tokio::test]
    async fn an_engine_that_refuses_the_stop_leaves_the_sandbox_running() {
        let sb = sandbox(Arc::new(Stateless { fail_stop: true, ..Default::default() }));
        assert_eq!(sb.stop().await.unwrap_err().code(), ErrorCode::EngineError);
        assert!(!sb.is_stopped(), "a failed stop is not a stop");
    }
}
