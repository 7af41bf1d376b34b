//! `capscope ca ...` run as the real binary with CAPSCOPE_HOME pointing at a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    fn capscope(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_capscope"))
            .args(args)
            .env("CAPSCOPE_HOME", self.dir.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.capscope(args);
        assert!(
            out.status.success(),
            "capscope {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

fn certs_in(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn only_cert(pem: &[u8]) -> CertificateDer<'static> {
    let certs = certs_in(pem);
    assert_eq!(certs.len(), 1, "expected one certificate");
    certs.into_iter().next().unwrap()
}

#[test]
fn path_names_the_directory_and_files_before_and_after_creation() {
    let home = Home::new();
    let text = String::from_utf8(home.ok(&["ca", "path"])).unwrap();
    let ca_dir = home.ca_dir();
    assert!(text.contains(&ca_dir.display().to_string()), "{text}");
    for file in ["ca-cert.pem", "ca-cert.der", "ca-key.pem"] {
        assert!(
            text.contains(&ca_dir.join(file).display().to_string()),
            "{text}"
        );
    }
    assert!(text.contains("not created yet"), "{text}");
    assert!(!ca_dir.exists(), "`ca path` must not create the CA");

    home.ok(&["ca", "export"]);
    let text = String::from_utf8(home.ok(&["ca", "path"])).unwrap();
    assert!(text.contains("capscope CA ("), "{text}");
    assert!(!text.contains("not created yet"), "{text}");
}

#[test]
fn export_writes_the_ca_in_pem_and_der_and_reuses_it() {
    let home = Home::new();
    let pem = home.ok(&["ca", "export"]);
    let der = only_cert(&pem);
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    assert!(cert.is_ca());

    assert_eq!(home.ok(&["ca", "export", "--der"]), der.as_ref());
    assert_eq!(home.ok(&["ca", "export"]), pem, "the CA is reused");
    assert_eq!(fs::read(home.ca_dir().join("ca-cert.pem")).unwrap(), pem);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home.ca_dir().join("ca-key.pem")), 0o600);
        assert_eq!(mode(&home.ca_dir()), 0o700);
    }
}

#[test]
fn the_ca_dir_flag_overrides_the_default_anywhere_on_the_line() {
    let home = Home::new();
    let custom = home.dir.path().join("elsewhere");
    let custom_arg = custom.to_str().unwrap();
    let before = home.ok(&["--ca-dir", custom_arg, "ca", "export"]);
    let after = home.ok(&["ca", "export", "--ca-dir", custom_arg]);
    assert_eq!(before, after);
    assert!(custom.join("ca-key.pem").is_file());
    assert!(!home.ca_dir().exists());
}

#[test]
fn regenerate_changes_the_certificate_and_keeps_backups() {
    let home = Home::new();
    let old = home.ok(&["ca", "export"]);
    let text = String::from_utf8(home.ok(&["ca", "regenerate"])).unwrap();
    assert!(text.contains("created a new CA"), "{text}");
    let new = home.ok(&["ca", "export"]);
    assert_ne!(only_cert(&old), only_cert(&new));
    assert_eq!(
        fs::read(home.ca_dir().join("ca-cert.pem.bak")).unwrap(),
        old
    );
    assert!(home.ca_dir().join("ca-key.pem.bak").is_file());
}

#[test]
fn install_viewer_adds_the_ca_once_and_keeps_a_backup() {
    let home = Home::new();
    let viewer = home.dir.path().join(".firestorm_x64");
    let user_settings = viewer.join("user_settings");
    fs::create_dir_all(&user_settings).unwrap();
    let store = user_settings.join("CA.pem");
    // A store as the viewer leaves it: some other authority, no trailing newline.
    let other = capscope_ca::CertificateAuthority::generate().unwrap();
    let original = other.cert_pem().trim_end().to_owned();
    fs::write(&store, &original).unwrap();

    let first =
        String::from_utf8(home.ok(&["ca", "install-viewer", viewer.to_str().unwrap()])).unwrap();
    assert!(first.contains("added"), "{first}");
    let ours = only_cert(&home.ok(&["ca", "export"]));
    let after_first = fs::read(&store).unwrap();
    let certs = certs_in(&after_first);
    assert_eq!(certs.len(), 2, "the other CA and ours");
    assert_eq!(certs[0].as_ref(), other.cert_der());
    assert_eq!(certs[1], ours);

    let backup = user_settings.join("CA.pem.capscope-backup");
    assert_eq!(fs::read_to_string(&backup).unwrap(), original);

    // Again, this time naming the user_settings directory, then the file itself.
    for target in [&user_settings, &store] {
        let again = String::from_utf8(home.ok(&["ca", "install-viewer", target.to_str().unwrap()]))
            .unwrap();
        assert!(again.contains("already"), "{again}");
        assert_eq!(fs::read(&store).unwrap(), after_first, "nothing changed");
    }
    assert_eq!(fs::read_to_string(&backup).unwrap(), original);
}

#[test]
fn install_viewer_refuses_a_directory_that_is_not_a_viewers() {
    let home = Home::new();
    let out = home.capscope(&["ca", "install-viewer", home.dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("user_settings"), "{err}");
}

#[test]
fn a_corrupt_key_fails_with_the_path_and_the_fix() {
    let home = Home::new();
    home.ok(&["ca", "export"]);
    let key = home.ca_dir().join("ca-key.pem");
    fs::write(&key, "garbage").unwrap();
    let out = home.capscope(&["ca", "export"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&key.display().to_string()), "{err}");
    assert!(err.contains("capscope ca regenerate"), "{err}");
}

/// Several `capscope ca export` processes started at once on a fresh home all print the same CA, and
/// the pair left on disk matches (the race used to leave one process's key beside another's
/// certificate about half the time).
#[test]
fn processes_creating_the_ca_at_once_agree() {
    const PROCESSES: usize = 4;
    for round in 0..3 {
        let home = Home::new();
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_capscope"))
                    .args(["ca", "export"])
                    .env("CAPSCOPE_HOME", home.dir.path())
                    .env_remove("RUST_LOG")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for out in &outputs {
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&outputs[0].stdout),
                "round {round}: one CA"
            );
        }
        // A later command loads the pair on disk: the key matches the certificate.
        assert_eq!(
            home.ok(&["ca", "export"]),
            outputs[0].stdout,
            "round {round}"
        );
    }
}

/// `install-viewer` appends only to a file that is a PEM certificate bundle (what the viewer's CA.pem
/// is): anything else is refused, untouched, with no backup made.
#[test]
fn install_viewer_refuses_a_file_that_is_not_a_certificate_bundle() {
    let home = Home::new();
    let key_pem =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
    for (name, contents) in [
        ("profile", "export PATH=$HOME/bin:$PATH\n".as_bytes()),
        ("CA.pem", key_pem.as_bytes()),
        ("CA.pem", b"\x7fELF\x02\x01\x01\0\0\0".as_slice()),
    ] {
        let dir = home.dir.path().join(format!("t-{}", contents.len()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join(name);
        fs::write(&target, contents).unwrap();
        let out = home.capscope(&["ca", "install-viewer", target.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(
            err.contains("not a PEM certificate bundle"),
            "{name}: {err}"
        );
        assert_eq!(fs::read(&target).unwrap(), contents, "{name}: untouched");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{name}: no backup: {names:?}");
    }
}

/// A backup name that is a symbolic link (planted, or left by something else) is never written
/// through: the command refuses, and the link's target is neither created nor changed.
#[cfg(unix)]
#[test]
fn install_viewer_never_follows_a_symlinked_backup() {
    let home = Home::new();
    let user_settings = home.dir.path().join("viewer").join("user_settings");
    fs::create_dir_all(&user_settings).unwrap();
    let store = user_settings.join("CA.pem");
    let other = capscope_ca::CertificateAuthority::generate().unwrap();
    fs::write(&store, other.cert_pem()).unwrap();
    let victim = home.dir.path().join("victim");
    let backup = user_settings.join("CA.pem.capscope-backup");
    std::os::unix::fs::symlink(&victim, &backup).unwrap();

    let out = home.capscope(&["ca", "install-viewer", store.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a symlinked backup was accepted");
    assert!(err.contains("symbolic link"), "{err}");
    assert!(!victim.exists(), "wrote through the link");
    assert_eq!(
        fs::read_to_string(&store).unwrap(),
        other.cert_pem(),
        "store untouched"
    );

    // A dangling link in place of CA.pem itself is not followed either.
    fs::remove_file(&backup).unwrap();
    fs::remove_file(&store).unwrap();
    std::os::unix::fs::symlink(&victim, &store).unwrap();
    let out = home.capscope(&["ca", "install-viewer", user_settings.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!victim.exists(), "created the link's target");
}

/// A CA folder whose key others can read, and a directory others can enter, are reported by every
/// command that loads the CA (not only `run`); the key is narrowed back to 0600.
#[cfg(unix)]
#[test]
fn exposed_ca_files_are_reported_by_every_command_and_the_key_is_narrowed() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    home.ok(&["ca", "export"]);
    let key = home.ca_dir().join("ca-key.pem");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for args in [
        &["ca", "export"][..],
        &["ca", "path"][..],
        &["ca", "export", "--der"][..],
    ] {
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(home.ca_dir(), fs::Permissions::from_mode(0o755)).unwrap();
        let out = home.capscope(args);
        assert!(out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("warning") && err.contains("ca-key.pem") && err.contains("644"),
            "{args:?}: {err}"
        );
        assert!(err.contains("chmod 700"), "{args:?}: {err}");
        assert_eq!(mode(&key), 0o600, "{args:?}: the key is private again");
        assert_eq!(
            mode(&home.ca_dir()),
            0o755,
            "{args:?}: the directory is the user's to change"
        );
    }
    // Once fixed, nothing more is said.
    fs::set_permissions(home.ca_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    let out = home.capscope(&["ca", "export"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
