//! The proxy's cost, measured in one run against a direct connection (`cargo bench --bench proxy`).
//!
//! On 127.0.0.1: a test HTTPS upstream and the clients run in this process; the proxy is the real
//! `capscope run --headless` binary in a child process (its log to /dev/null, its capture saved into
//! a temporary directory, as the shared bench does). When `taskset` is
//! there and the machine has two cores or more, the proxy is pinned to CPU 0 and this process to
//! CPU 1, as in ../shared/bench: "x direct" is then what one proxy core sustains against one
//! client+upstream core. Workloads:
//! - small: GET of a 1 KiB LLSD body over keep-alive HTTPS, 16 connections (requests/s) and
//!   1 connection (latency p50/p99), direct and through the proxy, and their ratio;
//! - handshakes: CONNECT + TLS to a host the proxy has not seen (minting a leaf) and to one it has;
//! - large: one 256 MiB body streamed, direct and through the proxy (MiB/s).
//!
//! The proxy's CPU seconds per workload are read from /proc. `CAPSCOPE_BENCH_SECS` sets the seconds
//! per small workload (default 5); `CAPSCOPE_BIN` another capscope binary to measure;
//! `CAPSCOPE_BENCH_NO_PIN` turns pinning off.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capscope_ca::CertificateAuthority;
use common::*;
use http_body_util::BodyExt;

const CONNECTIONS: usize = 16;
const SMALL_BODY: u64 = 1024;
const LARGE_BODY: u64 = 256 * 1024 * 1024;
const HANDSHAKES: usize = 100;

/// The proxy's CPU, and ours, when pinning.
const PROXY_CPU: &str = "0";
const CLIENT_CPU: &str = "1";

fn main() {
    let pinned = std::env::var_os("CAPSCOPE_BENCH_NO_PIN").is_none()
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
        && Command::new("taskset")
            .args(["-p", "-c", CLIENT_CPU, &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if pinned {
        println!("pinned: proxy on CPU {PROXY_CPU}, client and upstream on CPU {CLIENT_CPU}");
    } else {
        println!("not pinned (no taskset or one core): proxy, client and upstream share the cores");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(pinned));
}

/// The proxy binary as a child process.
struct ProxyProcess {
    child: Child,
    addr: SocketAddr,
    ca: CertificateAuthority,
    _dir: tempfile::TempDir,
}

impl ProxyProcess {
    async fn start(up: &Upstream, pinned: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // A private copy: the shared target directory's binary may be rebuilt under our feet.
        // CAPSCOPE_BIN names another binary to measure.
        let source = std::env::var_os("CAPSCOPE_BIN").map_or_else(
            || env!("CARGO_BIN_EXE_capscope").into(),
            std::path::PathBuf::from,
        );
        let bin = dir.path().join("capscope");
        std::fs::copy(&source, &bin).expect("copy the binary");
        let up_ca = dir.path().join("upstream-ca.pem");
        std::fs::write(&up_ca, up.ca.cert_pem()).expect("write the upstream CA");
        let ca_dir = dir.path().join("ca");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let mut cmd = if pinned {
            let mut c = Command::new("taskset");
            c.args(["-c", PROXY_CPU]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.arg("--ca-dir")
            .arg(&ca_dir)
            .args([
                "run",
                "--headless",
                "--listen",
                &addr.to_string(),
                "--upstream-ca",
            ])
            .arg(&up_ca)
            // The capture is saved as a user's `run` saves it, into this temporary directory (removed
            // with it) rather than the user's data directory.
            .env("CAPSCOPE_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("start capscope");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("capscope exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ca = CertificateAuthority::load_or_create(&ca_dir).expect("the proxy's CA");
        ProxyProcess {
            child,
            addr,
            ca,
            _dir: dir,
        }
    }

    /// The proxy's CPU seconds so far (user + system, all threads).
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) / 100.0
    }
}

/// A process's CPU seconds so far (user + system, all threads; clock ticks of 1/100 s).
fn cpu_seconds_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// This process's CPU seconds (the clients and the upstream).
fn own_cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Small {
    requests: usize,
    rps: f64,
    p50_us: u64,
    p99_us: u64,
}

async fn bench(pinned: bool) {
    let secs: u64 = std::env::var("CAPSCOPE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(secs);
    let up = Arc::new(start_upstream(true).await);
    let proxy = ProxyProcess::start(&up, pinned).await;
    let via_proxy = Arc::new(ProxyClient::new(proxy.addr, &proxy.ca));
    let direct = Arc::new(ProxyClient::new(proxy.addr, &up.ca));
    let path = format!("/llsd/{SMALL_BODY}");

    println!("capscope proxy bench: {secs} s per small workload, {CONNECTIONS} connections\n");
    println!("(cpu: the proxy's on capscope rows; the clients' and upstream's on direct rows)");
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>12} {:>14}",
        "workload", "req/s", "p50 ms", "p99 ms", "cpu s", "cpu us/req"
    );
    let mut ratios = Vec::new();
    for round in 1..=2 {
        let own = own_cpu_seconds();
        let d = small(&direct, &up, &path, CONNECTIONS, duration, false).await;
        let direct_cpu = own_cpu_seconds() - own;
        let cpu = proxy.cpu_seconds();
        let p = small(&via_proxy, &up, &path, CONNECTIONS, duration, true).await;
        row(
            &format!("direct   c{CONNECTIONS} (round {round})"),
            &d,
            Some(direct_cpu),
        );
        row(
            &format!("capscope c{CONNECTIONS} (round {round})"),
            &p,
            Some(proxy.cpu_seconds() - cpu),
        );
        ratios.push(p.rps / d.rps);
    }
    let own = own_cpu_seconds();
    let d1 = small(&direct, &up, &path, 1, duration, false).await;
    let direct_cpu = own_cpu_seconds() - own;
    let cpu = proxy.cpu_seconds();
    let p1 = small(&via_proxy, &up, &path, 1, duration, true).await;
    row("direct   c1", &d1, Some(direct_cpu));
    row("capscope c1", &p1, Some(proxy.cpu_seconds() - cpu));
    println!(
        "small requests: capscope / direct = {} (c{CONNECTIONS}), {:.2} (c1); added p50 latency {:.3} ms\n",
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" / "),
        p1.rps / d1.rps,
        (p1.p50_us as f64 - d1.p50_us as f64) / 1000.0
    );

    // Handshakes: a new host each time (the proxy mints a leaf), then one host again and again.
    let new_host = handshakes(&via_proxy, &up, |i| format!("h{i}.bench.test")).await;
    let cached = handshakes(&via_proxy, &up, |_| "h0.bench.test".to_string()).await;
    let direct_tls = {
        let mut times = Vec::new();
        for _ in 0..HANDSHAKES {
            let t = Instant::now();
            let mut c = direct.direct_https(up.addr).await;
            c.ready().await.unwrap();
            times.push(t.elapsed());
        }
        median(times)
    };
    println!("{:<44} {:>10}", "handshake", "median ms");
    println!(
        "{:<44} {:>10.3}",
        "direct TLS to the upstream",
        ms(direct_tls)
    );
    println!(
        "{:<44} {:>10.3}",
        "CONNECT + TLS, new host (mint a leaf)",
        ms(new_host)
    );
    println!("{:<44} {:>10.3}", "CONNECT + TLS, cached host", ms(cached));
    println!();

    // One large body, streamed.
    let mut d = direct.direct_https(up.addr).await;
    let mut p = via_proxy.https(&up.authority()).await;
    let large = format!("/repeat/{LARGE_BODY}");
    println!("{:<34} {:>10}", "large body (256 MiB)", "MiB/s");
    let mut mibs = Vec::new();
    for round in 1..=2 {
        let own = own_cpu_seconds();
        let dm = stream_large(&mut d, &up, &large).await;
        let direct_cpu = own_cpu_seconds() - own;
        let cpu = proxy.cpu_seconds();
        let pm = stream_large(&mut p, &up, &large).await;
        println!(
            "{:<34} {:>10.0}   client+upstream cpu {direct_cpu:.2} s",
            format!("direct   (round {round})"),
            dm
        );
        let used = proxy.cpu_seconds() - cpu;
        println!(
            "{:<34} {:>10.0}   proxy cpu {used:.2} s = {:.0} MiB per proxy cpu second",
            format!("capscope (round {round})"),
            pm,
            LARGE_BODY as f64 / (1024.0 * 1024.0) / used.max(0.01)
        );
        mibs.push(pm / dm);
    }
    println!(
        "large body: capscope / direct = {}",
        mibs.iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" / ")
    );
}

fn row(name: &str, s: &Small, cpu: Option<f64>) {
    println!(
        "{name:<34} {:>10.0} {:>10.3} {:>10.3} {:>12} {:>14}",
        s.rps,
        s.p50_us as f64 / 1000.0,
        s.p99_us as f64 / 1000.0,
        cpu.map_or(String::new(), |c| format!("{c:.2}")),
        cpu.map_or(String::new(), |c| format!(
            "{:.0}",
            c * 1e6 / s.requests.max(1) as f64
        ))
    );
}

async fn small(
    client: &Arc<ProxyClient>,
    up: &Arc<Upstream>,
    path: &str,
    connections: usize,
    duration: Duration,
    proxied: bool,
) -> Small {
    let mut tasks = Vec::new();
    let start = Instant::now();
    for _ in 0..connections {
        let client = client.clone();
        let up = up.clone();
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut c = if proxied {
                client.https(&up.authority()).await
            } else {
                client.direct_https(up.addr).await
            };
            let mut lat = Vec::new();
            let end = Instant::now() + duration;
            while Instant::now() < end {
                let t = Instant::now();
                let (resp, body) = send_h1(&mut c, in_tunnel("GET", &path, &up, full(""))).await;
                assert_eq!(resp.status(), 200);
                assert!(body.len() as u64 >= SMALL_BODY - 32);
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Small {
        requests: all.len(),
        rps: all.len() as f64 / secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

async fn handshakes(
    client: &ProxyClient,
    up: &Upstream,
    sni: impl Fn(usize) -> String,
) -> Duration {
    let mut times = Vec::new();
    for i in 0..HANDSHAKES {
        let t = Instant::now();
        let tls = client
            .tls_named(&up.authority(), &sni(i), b"http/1.1")
            .await;
        times.push(t.elapsed());
        drop(tls);
    }
    median(times)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn stream_large(client: &mut H1, up: &Upstream, path: &str) -> f64 {
    client.ready().await.unwrap();
    let t = Instant::now();
    let resp = client
        .send_request(in_tunnel("GET", path, up, full("")))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            n += data.len() as u64;
        }
    }
    assert_eq!(n, LARGE_BODY);
    n as f64 / (1024.0 * 1024.0) / t.elapsed().as_secs_f64()
}
