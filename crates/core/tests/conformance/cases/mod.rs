//! The conformance cases: every op of DESIGN.md §3 and the edges users hit, written once for every
//! backend. A case that only makes sense with container isolation says so in `CASES`.

use std::future::Future;
use std::pin::Pin;

use crate::harness::Harness;

mod escape;
mod exec;
mod files;
mod isolation;
mod lifecycle;
mod limits;
mod service;
mod snapshot;
mod stop_resume;

use escape::*;
use exec::*;
use files::*;
use isolation::*;
use lifecycle::*;
use limits::*;
use service::*;
use snapshot::*;
use stop_resume::*;

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Which backends a case applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every backend.
    All,
    /// Only the local backend (host-escape checks).
    Local,
    /// Only docker: what Dagger cannot do per container (a network switch, cgroup limits), listed
    /// in docs/DAGGER.md's differences table.
    Docker,
    /// Backends that can reach an image with Node: docker (a local image), dagger when
    /// `DAGGER_SANDBOX_TEST_DAGGER_NODE_IMAGE` names one in a registry the engine reaches.
    Node,
    /// Only Dagger: what its engine does and the others do not (secret scrubbing).
    Dagger,
    /// Backends with a live container or directory per sandbox (docker, local): services and
    /// reattach. A Dagger sandbox is a chain of immutable states held by its client.
    Live,
}

/// One conformance case.
pub struct Case {
    pub name: &'static str,
    pub scope: Scope,
    pub run: fn(Harness) -> CaseFuture,
}

macro_rules! cases {
    ($($scope:ident $name:ident),* $(,)?) => {
        pub const CASES: &[Case] = &[$(Case { name: stringify!($name), scope: Scope::$scope, run: |h| Box::pin($name(h)) }),*];
    };
}

cases! {
    All exec_returns_exit_code_and_separate_streams,
    All exec_takes_per_call_env_cwd_and_stdin,
    All env_and_workdir_persist_across_calls,
    All text_and_binary_files_round_trip_byte_exact,
    All write_files_puts_1000_files_in_one_call,
    All nested_dirs_and_list_directory_report_kinds,
    All file_modes_are_applied,
    All missing_paths_are_not_found,
    All restricted_paths_refuse_writes_and_deletes_and_write_nothing,
    All bad_input_gets_a_clear_error_and_loses_nothing,
    All delete_file_removes_files_and_directories,
    All fork_is_isolated_both_ways,
    All timeout_kills_the_command_tree_and_returns_partial_output,
    All cancel_kills_the_command_and_is_cancelled,
    All output_cap_keeps_head_and_tail,
    All streaming_delivers_chunks_in_order_before_the_result,
    All refresh_from_host_honours_excludes_and_export_copies_out,
    All close_is_idempotent_fails_later_calls_and_leaves_nothing,
    All close_during_an_exec_fails_it_with_closed,
    All twenty_sandboxes_created_concurrently_all_work,
    All timeout_applies_when_a_command_closes_its_output_early,
    All a_stream_receiver_that_never_reads_cannot_outlive_the_timeout,
    All writes_keep_the_mode_of_existing_directories,
    All fifos_and_directories_are_not_read_as_files,
    All fork_racing_close_or_a_dropped_call_leaks_nothing,
    All a_sandbox_dropped_without_close_frees_itself_even_off_the_runtime,
    All export_never_hands_the_host_a_setuid_file,
    All restricted_paths_cannot_be_reached_through_a_symlink,
    All a_symlinked_workdir_works,
    All any_exit_status_and_death_by_signal_is_a_result_with_output_and_files,
    All a_timed_out_command_keeps_the_files_it_wrote,
    All one_exec_runs_once_so_its_output_and_files_agree,
    All relative_restrictions_and_protected_directories_hold,
    All a_dropped_call_kills_its_command,
    All a_huge_file_is_too_large_to_read_into_memory_and_streams_instead,
    All export_streams_a_big_file_to_disk,
    All snapshot_and_restore_bring_back_files_env_and_workdir,
    All snapshot_refusals_are_typed_and_change_nothing,
    All deleting_a_snapshot_in_use_keeps_its_sandbox_and_leaves_nothing_after,
    Dagger secret_values_are_scrubbed_from_output,
    Live serve_forwards_a_port_streams_output_and_stops,
    Live serve_reports_a_service_that_dies_or_never_listens,
    Live reattach_takes_back_a_sandbox_whose_handle_was_lost,
    Live stop_ends_processes_and_resume_brings_back_files_env_and_workdir,
    All calls_on_a_stopped_sandbox_are_stopped_and_close_still_frees_it,
    Live a_stopped_sandbox_whose_handle_was_lost_is_taken_back_stopped,
    Docker network_is_off_by_default,
    Docker memory_and_pids_limits_are_applied,
    Live a_command_that_escapes_its_group_and_env_dies_at_its_timeout,
    Docker a_hostile_rm_cannot_hang_delete_file,
    Docker a_hostile_stat_cannot_grow_a_listing_without_bound,
    Node node_project_runs_its_tests,
    Local symlinks_and_dot_dot_never_reach_outside_the_sandbox,
    Local close_stops_processes_a_command_left_running,
    Local a_file_swapped_for_a_fifo_never_hangs_a_read,
    Local fork_copies_a_huge_sparse_file_through_the_filesystem,
}
