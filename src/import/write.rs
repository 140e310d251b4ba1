//! Writes `--out DIR`: every file is written to a fresh temporary name opened
//! with create-exclusive (`O_CREAT|O_EXCL`, which never follows a symlink
//! planted under that name) and then renamed over the target (rename replaces
//! a symlink at the target, it does not follow it). Names are validated
//! ([`super::file_stem`]) so none leaves DIR.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `dir/name` (a validated plain file name), the way batch
/// output is written ([`crate::batch::write_whole`]).
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    debug_assert!(!name.contains('/') && name != ".." && name != ".");
    let target = dir.join(name);
    crate::batch::write_whole(&target, bytes).map(|()| target)
}

/// Creates DIR (and parents) if missing; refuses a DIR that is not a directory.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    if !fs::metadata(dir)?.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    Ok(())
}
