//! How long the CA takes to mint a leaf, to build a host's TLS configuration on a cache miss, and
//! to hand out a cached one. Run: `cargo bench -p capscope-ca --bench mint`.

use std::hint::black_box;

use capscope_ca::CertificateAuthority;
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let ca = CertificateAuthority::generate().expect("an in-memory CA");

    c.bench_function("mint leaf (dns)", |b| {
        b.iter(|| ca.mint(black_box("sim10128.agni.lindenlab.com")))
    });
    c.bench_function("mint leaf (ip)", |b| {
        b.iter(|| ca.mint(black_box("192.168.1.20")))
    });

    // Every iteration asks for a host the cache has never seen (it stays bounded by evicting).
    let mut n = 0u64;
    c.bench_function("server_config miss (mint + rustls config)", |b| {
        b.iter(|| {
            n += 1;
            ca.server_config(&format!("sim{n}.example.org"))
        })
    });

    ca.server_config("sim10128.agni.lindenlab.com")
        .expect("a config");
    c.bench_function("server_config hit", |b| {
        b.iter(|| ca.server_config(black_box("sim10128.agni.lindenlab.com")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
