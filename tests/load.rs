//! Load, ignored by default (not part of `cargo test` or CI). One command each, as in
//! docs/reliability.md; each prints its figures (run with `--nocapture`).
//!
//! - `idle_event_polls`: many concurrent idle EventQueueGet polls through the `capscope run` binary in
//!   login mode, against the simulated grid; capscope's peak memory must stay under 256 MB (256,000,000 bytes).
//! - `a_gigabyte_each_way_with_tls_on_both_sides`: 1 GiB down and 1 GiB up through the binary, TLS to
//!   the client and to the upstream; peak memory under 64 MiB.
//! - `mixed_load_with_the_capture_attached`: several minutes of viewers doing seeds, inventory, assets,
//!   uploads and event polls through a whole `run` session (caps layer, capture writer, and the
//!   terminal UI's consumer: its store fed from the bus and a frame drawn every 33 ms, into an
//!   off-screen backend): throughput, added latency (p50/p99), memory over time, open files before
//!   and after, records lost by each consumer.
//! - `session_with_the_ui_consumer` is not a test of its own: it is that session, run in a process of
//!   its own (this test binary started again), so that its memory and files are measured apart from
//!   the simulated grid's and the viewers'.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use capscope::mockgrid::viewer::{PollResult, Viewer, ViewerConfig};
use capscope::mockgrid::{MockGrid, MockGridConfig};
use capscope_ca::CertificateAuthority;
use common::*;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

/// Open files a process needs beside one or two per poll (listeners, the runtime, the log, the CA).
const FDS_BESIDE: u64 = 100;

/// The memory budget of 10,000 idle polls: 256 MB (decimal, the stricter reading of the issue's
/// "256 MB"), about 244 MiB.
const IDLE_POLLS_BUDGET: u64 = 256_000_000;

/// Upstream connections the upstream client may keep idle for reuse after the polls end (its limit
/// is 32 per host), plus a few.
const POOL_KEPT: usize = 40;

/// Far longer than anything here should take.
const HANG: Duration = Duration::from_secs(120);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The soft open-file limit of this process.
fn fd_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3).and_then(|n| n.parse().ok()))
        .unwrap_or(1024)
}

/// Kills the child if the test fails before stopping it.
struct Reap(u32);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// `CAPSCOPE_LOAD_POLLS` polls (default 10000) held open at once. With `CAPSCOPE_LOAD_DISTINCT=1` each
/// poll carries its own `ack`, so each needs its own upstream poll (two file descriptors in capscope
/// per poll, two in this process: with a hard limit of 20,000 open files, at most 9,950 polls);
/// otherwise they all join one upstream poll, as repeated viewer polls
/// of one queue do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: see docs/reliability.md"]
async fn idle_event_polls() {
    let polls = env_number("CAPSCOPE_LOAD_POLLS", 10_000) as usize;
    let distinct = env_number("CAPSCOPE_LOAD_DISTINCT", 0) == 1;
    // This process holds a client socket per poll, and the grid's socket per upstream poll;
    // capscope (which inherits the limit) holds both ends of each distinct poll.
    let need = if distinct { polls * 2 } else { polls } as u64 + FDS_BESIDE;
    assert!(
        fd_limit() >= need,
        "the open-file limit is {}; this needs {need}: raise it (`ulimit -n {need}`)",
        fd_limit()
    );
    let grid = MockGrid::start(MockGridConfig {
        eq_hold: Duration::from_secs(600),
        stale_first_poll: false,
        ..MockGridConfig::for_tests()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let grid_ca = dir.path().join("grid-ca.pem");
    std::fs::write(&grid_ca, &grid.ca_pem).unwrap();
    let max = (polls + 100).to_string();
    let (mut child, addr, _lines) = spawn_run(
        dir.path(),
        None,
        &[
            "--grid",
            &grid.login_url,
            "--upstream-ca",
            grid_ca.to_str().unwrap(),
            "--no-save",
            "--max-connections",
            &max,
        ],
    );
    let pid = child.id();
    let _reap = Reap(pid);
    let viewer = Viewer::new(ViewerConfig::new(
        format!("http://{addr}/login"),
        grid.ca_pem.clone(),
    ))
    .unwrap();
    let login = viewer.login().await.unwrap();
    let caps = viewer.seed(&login.seed_capability).await.unwrap();
    let eq: http::Uri = caps["EventQueueGet"].parse().unwrap();
    let path = eq.path().to_owned();
    // Take the greeting events, so that polls acknowledging them are idle.
    let PollResult::Events { id, .. } = viewer.poll(&eq.to_string(), None).await.unwrap() else {
        panic!("the greeting events were queued");
    };
    let id = i64::from(id);
    // Time to attach a profiler to the session before the polls come (`heaptrack -p PID`).
    let wait = env_number("CAPSCOPE_LOAD_PROFILE_WAIT", 0);
    if wait > 0 {
        println!("  capscope is pid {pid}: opening the polls in {wait} s");
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    let rss_before = status_kib(pid, "VmRSS:");
    let fds_before = open_fds(pid);
    let polls_before = grid.polls_received();

    let started = Instant::now();
    let mut held = Vec::with_capacity(polls);
    for i in 0..polls {
        let ack = if distinct { id + i as i64 } else { id };
        let body = format!(
            "<?xml version=\"1.0\" ?><llsd><map><key>ack</key><integer>{ack}</integer>\
             <key>done</key><boolean>0</boolean></map></llsd>"
        );
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/llsd+xml\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        held.push(s);
        if (i + 1) % 1000 == 0 {
            println!(
                "  {} polls open after {:.1} s; capscope RSS {} MiB, {} open files",
                i + 1,
                started.elapsed().as_secs_f64(),
                status_kib(pid, "VmRSS:") / 1024,
                open_fds(pid)
            );
        }
    }
    // Every poll is in capscope, and the grid holds the upstream ones.
    let upstream_expected = if distinct { polls as u64 } else { 1 };
    let deadline = Instant::now() + HANG;
    while grid.polls_received() - polls_before < upstream_expected || open_fds(pid) < polls {
        assert!(
            Instant::now() < deadline,
            "the polls never all arrived: the grid has {} of {upstream_expected}, capscope {} open \
             files",
            grid.polls_received() - polls_before,
            open_fds(pid)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = status_kib(pid, "VmRSS:");
    let peak = status_kib(pid, "VmHWM:");
    let fds_held = open_fds(pid);
    let test_peak = status_kib(std::process::id(), "VmHWM:");
    drop(held);
    // The grid answers the upstream polls it holds (idle), so they end now instead of after its hold;
    // their connections close, but for those the upstream client keeps for reuse.
    grid.release_polls();
    let deadline = Instant::now() + HANG;
    while open_fds(pid) > fds_before + POOL_KEPT && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fds_after = open_fds(pid);
    stop(&mut child);
    println!(
        "idle_event_polls: {polls} polls ({}), upstream polls {}, all held after {:.1} s; \
         capscope RSS {} -> {} MiB (peak {} MiB); open files {fds_before} -> {fds_held} -> \
         {fds_after}; the test process (grid + clients) peaked at {} MiB",
        if distinct {
            "distinct acks"
        } else {
            "one ack, joined"
        },
        grid.polls_received() - polls_before,
        settled.as_secs_f64(),
        rss_before / 1024,
        rss / 1024,
        peak / 1024,
        test_peak / 1024
    );
    assert!(
        fds_after <= fds_before + POOL_KEPT,
        "capscope kept {fds_after} files open after the polls ended ({fds_before} before)"
    );
    assert!(
        peak * 1024 < IDLE_POLLS_BUDGET,
        "capscope peaked at {peak} KiB (the budget is {IDLE_POLLS_BUDGET} bytes)"
    );
}

/// 1 GiB each way, TLS on both sides, through the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: see docs/reliability.md"]
async fn a_gigabyte_each_way_with_tls_on_both_sides() {
    const SIZE: u64 = 1 << 30;
    let up = start_upstream(true).await;
    let dir = tempfile::tempdir().unwrap();
    let up_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&up_ca, up.ca.cert_pem()).unwrap();
    let (mut child, addr, _lines) = spawn_run(
        dir.path(),
        None,
        &["--upstream-ca", up_ca.to_str().unwrap()],
    );
    let _reap = Reap(child.id());
    let ca = CertificateAuthority::load_or_create(&dir.path().join("ca")).unwrap();
    let mut client = ProxyClient::new(addr, &ca).https(&up.authority()).await;

    let started = Instant::now();
    client.ready().await.unwrap();
    let resp = client
        .send_request(in_tunnel("GET", &format!("/repeat/{SIZE}"), &up, full("")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            got += data.len() as u64;
        }
    }
    assert_eq!(got, SIZE);
    let down = started.elapsed();

    let started = Instant::now();
    let upload = PatternBody::new(SIZE, 256 * 1024).boxed();
    let (resp, count) = send_h1(&mut client, in_tunnel("POST", "/sink", &up, upload)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(String::from_utf8_lossy(&count), SIZE.to_string());
    let upward = started.elapsed();
    let peak = status_kib(child.id(), "VmHWM:");
    stop(&mut child);
    println!(
        "a_gigabyte_each_way_with_tls_on_both_sides: down {:.0} MiB/s, up {:.0} MiB/s, capscope \
         peaked at {} MiB",
        1024.0 / down.as_secs_f64(),
        1024.0 / upward.as_secs_f64(),
        peak / 1024
    );
    assert!(peak < 64 * 1024, "capscope peaked at {peak} KiB");
}

/// Percentile of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `viewers` viewers doing activity rounds for `secs`, returning each round's duration.
async fn activity(viewers: &[Viewer], secs: u64) -> Vec<Duration> {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for v in viewers {
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            let mut rounds = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                let failed = v.activity_round(None).await;
                assert_eq!(failed, 0, "{:?}", v.journal().errors);
                rounds.push(t.elapsed());
            }
            rounds
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

/// `CAPSCOPE_LOAD_VIEWERS` viewers (default 8) for `CAPSCOPE_LOAD_SECS` seconds (default 180) through
/// a whole `run` session with its capture, after a baseline of the same length straight to the grid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: see docs/reliability.md"]
async fn mixed_load_with_the_capture_attached() {
    let viewers_n = env_number("CAPSCOPE_LOAD_VIEWERS", 8) as usize;
    let secs = env_number("CAPSCOPE_LOAD_SECS", 180);
    let baseline_secs = (secs / 6).max(10);
    let grid = MockGrid::start(MockGridConfig {
        eq_hold: Duration::from_secs(5),
        asset_size: 256 * 1024,
        ..MockGridConfig::for_tests()
    })
    .await
    .unwrap();

    // Baseline: the same viewers straight to the grid.
    let mut direct = Vec::new();
    let mut direct_running = Vec::new();
    for _ in 0..viewers_n {
        let v = Viewer::new(ViewerConfig::new(
            grid.login_url.clone(),
            grid.ca_pem.clone(),
        ))
        .unwrap();
        direct_running.push(v.start().await.unwrap());
        direct.push(v);
    }
    let base = activity(&direct, baseline_secs).await;
    drop(direct_running);

    let dir = tempfile::tempdir().unwrap();
    let grid_ca = dir.path().join("grid-ca.pem");
    std::fs::write(&grid_ca, &grid.ca_pem).unwrap();
    let capture = dir.path().join("load.jsonl.zst");
    let args = [
        "--grid",
        &grid.login_url,
        "--upstream-ca",
        grid_ca.to_str().unwrap(),
        "-w",
        capture.to_str().unwrap(),
    ];
    // `CAPSCOPE_LOAD_UI=0`: `capscope run --headless` instead (the headless log, no UI consumer).
    let with_ui = env_number("CAPSCOPE_LOAD_UI", 1) == 1;
    let (mut child, addr, lines) = if with_ui {
        spawn_session_with_ui(dir.path(), &args)
    } else {
        spawn_run(dir.path(), None, &args)
    };
    let pid = child.id();
    let _reap = Reap(pid);
    let fds_before = open_fds(pid);
    let mut viewers = Vec::new();
    let mut running = Vec::new();
    for _ in 0..viewers_n {
        let v = Viewer::new(ViewerConfig::new(
            format!("http://{addr}/login"),
            grid.ca_pem.clone(),
        ))
        .unwrap();
        running.push(v.start().await.unwrap());
        viewers.push(v);
    }
    // Memory every 10 s while the load runs.
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        loop {
            samples.push(status_kib(pid, "VmRSS:") / 1024);
            tokio::time::sleep(Duration::from_secs(10)).await;
            if samples.len() as u64 > secs / 10 + 1 {
                return samples;
            }
        }
    });
    let started = Instant::now();
    let through = activity(&viewers, secs).await;
    let took = started.elapsed();
    let rss = sampler.await.unwrap();
    drop(running);
    // A last poll each, to see the queues still answer.
    for v in &viewers {
        let eq = v.journal().caps["EventQueueGet"].clone();
        let r = tokio::time::timeout(HANG, v.poll(&eq, None)).await.unwrap();
        assert!(matches!(
            r,
            Ok(PollResult::Idle(_) | PollResult::Events { .. })
        ));
    }
    drop(viewers);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fds_after = open_fds(pid);
    let peak = status_kib(pid, "VmHWM:");
    stop(&mut child);
    let dropped: Vec<String> = lines
        .try_iter()
        .filter(|l| {
            l.contains("dropped")
                || l.contains("lost")
                || l.contains("fell behind")
                || l.contains("capture saved")
                || l.starts_with("cap registry")
                || l.starts_with(UI_REPORT)
        })
        .collect();
    // Inventory, library, display names, simulator features, object costs, a texture, a redirected
    // texture (two requests), an upload (offer and data).
    let requests_per_round = 10.0;
    println!(
        "mixed_load_with_the_capture_attached ({}): {viewers_n} viewers, {:.0} s; {} rounds ({:.0} \
         requests/s plus event polls); round p50 {:?} p99 {:?} through capscope, {:?} / {:?} \
         straight to the grid (added p50 {:?}, p99 {:?}); RSS every 10 s (MiB): {rss:?}, peak {} \
         MiB; open files {fds_before} before, {fds_after} after; capture {} KiB; capture and UI \
         consumers: {dropped:?}",
        if with_ui {
            "UI consumer attached"
        } else {
            "headless log"
        },
        took.as_secs_f64(),
        through.len(),
        through.len() as f64 * requests_per_round / took.as_secs_f64(),
        pct(&through, 0.5),
        pct(&through, 0.99),
        pct(&base, 0.5),
        pct(&base, 0.99),
        pct(&through, 0.5).saturating_sub(pct(&base, 0.5)),
        pct(&through, 0.99).saturating_sub(pct(&base, 0.99)),
        peak / 1024,
        std::fs::metadata(&capture).map_or(0, |m| m.len() / 1024),
    );
    // One uploader a round must not stay in the registry (it held one cap a round before it forgot
    // used uploaders): what it holds is the viewers' seeds' caps and a few uploaders in flight.
    let held: usize = dropped
        .iter()
        .find_map(|l| l.strip_prefix("cap registry: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the session reports its cap registry");
    let bound = capscope::caps::registry::MAX_TEMPORARY_CAPS + 100 * viewers_n;
    assert!(
        held <= bound,
        "the cap registry held {held} caps after {} rounds (bound {bound})",
        through.len()
    );
}

/// Where the child session finds its command line (fields split by [`ARG_SEPARATOR`]).
const CHILD_ARGS: &str = "CAPSCOPE_LOAD_SESSION_ARGS";
const ARG_SEPARATOR: char = '\x1f';
/// How the child session's UI consumer reports at the end (one stderr line).
const UI_REPORT: &str = "ui consumer:";

/// Starts [`session_with_the_ui_consumer`] in a process of its own (this test binary again), like
/// `spawn_run` starts `capscope run --headless`: same flags, same stderr, same address line.
fn spawn_session_with_ui(
    dir: &Path,
    args: &[&str],
) -> (
    Child,
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<String>,
) {
    let ca_dir = dir.join("ca");
    let mut line = vec!["--ca-dir", ca_dir.to_str().unwrap()];
    line.extend(["--listen", "127.0.0.1:0"]);
    line.extend_from_slice(args);
    let joined = line.join(&ARG_SEPARATOR.to_string());
    // `CAPSCOPE_LOAD_WRAP="heaptrack -o /tmp/ui"`: the session runs under that command (a profiler
    // from its first allocation; attaching later misses the history already held).
    let wrap = std::env::var("CAPSCOPE_LOAD_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(std::env::current_exe().unwrap());
            c
        }
        None => Command::new(std::env::current_exe().unwrap()),
    };
    let mut child = command
        .args([
            "--exact",
            "session_with_the_ui_consumer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ARGS, joined)
        .env("CAPSCOPE_HOME", dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, lines) = listening_address(&mut child, HANG);
    (child, addr, lines)
}

/// The session `mixed_load_with_the_capture_attached` measures, when started by
/// [`spawn_session_with_ui`] (otherwise it does nothing): `capscope run`'s own session
/// (`cli::run::serve`: caps layer, capture writer) with the terminal UI's consumer attached as `run`
/// attaches it, without a terminal. The consumer is the UI's loop minus the terminal: every frame
/// it takes in what the bus has (`tui::drain`, as the UI does), ticks, and draws the whole screen
/// into an off-screen 120x40 backend. At the end it prints what its store saw and lost.
#[test]
#[ignore = "the capscope side of mixed_load_with_the_capture_attached (started by it)"]
fn session_with_the_ui_consumer() {
    use capscope::cli::run::{serve, Extras, RunArgs};
    use capscope::cli::CaDirArg;
    use capscope::store::Limits;
    use capscope::tui::state::Source;
    use capscope::tui::{self, App, Feed};
    use clap::Parser;

    let Ok(joined) = std::env::var(CHILD_ARGS) else {
        return;
    };
    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        ca: CaDirArg,
        #[command(flatten)]
        run: RunArgs,
    }
    let line = Line::parse_from(std::iter::once("session").chain(joined.split(ARG_SEPARATOR)));
    capscope::cli::out::init(capscope::cli::out::Verbosity {
        verbose: 0,
        quiet: false,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut ui = None;
    let shutdown = {
        let _inside = runtime.enter();
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        async move {
            term.recv().await;
        }
    };
    let on_start = |s: &capscope::cli::run::Session<'_>| {
        let mut feed = Feed::Live {
            records: s.bus.subscribe(),
            bus: Arc::clone(s.bus),
            capture: s.writer.cloned().map(capscope::cli::ui::capture_watch),
        };
        let stop = stop.clone();
        ui = Some(std::thread::spawn(move || {
            let mut app = App::new(Source::Live, Limits::default());
            app.resize(120, 40);
            let mut terminal =
                ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
            let mut last_tick = Instant::now();
            let mut taken = 0;
            let mut frames = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let frame_start = Instant::now();
                let n = tui::drain(&mut app, &mut feed);
                taken += n;
                let mut dirty = n > 0;
                if last_tick.elapsed() >= tui::TICK {
                    last_tick = Instant::now();
                    app.tick(capscope::record::now_us());
                    dirty = true;
                }
                if dirty {
                    terminal.draw(|f| tui::render::draw(f, &app)).unwrap();
                    frames += 1;
                }
                std::thread::sleep(tui::FRAME.saturating_sub(frame_start.elapsed()));
            }
            taken += tui::drain(&mut app, &mut feed);
            let c = app.store.counts();
            eprintln!(
                "{UI_REPORT} {taken} versions taken in, {} records held, {} lost to lags, {} \
                 finals lost, {} evicted, {} bodies dropped, {} bodies shed by the bus, {frames} \
                 frames drawn; the store reckons {} MiB of records and holds {} MiB of bodies",
                app.store.len(),
                c.lagged,
                c.lost_finals,
                c.evicted,
                c.bodies_dropped,
                c.bodies_shed_upstream,
                app.store.record_bytes() >> 20,
                app.store.body_bytes() >> 20,
            );
        }));
    };
    let extras = Extras {
        no_log: true,
        ..Extras::default()
    };
    runtime
        .block_on(serve(line.run, &line.ca, extras, shutdown, on_start))
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    if let Some(ui) = ui {
        ui.join().unwrap();
    }
}
