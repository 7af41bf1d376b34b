//! The crate's error type: every failure names what failed, the file or host it concerns, and
//! what the user can do about it. Owns no logic.

use std::io;
use std::path::PathBuf;

use time::OffsetDateTime;

/// The command that replaces a broken or expired CA; error messages point the user to it.
pub const REGENERATE_HINT: &str =
    "`capscope ca regenerate` creates a new CA (you must then trust the new certificate again)";

/// What went wrong while creating, loading or using the certificate authority.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The CA directory could not be created.
    #[error("cannot create the CA directory {path}: {source}; check the permissions of its parent or pick another directory with --ca-dir")]
    CreateDir { path: PathBuf, source: io::Error },

    /// A CA file exists but could not be read (permissions, I/O error).
    #[error("cannot read {path}: {source}; fix its permissions, or {REGENERATE_HINT}")]
    Read { path: PathBuf, source: io::Error },

    /// A CA file could not be written (or moved into place).
    #[error("cannot write {path}: {source}; check the directory's permissions and free space")]
    Write { path: PathBuf, source: io::Error },

    /// An existing CA file could not be moved aside before regenerating.
    #[error("cannot move {path} aside to {backup}: {source}; remove it by hand and retry")]
    Backup {
        path: PathBuf,
        backup: PathBuf,
        source: io::Error,
    },

    /// One of the two files that make up the CA is present, the other is not.
    #[error(
        "the CA in {dir} is incomplete: {missing} is missing; restore it, or {REGENERATE_HINT}"
    )]
    Incomplete { dir: PathBuf, missing: PathBuf },

    /// The private key file is not a PEM private key that rcgen understands.
    #[error(
        "the CA key {path} is corrupt or not a supported private key ({source}); {REGENERATE_HINT}"
    )]
    CorruptKey { path: PathBuf, source: rcgen::Error },

    /// The certificate file is not a PEM certificate, or not one capscope can issue from.
    #[error("the CA certificate {path} is corrupt ({reason}); {REGENERATE_HINT}")]
    CorruptCert { path: PathBuf, reason: CertProblem },

    /// The key and the certificate on disk do not belong together.
    #[error("the CA key {key} does not match the certificate {cert}; restore the matching pair, or {REGENERATE_HINT}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },

    /// The CA certificate on disk has expired (or is not valid yet).
    #[error("the CA certificate {path} is valid only from {not_before} to {not_after}; {REGENERATE_HINT}")]
    OutsideValidity {
        path: PathBuf,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    },

    /// The host name given for a leaf certificate cannot be put in a certificate.
    #[error("cannot mint a certificate for host {host:?}: {reason}")]
    InvalidHost { host: String, reason: HostProblem },

    /// Key generation or signing failed inside rcgen/ring (a bug or a broken system RNG).
    #[error("cannot {what}: {source}")]
    Crypto {
        what: &'static str,
        source: rcgen::Error,
    },

    /// The system random number generator failed.
    #[error("the system random number generator failed while {what}")]
    Random { what: &'static str },

    /// rustls refused the minted certificate or the TLS settings for a host.
    #[error("cannot build the TLS server configuration for host {host:?}: {source}")]
    Tls { host: String, source: rustls::Error },
}

/// Why a CA certificate file was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertProblem {
    /// No `-----BEGIN CERTIFICATE-----` block could be decoded.
    #[error("no PEM certificate found: {0}")]
    Pem(rustls::pki_types::pem::Error),
    /// The DER inside the PEM block is not an X.509 certificate.
    #[error("not an X.509 certificate: {0}")]
    X509(x509_parser::error::X509Error),
    /// rcgen could not derive an issuer (subject name, key identifier) from the certificate.
    #[error("cannot issue from it: {0}")]
    Issuer(rcgen::Error),
    /// The certificate is not a CA certificate.
    #[error("it is not a CA certificate (basicConstraints CA:TRUE is missing)")]
    NotCa,
}

/// Why a host name was rejected for a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostProblem {
    /// The host is empty (after removing brackets and a trailing dot).
    #[error("the host is empty")]
    Empty,
    /// The host is longer than a DNS name may be.
    #[error("the host is longer than {max} characters")]
    TooLong { max: usize },
    /// The host contains a character a DNS name cannot hold (e.g. a port, a space, non-ASCII;
    /// internationalised names must be given in their `xn--` form).
    #[error("the host contains {0:?}, which a DNS name cannot hold (pass the bare host, no port; IDNs in xn-- form)")]
    BadCharacter(char),
    /// The host has an empty label (`a..b`).
    #[error("the host has an empty label")]
    EmptyLabel,
}
