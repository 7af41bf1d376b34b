//! The CA's files on disk: their names, creating the directory (0700) and writing each file so that
//! it is never seen half-written and the key is never readable by others, not even briefly.
//! Owns file I/O only; knows nothing of what the bytes mean.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::CaError;

/// The CA certificate, PEM (what viewers, curl and browsers import).
pub const CERT_PEM_FILE: &str = "ca-cert.pem";
/// The same certificate, DER (what some platforms' certificate importers want).
pub const CERT_DER_FILE: &str = "ca-cert.der";
/// The CA's private key, PKCS#8 PEM, mode 0600.
pub const KEY_FILE: &str = "ca-key.pem";
/// Suffix of the previous files kept by a regeneration.
pub const BACKUP_SUFFIX: &str = ".bak";

/// Mode of the CA directory when capscope creates it.
#[cfg(unix)]
pub const DIR_MODE: u32 = 0o700;
/// Mode of the private key file.
#[cfg(unix)]
pub const KEY_MODE: u32 = 0o600;
/// Mode of the certificate files (public data).
#[cfg(unix)]
pub const CERT_MODE: u32 = 0o644;

/// The paths of the CA's files inside one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// The directory holding everything below.
    pub dir: PathBuf,
    /// [`CERT_PEM_FILE`] in `dir`.
    pub cert_pem: PathBuf,
    /// [`CERT_DER_FILE`] in `dir`.
    pub cert_der: PathBuf,
    /// [`KEY_FILE`] in `dir`.
    pub key: PathBuf,
}

impl CaFiles {
    /// The file names capscope uses in `dir` (nothing is touched on disk).
    pub fn in_dir(dir: &Path) -> CaFiles {
        CaFiles {
            dir: dir.to_path_buf(),
            cert_pem: dir.join(CERT_PEM_FILE),
            cert_der: dir.join(CERT_DER_FILE),
            key: dir.join(KEY_FILE),
        }
    }

    /// All three files, key first.
    pub fn all(&self) -> [&Path; 3] {
        [&self.key, &self.cert_pem, &self.cert_der]
    }

    /// Where a regeneration moves `path` (the file name plus [`BACKUP_SUFFIX`]).
    pub fn backup_of(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(BACKUP_SUFFIX);
        path.with_file_name(name)
    }
}

/// Creates `dir` and its missing parents, mode 0700 on unix. An existing directory is left as is.
pub fn create_dir(dir: &Path) -> Result<(), CaError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir).map_err(|source| CaError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Reads a file; `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, CaError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CaError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whether the file may be read by a user other than its owner.
pub enum Secrecy {
    /// The private key: mode 0600 from the moment the file exists.
    Private,
    /// A certificate: mode 0644.
    Public,
}

/// A temporary name beside `path`, unique to this process and call (threads of one process, and
/// processes, may create the same CA at once).
fn temp_beside(path: &Path) -> std::path::PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(tmp_name)
}

/// Opens options for a new file of the given secrecy (mode 0600 or 0644 on unix), failing if the
/// path exists (never following a symbolic link there).
fn new_file_options(secrecy: &Secrecy) -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match secrecy {
            Secrecy::Private => KEY_MODE,
            Secrecy::Public => CERT_MODE,
        });
    }
    #[cfg(not(unix))]
    let _ = secrecy;
    options
}

/// Writes `bytes` to a new temporary file beside `path` and returns its name.
fn write_temp(path: &Path, bytes: &[u8], secrecy: &Secrecy) -> io::Result<std::path::PathBuf> {
    let tmp = temp_beside(path);
    let result = new_file_options(secrecy).open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory that is renamed into
/// place, so a crash never leaves a truncated file behind. A `Private` file is created with mode
/// 0600 (unix), so there is no moment at which it is readable by others.
pub fn write_atomically(path: &Path, bytes: &[u8], secrecy: Secrecy) -> Result<(), CaError> {
    let wrap = |source| CaError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = write_temp(path, bytes, &secrecy).map_err(wrap)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(wrap(e));
    }
    Ok(())
}

/// Writes `bytes` to `path` only if `path` does not exist yet, whole or not at all: the bytes go to
/// a temporary file that is then hard-linked to `path`, which fails if `path` exists (on a file
/// system without hard links, `path` is created exclusively and written). Returns `false`, writing
/// nothing, when `path` already existed: another process (or thread) got there first.
pub fn write_new(path: &Path, bytes: &[u8], secrecy: Secrecy) -> Result<bool, CaError> {
    let wrap = |source| CaError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = write_temp(path, bytes, &secrecy).map_err(wrap)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
            ) =>
        {
            // No hard links here (FAT, some network file systems): an exclusive create instead.
            match new_file_options(&secrecy).open(path) {
                Ok(mut file) => {
                    file.write_all(bytes)
                        .and_then(|()| file.sync_all())
                        .map_err(wrap)?;
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(wrap(e)),
            }
        }
        Err(e) => Err(wrap(e)),
    }
}

/// How long ago `path` was last modified; `None` if unknown.
pub fn age(path: &Path) -> Option<std::time::Duration> {
    fs::metadata(path).ok()?.modified().ok()?.elapsed().ok()
}

/// Moves `path` to its backup name (replacing an older backup). Does nothing if `path` is absent.
pub fn move_aside(path: &Path) -> Result<(), CaError> {
    let backup = CaFiles::backup_of(path);
    match fs::rename(path, &backup) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CaError::Backup {
            path: path.to_path_buf(),
            backup,
            source,
        }),
    }
}

/// Something about the CA's files the user should know (and fix), found when loading or creating it.
/// Every command that loads the CA shows these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaWarning {
    /// The key file could be read (or written) by other users; capscope narrowed it to 0600, or, if
    /// `fixed` is false, could not.
    KeyExposed {
        path: PathBuf,
        mode: u32,
        fixed: bool,
    },
    /// Other users can list or enter the CA directory (its files are still protected by their own
    /// modes); the directory is left alone, it may be one the user chose and shares.
    DirOpen { path: PathBuf, mode: u32 },
}

impl std::fmt::Display for CaWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaWarning::KeyExposed {
                path,
                mode,
                fixed: true,
            } => write!(
                f,
                "the CA key {} had mode {mode:03o}, readable by other users; capscope set it to 600. \
                 Anyone who read it can impersonate any site to a client that trusts this CA: \
                 consider `capscope ca regenerate`",
                path.display()
            ),
            CaWarning::KeyExposed {
                path,
                mode,
                fixed: false,
            } => write!(
                f,
                "the CA key {} has mode {mode:03o}, readable by other users, and capscope could not \
                 change it: run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
            CaWarning::DirOpen { path, mode } => write!(
                f,
                "the CA directory {} has mode {mode:03o}: other users can see into it; run \
                 `chmod 700 {}`",
                path.display(),
                path.display()
            ),
        }
    }
}

/// Checks the CA's permissions (unix): the key must be 0600 (narrowed if it is not) and the
/// directory should be 0700 (reported only). Returns what the user should hear about.
pub fn check_permissions(files: &CaFiles) -> Vec<CaWarning> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut warnings = Vec::new();
        // fs::metadata follows a link: what matters is the mode of the file that holds the key.
        if let Ok(meta) = fs::metadata(&files.key) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let fixed =
                    fs::set_permissions(&files.key, fs::Permissions::from_mode(KEY_MODE)).is_ok();
                warnings.push(CaWarning::KeyExposed {
                    path: files.key.clone(),
                    mode,
                    fixed,
                });
            }
        }
        if let Ok(meta) = fs::metadata(&files.dir) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                warnings.push(CaWarning::DirOpen {
                    path: files.dir.clone(),
                    mode,
                });
            }
        }
        warnings
    }
    #[cfg(not(unix))]
    {
        let _ = files;
        Vec::new()
    }
}
