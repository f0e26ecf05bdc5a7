//! A sandbox's state on Dagger is an immutable container value built as a lazy GraphQL chain. Every
//! chained call adds a nesting level to the response, and the SDK's JSON parser gives up past 128
//! levels (about 123 calls, dagger/dagger#13397). `Chain` counts the calls since the last sync and
//! syncs (which re-roots the chain at `node(id:)`) well before that, so any number of operations
//! works on one sandbox.

use futures_util::future::BoxFuture;

/// Chained calls allowed before a sync: half the SDK's limit, so that one operation's own links
/// (a few per exec, one per secret) plus its leaf always fit.
pub(crate) const MAX_PENDING: usize = 48;

/// A lazily built engine value that can be evaluated and re-rooted.
pub(crate) trait Syncable: Clone + Send + Sync + 'static {
    /// What a failed sync returns.
    type Err;
    /// Evaluates the chain and returns the same value rooted at its id (a chain of depth 0).
    fn sync_now(&self) -> BoxFuture<'static, Result<Self, Self::Err>>;
}

impl Syncable for dagger_sdk::Container {
    type Err = dagger_sdk::errors::DaggerError;
    fn sync_now(&self) -> BoxFuture<'static, Result<Self, Self::Err>> {
        let c = self.clone();
        Box::pin(async move { c.sync().await })
    }
}

/// The current value of a sandbox and how many calls were chained onto it since its last sync.
#[derive(Clone)]
pub(crate) struct Chain<C> {
    value: C,
    pending: usize,
}

impl<C: Syncable> Chain<C> {
    /// A chain starting from a synced value.
    pub fn new(synced: C) -> Self {
        Chain { value: synced, pending: 0 }
    }

    /// The current value (possibly with pending calls).
    pub fn value(&self) -> &C {
        &self.value
    }

    /// Calls chained since the last sync.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Chains `links` calls made by `f`, syncing first when they would cross [`MAX_PENDING`].
    pub async fn apply(&mut self, links: usize, f: impl FnOnce(&C) -> C) -> Result<(), C::Err> {
        if self.pending + links > MAX_PENDING {
            self.checkpoint().await?;
        }
        self.value = f(&self.value);
        self.pending += links;
        Ok(())
    }

    /// Syncs when anything is pending.
    pub async fn checkpoint(&mut self) -> Result<(), C::Err> {
        if self.pending > 0 {
            self.value = self.value.sync_now().await?;
            self.pending = 0;
        }
        Ok(())
    }

    /// Replaces the value with one that was just synced.
    pub fn set_synced(&mut self, synced: C) {
        self.value = synced;
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for an SDK value: it knows its chain depth, and evaluating it fails the way the
    /// SDK does once the response nests deeper than serde_json's 128 levels.
    #[derive(Clone, Debug)]
    struct Lazy {
        depth: usize,
    }

    /// `container` + `from` + the chain + the leaf field, as the SDK nests them.
    const SDK_LIMIT: usize = 128;

    impl Lazy {
        fn call(&self) -> Lazy {
            Lazy { depth: self.depth + 1 }
        }
        fn evaluate(&self) -> Result<(), String> {
            if self.depth + 3 > SDK_LIMIT {
                Err(format!("recursion limit exceeded at depth {}", self.depth))
            } else {
                Ok(())
            }
        }
    }

    impl Syncable for Lazy {
        type Err = String;
        fn sync_now(&self) -> BoxFuture<'static, Result<Self, String>> {
            let r = self.evaluate().map(|_| Lazy { depth: 1 });
            Box::pin(async move { r })
        }
    }

    #[tokio::test]
    async fn a_thousand_operations_never_cross_the_sdk_depth_limit() {
        let mut chain = Chain::new(Lazy { depth: 1 });
        let mut syncs = 0;
        for i in 0..1000usize {
            // A mix of what operations chain: env removals after an exec, a staged file, secrets.
            let links = 1 + i % 5;
            let before = chain.pending();
            chain
                .apply(links, |c| (0..links).fold(c.clone(), |c, _| c.call()))
                .await
                .unwrap_or_else(|e| panic!("op {i}: {e}"));
            if chain.pending() < before {
                syncs += 1;
            }
            // Every operation ends in a leaf query on the current value.
            chain.value().call().evaluate().unwrap_or_else(|e| panic!("op {i}: {e}"));
            assert!(chain.pending() <= MAX_PENDING);
        }
        assert!(syncs > 0, "1000 operations must have needed a sync");
    }

    #[tokio::test]
    async fn without_checkpoints_the_same_chain_fails() {
        // The failure the controller prevents is real in this model: chaining 200 calls unchecked
        // and then evaluating breaks the limit.
        let mut v = Lazy { depth: 1 };
        for _ in 0..200 {
            v = v.call();
        }
        assert!(v.evaluate().is_err());
    }

    #[tokio::test]
    async fn checkpoint_resets_and_set_synced_replaces() {
        let mut chain = Chain::new(Lazy { depth: 1 });
        chain.apply(3, |c| c.call().call().call()).await.unwrap();
        assert_eq!(chain.pending(), 3);
        chain.checkpoint().await.unwrap();
        assert_eq!((chain.pending(), chain.value().depth), (0, 1));
        chain.apply(1, Lazy::call).await.unwrap();
        chain.set_synced(Lazy { depth: 1 });
        assert_eq!(chain.pending(), 0);
    }
}
