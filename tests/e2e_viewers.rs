//! How real viewers connect, end to end over 127.0.0.1: the simulated grid, capscope and the scripted
//! viewer behaving as Firestorm (get_grid_info first), LibreMetaverse (LLSD login) and the Linden
//! viewer against Second Life's MFA and login redirects.
//!
//! - Firestorm's grid manager gets the grid's own grid info with `login` pointing at capscope, and the
//!   login it then makes goes through capscope.
//! - An LLSD login is rewritten in login mode (the viewer never sees an upstream URL) and recorded as
//!   a Login in both modes, and its caps are named.
//! - A login redirected with `indeterminate` comes back through capscope, and an MFA challenge and
//!   its answer are both recorded.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use capscope::mockgrid::viewer::{Journal, LoginForm, Viewer, ViewerConfig};
use capscope::mockgrid::MockGridConfig;
use capscope::record::{Kind, Record, State};
use common::grid::{GridEnv as Env, TestMode, WAIT};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

async fn setup(
    mode: TestMode,
    grid_config: MockGridConfig,
    viewer: impl FnOnce(&mut ViewerConfig),
) -> Env {
    Env::start(mode, grid_config, viewer).await
}

/// In login mode every URL the viewer learnt is a capscope URL.
fn assert_only_capscope_urls(j: &Journal, proxy_base: &str) {
    assert!(!j.learnt_urls.is_empty());
    for url in &j.learnt_urls {
        assert!(
            url.starts_with(proxy_base),
            "the viewer learnt an upstream URL: {url}"
        );
    }
}

fn logins(records: &BTreeMap<u64, Arc<Record>>) -> Vec<&Arc<Record>> {
    records
        .values()
        .filter(|r| r.kind == Kind::Login && r.state != State::Open)
        .collect()
}

#[tokio::test]
async fn firestorm_adds_the_grid_from_get_grid_info_and_logs_in_through_capscope() {
    let mut env = setup(TestMode::Login, MockGridConfig::for_tests(), |c| {
        c.grid_info = true;
    })
    .await;
    let running = env.viewer.start().await.unwrap();
    let j = env.viewer.journal();
    // The grid info's login is capscope's; the grid's own other fields are kept.
    let info_url = format!("{}/login/get_grid_info", env.proxy_base);
    assert_eq!(j.requests[0].url, info_url);
    assert_eq!(j.learnt_urls[0], format!("{}/login", env.proxy_base));
    assert_eq!(j.requests[1].url, format!("{}/login", env.proxy_base));
    assert_only_capscope_urls(&j, &env.proxy_base);
    env.wait_for("the grid info record and the login", |r| {
        r.values().any(|r| {
            r.cap.as_deref() == Some("get_grid_info")
                && r.state == State::Done
                && r.response.as_ref().is_some_and(|resp| {
                    let text = String::from_utf8_lossy(&resp.body.data);
                    text.contains("<gridname>capscope mock grid</gridname>")
                        && text.contains("a=1&amp;b=2")
                })
        }) && !logins(r).is_empty()
    })
    .await;
    drop(running);
}

async fn llsd_login(mode: TestMode) {
    let mut env = setup(mode, MockGridConfig::for_tests(), |c| {
        c.login_form = LoginForm::Llsd;
    })
    .await;
    let running = env.viewer.start().await.unwrap();
    assert_eq!(
        env.viewer
            .activity_round(running.login.inventory_root)
            .await,
        0,
        "{:?}",
        env.viewer.journal().errors
    );
    let j = env.viewer.journal();
    if mode == TestMode::Login {
        assert_only_capscope_urls(&j, &env.proxy_base);
    } else {
        assert!(j
            .learnt_urls
            .iter()
            .all(|u| !u.starts_with(&env.proxy_base)));
    }
    let inventory = j.caps["FetchInventoryDescendents2"].clone();
    env.wait_for("an LLSD Login record and named caps", |r| {
        let login = logins(r).into_iter().any(|l| {
            l.cap.as_deref() == Some("login")
                && l.notes.iter().any(|n| n.contains("LLSD login"))
                && l.notes.iter().any(|n| n.contains("succeeded"))
                && l.region
                    .as_deref()
                    .is_some_and(|r| r.contains("(1000, 1000)"))
        });
        let named = r.values().any(|rec| {
            rec.cap.as_deref() == Some("FetchInventoryDescendents2")
                && rec.request.as_ref().is_some_and(|q| {
                    q.url.starts_with(inventory.as_str())
                        || q.client_url
                            .as_deref()
                            .is_some_and(|c| inventory.ends_with(c))
                })
        });
        login && named
    })
    .await;
    drop(running);
}

#[tokio::test]
async fn an_llsd_login_is_rewritten_in_login_mode() {
    llsd_login(TestMode::Login).await;
}

#[tokio::test]
async fn an_llsd_login_is_read_in_http_proxy_mode() {
    llsd_login(TestMode::HttpProxy).await;
}

async fn redirect_and_mfa(form: LoginForm) {
    let grid_config = MockGridConfig {
        login_redirect: true,
        mfa_token: Some("123456".into()),
        ..MockGridConfig::for_tests()
    };
    let mut env = setup(TestMode::Login, grid_config, |c| {
        c.login_form = form;
        c.mfa_token = Some("123456".into());
    })
    .await;
    let running = env.viewer.start().await.unwrap();
    let j = env.viewer.journal();
    assert_eq!(j.login_steps, ["indeterminate", "mfa_challenge", "true"]);
    // The retry went to capscope, not to the grid's next_url.
    assert_only_capscope_urls(&j, &env.proxy_base);
    let retry = &j.requests[1].url;
    assert!(
        retry.starts_with(&format!("{}/cap/", env.proxy_base)),
        "{retry}"
    );
    env.wait_for("three Login records", |r| logins(r).len() == 3)
        .await;
    let notes: Vec<String> = logins(&env.records.by_id)
        .iter()
        .map(|r| r.notes.join(" | "))
        .collect();
    assert!(notes[0].contains("login=indeterminate"), "{notes:?}");
    assert!(notes[0].contains("rewrote next_url"), "{notes:?}");
    assert!(notes[1].contains("mfa_challenge"), "{notes:?}");
    assert!(notes[2].contains("succeeded"), "{notes:?}");
    let upstream = env.grid.login_url.trim_end_matches('/').to_owned();
    let went = logins(&env.records.by_id)[1]
        .request
        .as_ref()
        .map(|q| q.url.clone())
        .unwrap_or_default();
    assert!(went.starts_with(&upstream), "{went}");
    drop(running);
}

#[tokio::test]
async fn a_redirected_login_with_mfa_comes_back_through_capscope_xmlrpc() {
    redirect_and_mfa(LoginForm::XmlRpc).await;
}

#[tokio::test]
async fn a_redirected_login_with_mfa_comes_back_through_capscope_llsd() {
    redirect_and_mfa(LoginForm::Llsd).await;
}

/// Two agents through one capscope in login mode: each gets its own caps, every record says whose it
/// is, `agent:` tells them apart, and one agent's teleport leaves the other's region alone.
#[tokio::test]
async fn two_agents_through_one_capscope_are_told_apart() {
    let mut env = setup(TestMode::Login, MockGridConfig::for_tests(), |c| {
        c.first = "Ann".into();
        c.last = "Tester".into();
    })
    .await;
    let ann = env.viewer.clone();
    let ann_run = ann.start().await.unwrap();
    let mut bob_config =
        ViewerConfig::new(format!("{}/login", env.proxy_base), env.grid.ca_pem.clone());
    bob_config.first = "Bob".into();
    bob_config.last = "Tester".into();
    bob_config.login_form = LoginForm::Llsd;
    let bob = Viewer::new(bob_config).unwrap();
    let bob_run = bob.start().await.unwrap();

    // Each has its own caps, all of them capscope URLs.
    let (a, b) = (ann.journal(), bob.journal());
    assert_only_capscope_urls(&a, &env.proxy_base);
    assert_only_capscope_urls(&b, &env.proxy_base);
    assert_ne!(a.current_seed, b.current_seed);
    for (name, url) in &a.caps {
        assert_ne!(b.caps.get(name), Some(url), "{name} shared");
    }

    // Bob (the latest login) teleports; Ann stays and keeps working.
    env.grid.trigger_teleport(1).unwrap();
    assert!(
        bob.wait_until(WAIT, |j| j.region_switches.len() == 1).await,
        "{:?}",
        bob.journal()
    );
    assert_eq!(ann.activity_round(ann_run.login.inventory_root).await, 0);
    assert_eq!(bob.activity_round(bob_run.login.inventory_root).await, 0);
    let ann_inventory = a.caps["FetchInventoryDescendents2"].clone();

    env.wait_for("both agents' logins, caps and Bob's teleport", |r| {
        let has = |agent: &str, pred: &dyn Fn(&Record) -> bool| {
            r.values()
                .any(|rec| rec.agent.as_deref() == Some(agent) && pred(rec))
        };
        has("Ann Tester", &|rec| rec.kind == Kind::Login)
            && has("Bob Tester", &|rec| rec.kind == Kind::Login)
            && has("Bob Tester", &|rec| {
                rec.event
                    .as_ref()
                    .is_some_and(|e| e.message == "TeleportFinish")
            })
            && has("Ann Tester", &|rec| {
                rec.state == State::Done && rec.cap.as_deref() == Some("FetchInventoryDescendents2")
            })
            && has("Bob Tester", &|rec| {
                rec.state == State::Done && rec.cap.as_deref() == Some("FetchInventoryDescendents2")
            })
    })
    .await;

    // Every named record belongs to one of them, and the filter tells them apart.
    let filter = capscope::filter::Filter::parse("agent:\"ann *\"").unwrap();
    for rec in env.records.all() {
        if rec.cap.is_some() && rec.cap.as_deref() != Some("get_grid_info") {
            assert!(rec.agent.is_some(), "no agent: {rec:#?}");
        }
        let is_ann = rec.agent.as_deref() == Some("Ann Tester");
        assert_eq!(filter.matches(rec), is_ann, "{rec:#?}");
        // Bob's teleport did not make Ann's region one "the avatar left".
        if is_ann {
            assert!(
                !rec.notes
                    .iter()
                    .any(|n| n.contains("region the avatar left")),
                "{rec:#?}"
            );
        }
    }
    assert!(env.records.all().any(|rec| {
        rec.agent.as_deref() == Some("Ann Tester")
            && rec
                .request
                .as_ref()
                .and_then(|q| q.client_url.as_deref())
                .is_some_and(|c| ann_inventory.ends_with(c))
    }));
    drop((ann_run, bob_run));
}

// WebSocket through capscope in HTTP proxy mode: over plain HTTP and inside an intercepted TLS tunnel.

const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Reads an HTTP response head (up to the blank line) from `io`.
async fn read_head<I: tokio::io::AsyncRead + Unpin>(io: &mut I) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        io.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
        assert!(head.len() < 16 * 1024, "head too long");
    }
    String::from_utf8(head).unwrap()
}

/// Handshake, one text message echoed, close: returns the echoed text.
async fn websocket_session<I>(io: &mut I, target: &str, host: &str) -> String
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(io).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // The grid's own accept value (RFC 6455's example key) came through untouched.
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    let text = b"hello through capscope";
    let mask = [7u8, 1, 9, 3];
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    io.write_all(&frame).await.unwrap();
    let mut h = [0u8; 2];
    io.read_exact(&mut h).await.unwrap();
    assert_eq!(h[0], 0x81);
    let mut echoed = vec![0u8; usize::from(h[1] & 0x7f)];
    io.read_exact(&mut echoed).await.unwrap();
    // Close, and the echo's close.
    io.write_all(&[0x88, 0x80, 0, 0, 0, 0]).await.unwrap();
    let mut close = [0u8; 2];
    io.read_exact(&mut close).await.unwrap();
    assert_eq!(close[0], 0x88);
    String::from_utf8(echoed).unwrap()
}

async fn wait_for_websocket_record(env: &mut Env) {
    env.wait_for("the WebSocket record, closed with its counts", |r| {
        r.values().any(|rec| {
            rec.state == State::Done
                && rec.response.as_ref().is_some_and(|resp| resp.status == 101)
                && rec
                    .tunnel
                    .as_ref()
                    .is_some_and(|t| t.bytes_up > 0 && t.bytes_down > 0)
                && rec.notes.iter().any(|n| n.contains("1 message up, 1 down"))
                && rec
                    .notes
                    .iter()
                    .any(|n| n.contains("up: text \"hello through capscope\""))
        })
    })
    .await;
}

#[tokio::test]
async fn a_websocket_over_plain_http_is_relayed_both_ways_and_recorded() {
    let mut env = setup(TestMode::HttpProxy, MockGridConfig::for_tests(), |_| {}).await;
    let login = env.grid.login_url.trim_end_matches('/').to_owned();
    let host = login.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(env.proxy_addr)
        .await
        .unwrap();
    let echoed = websocket_session(&mut tcp, &format!("{login}/ws"), &host).await;
    assert_eq!(echoed, "hello through capscope");
    drop(tcp);
    wait_for_websocket_record(&mut env).await;
}

#[tokio::test]
async fn a_websocket_inside_an_intercepted_tls_tunnel_is_relayed_and_recorded() {
    use tokio::io::AsyncWriteExt;
    let mut env = setup(TestMode::HttpProxy, MockGridConfig::for_tests(), |_| {}).await;
    let region = env.grid.regions[0]
        .base_url
        .trim_start_matches("https://")
        .to_owned();
    let mut tcp = tokio::net::TcpStream::connect(env.proxy_addr)
        .await
        .unwrap();
    tcp.write_all(format!("CONNECT {region} HTTP/1.1\r\nHost: {region}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(env.ca.cert_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let echoed = websocket_session(&mut tls, "/ws", &region).await;
    assert_eq!(echoed, "hello through capscope");
    // Gone without close_notify, as clients often go: still a clean end of the relay.
    drop(tls);
    wait_for_websocket_record(&mut env).await;
}

#[test]
fn the_mock_grids_websocket_accept_follows_rfc_6455() {
    assert_eq!(
        capscope::mockgrid::websocket_accept(WS_KEY),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

/// A teleport to a region on another host (as a Hypergrid jump lands on another grid's simulator):
/// its seed comes only in `TeleportFinish`, and its caps are still reached through capscope (login
/// mode) and named (both modes).
async fn teleport_to_another_host(mode: TestMode) {
    let grid_config = MockGridConfig {
        other_host_region: true,
        ..MockGridConfig::for_tests()
    };
    let mut env = setup(mode, grid_config, |_| {}).await;
    let far = env.grid.regions[2].base_url.clone();
    assert!(far.starts_with("https://localhost:"), "{far}");
    let running = env.viewer.start().await.unwrap();
    env.grid.trigger_teleport(2).unwrap();
    assert!(
        env.viewer
            .wait_until(WAIT, |j| j.region_switches.len() == 1)
            .await,
        "{:?}",
        env.viewer.journal()
    );
    assert_eq!(
        env.viewer
            .activity_round(running.login.inventory_root)
            .await,
        0,
        "{:?}",
        env.viewer.journal().errors
    );
    let j = env.viewer.journal();
    if mode == TestMode::Login {
        assert_only_capscope_urls(&j, &env.proxy_base);
    } else {
        assert!(j.caps.values().all(|u| u.starts_with(&far)), "{:?}", j.caps);
    }
    let port = far.rsplit(':').next().unwrap().to_owned();
    env.wait_for("caps of the far region, named, with its region", |r| {
        r.values().any(|rec| {
            rec.state == State::Done
                && rec.cap.as_deref() == Some("FetchInventoryDescendents2")
                && rec
                    .request
                    .as_ref()
                    .is_some_and(|q| q.url.starts_with(&far))
                && rec
                    .region
                    .as_deref()
                    .is_some_and(|reg| reg.contains(&format!("localhost:{port}")))
        })
    })
    .await;
    drop(running);
}

#[tokio::test]
async fn a_teleport_to_another_host_stays_behind_capscope_in_login_mode() {
    teleport_to_another_host(TestMode::Login).await;
}

#[tokio::test]
async fn a_teleport_to_another_host_is_named_in_http_proxy_mode() {
    teleport_to_another_host(TestMode::HttpProxy).await;
}
