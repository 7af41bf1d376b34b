//! Where capscope keeps its files: the data directory and, inside it, the CA directory (other
//! features put e.g. `captures/` under [`data_dir`]). Owns only the resolution of these paths from
//! the environment; creates nothing and knows nothing of what goes inside.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Environment variable naming capscope's data directory outright (tests and portable setups).
pub const HOME_ENV: &str = "CAPSCOPE_HOME";
/// The XDG base directory variable for user data.
pub const XDG_DATA_HOME_ENV: &str = "XDG_DATA_HOME";
/// The name of capscope's directory under the platform data directory.
pub const APP_DIR: &str = "capscope";
/// The CA's directory under the data directory.
pub const CA_SUBDIR: &str = "ca";

/// Why no data directory could be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// None of the variables that locate a home or data directory is set.
    #[error("cannot find a directory for capscope's data: neither {HOME_ENV}, {XDG_DATA_HOME_ENV} nor HOME (APPDATA on Windows) is set; set {HOME_ENV}=DIR or pass --ca-dir")]
    NoHome,
}

/// capscope's data directory: `$CAPSCOPE_HOME` if set, else `$XDG_DATA_HOME/capscope`, else
/// `~/.local/share/capscope` (on Windows without HOME: `%APPDATA%\capscope`).
pub fn data_dir() -> Result<PathBuf, PathError> {
    data_dir_from(|name| std::env::var_os(name))
}

/// The CA directory: `explicit` (from `--ca-dir`) if given, else `data_dir()/ca`.
pub fn ca_dir(explicit: Option<&Path>) -> Result<PathBuf, PathError> {
    match explicit {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Ok(data_dir()?.join(CA_SUBDIR)),
    }
}

/// [`data_dir`] with the environment passed in, so the rules can be tested without touching the
/// process environment. Empty variables count as unset; a relative `XDG_DATA_HOME` is ignored, as
/// the XDG specification requires.
pub fn data_dir_from(env: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, PathError> {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    if let Some(home) = set(HOME_ENV) {
        return Ok(PathBuf::from(home));
    }
    if let Some(xdg) = set(XDG_DATA_HOME_ENV).map(PathBuf::from) {
        if xdg.is_absolute() {
            return Ok(xdg.join(APP_DIR));
        }
    }
    if let Some(home) = set("HOME") {
        return Ok(PathBuf::from(home)
            .join(".local")
            .join("share")
            .join(APP_DIR));
    }
    if let Some(appdata) = set("APPDATA") {
        return Ok(PathBuf::from(appdata).join(APP_DIR));
    }
    Err(PathError::NoHome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn capscope_home_wins() {
        let vars = [
            (HOME_ENV, "/srv/capscope"),
            (XDG_DATA_HOME_ENV, "/xdg"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(
            data_dir_from(env(&vars)).unwrap(),
            PathBuf::from("/srv/capscope")
        );
    }

    #[test]
    fn xdg_data_home_comes_next() {
        let vars = [(XDG_DATA_HOME_ENV, "/xdg"), ("HOME", "/home/u")];
        assert_eq!(
            data_dir_from(env(&vars)).unwrap(),
            PathBuf::from("/xdg/capscope")
        );
    }

    #[test]
    fn home_is_the_fallback_and_empty_or_relative_values_are_ignored() {
        let vars = [
            (HOME_ENV, ""),
            (XDG_DATA_HOME_ENV, "relative/dir"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(
            data_dir_from(env(&vars)).unwrap(),
            PathBuf::from("/home/u/.local/share/capscope")
        );
    }

    #[test]
    fn no_home_at_all_is_an_error_that_says_what_to_set() {
        let err = data_dir_from(env(&[])).unwrap_err();
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
