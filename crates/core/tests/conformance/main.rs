//! The conformance suite: the same cases against every backend, with a visible SKIPPED line (and
//! ignored cases) for a backend that cannot run here, and a count of cases run per backend.

mod cases;
mod harness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dagger_sandbox::BackendKind;
use libtest_mimic::{Arguments, Failed, Trial};

use cases::{Scope, CASES};
use harness::{probe, runtime, Availability, CASE_LIMIT};

fn main() {
    let args = Arguments::from_args();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // Snapshots of local and Dagger sandboxes go to a directory of this run, not the user's.
    let snapshots = tempfile::tempdir().expect("a temp dir for snapshots");
    std::env::set_var(dagger_sandbox::snapshot::SNAPSHOT_DIR_ENV, snapshots.path());
    let mut trials = Vec::new();
    let mut summary = Vec::new();
    let rt = runtime();
    for kind in [BackendKind::Docker, BackendKind::Local, BackendKind::Dagger] {
        let availability = rt.block_on(probe(kind));
        let has_node = matches!(&availability, Availability::Ready(h) if h.node_image.is_some());
        let applies = |s: Scope| match s {
            Scope::Node => has_node || (kind == BackendKind::Docker && !matches!(availability, Availability::Ready(_))),
            Scope::All => true,
            Scope::Local => kind == BackendKind::Local,
            Scope::Docker => kind == BackendKind::Docker,
            Scope::Live => kind != BackendKind::Dagger,
            Scope::Dagger => kind == BackendKind::Dagger,
        };
        let cases: Vec<_> = CASES.iter().filter(|c| applies(c.scope)).collect();
        let count = Arc::new(AtomicUsize::new(0));
        match availability {
            Availability::Ready(h) => {
                summary.push((kind, Ok(count.clone())));
                for case in cases {
                    let h = h.clone();
                    let count = count.clone();
                    trials.push(Trial::test(format!("{kind}::{}", case.name), move || {
                        let rt = runtime();
                        rt.block_on(async {
                            tokio::time::timeout(CASE_LIMIT, (case.run)(h))
                                .await
                                .map_err(|_| Failed::from(format!("hung for more than {} s", CASE_LIMIT.as_secs())))
                        })?;
                        count.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    }));
                }
            }
            Availability::Skipped(why) => {
                println!("SKIPPED: conformance on {kind}: {why}");
                summary.push((kind, Err(why)));
                for case in cases {
                    trials.push(Trial::test(format!("{kind}::{}", case.name), || Ok(())).with_ignored_flag(true));
                }
            }
        }
    }
    drop(rt);
    let conclusion = libtest_mimic::run(&args, trials);
    drop(snapshots);
    for (kind, outcome) in summary {
        match outcome {
            Ok(n) => println!("conformance on {kind}: {} cases passed", n.load(Ordering::SeqCst)),
            Err(why) => println!("conformance on {kind}: SKIPPED ({why})"),
        }
    }
    conclusion.exit();
}
