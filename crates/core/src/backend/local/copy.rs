//! A local fork's copy of the sandbox tree, made through the filesystem (never through memory) and
//! keeping sparse files sparse: a 64 GB file of holes forks in milliseconds and takes no disk.

use std::io::{self, Read, Seek, SeekFrom};

use cap_std::fs::{Dir, OpenOptions, PermissionsExt};

/// Copies everything in `src` into the empty directory `dst`: directories with their modes,
/// symlinks as links (never followed), regular files byte for byte; fifos, sockets and devices are
/// not carried (as in an export). Returns the bytes of the regular files copied (their lengths).
pub(super) fn copy_tree(src: &Dir, dst: &Dir) -> io::Result<u64> {
    let mut bytes = 0;
    for entry in src.entries()? {
        let entry = entry?;
        let name = entry.file_name();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            dst.create_dir(&name)?;
            let mode = entry.metadata()?.permissions().mode();
            let (from, to) = (src.open_dir(&name)?, dst.open_dir(&name)?);
            bytes += copy_tree(&from, &to)?;
            dst.set_permissions(&name, cap_std::fs::Permissions::from_mode(mode))?;
        } else if ft.is_symlink() {
            dst.symlink_contents(src.read_link_contents(&name)?, &name)?;
        } else if ft.is_file() {
            bytes += copy_file(src, dst, &name)?;
        }
    }
    Ok(bytes)
}

fn copy_file(src: &Dir, dst: &Dir, name: &std::ffi::OsStr) -> io::Result<u64> {
    // Non-blocking, and checked after the open: a file swapped for a FIFO cannot block the fork.
    let mut opts = OpenOptions::new();
    opts.read(true);
    cap_std::fs::OpenOptionsExt::custom_flags(&mut opts, nix::libc::O_NONBLOCK);
    let from = src.open_with(name, &opts)?;
    let meta = from.metadata()?;
    if !meta.is_file() {
        return Ok(0);
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    let to = dst.open_with(name, &opts)?;
    let (mut from, mut to) = (from.into_std(), to.into_std());
    copy_sparse(&mut from, &mut to, meta.len())?;
    to.set_permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(
        meta.permissions().mode(),
    ))?;
    Ok(meta.len())
}

/// Copies `len` bytes, only the data regions (`SEEK_DATA`/`SEEK_HOLE`): holes stay holes. Where
/// the filesystem cannot say, everything is copied.
fn copy_sparse(from: &mut std::fs::File, to: &mut std::fs::File, len: u64) -> io::Result<()> {
    use nix::errno::Errno;
    use nix::unistd::{lseek, Whence};
    let end = len as i64;
    let mut pos = 0i64;
    while pos < end {
        let data = match lseek(&*from, pos, Whence::SeekData) {
            Ok(d) => d,
            Err(Errno::ENXIO) => break, // only a hole is left
            Err(Errno::EINVAL) if pos == 0 => {
                io::copy(&mut from.take(len), to)?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if data >= end {
            break;
        }
        let hole = lseek(&*from, data, Whence::SeekHole).map_err(io::Error::from)?.min(end);
        from.seek(SeekFrom::Start(data as u64))?;
        to.seek(SeekFrom::Start(data as u64))?;
        io::copy(&mut (&mut *from).take((hole - data) as u64), to)?;
        pos = hole;
    }
    to.set_len(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_file_is_copied_exactly_and_stays_sparse() {
        use std::io::Write;
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let mut f = std::fs::File::create(&a).unwrap();
        f.set_len(1 << 30).unwrap();
        f.seek(SeekFrom::Start(123_456_789)).unwrap();
        f.write_all(b"middle").unwrap();
        drop(f);
        let mut from = std::fs::File::open(&a).unwrap();
        let mut to = std::fs::File::create(&b).unwrap();
        copy_sparse(&mut from, &mut to, 1 << 30).unwrap();
        let meta = std::fs::metadata(&b).unwrap();
        assert_eq!(meta.len(), 1 << 30);
        assert!(meta.blocks() * 512 < 16 << 20, "{} blocks: the holes were written", meta.blocks());
        let mut to = std::fs::File::open(&b).unwrap();
        to.seek(SeekFrom::Start(123_456_789)).unwrap();
        let mut got = [0u8; 6];
        to.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"middle");
    }
}
