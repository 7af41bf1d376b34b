//! `capscope ca`: show, export, regenerate capscope's certificate authority and install it into a
//! Second Life viewer's trust store. Owns only the command-line side: the CA itself is the
//! `capscope-ca` crate, and where it lives is `crate::paths`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use capscope_ca::CertificateAuthority;
use clap::{Args, Subcommand};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::CaDirArg;
use crate::paths;

/// The viewer's trust store file inside its `user_settings` directory.
pub const VIEWER_CA_FILE: &str = "CA.pem";
/// The viewer's per-user settings directory, which holds [`VIEWER_CA_FILE`].
pub const VIEWER_USER_SETTINGS: &str = "user_settings";
/// Suffix of the copy `install-viewer` makes of the trust store before its first change.
pub const VIEWER_BACKUP_SUFFIX: &str = ".capscope-backup";

#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the CA directory and the paths of its files.
    Path,
    /// Write the CA certificate to stdout (PEM, or DER with --der).
    ///
    /// Creates the CA on first use.
    Export {
        /// Write DER (binary) instead of PEM.
        #[arg(long)]
        der: bool,
    },
    /// Replace the CA with a new key and certificate.
    ///
    /// The old files are kept with a .bak suffix; every client that trusted the old CA must be
    /// given the new one.
    Regenerate,
    /// Make a Second Life viewer (Linden, Firestorm, ...) trust capscope's CA.
    ///
    /// Appends the CA certificate to the viewer's user_settings/CA.pem. A copy of the file as it
    /// was is kept once, as CA.pem.capscope-backup; running it again changes nothing. Close the
    /// viewer first; it reads the file when it starts.
    #[command(name = "install-viewer")]
    InstallViewer {
        /// The viewer's settings directory that contains user_settings/ (e.g. ~/.secondlife,
        /// ~/.firestorm_x64, %APPDATA%\SecondLife), or that user_settings directory, or the
        /// CA.pem file itself.
        #[arg(value_name = "DIR")]
        target: PathBuf,
    },
}

pub fn run(args: CaArgs, ca_dir: &CaDirArg) -> anyhow::Result<ExitCode> {
    let dir = paths::ca_dir(ca_dir.ca_dir.as_deref())?;
    match args.command {
        CaCommand::Path => print_paths(&dir),
        CaCommand::Export { der } => export(&dir, der),
        CaCommand::Regenerate => regenerate(&dir),
        CaCommand::InstallViewer { target } => install_viewer(&dir, &target),
    }
}

fn load(dir: &Path) -> anyhow::Result<CertificateAuthority> {
    let ca = CertificateAuthority::load_or_create(dir)
        .with_context(|| format!("cannot load the CA from {}", dir.display()))?;
    report_warnings(&ca);
    Ok(ca)
}

/// Shows the CA's warnings on stderr (stdout may be the certificate itself: `ca export`).
pub fn report_warnings(ca: &CertificateAuthority) {
    for w in ca.warnings() {
        eprintln!("capscope: warning: {w}");
    }
}

fn print_paths(dir: &Path) -> anyhow::Result<ExitCode> {
    let files = capscope_ca::CaFiles::in_dir(dir);
    let mut out = std::io::stdout().lock();
    writeln!(out, "CA directory:      {}", files.dir.display())?;
    writeln!(out, "certificate (PEM): {}", files.cert_pem.display())?;
    writeln!(out, "certificate (DER): {}", files.cert_der.display())?;
    writeln!(out, "private key:       {}", files.key.display())?;
    if !files.key.exists() && !files.cert_pem.exists() {
        writeln!(
            out,
            "status:            not created yet (`capscope ca export` or `capscope run` creates it)"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    // Reading only: loading an existing CA writes nothing but a missing DER copy.
    match CertificateAuthority::load_or_create(dir) {
        Ok(ca) => {
            report_warnings(&ca);
            writeln!(out, "name:              {}", ca.common_name())?;
            writeln!(out, "expires:           {} (UTC)", ca.not_after().date())?;
        }
        Err(e) => writeln!(out, "status:            unusable: {e}")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn export(dir: &Path, der: bool) -> anyhow::Result<ExitCode> {
    let ca = load(dir)?;
    let mut out = std::io::stdout().lock();
    let bytes = if der {
        ca.cert_der()
    } else {
        ca.cert_pem().as_bytes()
    };
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("cannot write the certificate to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn regenerate(dir: &Path) -> anyhow::Result<ExitCode> {
    let ca = CertificateAuthority::regenerate(dir)
        .with_context(|| format!("cannot regenerate the CA in {}", dir.display()))?;
    report_warnings(&ca);
    let cert = ca
        .files()
        .map(|f| f.cert_pem.display().to_string())
        .unwrap_or_default();
    println!("created a new CA: {}", ca.common_name());
    println!("certificate: {cert}");
    println!(
        "the previous files, if any, are kept in {} with a {} suffix",
        dir.display(),
        capscope_ca::BACKUP_SUFFIX
    );
    println!(
        "clients must trust the new certificate: `capscope ca install-viewer DIR` for a viewer, \
         `--cacert {cert}` for curl"
    );
    Ok(ExitCode::SUCCESS)
}

/// The viewer trust store file `target` designates (see `install-viewer --help`).
pub fn viewer_ca_file(target: &Path) -> anyhow::Result<PathBuf> {
    if target.is_file() {
        return Ok(target.to_path_buf());
    }
    if target.is_dir() {
        let user_settings = target.join(VIEWER_USER_SETTINGS);
        if user_settings.is_dir() {
            return Ok(user_settings.join(VIEWER_CA_FILE));
        }
        let is_user_settings = target
            .file_name()
            .is_some_and(|name| name.eq_ignore_ascii_case(VIEWER_USER_SETTINGS));
        if is_user_settings || target.join(VIEWER_CA_FILE).is_file() {
            return Ok(target.join(VIEWER_CA_FILE));
        }
        bail!(
            "{} has no {VIEWER_USER_SETTINGS}/ directory and no {VIEWER_CA_FILE}: pass the viewer's \
             settings directory (the one containing {VIEWER_USER_SETTINGS}/, e.g. ~/.secondlife or \
             ~/.firestorm_x64), the {VIEWER_USER_SETTINGS} directory, or the {VIEWER_CA_FILE} file",
            target.display()
        );
    }
    let names_ca_file = target
        .file_name()
        .is_some_and(|name| name.eq_ignore_ascii_case(VIEWER_CA_FILE));
    if names_ca_file && target.parent().is_some_and(Path::is_dir) {
        // The viewer creates the file on its own when it is missing; we create it with our CA,
        // and the viewer adds its bundled authorities to it when it loads.
        return Ok(target.to_path_buf());
    }
    bail!("{} does not exist", target.display())
}

/// Whether `pem_text` (a trust store) already holds the certificate `der`.
pub fn store_contains(pem_text: &[u8], der: &[u8]) -> bool {
    CertificateDer::pem_slice_iter(pem_text)
        .filter_map(Result::ok)
        .any(|cert| cert.as_ref() == der)
}

fn backup_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(VIEWER_BACKUP_SUFFIX);
    file.with_file_name(name)
}

/// The only PEM block a viewer's trust store holds (the viewer reads it with OpenSSL's
/// `PEM_read_bio_X509` and writes it with `PEM_write_bio_X509`, `indra/newview/llsechandler_basic.cpp`).
const PEM_CERTIFICATE_BEGIN: &str = "-----BEGIN CERTIFICATE-----";

/// Why `text` is not a PEM certificate bundle (a file a viewer could use as its CA.pem), if it is not.
/// Empty is fine (a store the viewer has not filled yet); comment and text lines between blocks are
/// fine (OpenSSL skips them, and bundles such as Mozilla's carry them).
pub fn not_a_bundle(text: &[u8]) -> Option<String> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let Ok(text) = std::str::from_utf8(text) else {
        return Some("it is not text".into());
    };
    if text.contains('\0') {
        return Some("it is not text".into());
    }
    let mut blocks = 0;
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN ") {
            if line != PEM_CERTIFICATE_BEGIN {
                return Some(format!("it holds a {line} block, not only certificates"));
            }
            blocks += 1;
        }
    }
    if blocks == 0 {
        return Some("it holds no certificate".into());
    }
    let parsed = CertificateDer::pem_slice_iter(text.as_bytes()).collect::<Result<Vec<_>, _>>();
    match parsed {
        Ok(certs) if certs.len() == blocks => None,
        Ok(_) => Some("a certificate block in it does not decode".into()),
        Err(e) => Some(format!("a certificate block in it does not decode ({e})")),
    }
}

/// Keeps `original` (the store's bytes) as `backup`, unless a backup is already there. Never writes
/// through a symbolic link: the backup is created only if nothing has its name (`O_EXCL`).
fn make_backup(store: &Path, backup: &Path, original: &[u8]) -> anyhow::Result<()> {
    match fs::symlink_metadata(backup) {
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "{} is a symbolic link; capscope will not write a backup through it (nothing was \
             changed): remove it and run the command again",
            backup.display()
        ),
        // The backup of an earlier run: it holds the file from before capscope first touched it.
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot check {}", backup.display()));
        }
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(backup)
        .and_then(|mut file| {
            file.write_all(original)?;
            file.sync_all()
        })
        .with_context(|| {
            format!(
                "cannot back up {} to {}; nothing was changed",
                store.display(),
                backup.display()
            )
        })
}

fn install_viewer(dir: &Path, target: &Path) -> anyhow::Result<ExitCode> {
    let ca = load(dir)?;
    let store = viewer_ca_file(target)?;
    let existing = match fs::read(&store) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", store.display())),
    };
    if let Some(reason) = existing.as_deref().and_then(not_a_bundle) {
        bail!(
            "{} is not a PEM certificate bundle ({reason}), so it is not a viewer's {VIEWER_CA_FILE}; \
             nothing was changed. Pass the viewer's settings directory (e.g. ~/.firestorm_x64), its \
             {VIEWER_USER_SETTINGS} directory, or its {VIEWER_USER_SETTINGS}/{VIEWER_CA_FILE}",
            store.display()
        );
    }
    if existing
        .as_deref()
        .is_some_and(|text| store_contains(text, ca.cert_der()))
    {
        println!(
            "{} already trusts this CA ({}); nothing to do",
            store.display(),
            ca.common_name()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let backup = backup_path(&store);
    if let Some(original) = existing.as_deref() {
        make_backup(&store, &backup, original)?;
    }
    let mut addition = String::new();
    if existing
        .as_deref()
        .is_some_and(|text| !text.is_empty() && !text.ends_with(b"\n"))
    {
        addition.push('\n');
    }
    addition.push_str(&format!(
        "# {} (added by capscope ca install-viewer)\n",
        ca.common_name()
    ));
    addition.push_str(ca.cert_pem());
    let mut options = fs::OpenOptions::new();
    if existing.is_some() {
        options.append(true);
    } else {
        // A new store: created only if nothing has its name (not through a dangling link).
        options.write(true).create_new(true);
    }
    options
        .open(&store)
        .and_then(|mut file| file.write_all(addition.as_bytes()))
        .with_context(|| format!("cannot append the CA to {}", store.display()))?;
    println!("added {} to {}", ca.common_name(), store.display());
    if existing.is_some() {
        println!(
            "the file as it was before capscope changed it: {}",
            backup.display()
        );
    }
    println!("restart the viewer so that it reads the file again");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_may_be_the_settings_dir_the_user_settings_dir_or_the_file() {
        let root = tempfile::tempdir().unwrap();
        let settings = root.path().join(".firestorm_x64");
        let user_settings = settings.join(VIEWER_USER_SETTINGS);
        fs::create_dir_all(&user_settings).unwrap();
        let file = user_settings.join(VIEWER_CA_FILE);

        // Before the viewer has written CA.pem, every form still leads to it.
        assert_eq!(viewer_ca_file(&settings).unwrap(), file);
        assert_eq!(viewer_ca_file(&user_settings).unwrap(), file);
        assert_eq!(viewer_ca_file(&file).unwrap(), file);

        fs::write(&file, "").unwrap();
        assert_eq!(viewer_ca_file(&settings).unwrap(), file);
        assert_eq!(viewer_ca_file(&user_settings).unwrap(), file);
        assert_eq!(viewer_ca_file(&file).unwrap(), file);
    }

    #[test]
    fn an_unrelated_or_missing_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let err = viewer_ca_file(root.path()).unwrap_err().to_string();
        assert!(err.contains(VIEWER_USER_SETTINGS), "{err}");
        assert!(viewer_ca_file(&root.path().join("nope")).is_err());
        assert!(viewer_ca_file(&root.path().join("nope").join(VIEWER_CA_FILE)).is_err());
    }

    #[test]
    fn the_store_is_searched_by_certificate_not_by_text() {
        let ca = CertificateAuthority::generate().unwrap();
        let other = CertificateAuthority::generate().unwrap();
        let crlf = ca.cert_pem().replace('\n', "\r\n");
        let store = format!("# a comment\n{}\n{crlf}", other.cert_pem());
        assert!(store_contains(store.as_bytes(), ca.cert_der()));
        assert!(!store_contains(other.cert_pem().as_bytes(), ca.cert_der()));
        assert!(!store_contains(b"garbage", ca.cert_der()));
    }

    #[test]
    fn only_certificate_bundles_pass_for_a_store() {
        let ca = CertificateAuthority::generate().unwrap();
        let bundle = format!(
            "# Mozilla-style comment\nIssuer: x\n{}\n{}",
            ca.cert_pem(),
            ca.cert_pem()
        );
        assert_eq!(not_a_bundle(bundle.as_bytes()), None);
        assert_eq!(not_a_bundle(b""), None);
        assert_eq!(not_a_bundle(b" \n"), None);
        assert!(not_a_bundle(b"export A=1\n").is_some());
        assert!(not_a_bundle(b"\xff\xfe").is_some());
        let with_key = format!(
            "{}-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
            ca.cert_pem()
        );
        assert!(not_a_bundle(with_key.as_bytes())
            .unwrap()
            .contains("PRIVATE KEY"));
        let broken = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(not_a_bundle(broken.as_bytes()).is_some());
    }
}
