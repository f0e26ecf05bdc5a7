//! One request in flight on a link: its replies in order ([`Call`]), cancelling it from elsewhere
//! ([`Canceller`]), and feeding it data within the send window ([`Feeder`]).

use super::*;

/// One request in flight: its replies arrive in order; dropping it before its end cancels it.
pub(crate) struct Call {
    pub(super) link: Arc<Link>,
    pub(super) id: u32,
    pub(super) rx: mpsc::Receiver<Incoming>,
    pub(super) credit: Arc<Credit>,
    pub(super) finished: bool,
}

impl Call {
    /// The next thing the agent sent; an ended connection is `ENGINE_ERROR`. Data frames are
    /// acknowledged as they are taken (the consumer is ready for more).
    pub(crate) async fn next(&mut self, op: &str) -> Result<Incoming> {
        let item = tokio::select! {
            biased;
            i = self.rx.recv() => i,
            _ = self.link.dead.cancelled() => None,
        };
        match item {
            Some(i) => {
                match &i {
                    Incoming::Data(..) => self.link.send(encode(self.id, Kind::Ack, &1u32.to_be_bytes())),
                    Incoming::Reply(r) if r.is_terminal() => self.finish(),
                    _ => {}
                }
                Ok(i)
            }
            None => {
                self.finished = true;
                Err(self.link.lost(op))
            }
        }
    }

    /// [`next`](Self::next) within `timeout`; past it the agent is taken as hung and the
    /// connection ends (`ENGINE_ERROR`).
    pub(crate) async fn next_within(&mut self, op: &str, timeout: Duration) -> Result<Incoming> {
        match tokio::time::timeout(timeout, self.next(op)).await {
            Ok(r) => r,
            Err(_) => {
                self.link.fail(format!("no answer to {op} within {} ms", timeout.as_millis()));
                Err(self.link.lost(op))
            }
        }
    }

    /// Ends the data this request sends.
    pub(crate) fn send_eof(&self) {
        self.link.send(encode(self.id, Kind::Eof, &[Kind::Data as u8]));
    }

    /// A handle that can cancel this request from elsewhere (a kill).
    pub(crate) fn canceller(&self) -> Canceller {
        Canceller { link: Arc::downgrade(&self.link), id: self.id }
    }

    /// A copy of the parts a task feeding this request's data needs.
    pub(crate) fn feeder(&self) -> Feeder {
        Feeder { link: self.link.clone(), id: self.id, credit: self.credit.clone() }
    }

    /// The connection this call runs on.
    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// Marks the request as answered in full (nothing to cancel on drop).
    pub(crate) fn finish(&mut self) {
        self.finished = true;
        self.link.forget(self.id);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            self.link.send(encode(self.id, Kind::Cancel, &[]));
        }
        self.link.forget(self.id);
    }
}

/// Cancels one request (kills a command's process group) without owning its call.
#[derive(Clone)]
pub(crate) struct Canceller {
    link: std::sync::Weak<Link>,
    id: u32,
}

impl Canceller {
    /// Asks the agent to stop the request; `false` when the connection is gone.
    pub(crate) fn cancel(&self) -> bool {
        match self.link.upgrade() {
            Some(link) if link.alive() => {
                link.send(encode(self.id, Kind::Cancel, &[]));
                true
            }
            _ => false,
        }
    }
}

/// Sends a request's data (stdin) from a task of its own.
pub(crate) struct Feeder {
    link: Arc<Link>,
    id: u32,
    credit: Arc<Credit>,
}

impl Feeder {
    /// Sends one data frame (at most `CHUNK` bytes) once the agent's window has room; fails when
    /// the connection ended or the request is over.
    pub(crate) async fn send(&self, op: &str, data: &[u8]) -> Result<()> {
        let permit = tokio::select! {
            p = self.credit.permits.acquire() => p.ok(),
            _ = self.link.dead.cancelled() => None,
            _ = self.credit.over.cancelled() => None,
        };
        let Some(permit) = permit else { return Err(self.link.lost(op)) };
        permit.forget();
        self.credit.outstanding.fetch_add(1, Ordering::SeqCst);
        self.link.send(encode(self.id, Kind::Data, data));
        Ok(())
    }

    /// Sends `data` in window-sized frames, then the end; stops when the connection or the
    /// request does.
    pub(crate) async fn feed(self, data: &[u8]) {
        for chunk in data.chunks(dagger_sandbox_agent::CHUNK) {
            if self.send("feeding stdin", chunk).await.is_err() {
                return;
            }
        }
        self.link.send(encode(self.id, Kind::Eof, &[Kind::Data as u8]));
    }
}
