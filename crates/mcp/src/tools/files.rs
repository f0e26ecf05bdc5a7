//! File tools inside a sandbox: read (line ranges; base64 for bytes that are not text), write,
//! edit by exact search/replace, list, delete.

use base64::Engine as _;
use dagger_sandbox::{DirEntry, EntryKind, Sandbox};
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Done;
use crate::error::{Out, ToolError, ToolResult};
use crate::server::{McpServer, OUTPUT_CAP_BYTES};

/// Largest file `file_read` and `file_edit` load (a bigger one is refused with this limit in the
/// message; `sandbox_export` copies any size).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Entries `file_list` returns at most.
pub const MAX_LIST_ENTRIES: usize = 5000;
/// Largest content `file_write` accepts (after base64 decoding).
pub const MAX_WRITE_BYTES: usize = 64 * 1024 * 1024;

/// Arguments of `file_read`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadArgs {
    /// The sandbox id.
    pub sandbox: String,
    /// The file, absolute or relative to the sandbox's working directory.
    pub path: String,
    /// First line to return (1-based, text files only).
    pub start_line: Option<usize>,
    /// Last line to return (inclusive).
    pub end_line: Option<usize>,
}

/// The output of `file_read`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadOut {
    /// The path as given.
    pub path: String,
    /// `utf8`, or `base64` for bytes that are not UTF-8 text.
    pub encoding: String,
    /// The content (the requested lines of a text file).
    pub content: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Lines in the whole file (text only).
    pub total_lines: Option<usize>,
    /// Whether the content was cut at `capBytes`.
    pub truncated: bool,
    /// The most bytes of content a result carries.
    pub cap_bytes: usize,
}

/// Arguments of `file_write`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteArgs {
    /// The sandbox id.
    pub sandbox: String,
    /// The file; parent directories are created.
    pub path: String,
    /// The content.
    pub content: String,
    /// `utf8` (default) or `base64`.
    pub encoding: Option<String>,
    /// Unix permission bits, e.g. 493 (0o755) for a script (default 0o644).
    pub mode: Option<u32>,
}

/// The output of `file_write`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteOut {
    /// The path as given.
    pub path: String,
    /// Bytes written.
    pub bytes: usize,
}

/// Arguments of `file_edit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditArgs {
    /// The sandbox id.
    pub sandbox: String,
    /// The text file to edit.
    pub path: String,
    /// The exact text to find (not a pattern; whitespace counts).
    pub old_text: String,
    /// What replaces every occurrence.
    pub new_text: String,
    /// How many occurrences there must be (default 1); any other count changes nothing and says
    /// how many there are.
    pub expected_count: Option<usize>,
}

/// The output of `file_edit`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EditOut {
    /// The path as given.
    pub path: String,
    /// Occurrences replaced.
    pub replacements: usize,
}

/// Arguments of `file_list`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListArgs {
    /// The sandbox id.
    pub sandbox: String,
    /// The directory (default: the working directory).
    pub path: Option<String>,
}

/// One directory entry.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EntryView {
    /// Its name.
    pub name: String,
    /// `file`, `directory`, `symlink` or `other`.
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
}

/// The output of `file_list`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOut {
    /// The directory as given.
    pub path: String,
    /// Its entries, sorted by name.
    pub entries: Vec<EntryView>,
    /// Whether entries past the limit were left out.
    pub truncated: bool,
}

/// Arguments of `file_delete`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathArgs {
    /// The sandbox id.
    pub sandbox: String,
    /// The file or directory (directories are removed with their content).
    pub path: String,
}

fn kind(k: EntryKind) -> &'static str {
    match k {
        EntryKind::File => "file",
        EntryKind::Dir => "directory",
        EntryKind::Symlink => "symlink",
        EntryKind::Other => "other",
    }
}

/// The entry at `path` (through its parent's listing), or `NOT_FOUND`.
pub(crate) async fn entry(sb: &Sandbox, path: &str) -> Result<DirEntry, ToolError> {
    let p = sb.resolve_path(path)?;
    let Some(parent) = p.parent() else {
        return Ok(DirEntry { name: "/".into(), kind: EntryKind::Dir, size: 0 });
    };
    let name = p.file_name().to_string();
    sb.list_directory(parent.as_str())
        .await?
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ToolError::new("NOT_FOUND", format!("{path} does not exist in sandbox {}", sb.id())))
}

/// The bytes of the file at `path` and its size, refused (`TOO_LARGE`) past [`MAX_FILE_BYTES`]
/// before any of it is read: the size comes with the opened file, one engine call.
async fn load(sb: &Sandbox, path: &str) -> Result<(Vec<u8>, u64), ToolError> {
    let mut r = match sb.open_file_within(path, MAX_FILE_BYTES).await {
        Ok(r) => r,
        Err(e) if e.code() == dagger_sandbox::ErrorCode::TooLarge => {
            return Err(ToolError::new(
                "TOO_LARGE",
                format!("{path} is over {MAX_FILE_BYTES} bytes, the most file tools load (use sandbox_exec with head/sed, or sandbox_export)"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let size = r.size();
    let mut data = Vec::with_capacity(size as usize);
    tokio::io::AsyncReadExt::read_to_end(&mut r, &mut data)
        .await
        .map_err(|e| ToolError::new("IO_ERROR", format!("reading {path}: {e}")))?;
    Ok((data, size))
}

/// The lines `start..=end` (1-based) of `text`, and how many lines it has.
pub(crate) fn line_range(text: &str, start: Option<usize>, end: Option<usize>) -> Result<(String, usize), ToolError> {
    let total = text.lines().count();
    if start.is_none() && end.is_none() {
        return Ok((text.to_string(), total));
    }
    let s = start.unwrap_or(1);
    let e = end.unwrap_or(usize::MAX);
    if s == 0 || e < s {
        return Err(ToolError::invalid(format!(
            "line range {s}-{e} is empty: lines start at 1 and endLine must be >= startLine"
        )));
    }
    let picked: Vec<&str> = text.split_inclusive('\n').skip(s - 1).take(e.saturating_sub(s - 1)).collect();
    Ok((picked.concat(), total))
}

#[tool_router(router = files_router, vis = "pub(crate)")]
impl McpServer {
    /// Reads a file: text as UTF-8 (optionally only lines startLine..endLine), other bytes as base64.
    #[tool(output_schema = schema_for_output::<ReadOut>())]
    async fn file_read(&self, Parameters(args): Parameters<ReadArgs>) -> ToolResult<ReadOut> {
        let sb = self.sandbox(&args.sandbox)?;
        let (bytes, size) = load(&sb, &args.path).await?;
        let (encoding, content, total_lines) = match String::from_utf8(bytes) {
            Ok(text) => {
                let (content, total) = line_range(&text, args.start_line, args.end_line)?;
                ("utf8", content, Some(total))
            }
            Err(e) => {
                if args.start_line.is_some() || args.end_line.is_some() {
                    return Err(ToolError::invalid(format!("{} is not UTF-8 text; line ranges need text", args.path)));
                }
                ("base64", base64::engine::general_purpose::STANDARD.encode(e.as_bytes()), None)
            }
        };
        let (content, truncated) = if content.len() > OUTPUT_CAP_BYTES {
            let mut end = OUTPUT_CAP_BYTES;
            while !content.is_char_boundary(end) {
                end -= 1;
            }
            (content[..end].to_string(), true)
        } else {
            (content, false)
        };
        let mut text = content.clone();
        if truncated {
            text.push_str(&format!("\n[... cut at {OUTPUT_CAP_BYTES} bytes; read further with startLine]"));
        }
        let value = ReadOut {
            path: args.path,
            encoding: encoding.into(),
            content,
            size,
            total_lines,
            truncated,
            cap_bytes: OUTPUT_CAP_BYTES,
        };
        Ok(Out { text, value })
    }

    /// Writes a file (creating parent directories), replacing what was there.
    #[tool(output_schema = schema_for_output::<WriteOut>())]
    async fn file_write(&self, Parameters(args): Parameters<WriteArgs>) -> ToolResult<WriteOut> {
        let sb = self.sandbox(&args.sandbox)?;
        let bytes = match args.encoding.as_deref().unwrap_or("utf8") {
            "utf8" | "utf-8" => args.content.into_bytes(),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(args.content.trim())
                .map_err(|e| ToolError::invalid(format!("content is not valid base64: {e}")))?,
            other => return Err(ToolError::invalid(format!("encoding must be utf8 or base64, got {other:?}"))),
        };
        if bytes.len() > MAX_WRITE_BYTES {
            return Err(ToolError::invalid(format!(
                "content has {} bytes; file_write takes at most {MAX_WRITE_BYTES} (use sandbox_import)",
                bytes.len()
            )));
        }
        let mode = args.mode.unwrap_or(dagger_sandbox::DEFAULT_FILE_MODE);
        if mode > 0o7777 {
            return Err(ToolError::invalid(format!("mode {mode:#o} is not a permission mode (at most 0o7777)")));
        }
        sb.write_file_with_mode(&args.path, &bytes, mode).await?;
        let n = bytes.len();
        Ok(Out { text: format!("wrote {n} bytes to {}", args.path), value: WriteOut { path: args.path, bytes: n } })
    }

    /// Replaces exact text in a file; the number of occurrences must be `expectedCount` (default
    /// 1), else nothing changes and the error says how many there are.
    #[tool(output_schema = schema_for_output::<EditOut>())]
    async fn file_edit(&self, Parameters(args): Parameters<EditArgs>) -> ToolResult<EditOut> {
        let sb = self.sandbox(&args.sandbox)?;
        if args.old_text.is_empty() {
            return Err(ToolError::invalid("oldText is empty"));
        }
        let (bytes, _) = load(&sb, &args.path).await?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ToolError::invalid(format!("{} is not UTF-8 text; use file_write", args.path)))?;
        let found = text.matches(&args.old_text).count();
        let expected = args.expected_count.unwrap_or(1);
        if found != expected {
            return Err(ToolError::new(
                "EDIT_MISMATCH",
                format!("{} has {found} occurrence(s) of oldText, expected {expected}; nothing changed", args.path),
            ));
        }
        let new = text.replace(&args.old_text, &args.new_text);
        sb.write_file(&args.path, new.as_bytes()).await?;
        Ok(Out {
            text: format!("replaced {found} occurrence(s) in {}", args.path),
            value: EditOut { path: args.path, replacements: found },
        })
    }

    /// Lists a directory: name, kind and size of each entry.
    #[tool(output_schema = schema_for_output::<ListOut>())]
    async fn file_list(&self, Parameters(args): Parameters<ListArgs>) -> ToolResult<ListOut> {
        let sb = self.sandbox(&args.sandbox)?;
        let path = args.path.unwrap_or_else(|| sb.workdir());
        let all = sb.list_directory(&path).await?;
        let truncated = all.len() > MAX_LIST_ENTRIES;
        let entries: Vec<EntryView> = all
            .into_iter()
            .take(MAX_LIST_ENTRIES)
            .map(|e| EntryView { name: e.name, kind: kind(e.kind).into(), size: e.size })
            .collect();
        let mut text: String = entries
            .iter()
            .map(|e| format!("{}{}\t{}\n", e.name, if e.kind == "directory" { "/" } else { "" }, e.size))
            .collect();
        if truncated {
            text.push_str(&format!("(only the first {MAX_LIST_ENTRIES} entries)"));
        }
        if text.is_empty() {
            text = "(empty)".into();
        }
        Ok(Out { text, value: ListOut { path, entries, truncated } })
    }

    /// Deletes a file or a directory with its content.
    #[tool(output_schema = schema_for_output::<Done>())]
    async fn file_delete(&self, Parameters(args): Parameters<PathArgs>) -> ToolResult<Done> {
        let sb = self.sandbox(&args.sandbox)?;
        sb.delete_file(&args.path).await?;
        Ok(Out { text: format!("deleted {}", args.path), value: Done { ok: true } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ranges_are_one_based_inclusive_and_checked() {
        let t = "a\nb\nc\n";
        assert_eq!(line_range(t, Some(2), Some(3)).unwrap(), ("b\nc\n".to_string(), 3));
        assert_eq!(line_range(t, Some(3), None).unwrap().0, "c\n");
        assert_eq!(line_range(t, None, Some(1)).unwrap().0, "a\n");
        assert_eq!(line_range(t, Some(9), None).unwrap().0, "");
        assert_eq!(line_range(t, Some(0), None).unwrap_err().code, "INVALID_ARGUMENT");
        assert_eq!(line_range(t, Some(3), Some(2)).unwrap_err().code, "INVALID_ARGUMENT");
    }
}
