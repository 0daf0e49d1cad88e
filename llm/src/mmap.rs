//! The one place the model file is memory-mapped.

use std::fs::File;
use std::io;

use memmap2::Mmap;

/// Maps `file` read-only.
///
/// The mapping lives only while the model is loaded: the loader copies every
/// weight into its own buffers and then drops it, so a file changed on disk
/// later cannot affect a running model.
#[allow(unsafe_code)]
pub(crate) fn map(file: &File) -> io::Result<Mmap> {
    // SAFETY: the map is read-only and private to this process. Another
    // process truncating or rewriting the file during the load is the one
    // hazard mmap cannot exclude; model files are written once, and
    // `scripts/fetch-model.sh` installs them by atomic rename.
    unsafe { Mmap::map(file) }
}
