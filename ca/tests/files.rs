//! The CA on disk: file names and modes, reuse across loads, regeneration with backups, and clear
//! errors for broken files.

use std::fs;

use capscope_ca::{CaError, CaFiles, CertificateAuthority, CERT_DER_FILE, CERT_PEM_FILE, KEY_FILE};

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_use_creates_the_files_and_later_loads_reuse_them() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("capscope").join("ca");
    let ca = CertificateAuthority::load_or_create(&dir).unwrap();
    let files = ca.files().unwrap().clone();
    assert_eq!(files, CaFiles::in_dir(&dir));
    assert_eq!(files.cert_pem, dir.join(CERT_PEM_FILE));
    assert_eq!(files.cert_der, dir.join(CERT_DER_FILE));
    assert_eq!(files.key, dir.join(KEY_FILE));

    assert_eq!(fs::read_to_string(&files.cert_pem).unwrap(), ca.cert_pem());
    assert_eq!(fs::read(&files.cert_der).unwrap(), ca.cert_der());
    let key = fs::read_to_string(&files.key).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");

    #[cfg(unix)]
    {
        assert_eq!(mode(&files.key), 0o600, "the key is private");
        assert_eq!(mode(&dir), 0o700, "the directory is private");
        assert_eq!(mode(&files.cert_pem), 0o644);
    }
    // Nothing else (no temporary files) is left behind.
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [CERT_DER_FILE, CERT_PEM_FILE, KEY_FILE]);

    let again = CertificateAuthority::load_or_create(&dir).unwrap();
    assert_eq!(again.cert_der(), ca.cert_der());
    assert_eq!(again.cert_pem(), ca.cert_pem());
    assert_eq!(again.common_name(), ca.common_name());
    assert_eq!(
        fs::read_to_string(&files.key).unwrap(),
        key,
        "key untouched"
    );
}

#[test]
fn a_missing_der_copy_is_rewritten_from_the_pem() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
    fs::remove_file(dir.path().join(CERT_DER_FILE)).unwrap();
    CertificateAuthority::load_or_create(dir.path()).unwrap();
    assert_eq!(
        fs::read(dir.path().join(CERT_DER_FILE)).unwrap(),
        ca.cert_der()
    );
}

#[test]
fn a_corrupt_key_names_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_create(dir.path()).unwrap();
    let key = dir.path().join(KEY_FILE);
    fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = CertificateAuthority::load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::CorruptKey { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&key.display().to_string()), "{message}");
    assert!(message.contains("capscope ca regenerate"), "{message}");

    fs::write(&key, b"\xff\xfe garbage").unwrap();
    let err = CertificateAuthority::load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::CorruptKey { .. }), "{err:?}");
}

#[test]
fn a_corrupt_certificate_names_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_create(dir.path()).unwrap();
    let cert = dir.path().join(CERT_PEM_FILE);
    fs::write(&cert, "not a certificate").unwrap();
    let err = CertificateAuthority::load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::CorruptCert { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&cert.display().to_string()), "{message}");
    assert!(message.contains("capscope ca regenerate"), "{message}");

    // A well-formed PEM block around bytes that are not X.509.
    fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = CertificateAuthority::load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::CorruptCert { .. }), "{err:?}");
}

#[test]
fn a_key_from_another_ca_is_a_mismatch() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_create(a.path()).unwrap();
    CertificateAuthority::load_or_create(b.path()).unwrap();
    fs::copy(b.path().join(KEY_FILE), a.path().join(KEY_FILE)).unwrap();
    let err = CertificateAuthority::load_or_create(a.path()).unwrap_err();
    assert!(matches!(err, CaError::KeyMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("capscope ca regenerate"));
}

#[test]
fn half_a_ca_is_reported_not_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_create(dir.path()).unwrap();
    let cert_before = fs::read(dir.path().join(CERT_PEM_FILE)).unwrap();
    fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let err = CertificateAuthority::load_or_create(dir.path()).unwrap_err();
    match &err {
        CaError::Incomplete { missing, .. } => assert_eq!(missing, &dir.path().join(KEY_FILE)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fs::read(dir.path().join(CERT_PEM_FILE)).unwrap(),
        cert_before
    );
}

#[test]
fn an_unreadable_key_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_create(dir.path()).unwrap();
    let key = dir.path().join(KEY_FILE);
    // A directory in the key's place cannot be read, even by root (file modes would not stop it).
    fs::remove_file(&key).unwrap();
    fs::create_dir(&key).unwrap();
    let err = CertificateAuthority::load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, CaError::Read { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&key.display().to_string()), "{message}");
    assert!(message.contains("capscope ca regenerate"), "{message}");
}

#[test]
fn regenerate_replaces_the_ca_and_keeps_the_old_files_as_backups() {
    let dir = tempfile::tempdir().unwrap();
    let old = CertificateAuthority::load_or_create(dir.path()).unwrap();
    let old_key = fs::read(dir.path().join(KEY_FILE)).unwrap();

    let new = CertificateAuthority::regenerate(dir.path()).unwrap();
    assert_ne!(new.cert_der(), old.cert_der());
    assert_eq!(
        fs::read(dir.path().join(format!("{CERT_PEM_FILE}.bak"))).unwrap(),
        old.cert_pem().as_bytes()
    );
    assert_eq!(
        fs::read(dir.path().join(format!("{CERT_DER_FILE}.bak"))).unwrap(),
        old.cert_der()
    );
    let key_backup = dir.path().join(format!("{KEY_FILE}.bak"));
    assert_eq!(fs::read(&key_backup).unwrap(), old_key);
    #[cfg(unix)]
    assert_eq!(mode(&key_backup), 0o600);

    let reloaded = CertificateAuthority::load_or_create(dir.path()).unwrap();
    assert_eq!(reloaded.cert_der(), new.cert_der());
}

#[test]
fn regenerate_works_on_a_fresh_directory() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("ca");
    let ca = CertificateAuthority::regenerate(&dir).unwrap();
    assert_eq!(fs::read(dir.join(CERT_DER_FILE)).unwrap(), ca.cert_der());
}

#[test]
fn an_in_memory_ca_has_no_files() {
    assert!(CertificateAuthority::generate().unwrap().files().is_none());
}

/// Several creators racing on one empty directory (two `capscope` commands started at once) all end
/// with the same CA, and the key on disk matches the certificate on disk.
#[test]
fn racing_creators_agree_on_one_matching_pair() {
    const RACERS: usize = 6;
    const ROUNDS: usize = 8;
    for round in 0..ROUNDS {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("ca");
        let start = std::sync::Arc::new(std::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (dir, start) = (dir.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    CertificateAuthority::load_or_create(&dir).map(|ca| ca.cert_pem().to_owned())
                })
            })
            .collect();
        let certs: Vec<String> = racers
            .into_iter()
            .map(|r| {
                r.join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {round}: {e}"))
            })
            .collect();
        assert!(
            certs.iter().all(|c| c == &certs[0]),
            "round {round}: every racer got the same CA"
        );
        let after = CertificateAuthority::load_or_create(&dir)
            .unwrap_or_else(|e| panic!("round {round}: the pair on disk is broken: {e}"));
        assert_eq!(after.cert_pem(), certs[0], "round {round}");
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [CERT_DER_FILE, CERT_PEM_FILE, KEY_FILE],
            "round {round}: no leftovers"
        );
    }
}

/// A key others can read is narrowed back to 0600 and reported; an open directory is reported and
/// left alone; a private CA says nothing.
#[cfg(unix)]
#[test]
fn exposed_permissions_are_reported_and_the_key_narrowed() {
    use capscope_ca::CaWarning;
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("ca");
    let ca = CertificateAuthority::load_or_create(&dir).unwrap();
    assert!(ca.warnings().is_empty(), "{:?}", ca.warnings());
    let key = dir.join(KEY_FILE);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
    let ca = CertificateAuthority::load_or_create(&dir).unwrap();
    assert_eq!(
        ca.warnings(),
        [
            CaWarning::KeyExposed {
                path: key.clone(),
                mode: 0o640,
                fixed: true
            },
            CaWarning::DirOpen {
                path: dir.clone(),
                mode: 0o750
            }
        ]
    );
    assert!(ca.warnings()[1].to_string().contains("chmod 700"));
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&dir), 0o750);
}
