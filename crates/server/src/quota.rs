//! The cap on live sandboxes per daemon: every sandbox holds engine memory and disk, so a client
//! looping on `POST /api/sandbox` must hit a clear `QUOTA_EXCEEDED` instead of the host's limits.

use std::sync::{Arc, Mutex};

use crate::error::ApiError;

/// Default maximum of live sandboxes per daemon (`--max-sandboxes`).
pub const DEFAULT_MAX_SANDBOXES: usize = 32;

/// Counts creates in flight so that concurrent creates cannot pass the cap together.
#[derive(Debug)]
pub struct Quota {
    max: usize,
    in_flight: Arc<Mutex<usize>>,
}

/// A create's place under the cap, given back when the create ends (its sandbox, if any, is then
/// counted among the live ones).
#[derive(Debug)]
pub struct Slot {
    in_flight: Arc<Mutex<usize>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
    }
}

impl Quota {
    /// A cap of `max` live sandboxes (at least 1).
    pub fn new(max: usize) -> Self {
        Quota { max: max.max(1), in_flight: Arc::new(Mutex::new(0)) }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes a slot for one more sandbox, given that `live` are held now; `QUOTA_EXCEEDED` when the
    /// cap is reached. `live` is read by the caller under this lock's order: a create counts as in
    /// flight until after its sandbox is among the live ones, so it is never missed (at worst it
    /// is counted twice for a moment, which refuses, never overshoots).
    pub fn reserve(&self, live: impl FnOnce() -> usize) -> Result<Slot, ApiError> {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let held = live() + *n;
        if held >= self.max {
            return Err(ApiError::QuotaExceeded { max: self.max, held });
        }
        *n += 1;
        Ok(Slot { in_flight: self.in_flight.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_in_flight_count_against_the_cap() {
        let q = Quota::new(2);
        let a = q.reserve(|| 0).unwrap();
        let b = q.reserve(|| 0).unwrap();
        let e = q.reserve(|| 0).unwrap_err();
        assert_eq!((e.code(), e.status().as_u16()), ("QUOTA_EXCEEDED", 429));
        drop(a);
        let _c = q.reserve(|| 0).unwrap();
        drop(b);
        assert!(q.reserve(|| 1).is_err(), "one live sandbox plus one create in flight fill a cap of 2");
    }
}
