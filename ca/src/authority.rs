//! The certificate authority itself: creating or loading the CA, minting leaf certificates that
//! pass the Second Life viewer's own checks, and handing out cached rustls server configurations.
//! Owns certificate contents and TLS server settings; file layout lives in `files`, host parsing in
//! `host`. Knows nothing of HTTP or of the proxy.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::ServerConfig;
use time::{Duration, OffsetDateTime};

use crate::cache::{ConfigCache, DEFAULT_CACHE_CAPACITY};
use crate::error::{CaError, CertProblem};
use crate::files::{self, CaFiles, CaWarning, Secrecy};
use crate::host::Host;

/// The CA certificate is valid this long from its creation (about ten years).
pub const CA_VALIDITY: Duration = Duration::days(3650);
/// A leaf certificate is valid this long from its minting (one year; never past the CA's end).
pub const LEAF_VALIDITY: Duration = Duration::days(365);
/// Every certificate starts this long before the moment it is made, so a client whose clock is
/// somewhat behind ours still accepts it.
pub const BACKDATE: Duration = Duration::days(1);
/// Random bytes in each serial number (the top bit is cleared to keep it positive, the next one
/// set so that the encoding keeps its full length: 126 random bits, RFC 5280 allows 20 bytes).
pub const SERIAL_BYTES: usize = 16;
/// The organisation (O=) of the CA and of every leaf.
pub const ORGANIZATION: &str = "capscope";
/// Resumable TLS sessions kept in memory (shared by every host's configuration).
pub const SESSION_CACHE_SIZE: usize = 4096;
/// ALPN protocols offered to clients by default, most preferred first.
pub const DEFAULT_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// The longest host name put in the CA's common name (the tag keeps it unique anyway).
const MAX_HOSTNAME_IN_CN: usize = 40;
/// Where the CA's common name takes the machine's name from (first readable wins; unix only).
const HOSTNAME_FILES: [&str; 2] = ["/proc/sys/kernel/hostname", "/etc/hostname"];
/// How long a loader waits for the certificate of a key another process has just written (creating
/// a CA takes milliseconds); a key older than this without a certificate is an incomplete CA.
pub const CREATION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a loader looks again while it waits for that certificate.
const CREATION_POLL: std::time::Duration = std::time::Duration::from_millis(10);
/// Stand-in path in errors about a CA that only exists in memory.
const IN_MEMORY: &str = "(in-memory CA)";

/// A leaf certificate for one host, with its private key.
#[derive(Debug)]
pub struct Leaf {
    /// The leaf certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The leaf's private key, PKCS#8 DER (ECDSA P-256).
    pub key_der: PrivateKeyDer<'static>,
    /// What the server sends: the leaf first, then the CA certificate.
    pub chain: Vec<CertificateDer<'static>>,
}

/// capscope's certificate authority. `Send + Sync`: share it in an `Arc`.
///
/// Every certificate it makes is ECDSA P-256 and carries what the Second Life viewer insists on
/// (it checks certificates itself, more strictly than browsers): a Subject Key Identifier on every
/// certificate; on the CA `basicConstraints CA:TRUE` (critical) and key usage keyCertSign +
/// cRLSign; on each leaf an Authority Key Identifier equal to the CA's SKI, key usage
/// digitalSignature, extended key usage serverAuth, and the host both as subjectAltName (DNS name
/// or iPAddress) and as common name.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    common_name: String,
    not_after: OffsetDateTime,
    files: Option<CaFiles>,
    provider: Arc<CryptoProvider>,
    sessions: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
    alpn: Vec<Vec<u8>>,
    cache: ConfigCache,
    warnings: Vec<CaWarning>,
}

impl fmt::Debug for CertificateAuthority {
    /// Shows who the CA is, never its key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("common_name", &self.common_name)
            .field("not_after", &self.not_after)
            .field("files", &self.files)
            .field("cached_hosts", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads the CA from `dir`, or creates it there on first use: the directory (mode 0700 when
    /// created), `ca-key.pem` (0600), `ca-cert.pem` and `ca-cert.der`. Later calls reuse the same
    /// key and certificate bytes. A missing `ca-cert.der` is rewritten from the PEM.
    ///
    /// Fails, naming the file and suggesting `capscope ca regenerate`, when only one of key and
    /// certificate exists, when either is unreadable or corrupt, when they do not match, or when
    /// the certificate has expired.
    ///
    /// Safe when several processes (or threads) create the CA in one directory at once: the key is
    /// published only if none exists (see [`files::write_new`]), only the process that published it
    /// writes the certificate, and the others wait for that certificate and load the winner's pair.
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        let files = CaFiles::in_dir(dir);
        let deadline = Instant::now() + CREATION_WAIT;
        loop {
            let key = files::read_optional(&files.key)?;
            let cert = files::read_optional(&files.cert_pem)?;
            match (key, cert) {
                (None, None) => match Self::create_new_in(files.clone())? {
                    Some(ca) => return Ok(ca),
                    // Another creator published its key first: load its pair.
                    None => continue,
                },
                (Some(key), Some(cert)) => return Self::load(files, &key, &cert),
                // A key without its certificate yet: another creator is between the two writes.
                (Some(_), None)
                    if Instant::now() < deadline
                        && files::age(&files.key).is_some_and(|a| a < CREATION_WAIT) =>
                {
                    std::thread::sleep(CREATION_POLL);
                }
                (None, Some(_)) => {
                    return Err(CaError::Incomplete {
                        dir: files.dir.clone(),
                        missing: files.key,
                    })
                }
                (Some(_), None) => {
                    return Err(CaError::Incomplete {
                        dir: files.dir.clone(),
                        missing: files.cert_pem,
                    })
                }
            }
        }
    }

    /// A new CA that lives only in memory (tests, the demo).
    pub fn generate() -> Result<Self, CaError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (key, cert_der) = new_ca(&provider)?;
        Self::assemble(key, cert_der, None, provider)
    }

    /// Replaces the CA in `dir` with a new one. The previous files, if any, are renamed with a
    /// `.bak` suffix (`ca-key.pem.bak` keeps mode 0600), replacing older backups; clients must
    /// then trust the new certificate.
    pub fn regenerate(dir: &Path) -> Result<Self, CaError> {
        let files = CaFiles::in_dir(dir);
        files::create_dir(&files.dir)?;
        for path in files.all() {
            files::move_aside(path)?;
        }
        match Self::create_new_in(files)? {
            Some(ca) => Ok(ca),
            // Someone created a CA between the move and the write: that one is the new CA.
            None => Self::load_or_create(dir),
        }
    }

    /// Keeps at most `capacity` hosts' configurations (default [`DEFAULT_CACHE_CAPACITY`]);
    /// empties the cache.
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = ConfigCache::new(capacity);
        self
    }

    /// Offers these ALPN protocols (default [`DEFAULT_ALPN`]: h2, then http/1.1); empties the
    /// cache so that every configuration handed out afterwards carries them.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self.cache = ConfigCache::new(self.cache.capacity());
        self
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        self.cert_der.as_ref()
    }

    /// The CA's common name, e.g. `capscope CA (myhost 3f9a1c2e)`.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// What the user should know about the CA's files (a key others could read, now narrowed to
    /// 0600; a directory others can enter), found when it was loaded or created. Every command
    /// that loads the CA shows these; the crate does not log them itself.
    pub fn warnings(&self) -> &[CaWarning] {
        &self.warnings
    }

    /// The files this CA was loaded from or written to; `None` for an in-memory CA.
    pub fn files(&self) -> Option<&CaFiles> {
        self.files.as_ref()
    }

    /// How many hosts currently have a cached configuration.
    pub fn cached_hosts(&self) -> usize {
        self.cache.len()
    }

    /// Mints a new leaf certificate for `host` (a DNS name or an IPv4/IPv6 address, optionally in
    /// brackets), without caching. About 0.1 ms of CPU in a release build (`benches/mint.rs`).
    pub fn mint(&self, host: &str) -> Result<Leaf, CaError> {
        self.mint_for(&parse_host(host)?)
    }

    /// The TLS server configuration to present to a client that asked for `host`: a leaf for
    /// `host`, ALPN h2 + http/1.1, session resumption by tickets and by session id (one ticket key
    /// and one session cache shared by all hosts). Cached per host, least recently used evicted
    /// beyond [`DEFAULT_CACHE_CAPACITY`], so repeated calls return the same `Arc`.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, CaError> {
        let host = parse_host(host)?;
        if let Some(config) = self.cache.get(&host) {
            return Ok(config);
        }
        // Minted outside the cache lock: two racing first requests for one host both mint, and
        // the cache keeps the first, so callers still share one `Arc`.
        let leaf = self.mint_for(&host)?;
        let config = self.build_config(&host, leaf)?;
        tracing::debug!(host = %host, "minted a leaf certificate");
        Ok(self.cache.insert(host, Arc::new(config)))
    }

    fn build_config(&self, host: &Host, leaf: Leaf) -> Result<ServerConfig, CaError> {
        let tls = |source| CaError::Tls {
            host: host.to_string(),
            source,
        };
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_no_client_auth()
            .with_single_cert(leaf.chain, leaf.key_der)
            .map_err(tls)?;
        config.alpn_protocols = self.alpn.clone();
        config.session_storage = Arc::clone(&self.sessions);
        config.ticketer = Arc::clone(&self.ticketer);
        Ok(config)
    }

    fn mint_for(&self, host: &Host) -> Result<Leaf, CaError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(crypto("generate a leaf key"))?;
        let name = host.to_string();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&name);
        params.subject_alt_names = vec![match host {
            Host::Dns(dns) => SanType::DnsName(
                dns.clone()
                    .try_into()
                    .map_err(crypto("encode the host as a DNS name"))?,
            ),
            Host::Ip(ip) => SanType::IpAddress(*ip),
        }];
        // ExplicitNoCa writes basicConstraints CA:FALSE and, with it, the Subject Key Identifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial(&self.provider)?);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = (now + LEAF_VALIDITY).min(self.not_after);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(crypto("sign a leaf certificate"))?;
        let cert_der = cert.der().clone();
        Ok(Leaf {
            chain: vec![cert_der.clone(), self.cert_der.clone()],
            cert_der,
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// Creates a CA in `files.dir` unless another creator publishes its key first (then `None`).
    fn create_new_in(files: CaFiles) -> Result<Option<Self>, CaError> {
        files::create_dir(&files.dir)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (key, cert_der) = new_ca(&provider)?;
        let mut ca = Self::assemble(key, cert_der, Some(files.clone()), provider)?;
        // Key first, and only if there is none: whoever publishes the key owns the certificate
        // write. A crash between the writes leaves an "incomplete CA" error, never a certificate
        // whose key is lost.
        let key_pem = ca.issuer.key().serialize_pem();
        if !files::write_new(&files.key, key_pem.as_bytes(), Secrecy::Private)? {
            return Ok(None);
        }
        files::write_atomically(&files.cert_pem, ca.cert_pem.as_bytes(), Secrecy::Public)?;
        files::write_atomically(&files.cert_der, ca.cert_der(), Secrecy::Public)?;
        // The key is new (0600), but the directory may have existed with a wider mode.
        ca.warnings = files::check_permissions(&files);
        tracing::info!(dir = %files.dir.display(), name = %ca.common_name, "created a new CA");
        Ok(Some(ca))
    }

    fn load(files: CaFiles, key_pem: &[u8], cert_pem: &[u8]) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(&String::from_utf8_lossy(key_pem)).map_err(|source| {
            CaError::CorruptKey {
                path: files.key.clone(),
                source,
            }
        })?;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem).map_err(|e| CaError::CorruptCert {
                path: files.cert_pem.clone(),
                reason: CertProblem::Pem(e),
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut ca = Self::assemble(key, cert_der, Some(files.clone()), provider)?;
        ca.warnings = files::check_permissions(&files);
        if files::read_optional(&files.cert_der)?.is_none() {
            files::write_atomically(&files.cert_der, ca.cert_der(), Secrecy::Public)?;
        }
        tracing::debug!(dir = %files.dir.display(), name = %ca.common_name, "loaded the CA");
        Ok(ca)
    }

    /// Checks that `cert_der` is a CA certificate for `key`, valid now, and builds the issuer
    /// from the certificate itself (so leaves carry its exact subject bytes and SKI).
    fn assemble(
        key: KeyPair,
        cert_der: CertificateDer<'static>,
        files: Option<CaFiles>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, CaError> {
        let cert_path = files.as_ref().map_or_else(
            || Path::new(IN_MEMORY).to_path_buf(),
            |f| f.cert_pem.clone(),
        );
        let corrupt = |reason| CaError::CorruptCert {
            path: cert_path.clone(),
            reason,
        };
        let (_, x509) = x509_parser::parse_x509_certificate(cert_der.as_ref()).map_err(|e| {
            corrupt(CertProblem::X509(match e {
                x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
                x509_parser::nom::Err::Incomplete(_) => {
                    x509_parser::error::X509Error::InvalidCertificate
                }
            }))
        })?;
        if !x509.is_ca() {
            return Err(corrupt(CertProblem::NotCa));
        }
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CaError::KeyMismatch {
                cert: cert_path,
                key: files
                    .as_ref()
                    .map_or_else(|| Path::new(IN_MEMORY).to_path_buf(), |f| f.key.clone()),
            });
        }
        let not_before = x509.validity().not_before.to_datetime();
        let not_after = x509.validity().not_after.to_datetime();
        let now = OffsetDateTime::now_utc();
        if now < not_before || now > not_after {
            return Err(CaError::OutsideValidity {
                path: cert_path,
                not_before,
                not_after,
            });
        }
        let common_name = x509
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        drop(x509);
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| corrupt(CertProblem::Issuer(e)))?;
        let cert_pem = pem_encode(&cert_der);
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(|_| CaError::Random {
            what: "making the session ticket key",
        })?;
        Ok(CertificateAuthority {
            issuer,
            cert_der,
            cert_pem,
            common_name,
            not_after,
            files,
            provider,
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
            ticketer,
            alpn: DEFAULT_ALPN.iter().map(|p| p.to_vec()).collect(),
            cache: ConfigCache::new(DEFAULT_CACHE_CAPACITY),
            warnings: Vec::new(),
        })
    }
}

fn parse_host(host: &str) -> Result<Host, CaError> {
    Host::parse(host).map_err(|reason| CaError::InvalidHost {
        host: host.to_owned(),
        reason,
    })
}

fn crypto(what: &'static str) -> impl FnOnce(rcgen::Error) -> CaError {
    move |source| CaError::Crypto { what, source }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn
}

/// A positive serial number with [`SERIAL_BYTES`] bytes from the system RNG.
fn random_serial(provider: &CryptoProvider) -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; SERIAL_BYTES];
    provider
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| CaError::Random {
            what: "drawing a serial number",
        })?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Makes a new self-signed CA: key and certificate.
fn new_ca(provider: &CryptoProvider) -> Result<(KeyPair, CertificateDer<'static>), CaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(crypto("generate the CA key"))?;
    let mut tag = [0u8; 4];
    provider
        .secure_random
        .fill(&mut tag)
        .map_err(|_| CaError::Random {
            what: "naming the CA",
        })?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let common_name = match machine_name() {
        Some(host) => format!("capscope CA ({host} {tag})"),
        None => format!("capscope CA ({tag})"),
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&common_name);
    // Path length 0: this CA signs leaves only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // A self-signed AKI equal to the SKI: lets validators that look issuers up by AKI (the viewer
    // does) find this certificate the same way for the root as for leaves.
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial(provider)?);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    let cert = params
        .self_signed(&key)
        .map_err(crypto("sign the CA certificate"))?;
    Ok((key, cert.der().clone()))
}

/// The machine's name for the CA's common name, so a user with several CAs can tell them apart.
fn machine_name() -> Option<String> {
    HOSTNAME_FILES.iter().find_map(|file| {
        let raw = std::fs::read_to_string(file).ok()?;
        let clean: String = raw
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .take(MAX_HOSTNAME_IN_CN)
            .collect();
        (!clean.is_empty()).then_some(clean)
    })
}

/// PEM text of a certificate, LF line endings on every platform (viewers' CA.pem files are
/// concatenations of such blocks).
fn pem_encode(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
