//! Many processes' worth of connections writing one database file at once: WAL plus the busy timeout
//! must make them queue, never fail with "database is locked".

mod common;

use std::sync::{Arc, Barrier};

use common::{at, session};
use dagger_sandbox_store::{ListFilter, SessionUpdate, Status, Store};

const WRITERS: usize = 50;

#[test]
fn fifty_connections_opening_and_writing_one_fresh_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let start = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (path, start) = (path.clone(), start.clone());
            std::thread::spawn(move || -> Result<(), String> {
                start.wait();
                // Every thread races to create the file, switch it to WAL and apply 001.
                let store = Store::open(&path).map_err(|e| format!("open {i}: {e}"))?;
                let id = format!("s{i:02}");
                store.insert(&session(&id, i as i64)).map_err(|e| format!("insert {i}: {e}"))?;
                store.touch(&id, at(1000)).map_err(|e| format!("touch {i}: {e}"))?;
                let change = SessionUpdate { container_id: Some(format!("c{i}")), ..Default::default() };
                store.update(&id, &change).map_err(|e| format!("update {i}: {e}"))?;
                if i % 2 == 0 {
                    store.terminate(&id, "done", at(2000)).map_err(|e| format!("terminate {i}: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    let failures: Vec<String> = handles.into_iter().filter_map(|h| h.join().unwrap().err()).collect();
    assert!(failures.is_empty(), "{} of {WRITERS} writers failed: {failures:#?}", failures.len());

    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), dagger_sandbox_store::LATEST_VERSION);
    let all = store.list(&ListFilter { include_terminated: true, ..Default::default() }).unwrap();
    assert_eq!(all.len(), WRITERS);
    for s in &all {
        let i: usize = s.id[1..].parse().unwrap();
        assert_eq!(s.container_id, Some(format!("c{i}")));
        assert_eq!(s.last_active_at, if i % 2 == 0 { at(2000) } else { at(1000) });
    }
    assert_eq!(
        store.count_by_status().unwrap(),
        [
            (Status::Active, WRITERS as u64 / 2),
            (Status::Paused, 0),
            (Status::Stopped, 0),
            (Status::Terminated, WRITERS as u64 / 2)
        ]
    );
}

#[test]
fn fifty_concurrent_creates_through_clones_of_one_store_all_succeed() {
    // The daemon's shape: one Store shared by request handlers on blocking threads.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sessions.db")).unwrap();
    let start = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                store.insert(&session(&format!("d{i:02}"), i as i64))
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().expect("create succeeds");
    }
    assert_eq!(store.list(&ListFilter::default()).unwrap().len(), WRITERS);
}
