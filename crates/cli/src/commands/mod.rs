//! One module per subcommand that talks to the daemon (plus `serve` and `doctor`), and the bits they
//! share: turning argv into one shell command, and reading session objects for tables.

pub mod cache;
pub mod clean;
pub mod create;
pub mod doctor;
pub mod exec;
pub mod list;
pub mod logs;
pub mod mcp;
pub mod pause;
pub mod serve;
pub mod snapshot;
pub mod stop;

use dagger_sandbox::CaCertificates;
use serde_json::Value;

/// Longest session id the commands accept (real ids are `sbx-` and 12 hex digits).
const MAX_ID_LEN: usize = 256;

/// Parses a session id argument: refuses what no session id can be (empty, over 256 bytes,
/// control characters) as a usage error, before any request is built from it.
pub fn session_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > MAX_ID_LEN || s.chars().any(char::is_control) {
        let shown: String = s.chars().take(40).collect();
        return Err(format!(
            "{shown:?}{} is not a session id (like sbx-0123456789ab: 1-{MAX_ID_LEN} characters, no control characters)",
            if s.chars().count() > 40 { "..." } else { "" }
        ));
    }
    Ok(s.to_string())
}

/// The `--ca-certificates` value: `host`, or PEM paths separated by `:` made absolute here (a
/// daemon resolves them from its own directory). Empty means none.
pub fn ca_certificates(arg: &str) -> anyhow::Result<CaCertificates> {
    Ok(match arg.parse::<CaCertificates>()? {
        CaCertificates::Files(files) => {
            let cwd = std::env::current_dir()?;
            CaCertificates::Files(files.into_iter().map(|f| cwd.join(f)).collect())
        }
        host => host,
    })
}

/// Joins argv words into one `sh -c` command that runs exactly those words: a single word is taken
/// as a whole command line (`exec ID -- 'npm test && echo ok'`), several are quoted one by one.
pub fn shell_join(words: &[String]) -> String {
    if let [one] = words {
        return one.clone();
    }
    words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
}

/// Quotes one word for `sh`, leaving plain words as they are.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A string field of a JSON object, if present and a string.
pub fn field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A string field for a table cell: `-` when absent or null.
pub fn cell(v: &Value, key: &str) -> String {
    field(v, key).filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

/// A session's status for people: `terminated (expired)` when it ended.
pub fn status_text(s: &Value) -> String {
    match (field(s, "status"), field(s, "endedReason")) {
        (Some(st), Some(why)) if st == "terminated" => format!("{st} ({why})"),
        (Some(st), _) => st.to_string(),
        (None, _) => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_becomes_the_same_words_for_sh() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shell_join(&w(&["npm test && echo ok"])), "npm test && echo ok");
        assert_eq!(shell_join(&w(&["sh", "-c", "exit 3"])), "sh -c 'exit 3'");
        assert_eq!(shell_join(&w(&["echo", "it's", ""])), r"echo 'it'\''s' ''");
        assert_eq!(shell_join(&w(&["node", "-e", "a=$HOME"])), "node -e 'a=$HOME'");
    }
}
