//! Atomic file replacement for the report files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The temporary name used for `path`: `.<name>.tmp.<pid>.<n>` in the same folder, unique per
/// process and call, so concurrent writers of the same plot never interleave.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp.{}.{n}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically: creates the parent folder if missing, writes a unique
/// temporary file next to `path`, `fsync`s it and renames it over `path`. Readers see the old
/// file or the whole new one, never a partial plot. The temporary file is removed on failure.
///
/// # Errors
/// [`Error::Io`] naming the folder, the temporary file or `path`.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.file_name().is_none() {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name");
        return Err(Error::io(path, e));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = temp_path(path);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|e| Error::io(&tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if written.is_err() {
        // Best effort: the error that matters is the one already in `written`.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edge-ssl-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn writes_creates_parent_and_replaces() {
        let dir = scratch("replace");
        let p = dir.join("report").join("a.svg");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let left: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temp_names_are_unique_and_hidden_in_the_same_folder() {
        let p = Path::new("/x/report/acc.svg");
        let (a, b) = (temp_path(p), temp_path(p));
        assert_ne!(a, b);
        assert_eq!(a.parent(), p.parent());
        assert!(a.file_name().unwrap().to_string_lossy().starts_with(".acc.svg.tmp."));
    }

    #[test]
    fn failure_is_io_error_and_leaves_no_temp_file() {
        let dir = scratch("fail");
        // The target is an existing non-empty directory: the rename fails.
        let p = dir.join("plot.svg");
        std::fs::create_dir_all(p.join("occupied")).unwrap();
        let r = write_atomic(&p, b"x");
        assert!(matches!(&r, Err(Error::Io { path, .. }) if path == &p), "{r:?}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "only the occupying directory remains");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn path_without_file_name_is_io_error() {
        assert!(matches!(write_atomic(Path::new("/"), b"x"), Err(Error::Io { .. })));
    }
}
