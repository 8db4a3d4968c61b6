//! The `file` source's checkpoint: which file (device, inode and a fingerprint of its first
//! bytes) and how far into it every line is delivered, kept as a small JSON file written
//! atomically (a temporary file renamed over the old one).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How many bytes from the start of a file identify it (with its device and inode).
pub const HEAD_BYTES: u64 = 1024;

/// A file as the operating system names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    /// The identity of an open file or a path's metadata.
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            FileId { dev: 0, ino: 0 }
        }
    }
}

/// FNV-1a over the first `len` bytes of a file: stable across Rust versions and machines.
pub fn head_hash(file: &std::fs::File, len: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; len as usize];
    read_exact_at(file, &mut buf)?;
    Ok(buf.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    }))
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, 0)
}

#[cfg(not(unix))]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(buf)
}

/// A read position in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The configured path, for people reading the file.
    pub path: String,
    /// Device of the file read.
    pub dev: u64,
    /// Inode of the file read.
    pub ino: u64,
    /// How many leading bytes `head_hash` covers (up to [`HEAD_BYTES`]).
    pub head_len: u64,
    /// Fingerprint of those bytes.
    pub head_hash: u64,
    /// Bytes up to the end of the last delivered line.
    pub position: u64,
    /// Line number of the next line.
    pub line: i64,
}

impl Checkpoint {
    /// The file's identity.
    pub fn id(&self) -> FileId {
        FileId {
            dev: self.dev,
            ino: self.ino,
        }
    }

    /// True when `file` (opened from a path whose metadata is `meta`) is the file this
    /// checkpoint was taken in: same device and inode, and the same first bytes.
    pub fn matches(&self, file: &std::fs::File, meta: &std::fs::Metadata) -> bool {
        FileId::of(meta) == self.id()
            && meta.len() >= self.head_len
            && head_hash(file, self.head_len).ok() == Some(self.head_hash)
    }
}

/// Where one source's checkpoint lives: `<data>/file-source/<pipeline>/<component>-<hash of
/// the path>.json`, so two sources never share one.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl CheckpointStore {
    /// The store for one source reading `file`.
    pub fn new(data_dir: &Path, pipeline: &str, component: &str, file: &Path) -> Self {
        let key = file.to_string_lossy();
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        CheckpointStore {
            path: data_dir
                .join("file-source")
                .join(safe(pipeline))
                .join(format!("{}-{hash:016x}.json", safe(component))),
        }
    }

    /// Where the checkpoint is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved checkpoint; `None` when there is none. An unreadable one is logged and ignored
    /// (the file is then read from its start: at least once, never a gap).
    pub fn load(&self) -> Option<Checkpoint> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(checkpoint = %self.path.display(), "cannot read the checkpoint ({e}); reading the file from its start");
                return None;
            }
        };
        match serde_json::from_slice(&text) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(checkpoint = %self.path.display(), "the checkpoint is damaged ({e}); reading the file from its start");
                None
            }
        }
    }

    /// Writes the checkpoint atomically.
    pub async fn save(&self, c: &Checkpoint) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = self.path.with_extension("json.tmp");
        tokio::fs::write(&tmp, serde_json::to_vec(c).expect("checkpoints serialize")).await?;
        tokio::fs::rename(&tmp, &self.path).await
    }
}
