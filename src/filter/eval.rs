//! Evaluation of a filter over one record. Bodies are decoded at most once per record per evaluation
//! (lazily, only when a path or free-text term needs them), whatever the number of terms.

use std::cell::OnceCell;

use super::ast::{
    fold, push_segment, Cmp, Expr, Glob, Literal, PathPredicate, Segment, Side, Term, Text,
};
use crate::llsd::Value;
use crate::record::{Body, Kind, Record};

/// A value a path predicate matched, for highlighting.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub side: Side,
    /// The concrete path (`body.folders[2].items[0].name`).
    pub path: String,
    /// The value there, in one line.
    pub value: String,
}

/// The lazily decoded bodies of one record.
pub(crate) struct Ctx<'r> {
    record: &'r Record,
    request: OnceCell<Option<Value>>,
    response: OnceCell<Option<Value>>,
}

impl<'r> Ctx<'r> {
    pub(crate) fn new(record: &'r Record) -> Self {
        Self {
            record,
            request: OnceCell::new(),
            response: OnceCell::new(),
        }
    }

    fn body(&self, side: Side) -> Option<&'r Body> {
        let r = self.record;
        match side {
            Side::Request => r.request.as_ref().map(|q| &q.body),
            Side::Response => match (&r.event, r.kind) {
                (Some(ev), Kind::Event) => Some(&ev.body),
                _ => r.response.as_ref().map(|s| &s.body),
            },
        }
    }

    fn decoded(&self, side: Side) -> Option<&Value> {
        let cell = match side {
            Side::Request => &self.request,
            Side::Response => &self.response,
        };
        cell.get_or_init(|| {
            #[cfg(test)]
            DECODES.with(|d| d.set(d.get() + 1));
            self.body(side).and_then(decode_body)
        })
        .as_ref()
    }
}

#[cfg(test)]
thread_local! {
    /// How many bodies evaluation decoded on this thread (tests check "once per record").
    pub(crate) static DECODES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The one place bodies are decoded for filtering: LLSD in any of its three encodings, sniffed from
/// the bytes (grids mislabel Content-Type). A body cut at the body limit is not decoded.
pub fn decode_body(body: &Body) -> Option<Value> {
    if body.data.is_empty() || body.truncated {
        return None;
    }
    crate::llsd::from_slice(&body.data).ok()
}

pub(crate) fn eval(e: &Expr, ctx: &Ctx<'_>, mut out: Option<&mut Vec<Match>>) -> bool {
    match e {
        Expr::Term(t) => term(t, ctx, out),
        Expr::Not(inner) => !eval(inner, ctx, None),
        Expr::And(items) => {
            // Matches of a conjunction count only if all of it holds.
            let mark = out.as_ref().map(|o| o.len());
            for item in items {
                if !eval(item, ctx, out.as_deref_mut()) {
                    if let (Some(o), Some(m)) = (out, mark) {
                        o.truncate(m);
                    }
                    return false;
                }
            }
            true
        }
        Expr::Or(items) => items.iter().any(|i| eval(i, ctx, out.as_deref_mut())),
    }
}

fn term(t: &Term, ctx: &Ctx<'_>, out: Option<&mut Vec<Match>>) -> bool {
    let r = ctx.record;
    match t {
        Term::Cap(g) => r.cap.as_deref().is_some_and(|c| glob(g, c)),
        Term::Event(g) => r.event.as_ref().is_some_and(|e| glob(g, &e.message)),
        Term::Method(m) => r
            .request
            .as_ref()
            .is_some_and(|q| q.method.eq_ignore_ascii_case(m)),
        Term::Status(s) => r.response.as_ref().is_some_and(|p| s.matches(p.status)),
        Term::Host(g) => host_of(r).is_some_and(|h| glob(g, h)),
        Term::Region(g) => r.region.as_deref().is_some_and(|x| glob(g, x)),
        Term::Agent(g) => r.agent.as_deref().is_some_and(|x| glob(g, x)),
        Term::Kind(k) => r.kind == *k,
        Term::Text(text) => free_text(text, ctx),
        Term::Path(p) => path(p, ctx, out),
    }
}

/// The host of the request URL, or of a tunnel's target.
pub(crate) fn host_of(r: &Record) -> Option<&str> {
    if let Some(q) = &r.request {
        let rest = q.url.split_once("://").map_or(q.url.as_str(), |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        return Some(strip_port(authority));
    }
    r.tunnel.as_ref().map(|t| strip_port(&t.target))
}

fn strip_port(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.rsplit_once(':').map_or(authority, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            authority
        }
    })
}

fn free_text(t: &Text, ctx: &Ctx<'_>) -> bool {
    let r = ctx.record;
    let needle = t.folded.as_str();
    let names = [
        r.request.as_ref().map(|q| q.url.as_str()),
        r.cap.as_deref(),
        r.event.as_ref().map(|e| e.message.as_str()),
        r.region.as_deref(),
        r.agent.as_deref(),
        r.tunnel.as_ref().map(|t| t.target.as_str()),
        r.error.as_deref(),
    ];
    if names
        .into_iter()
        .flatten()
        .any(|s| contains_folded(s.as_bytes(), needle))
    {
        return true;
    }
    [Side::Request, Side::Response].into_iter().any(|side| {
        match ctx.decoded(side) {
            Some(v) => value_contains(v, needle),
            // Not LLSD: search the body as text.
            None => ctx
                .body(side)
                .is_some_and(|b| contains_folded(&b.data, needle)),
        }
    })
}

/// Whether any key or scalar of `v` contains `needle` (already folded).
fn value_contains(v: &Value, needle: &str) -> bool {
    match v {
        Value::Map(m) => m
            .iter()
            .any(|(k, v)| contains_folded(k.as_bytes(), needle) || value_contains(v, needle)),
        Value::Array(a) => a.iter().any(|v| value_contains(v, needle)),
        Value::Binary(_) | Value::Undef => false,
        other => value_text(other).is_some_and(|s| contains_folded(s.as_bytes(), needle)),
    }
}

/// Case-insensitive substring search; `needle` is already folded. ASCII needles never allocate.
pub(crate) fn contains_folded(hay: &[u8], needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let n = needle.as_bytes();
    if n.is_ascii() {
        if hay.len() < n.len() {
            return false;
        }
        let first = n[0];
        let upper = first.to_ascii_uppercase();
        let last_start = hay.len() - n.len();
        let mut from = 0;
        while from <= last_start {
            let Some(i) = memchr::memchr2(first, upper, &hay[from..=last_start]) else {
                return false;
            };
            let at = from + i;
            if hay[at..at + n.len()].eq_ignore_ascii_case(n) {
                return true;
            }
            from = at + 1;
        }
        false
    } else {
        let folded: String = String::from_utf8_lossy(hay).chars().map(fold).collect();
        folded.contains(needle)
    }
}

/// Wildcard match (`*` any run, `?` one character), case-insensitive.
pub(crate) fn glob(g: &Glob, text: &str) -> bool {
    g.matcher.matches(text)
}

/// The text of a scalar, as comparisons and free text see it.
pub(crate) fn value_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::String(s) | Value::Uri(s) => s.clone(),
        Value::Uuid(u) => u.hyphenated().to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Date(d) => {
            let us = (d.0 * 1e6).round();
            if us.is_finite() && us.abs() < 9.0e18 {
                crate::util::time::iso8601_millis(us as i64)
            } else {
                return None;
            }
        }
        Value::Undef => "undef".to_owned(),
        Value::Binary(_) | Value::Array(_) | Value::Map(_) => return None,
    })
}

fn value_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(f64::from(*i)),
        Value::Real(r) => Some(*r),
        Value::Date(d) => Some(d.0),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn compare(v: &Value, cmp: Cmp, lit: &Literal, glob_pat: Option<&Glob>) -> bool {
    match cmp {
        Cmp::Eq => equals(v, lit),
        Cmp::Ne => !equals(v, lit),
        Cmp::Glob => match (glob_pat, value_text(v)) {
            (Some(g), Some(t)) => glob(g, &t),
            _ => false,
        },
        Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge => {
            let ord = match (lit, value_number(v)) {
                (Literal::Number { value, .. }, Some(x)) => x.partial_cmp(value),
                (Literal::Text(t), _) => match v {
                    Value::String(s) | Value::Uri(s) => Some(s.as_str().cmp(t.as_str())),
                    _ => None,
                },
                _ => None,
            };
            let Some(ord) = ord else { return false };
            match cmp {
                Cmp::Lt => ord.is_lt(),
                Cmp::Le => ord.is_le(),
                Cmp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            }
        }
    }
}

fn equals(v: &Value, lit: &Literal) -> bool {
    if let (Literal::Number { value, .. }, Value::Integer(_) | Value::Real(_)) = (lit, v) {
        return value_number(v) == Some(*value);
    }
    match (v, value_text(v)) {
        (Value::Uuid(_), Some(t)) => t.eq_ignore_ascii_case(lit.text()),
        (_, Some(t)) => t == lit.text(),
        (_, None) => false,
    }
}

fn path(p: &PathPredicate, ctx: &Ctx<'_>, out: Option<&mut Vec<Match>>) -> bool {
    let Some(root) = ctx.decoded(p.side) else {
        return false;
    };
    let mut found = Vec::new();
    let mut trail = p.side.root().to_owned();
    let want_all = out.is_some();
    let hit = walk(root, &p.path, p, &mut trail, &mut found, want_all);
    if let Some(o) = out {
        o.extend(found);
    }
    hit
}

/// Walks `segs` from `v`; every value reached at the end that satisfies the comparison is a hit.
/// Stops at the first hit unless `want_all`.
fn walk(
    v: &Value,
    segs: &[Segment],
    p: &PathPredicate,
    trail: &mut String,
    found: &mut Vec<Match>,
    want_all: bool,
) -> bool {
    let Some((seg, rest)) = segs.split_first() else {
        let ok = match &p.compare {
            None => true,
            Some((cmp, lit)) => compare(v, *cmp, lit, p.glob.as_ref()),
        };
        if ok && want_all {
            found.push(Match {
                side: p.side,
                path: trail.clone(),
                value: match value_text(v) {
                    Some(t) => t,
                    None => v.to_string(),
                },
            });
        }
        return ok;
    };
    let len = trail.len();
    let mut any = false;
    // The concrete path is built only when matches are collected.
    let mut step = |child: &Value, seg_text: &dyn Fn(&mut String), trail: &mut String| -> bool {
        if want_all {
            seg_text(trail);
        }
        let hit = walk(child, rest, p, trail, found, want_all);
        trail.truncate(len);
        hit
    };
    match (seg, v) {
        (Segment::Key(k), Value::Map(m)) => {
            if let Some(child) = m.get(k) {
                any = step(child, &|t| push_segment(t, seg), trail);
            }
        }
        (Segment::Index(i), Value::Array(a)) => {
            if let Some(child) = a.get(*i) {
                any = step(child, &|t| push_segment(t, seg), trail);
            }
        }
        (Segment::Any, Value::Array(a)) => {
            for (i, child) in a.iter().enumerate() {
                if step(child, &|t| push_segment(t, &Segment::Index(i)), trail) {
                    any = true;
                    if !want_all {
                        break;
                    }
                }
            }
        }
        (Segment::Any, Value::Map(m)) => {
            for (k, child) in m.iter() {
                if step(
                    child,
                    &|t| push_segment(t, &Segment::Key(k.to_owned())),
                    trail,
                ) {
                    any = true;
                    if !want_all {
                        break;
                    }
                }
            }
        }
        _ => {}
    }
    any
}
