//! Fuzz target: the lean upstream client's request writer (`proxy::upstream::whole`). The method,
//! URL and headers come from the viewer; whatever `http` accepts for them must be written so that
//! an HTTP/1.1 parser (httparse, hyper's) reads back the same method, the same path and query in
//! origin form, a `Host` naming the URL's host (never its user info), every header in the request's
//! order with its value, and one body framed by one `Content-Length` and nothing else. Never a
//! panic.
#![no_main]

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use libfuzzer_sys::fuzz_target;

use capscope::proxy::upstream::encode_request_for_fuzzing;

/// The most headers a fuzz input gives (the parser below has room for them, `Host` and the length).
const MAX_HEADERS: usize = 64;

fuzz_target!(|data: &[u8]| {
    // NUL separates the fields (no method, URL or header may hold it): method, what follows
    // `http://`, the body, then header names and values in turn.
    let mut fields = data.split(|&b| b == 0);
    let (Some(method), Some(rest), Some(body)) = (fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(uri) = format!("http://{rest}").parse::<Uri>() else {
        return;
    };
    let Some(authority) = uri.authority().cloned() else {
        return;
    };
    let mut request = Request::builder().method(method.clone()).uri(uri.clone());
    let mut count = 0;
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        if count == MAX_HEADERS {
            break;
        }
        request = request.header(name, value);
        count += 1;
    }
    let Ok(request) = request.body(Bytes::copy_from_slice(body)) else {
        return;
    };
    // The order the proxy has them in: a `HeaderMap` keeps the values of one name together (in
    // the order given), names in the order first given.
    let given: Vec<_> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();

    let wire = encode_request_for_fuzzing(request);

    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS + 4];
    let mut parsed = httparse::Request::new(&mut lines);
    let used = match parsed.parse(&wire) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "the written head does not parse ({other:?}): {:?}",
            String::from_utf8_lossy(&wire)
        ),
    };
    assert_eq!(parsed.method, Some(method.as_str()), "method");
    assert_eq!(parsed.version, Some(1), "version");

    // The target: origin form, the URL's own path and query.
    let target = parsed.path.unwrap_or_default();
    assert!(target.starts_with('/'), "target {target:?} is not in origin form");
    let read: Uri = target
        .parse()
        .unwrap_or_else(|e| panic!("target {target:?} does not parse: {e}"));
    assert_eq!(read.path(), uri.path(), "path");
    assert_eq!(read.query(), uri.query(), "query");

    // The headers, in order: `Host` first when the request had none, the given ones but framing
    // and `Connection`, then the body's length when there is one to give.
    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    if !given.iter().any(|(n, _)| n == HOST) {
        // The port as the URL spells it (`:06021` stays so; both spellings name one port).
        let host = match authority.port() {
            Some(port) => format!("{}:{}", authority.host(), port.as_str()),
            None => authority.host().to_owned(),
        };
        expected.push(("host".into(), host.into_bytes()));
    }
    for (name, value) in &given {
        if name != CONTENT_LENGTH && name != TRANSFER_ENCODING && name != CONNECTION {
            expected.push((name.as_str().into(), value.as_bytes().to_vec()));
        }
    }
    let bodiless = matches!(
        method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    if !body.is_empty() || !bodiless {
        expected.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let read: Vec<(String, &[u8])> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value))
        .collect();
    assert_eq!(read.len(), expected.len(), "header count: {read:?}");
    for ((name, value), (want_name, want_value)) in read.iter().zip(&expected) {
        assert_eq!(name, want_name, "header name");
        // Whitespace around a value is not part of it (RFC 9110 section 5.5): parsers drop it.
        assert_eq!(
            value.trim_ascii(),
            want_value.trim_ascii(),
            "value of {name}"
        );
    }

    // The body: exactly what follows the head.
    assert_eq!(&wire[used..], body, "body");
});
