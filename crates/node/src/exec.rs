//! `exec` plumbing: cancellation handed over from JS (an `AbortSignal` in `index.js`) and output
//! chunks forwarded to a JS callback in order, all delivered before the call settles.

use dagger_sandbox::{CancellationToken, Sandbox};
use napi::bindgen_prelude::{Buffer, Env};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;
use tokio::sync::mpsc;

use crate::error::in_sandbox;
use crate::options::{ExecOptions, ExecResult, OutputChunk};

/// A JS callback that gets each output chunk; no error argument, result ignored.
pub type OnOutput = ThreadsafeFunction<OutputChunk, (), OutputChunk, Status, false>;

/// Cancels one exec: `index.js` makes one per call and calls `cancel()` when its signal aborts.
#[napi]
pub struct ExecCanceller {
    token: CancellationToken,
}

impl Default for ExecCanceller {
    fn default() -> Self {
        Self::new()
    }
}

#[napi]
impl ExecCanceller {
    /// A canceller that has not fired.
    #[napi(constructor)]
    pub fn new() -> Self {
        ExecCanceller { token: CancellationToken::new() }
    }

    /// Kills the command it was passed to; that exec rejects with `CANCELLED`.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

/// Starts `command` on `sb` and returns the promise of its result.
pub fn start(
    env: &Env,
    sb: Sandbox,
    command: String,
    opts: Option<ExecOptions>,
    canceller: Option<&ExecCanceller>,
    on_output: Option<OnOutput>,
) -> napi::Result<napi::bindgen_prelude::AsyncBlock<ExecResult>> {
    let mut core = opts.unwrap_or_default().into_core()?;
    if let Some(c) = canceller {
        core = core.cancel(c.token.clone());
    }
    let id = sb.id().to_string();
    let to_napi = move |e| in_sandbox(&id, e);
    let fut = async move {
        let Some(cb) = on_output else {
            return sb.exec(&command, core).await.map(ExecResult::from).map_err(to_napi);
        };
        let (tx, rx) = mpsc::channel(64);
        let (res, ()) = tokio::join!(sb.exec(&command, core.output(tx)), forward(rx, cb));
        res.map(ExecResult::from).map_err(to_napi)
    };
    napi::bindgen_prelude::AsyncBlockBuilder::new(fut).build(env)
}

/// Hands chunks to JS one at a time, waiting for each callback so they arrive in order and before
/// the exec settles; the TSFN is dropped at the end so it cannot keep the process alive.
async fn forward(mut rx: mpsc::Receiver<dagger_sandbox::OutputChunk>, cb: OnOutput) {
    while let Some(chunk) = rx.recv().await {
        let js = OutputChunk { stream: chunk.stream.as_str().to_string(), data: Buffer::from(chunk.data.to_vec()) };
        // A throwing callback is the user's bug; it must neither kill the process nor the command.
        let _ = cb.call_async_catch(js).await;
    }
}
