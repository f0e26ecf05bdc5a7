//! The command line of one exec on Dagger: the shell wrapper around the user's command and what
//! it reports back. The engine only returns what an exec's own process leaves, so everything the
//! sandbox API promises about a command (any exit status, the working directory, per-call
//! variables, the in-engine time limit, the output cap) is arranged here, as arguments to `sh`,
//! never as code built from user input.

use std::time::Duration;

use super::TimeoutTool;

/// The variable whose changing value makes every exec a new call to the engine's cache.
pub(super) const NONCE_VAR: &str = "DAGGER_SANDBOX_EXEC";

/// Exit code and stderr of the prelude when the working directory is missing.
pub(super) const NO_CWD_CODE: i64 = 212;
/// See [`NO_CWD_CODE`].
pub(super) const NO_CWD_MARKER: &str = "__DAGGER_SANDBOX_NO_CWD__";

/// Changes to the working directory (refusing a missing one, as the other backends do, rather than
/// letting the engine create it), then runs the command in a fresh shell, as `sh -c` does elsewhere.
const PRELUDE: &str = "cd -- \"$0\" 2>/dev/null || { printf %s __DAGGER_SANDBOX_NO_CWD__ >&2; exit 212; }; \
    exec sh -c \"$1\"";

/// Where [`WRAPPER`] keeps the command's output while it runs (`<prefix>.out`, `<prefix>.err`);
/// removed before the exec ends, so never part of the sandbox's state.
pub(super) const CAPTURE_PREFIX: &str = "/tmp/.dagger-sandbox-output";

/// What [`WRAPPER`] appends to stderr: this marker, then `code dropped_out dropped_err` and a newline.
pub(super) const STATUS_MARKER: &str = "\u{1e}DAGGER_SANDBOX_STATUS ";

/// Runs the command (`"$@"`), prints its output within the cap `$1`, appends its real exit status
/// and the bytes dropped per stream to stderr after [`STATUS_MARKER`], and exits 0.
///
/// * Exit status: even with `expect: ANY` the engine accepts only 0-127 and 192-255; a command that
///   exits 128-191 (death by signal: 137 for a kill or an OOM, 139 for a segfault, `exit 130`)
///   would come back as an engine error, its file changes dropped and its output trimmed to the
///   last 100 KiB. Reported this way any status is a result, and it costs no query of its own (a
///   status file cost one more read per exec).
/// * Output cap: the engine returns stdout and stderr whole, in one response, so a command that
///   prints gigabytes would have them all in this process's memory. The command writes to files in
///   the sandbox (`$0.out`, `$0.err`); only the first `$1/2` and last `$1 - $1/2` bytes of each come
///   back (what `drive`'s capture would keep), with the count dropped from the middle.
/// * A shell reports a job killed by a signal ("Killed") on its own stderr, which is not the
///   command's output: the command is a background job whose `wait` has stderr discarded (busybox
///   and dash report it there), with stdin handed over through fd 3 (an asynchronous list would
///   otherwise read /dev/null).
/// * No writable /tmp: the command runs uncapped. (The probe is `true >file`, not `: >file`: a
///   failed redirection on the special built-in `:` would end the whole shell.)
pub(super) const WRAPPER: &str = r#"c=$1; shift; h=$((c / 2)); o="$0.out"; e="$0.err"; d1=0; d2=0; exec 3<&0
if { true >"$o" && true >"$e"; } 2>/dev/null; then
"$@" <&3 3<&- >"$o" 2>"$e" & wait $! 2>/dev/null; s=$?
n=$(($(wc -c <"$o"))); if [ "$n" -gt "$c" ]; then head -c "$h" "$o"; tail -c "$((c - h))" "$o"; d1=$((n - c)); else cat "$o"; fi
n=$(($(wc -c <"$e"))); if [ "$n" -gt "$c" ]; then { head -c "$h" "$e"; tail -c "$((c - h))" "$e"; } >&2; d2=$((n - c)); else cat "$e" >&2; fi
rm -f -- "$o" "$e"
else
"$@" <&3 3<&- & wait $! 2>/dev/null; s=$?
fi
printf 'DAGGER_SANDBOX_STATUS %s %s %s
' "$s" "$d1" "$d2" >&2 && exit 0; exit $s"#;

/// What [`WRAPPER`] reported about one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Status {
    /// The command's exit status (128 + n for death by signal n).
    pub code: i64,
    /// Bytes of stdout dropped from the middle in the engine.
    pub stdout_dropped: u64,
    /// Bytes of stderr dropped from the middle in the engine.
    pub stderr_dropped: u64,
}

/// Splits the wrapper's status off the end of `stderr`: the command's own stderr, and the status
/// when the wrapper got to report one (only a well-formed line at the very end counts, so a
/// command that prints the marker itself changes nothing).
pub(super) fn split_status(stderr: &str) -> (&str, Option<Status>) {
    let Some(at) = stderr.rfind(STATUS_MARKER) else { return (stderr, None) };
    let Some(line) = stderr[at + STATUS_MARKER.len()..].strip_suffix('\n') else { return (stderr, None) };
    match parse_status(line) {
        Some(s) => (&stderr[..at], Some(s)),
        None => (stderr, None),
    }
}

/// `code dropped_out dropped_err`, if that is what `text` is.
pub(super) fn parse_status(text: &str) -> Option<Status> {
    let mut it = text.split(' ');
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let code = it.next().filter(|t| t.len() <= 3 && digits(t))?.parse().ok()?;
    let stdout_dropped = it.next().filter(|t| digits(t))?.parse().ok()?;
    let stderr_dropped = it.next().filter(|t| digits(t))?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some(Status { code, stdout_dropped, stderr_dropped })
}

/// When the engine stops the command: a little before the caller's deadline, so the result (with
/// the partial output and the files) can travel back in time. A `timeout` that only counts whole
/// seconds (busybox) gets the limit rounded up instead, at least 1 s: the caller's deadline then
/// comes first, and its kill waits for the engine's result (see [`kill_wait`]).
pub(super) fn in_engine_limit(timeout: Duration, tool: TimeoutTool) -> Option<Duration> {
    let margin = (timeout / 4).min(Duration::from_millis(500));
    let limit = timeout.saturating_sub(margin);
    match tool {
        TimeoutTool::Missing => None,
        TimeoutTool::Fractional => Some(limit.max(Duration::from_millis(10))),
        TimeoutTool::WholeSeconds => {
            Some(Duration::from_secs((limit.as_secs() + u64::from(limit.subsec_nanos() > 0)).max(1)))
        }
    }
}

/// `limit` as `timeout` takes it.
pub(super) fn format_limit(limit: Duration, tool: TimeoutTool) -> String {
    match tool {
        TimeoutTool::Fractional => format!("{}.{:03}", limit.as_secs(), limit.subsec_millis()),
        _ => limit.as_secs().to_string(),
    }
}

/// The argv of one exec: `sh -c WRAPPER CAPTURE_PREFIX cap [timeout -s KILL secs] env K=V... [NONCE]
/// sh -c PRELUDE cwd cmd`.
/// Plain variables travel on the command line, so they never enter the container's config and a
/// per-call variable cannot outlive its call.
pub(super) fn exec_argv(
    command: &str,
    cwd: &str,
    plain_env: &[(String, String)],
    nonce: Option<&str>,
    limit: Option<String>,
    output_cap: usize,
) -> Vec<String> {
    let mut argv: Vec<String> =
        vec!["sh".into(), "-c".into(), WRAPPER.into(), CAPTURE_PREFIX.into(), output_cap.to_string()];
    if let Some(secs) = limit {
        argv.extend(["timeout".into(), "-s".into(), "KILL".into(), secs]);
    }
    argv.push("env".into());
    for (k, v) in plain_env {
        argv.push(format!("{k}={v}"));
    }
    if let Some(n) = nonce {
        argv.push(format!("{NONCE_VAR}={n}"));
    }
    argv.extend(["sh".into(), "-c".into(), PRELUDE.into(), cwd.into(), command.into()]);
    argv
}

/// What one exec produced.
#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn argv_passes_env_cwd_and_command_as_separate_arguments() {
        let argv =
            exec_argv("echo \"$A\" > out", "/workspace/my dir", &env(&[("A", "x y"), ("B", "")]), Some("n1"), None, 64);
        assert_eq!(&argv[..5], ["sh", "-c", WRAPPER, CAPTURE_PREFIX, "64"]);
        assert_eq!(
            argv[5..],
            [
                "env",
                "A=x y",
                "B=",
                "DAGGER_SANDBOX_EXEC=n1",
                "sh",
                "-c",
                PRELUDE,
                "/workspace/my dir",
                "echo \"$A\" > out"
            ]
        );
    }

    #[test]
    fn argv_with_a_limit_wraps_in_timeout_and_without_a_nonce_is_stable() {
        let a = exec_argv("true", "/w", &[], None, Some("1.500".into()), 100);
        assert_eq!(&a[..9], ["sh", "-c", WRAPPER, CAPTURE_PREFIX, "100", "timeout", "-s", "KILL", "1.500"]);
        assert_eq!(a[9], "env");
        // With caching opted in, the same call on the same state is the same query.
        assert_eq!(a, exec_argv("true", "/w", &[], None, Some("1.500".into()), 100));
        // By default every call differs, so the engine runs it again.
        assert_ne!(
            exec_argv("true", "/w", &[], Some("1"), None, 100),
            exec_argv("true", "/w", &[], Some("2"), None, 100)
        );
    }

    #[test]
    fn the_engine_stops_a_command_just_before_the_callers_deadline() {
        let ms = Duration::from_millis;
        assert_eq!(in_engine_limit(ms(800), TimeoutTool::Fractional), Some(ms(600)));
        assert_eq!(in_engine_limit(Duration::from_secs(600), TimeoutTool::Fractional), Some(ms(599_500)));
        // Whole seconds are rounded up (busybox kills 1.9 after 1 s), never below 1 s.
        assert_eq!(
            in_engine_limit(Duration::from_secs(600), TimeoutTool::WholeSeconds),
            Some(Duration::from_secs(600))
        );
        assert_eq!(in_engine_limit(Duration::from_secs(2), TimeoutTool::WholeSeconds), Some(Duration::from_secs(2)));
        assert_eq!(in_engine_limit(ms(800), TimeoutTool::WholeSeconds), Some(Duration::from_secs(1)));
        assert_eq!(in_engine_limit(ms(900), TimeoutTool::Missing), None);
        assert_eq!(format_limit(ms(599_500), TimeoutTool::Fractional), "599.500");
        assert_eq!(format_limit(ms(2_000), TimeoutTool::WholeSeconds), "2");
        for t in [1u64, 10, 100, 1_000, 600_000] {
            let limit = in_engine_limit(ms(t), TimeoutTool::Fractional).unwrap();
            assert!(limit < ms(t) || t < 20, "{t}: {limit:?}");
        }
    }

    /// Runs the wrapper as the engine does (`sh -c WRAPPER PREFIX CAP cmd...`) with the host's
    /// `sh`, `stdin` on its standard input; the exec's exit code, the reported status, stdout and
    /// the command's stderr (the status split off).
    fn wrapped_io(
        prefix: &std::path::Path,
        cap: usize,
        script: &str,
        stdin: &str,
    ) -> (i32, Option<Status>, String, String) {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .args(["-c", WRAPPER])
            .arg(prefix)
            .arg(cap.to_string())
            .args(["sh", "-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        let stderr = text(out.stderr);
        let (own, status) = split_status(&stderr);
        (out.status.code().unwrap_or(-1), status, text(out.stdout), own.to_string())
    }

    fn wrapped(prefix: &std::path::Path, script: &str) -> (i32, Option<i64>) {
        let (code, status, _, _) = wrapped_io(prefix, 1 << 20, script, "");
        (code, status.map(|s| s.code))
    }

    #[test]
    fn the_wrapper_turns_any_exit_and_signal_death_into_a_result() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("output");
        // The engine refuses 128-191 as an exec's own exit; through the wrapper the exec exits 0
        // and the real status is reported.
        for (script, want) in [
            ("true", 0),
            ("exit 3", 3),
            ("exit 130", 130),
            ("kill -9 $$", 137),
            ("kill -SEGV $$", 139),
            ("exit 255", 255),
        ] {
            assert_eq!(wrapped(&p, script), (0, Some(want)), "{script}");
        }
        // No writable place for the capture: the command runs uncapped, the status still comes.
        let unwritable = tmp.path().join("missing-dir/output");
        assert_eq!(wrapped(&unwritable, "echo hi; exit 7"), (0, Some(7)));
        // The command's stdin reaches it, and a signal death adds nothing to its output.
        let (code, status, out, err) =
            wrapped_io(&p, 1 << 20, "read l; echo got:$l; echo e >&2; kill -9 $$", "hello\n");
        assert_eq!((code, status.map(|s| s.code), out.as_str(), err.as_str()), (0, Some(137), "got:hello\n", "e\n"));
        // Nothing of the wrapper stays behind in the sandbox.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn output_over_the_cap_comes_back_as_head_and_tail_with_the_count_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("output");
        // 100 digits on stdout (cap 10: the first 5 and the last 5 come back), 3 bytes on stderr.
        let script = "i=0; while [ $i -lt 10 ]; do printf 0123456789; i=$((i+1)); done; printf abc >&2; exit 4";
        let (code, status, out, err) = wrapped_io(&p, 10, script, "");
        assert_eq!(code, 0);
        assert_eq!(status, Some(Status { code: 4, stdout_dropped: 90, stderr_dropped: 0 }));
        assert_eq!((out.as_str(), err.as_str()), ("0123456789", "abc"));
        let (_, status, out, err) = wrapped_io(&p, 4, "printf abcdefgh >&2; printf xy", "");
        assert_eq!(status, Some(Status { code: 0, stdout_dropped: 0, stderr_dropped: 4 }));
        assert_eq!((out.as_str(), err.as_str()), ("xy", "abgh"));
    }

    #[test]
    fn only_a_well_formed_status_at_the_very_end_is_split_off() {
        let s = |code, o, e| Some(Status { code, stdout_dropped: o, stderr_dropped: e });
        let m = STATUS_MARKER;
        assert_eq!(split_status(&format!("err\n{m}137 0 0\n")), ("err\n", s(137, 0, 0)));
        assert_eq!(split_status(&format!("{m}0 90 4\n")), ("", s(0, 90, 4)));
        // The command printed the marker itself, earlier: only the wrapper's last line counts.
        let text = format!("{m}1 2 3\nmine\n{m}5 0 0\n");
        assert_eq!(split_status(&text), (&text[..text.len() - m.len() - 6], s(5, 0, 0)));
        // Anything else is left as the command's own stderr.
        for bad in [
            String::new(),
            "plain".into(),
            format!("{m}1 2\n"),
            format!("{m}1 2 3"),
            format!("{m}-1 0 0\n"),
            format!("{m}1234 0 0\n"),
            format!("{m}1 x 0\n"),
        ] {
            assert_eq!(split_status(&bad), (bad.as_str(), None), "{bad:?}");
        }
    }
}
