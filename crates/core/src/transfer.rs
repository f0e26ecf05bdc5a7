//! The arguments of the file-transfer operations: files for `write_files`, and what
//! `refresh_from_host` leaves out. Kept apart from `Sandbox` so its file stays about behaviour.

/// The mode of files written without one.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// One file for [`Sandbox::write_files`](crate::Sandbox::write_files): a path, its contents and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// Sandbox path, relative to the workdir or absolute.
    pub path: String,
    /// The bytes to write.
    pub contents: Vec<u8>,
    /// Permission bits (default 0644).
    pub mode: u32,
}

impl FileWrite {
    /// A file with the default mode.
    pub fn new(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        FileWrite { path: path.into(), contents: contents.into(), mode: DEFAULT_FILE_MODE }
    }
    /// The same file with `mode`.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
}

impl<P: Into<String>, C: Into<Vec<u8>>> From<(P, C)> for FileWrite {
    fn from((path, contents): (P, C)) -> Self {
        FileWrite::new(path, contents)
    }
}

/// Options for [`Sandbox::refresh_from_host`](crate::Sandbox::refresh_from_host).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RefreshOptions {
    /// Globs left out of the import: a name (`node_modules`, `*.log`) matches anywhere, a path with
    /// a `/` (`dist/cache/**`) matches from the imported directory.
    pub exclude: Vec<String>,
}

impl RefreshOptions {
    /// Options that leave out `patterns`.
    pub fn exclude<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> Self {
        RefreshOptions { exclude: patterns.into_iter().map(Into::into).collect() }
    }
}
