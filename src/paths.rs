//! Where capscope keeps its files: the data directory and, inside it, the CA directory (other
//! features put e.g. `captures/` under [`data_dir`]). Owns only the resolution of these paths from
//! the environment; creates nothing and knows nothing of what goes inside. The platform's own place
//! comes from the `directories` crate.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Environment variable naming capscope's data directory outright (tests and portable setups).
pub const HOME_ENV: &str = "CAPSCOPE_HOME";
/// The name of capscope's directory under the platform data directory.
pub const APP_DIR: &str = "capscope";
/// The CA's directory under the data directory.
pub const CA_SUBDIR: &str = "ca";

/// Why no data directory could be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Neither `CAPSCOPE_HOME` nor a home directory for the platform's data directory is known.
    #[error("cannot find a directory for capscope's data: {HOME_ENV} is not set and the platform names no data directory (no home directory); set {HOME_ENV}=DIR or pass --ca-dir")]
    NoHome,
}

/// capscope's data directory: `$CAPSCOPE_HOME` if set, else the platform's data directory joined
/// with `capscope`:
///
/// - Linux and other Unix: `$XDG_DATA_HOME/capscope` (when absolute), else
///   `~/.local/share/capscope`;
/// - macOS: `~/Library/Application Support/capscope`;
/// - Windows: `%APPDATA%\capscope` (the roaming application data folder).
pub fn data_dir() -> Result<PathBuf, PathError> {
    data_dir_from(
        std::env::var_os(HOME_ENV),
        directories::BaseDirs::new().map(|dirs| dirs.data_dir().to_path_buf()),
    )
}

/// The CA directory: `explicit` (from `--ca-dir`) if given, else `data_dir()/ca`.
pub fn ca_dir(explicit: Option<&Path>) -> Result<PathBuf, PathError> {
    match explicit {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Ok(data_dir()?.join(CA_SUBDIR)),
    }
}

/// [`data_dir`] with its inputs passed in: the value of `CAPSCOPE_HOME` (empty counts as unset) and
/// the platform's data directory, if it has one.
pub fn data_dir_from(
    capscope_home: Option<OsString>,
    platform_data: Option<PathBuf>,
) -> Result<PathBuf, PathError> {
    if let Some(home) = capscope_home.filter(|value| !value.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    platform_data
        .map(|dir| dir.join(APP_DIR))
        .ok_or(PathError::NoHome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capscope_home_wins() {
        assert_eq!(
            data_dir_from(Some("/srv/capscope".into()), Some("/xdg".into())).unwrap(),
            PathBuf::from("/srv/capscope")
        );
    }

    #[test]
    fn the_platform_data_directory_comes_next_and_an_empty_home_is_unset() {
        let want = PathBuf::from("/home/u/.local/share/capscope");
        let platform = || Some(PathBuf::from("/home/u/.local/share"));
        assert_eq!(data_dir_from(None, platform()).unwrap(), want);
        assert_eq!(data_dir_from(Some("".into()), platform()).unwrap(), want);
    }

    #[test]
    fn no_home_at_all_is_an_error_that_says_what_to_set() {
        let err = data_dir_from(None, None).unwrap_err();
        assert!(err.to_string().contains(HOME_ENV), "{err}");
    }

    #[test]
    fn an_explicit_ca_dir_is_taken_as_is() {
        assert_eq!(
            ca_dir(Some(Path::new("/tmp/my-ca"))).unwrap(),
            PathBuf::from("/tmp/my-ca")
        );
    }
}
