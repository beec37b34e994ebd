//! Ledger generations: the files a camera's ledger was continued from.
//!
//! When a writer cannot continue a camera's ledger (`<name>` = `<camera>.ledger`), it renames
//! the file to `<name>.<n>` (n = 1, 2, ... in the order of retirement) and starts a new `<name>`
//! whose predecessor record names the retired file. Retired files are never written again. The
//! names are derived from the current ledger's path alone, so a verifier given that path finds
//! every generation, and no camera's current or retired ledger can be taken for another's: a
//! current ledger always ends in `.ledger`, a retired one in digits.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::record::{Body, Hash, RecordReader};

/// The retired generations of the ledger at `current`, oldest first: `(n, path)`.
pub fn retired_ledgers(current: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let (dir, name) = split(current);
    let prefix = format!("{name}.");
    let mut found = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let file_name = e.file_name();
        let Some(n) = file_name
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .filter(|d| !d.is_empty() && d.len() <= 19 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((n, e.path()));
    }
    found.sort_unstable();
    Ok(found)
}

/// The file name generation `n` of the ledger at `current` gets when it is retired.
pub fn retired_file_name(current: &Path, n: u64) -> String {
    format!("{}.{n}", split(current).1)
}

/// Where a writer builds the next generation before it replaces `current`.
pub(crate) fn staging_path(current: &Path) -> PathBuf {
    let (dir, name) = split(current);
    dir.join(format!("{name}.new"))
}

fn split(current: &Path) -> (PathBuf, String) {
    let dir = current
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = current
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

/// The ledger file that records the exported video whose first and last fragments hash to
/// `first` and `last`: the retired generation holding `first`, else the current ledger. Video
/// from two generations cannot share one excerpt; the error says where to split the export.
pub fn ledger_holding(current: &Path, first: &Hash, last: &Hash) -> Result<PathBuf, String> {
    let retired = retired_ledgers(current).map_err(|e| {
        format!(
            "cannot list the retired ledgers of {}: {e}",
            current.display()
        )
    })?;
    for (_, path) in retired.iter().rev() {
        let (has_first, has_last) = holds_fragments(path, first, last)
            .map_err(|e| format!("cannot read ledger {}: {e}", path.display()))?;
        if has_first && !has_last {
            return Err(format!(
                "the exported video starts in ledger file {} but continues in a later ledger generation (the server started a new ledger in between); export the parts before and after that point separately",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
        if has_first {
            return Ok(path.clone());
        }
    }
    Ok(current.to_path_buf())
}

/// Whether the ledger at `path` has fragment records with these hashes.
fn holds_fragments(path: &Path, first: &Hash, last: &Hash) -> io::Result<(bool, bool)> {
    let file = File::open(path)?;
    let Ok(mut reader) = RecordReader::new(BufReader::with_capacity(1 << 20, file)) else {
        return Ok((false, false));
    };
    let (mut has_first, mut has_last) = (false, false);
    while let Some(rec) = reader.next_record()? {
        if let Body::Fragment(f) = rec.body {
            has_first |= &f.sha256 == first;
            has_last |= &f.sha256 == last;
        }
    }
    Ok((has_first, has_last))
}

/// Length and SHA-256 of a whole file.
pub(crate) fn hash_file(path: &Path) -> io::Result<(u64, Hash)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match f.read(&mut buf) {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, h.finalize().into()))
}

/// Makes renames and creations in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_generations_are_found_in_numeric_order_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let cur = tmp.path().join("cam-1.ledger");
        for name in [
            "cam-1.ledger",
            "cam-1.ledger.10",
            "cam-1.ledger.2",
            "cam-1.ledger.new",
            "cam-1.ledger.3x",
            "cam-1.ledger.",
            "cam-1.ledger.1.ledger",
            "cam-12.ledger.1",
            "other.ledger.4",
        ] {
            std::fs::write(tmp.path().join(name), b"x").unwrap();
        }
        let found = retired_ledgers(&cur).unwrap();
        let ns: Vec<u64> = found.iter().map(|(n, _)| *n).collect();
        assert_eq!(ns, vec![2, 10]);
        assert_eq!(found[1].1, tmp.path().join("cam-1.ledger.10"));
        assert_eq!(retired_file_name(&cur, 11), "cam-1.ledger.11");
        assert_eq!(staging_path(&cur), tmp.path().join("cam-1.ledger.new"));
        assert!(
            retired_ledgers(&tmp.path().join("nope/cam.ledger"))
                .unwrap()
                .is_empty()
        );
    }
}
