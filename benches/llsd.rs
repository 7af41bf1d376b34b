//! LLSD decode and encode throughput on a realistic body: a FetchInventoryDescendents2 response with
//! 5,000 items in 50 folders (about 6 MB as XML, 2.9 MB binary, 3.4 MB notation).
//!
//! Decoding is timed without dropping the decoded value (criterion's `iter_with_large_drop`).
//! `transcode_to_binary` and `transcode_to_xml` decode straight to binary LLSD or XML without the
//! tree, as `capscope decode --to binary` and `--to xml` do.
//!
//! Run: `cargo bench --bench llsd -- --measurement-time 3 --warm-up-time 1`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use capscope::llsd::{self, Date, Format, Value};

const FOLDERS: usize = 50;
const ITEMS_PER_FOLDER: usize = 100;

/// A deterministic uuid from two small numbers (no RNG needed).
fn id(kind: u64, n: u64) -> Value {
    let x = kind
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(n.wrapping_mul(0xD1B5_4A32_D192_ED03));
    Value::Uuid(uuid::Uuid::from_u64_pair(
        x ^ 0x5A5A_1234_0000_4000,
        x.rotate_left(17) | 0x8000_0000_0000_0000,
    ))
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().collect())
}

fn s(text: String) -> Value {
    Value::String(text)
}

fn item(folder: u64, n: u64, agent: &Value) -> Value {
    let k = folder * 1000 + n;
    map(vec![
        ("item_id", id(1, k)),
        ("asset_id", id(2, k)),
        ("parent_id", id(3, folder)),
        ("name", s(format!("Object {k} — Spring Collection (copy)"))),
        (
            "desc",
            s(format!(
                "2026-03-{:02} 14:{:02}:{:02} created by the upload wizard",
                n % 28 + 1,
                n % 60,
                k % 60
            )),
        ),
        ("type", Value::Integer(if n % 3 == 0 { 6 } else { 0 })),
        ("inv_type", Value::Integer(if n % 3 == 0 { 6 } else { 0 })),
        (
            "flags",
            Value::Integer((k as i32).wrapping_mul(2_654_435) & 0x00ff_ffff),
        ),
        (
            "created_at",
            Value::Date(Date(1_700_000_000.0 + (k * 3_733) as f64)),
        ),
        (
            "sale_info",
            map(vec![
                ("sale_price", Value::Integer((k % 500) as i32)),
                ("sale_type", Value::Integer((k % 4) as i32)),
            ]),
        ),
        (
            "permissions",
            map(vec![
                ("owner_id", agent.clone()),
                ("group_id", id(4, folder % 7)),
                ("creator_id", id(5, k % 97)),
                ("last_owner_id", id(6, k % 89)),
                ("base_mask", Value::Integer(0x7fff_ffff)),
                ("owner_mask", Value::Integer(0x7fff_ffff)),
                ("group_mask", Value::Integer(0)),
                ("everyone_mask", Value::Integer(0)),
                ("next_owner_mask", Value::Integer(0x0008_2000)),
                ("is_owner_group", Value::Boolean(false)),
            ]),
        ),
    ])
}

/// The FetchInventoryDescendents2 response body the bench decodes and encodes.
fn inventory() -> Value {
    let agent = id(0, 1);
    let folders = (0..FOLDERS as u64)
        .map(|f| {
            map(vec![
                ("agent_id", agent.clone()),
                ("owner_id", agent.clone()),
                ("folder_id", id(3, f)),
                ("version", Value::Integer(40 + f as i32)),
                ("descendents", Value::Integer(ITEMS_PER_FOLDER as i32 + 1)),
                (
                    "categories",
                    Value::Array(vec![map(vec![
                        ("category_id", id(7, f)),
                        ("parent_id", id(3, f)),
                        ("name", s(format!("Subfolder {f}"))),
                        ("type_default", Value::Integer(-1)),
                        ("version", Value::Integer(3)),
                    ])]),
                ),
                (
                    "items",
                    Value::Array(
                        (0..ITEMS_PER_FOLDER as u64)
                            .map(|n| item(f, n, &agent))
                            .collect(),
                    ),
                ),
            ])
        })
        .collect();
    map(vec![("folders", Value::Array(folders))])
}

fn bench(c: &mut Criterion) {
    let value = inventory();
    for format in Format::ALL {
        let bytes = llsd::to_vec(&value, format);
        assert!(llsd::from_slice_as(&bytes, format).unwrap().same(&value));
        let mut group = c.benchmark_group(format!("llsd/{format}"));
        group.sample_size(20);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("decode", bytes.len()),
            &bytes,
            |b, bytes| {
                b.iter_with_large_drop(|| llsd::from_slice_as(black_box(bytes), format).unwrap())
            },
        );
        group.bench_with_input(
            BenchmarkId::new("encode", bytes.len()),
            &value,
            |b, value| b.iter_with_large_drop(|| llsd::to_vec(black_box(value), format)),
        );
        // What `capscope decode --to binary` does: decoding straight to binary, without the tree
        // (see docs/performance.md).
        let binary = llsd::to_vec(&value, Format::Binary);
        group.bench_with_input(
            BenchmarkId::new("transcode_to_binary", bytes.len()),
            &bytes,
            |b, bytes| {
                b.iter_with_large_drop(|| {
                    let mut out = Vec::with_capacity(binary.len());
                    llsd::transcode_to_binary(black_box(bytes), format, &mut out).unwrap();
                    assert_eq!(out.len(), binary.len());
                    out
                })
            },
        );
        // What `capscope decode --to xml` does (and, with another output, `--to notation`).
        let xml = llsd::to_vec(&value, Format::Xml);
        group.bench_with_input(
            BenchmarkId::new("transcode_to_xml", bytes.len()),
            &bytes,
            |b, bytes| {
                b.iter_with_large_drop(|| {
                    let mut out = Vec::with_capacity(xml.len());
                    llsd::transcode(black_box(bytes), format, Format::Xml, &mut out).unwrap();
                    assert_eq!(out.len(), xml.len());
                    out
                })
            },
        );
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
