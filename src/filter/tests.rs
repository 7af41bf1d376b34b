//! Parser and evaluator tests.

use super::*;
use crate::record::{Body, EventInfo, Kind, Record, Request, Response, State, TunnelInfo};

/// (input, canonical form): the canonical form must parse back to the same tree.
const CANONICAL: &[(&str, &str)] = &[
    ("cap:Seed", "cap:Seed"),
    ("cap:Fetch*", "cap:Fetch*"),
    ("CAP:\"Odd Name\"", "cap:\"Odd Name\""),
    ("event:TeleportFinish", "event:TeleportFinish"),
    ("method:post", "method:POST"),
    ("status:200", "status:200"),
    ("status:5XX", "status:5xx"),
    ("status:2x4", "status:2x4"),
    ("host:*.lindenlab.com", "host:*.lindenlab.com"),
    ("region:'Da Boom'", "region:\"Da Boom\""),
    ("kind:EVENT", "kind:event"),
    ("agent:'Ann Resident'", "agent:\"Ann Resident\""),
    ("teleport", "teleport"),
    ("\"two words\"", "\"two words\""),
    ("'a \\\"q\\\" b'", "\"a \\\"q\\\" b\""),
    ("\"and\"", "\"and\""),
    ("\"x:y\"", "\"x:y\""),
    ("\"42\"", "\"42\""),
    (
        "body.Info[0].SimPort == 13005",
        "body.Info[0].SimPort == 13005",
    ),
    (
        "body.Info[0].SimPort==13005",
        "body.Info[0].SimPort == 13005",
    ),
    (
        "body.folders[*].items[*].name ~ \"Object 1*\"",
        "body.folders[*].items[*].name ~ \"Object 1*\"",
    ),
    ("req.ack > 40", "req.ack > 40"),
    ("req.ack>=-1.5e2", "req.ack >= -1.5e2"),
    ("body.x != 'text'", "body.x != text"),
    ("body.x == \"13005\"", "body.x == \"13005\""),
    ("body.a.*.b < 3", "body.a[*].b < 3"),
    ("body[\"odd key\"][2] <= 1", "body[\"odd key\"][2] <= 1"),
    ("body.events", "body.events"),
    ("a b", "a & b"),
    ("a and b or c", "a & b | c"),
    ("a & (b | c)", "a & (b | c)"),
    ("(a | b) | c", "(a | b) | c"),
    ("a | b & c", "a | b & c"),
    ("!a", "!a"),
    ("not a", "!a"),
    ("!(a & b)", "!(a & b)"),
    ("! ! a", "!!a"),
    ("a && b || c", "a & b | c"),
    ("nothing", "nothing"),
    ("notable & android", "notable & android"),
    ("(((cap:x)))", "cap:x"),
    (
        "cap:EventQueueGet !status:200 | event:Teleport*",
        "cap:EventQueueGet & !status:200 | event:Teleport*",
    ),
];

#[test]
fn canonical_forms_round_trip() {
    for (input, canonical) in CANONICAL {
        let e = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(&e.to_string(), canonical, "canonical form of {input}");
        let back = parse(&e.to_string()).unwrap_or_else(|e| panic!("{canonical}: {e}"));
        assert_eq!(back, e, "{input} -> {canonical} parses back differently");
    }
}

#[test]
fn precedence_and_grouping() {
    let t = |s: &str| Expr::Term(Term::Text(Text::new(s)));
    assert_eq!(
        parse("a | b c").unwrap(),
        Expr::Or(vec![t("a"), Expr::And(vec![t("b"), t("c")])])
    );
    assert_eq!(
        parse("!a b").unwrap(),
        Expr::And(vec![Expr::Not(Box::new(t("a"))), t("b")])
    );
    assert_eq!(
        parse("(a | b) c").unwrap(),
        Expr::And(vec![Expr::Or(vec![t("a"), t("b")]), t("c")])
    );
    assert_eq!(
        parse("a or b or c").unwrap(),
        Expr::Or(vec![t("a"), t("b"), t("c")])
    );
}

/// (input, column, part of the message)
const BAD: &[(&str, usize, &str)] = &[
    ("", 1, "empty"),
    ("   ", 4, "empty"),
    ("cap:", 5, "expected a value after `cap:`"),
    ("cap: & x", 5, "expected a value"),
    ("colour:red", 1, "unknown term `colour:`"),
    ("status:20", 8, "not a status"),
    ("status:abc", 8, "not a status"),
    ("kind:packet", 6, "not a kind"),
    ("method:G-T", 8, "not an HTTP method"),
    ("(cap:x", 1, "never closed"),
    ("cap:x)", 6, "without a matching"),
    ("a & | b", 5, "expected a term, found `|`"),
    ("a |", 4, "ends"),
    ("\"open", 1, "never closed"),
    ("body.", 6, "expected a key name"),
    ("body.x ==", 10, "expected a value after `==`"),
    ("body[x]", 6, "expected an index"),
    ("body[1", 7, "expected `]`"),
    ("()", 2, "empty parentheses"),
    ("and x", 1, "needs something on its left"),
    ("cap:x =", 7, "unexpected `=`"),
    ("é cap:x )", 9, "without a matching"),
];

#[test]
fn bad_expressions_say_where() {
    for (input, column, message) in BAD {
        let e = parse(input).expect_err(input);
        assert_eq!(e.column, *column, "column for {input:?}: {e}");
        assert!(
            e.message.contains(message),
            "message for {input:?}: {}",
            e.message
        );
        let shown = e.to_string();
        let caret_line = shown.lines().last().unwrap();
        assert_eq!(
            caret_line.find('^'),
            Some(column + 1),
            "caret under column {column}: {shown}"
        );
    }
}

#[test]
fn nesting_is_limited() {
    let deep = format!("{}x{}", "(".repeat(200), ")".repeat(200));
    assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
    assert!(parse(&"!".repeat(500)).is_err());
}

#[test]
fn help_lists_every_term_and_operator() {
    let h = help();
    for t in TERMS {
        assert!(h.contains(&format!("{}:{}", t.code, t.arg)), "{}", t.code);
    }
    for (sym, _, _) in COMPARISONS {
        assert!(h.contains(sym), "{sym}");
    }
    for (form, _) in FORMS {
        assert!(h.contains(form), "{form}");
    }
}

pub(crate) fn http(id: u64, method: &str, url: &str, status: u16) -> Record {
    let mut r = Record::new(id, Kind::Http);
    r.state = State::Done;
    r.request = Some(Request {
        method: method.into(),
        url: url.into(),
        version: "HTTP/1.1".into(),
        ..Request::default()
    });
    r.response = Some(Response {
        status,
        version: "HTTP/1.1".into(),
        ..Response::default()
    });
    r
}

fn m(f: &str, r: &Record) -> bool {
    Filter::parse(f)
        .unwrap_or_else(|e| panic!("{e}"))
        .matches(r)
}

#[test]
fn name_terms_match_their_fields() {
    let mut r = http(
        1,
        "POST",
        "https://sim1.agni.lindenlab.com:12043/cap/abc?x=1",
        502,
    );
    r.cap = Some("EventQueueGet".into());
    r.region = Some("Da Boom".into());

    assert!(m("cap:EventQueueGet", &r));
    assert!(m("cap:eventqueue*", &r), "globs ignore case");
    assert!(m("cap:Event?ueueGet", &r));
    assert!(m("cap:*Queue*", &r));
    assert!(!m("cap:Seed", &r));
    assert!(!m("cap:EventQueue", &r), "a glob matches the whole name");
    assert!(m("method:post", &r));
    assert!(!m("method:GET", &r));
    assert!(m("status:502", &r) && m("status:5xx", &r) && m("status:50x", &r));
    assert!(!m("status:2xx", &r));
    assert!(m("host:*.lindenlab.com", &r));
    assert!(
        m("host:sim1.agni.lindenlab.com", &r),
        "the port is not part of the host"
    );
    assert!(!m("host:lindenlab.com", &r));
    assert!(m("region:da*", &r));
    assert!(!m("agent:*", &r), "no agent, no match");
    r.agent = Some("Ann Resident".into());
    assert!(m("agent:\"ann resident\"", &r) && m("agent:Ann*", &r));
    assert!(!m("agent:Bob*", &r));
    assert!(m("resident", &r), "free text searches the agent too");
    assert!(m("kind:http", &r) && !m("kind:event", &r));
    assert!(m("AGNI", &r), "free text searches the URL, ignoring case");
    assert!(m("boom", &r), "and the region");
    assert!(m("\"queueget\"", &r), "and the cap name");
    assert!(!m("teleport", &r));
    assert!(m("cap:Seed | status:5xx", &r));
    assert!(!m("cap:EventQueueGet & !status:5xx", &r));
    assert!(m("!(cap:Seed | method:GET)", &r));

    let mut ev = Record::new(2, Kind::Event);
    ev.state = State::Done;
    ev.parent = Some(1);
    ev.event = Some(EventInfo {
        message: "TeleportFinish".into(),
        index: 0,
        queue_id: Some(3),
        body: Body::whole(&b"not llsd, plain words"[..]),
    });
    assert!(m("event:Teleport*", &ev) && m("kind:event", &ev));
    assert!(!m("cap:*", &ev), "no cap, no match");
    assert!(!m("status:2xx", &ev) && !m("method:GET", &ev));
    assert!(m("teleportfinish", &ev));
    assert!(
        m("PLAIN WORDS", &ev),
        "free text in a body that is not LLSD"
    );

    let mut t = Record::new(3, Kind::Tunnel);
    t.tunnel = Some(TunnelInfo {
        target: "[::1]:443".into(),
        bytes_up: 1,
        bytes_down: 2,
    });
    assert!(m("host:::1", &t) == m("host:\"::1\"", &t));
    assert!(m("host:\"::1\"", &t));
}

#[test]
fn free_text_with_non_ascii() {
    let mut r = http(1, "GET", "https://example.org/Grüße", 200);
    r.region = Some("ÄRA".into());
    assert!(m("grüße", &r));
    assert!(m("ära", &r));
}

fn llsd_xml(v: &crate::llsd::Value) -> Body {
    Body::whole(crate::llsd::to_vec(v, crate::llsd::Format::Xml))
}

fn teleport_event() -> Record {
    let body = "<llsd><map><key>Info</key><array><map>\
        <key>SimPort</key><integer>13005</integer>\
        <key>SimIP</key><binary>fwAAAQ==</binary>\
        <key>SeedCapability</key><uri>http://127.0.0.1:9000/CAPS/s0000/</uri>\
        <key>AgentID</key><uuid>11111111-2222-3333-4444-555555555555</uuid>\
        <key>Flag</key><boolean>true</boolean>\
        <key>Scale</key><real>1.5</real>\
        </map></array></map></llsd>";
    let mut ev = Record::new(9, Kind::Event);
    ev.state = State::Done;
    ev.event = Some(EventInfo {
        message: "TeleportFinish".into(),
        index: 0,
        queue_id: None,
        body: Body::whole(body),
    });
    ev
}

#[test]
fn path_comparisons_on_decoded_bodies() {
    let ev = teleport_event();
    let yes = [
        "body.Info[0].SimPort == 13005",
        "body.Info[0].SimPort == 13005.0",
        "body.Info[*].SimPort > 13000",
        "body.Info[0].SimPort >= 13005",
        "body.Info[0].SimPort <= 13005",
        "body.Info[0].SimPort != 1",
        "body.Info[0].SimPort ~ 130*",
        "body.Info",
        "body.*[*].Scale < 2",
        "body.Info[0].SeedCapability ~ \"*/CAPS/*\"",
        "body.Info[0].SeedCapability == \"http://127.0.0.1:9000/CAPS/s0000/\"",
        "body.Info[0].AgentID == 11111111-2222-3333-4444-555555555555",
        "body.Info[0].AgentID == 11111111-2222-3333-4444-555555555555",
        "body.Info[0][\"Flag\"] == true",
        "event:TeleportFinish body.Info[0].SimPort == 13005",
        "13005",
        "simport",
        "\"/CAPS/s0000\"",
    ];
    for f in yes {
        assert!(m(f, &ev), "{f} should match");
    }
    let no = [
        "body.Info[0].SimPort == 13006",
        "body.Info[0].SimPort < 100",
        "body.Info[1].SimPort == 13005",
        "body.Info.SimPort == 13005",
        "body.Missing",
        "body.Info[0].SimIP == 1",
        "body.Info[0].Flag == false",
        "req.Info",
        "integer",
    ];
    for f in no {
        assert!(!m(f, &ev), "{f} should not match");
    }
}

#[test]
fn request_paths_and_free_text_in_binary_llsd() {
    use crate::llsd::{Map, Value};
    let mut r = http(1, "POST", "https://sim.example/cap/eq", 200);
    let mut ack = Map::new();
    ack.push("ack", Value::Integer(41));
    ack.push("done", Value::Boolean(false));
    r.request.as_mut().unwrap().body = Body::whole(crate::llsd::to_vec(
        &Value::Map(ack),
        crate::llsd::Format::Binary,
    ));
    let mut greeting = Map::new();
    greeting.push("message", Value::String("Hello Avatar".into()));
    r.response.as_mut().unwrap().body = llsd_xml(&Value::Map(greeting));
    assert!(m("req.ack > 40", &r));
    assert!(!m("req.ack > 41", &r));
    assert!(m("req.done == false", &r));
    assert!(m("body.message ~ hello*", &r));
    assert!(m("avatar", &r), "free text in a decoded response");
    assert!(
        m("done", &r),
        "free text finds keys of a binary request body"
    );
}

#[test]
fn matches_detail_reports_every_matched_path() {
    use crate::llsd::{Map, Value};
    let item = |name: &str| {
        let mut m = Map::new();
        m.push("name", Value::String(name.into()));
        Value::Map(m)
    };
    let folder = |items: Vec<Value>| {
        let mut m = Map::new();
        m.push("items", Value::Array(items));
        Value::Map(m)
    };
    let mut root = Map::new();
    root.push(
        "folders",
        Value::Array(vec![
            folder(vec![item("Object 1"), item("Box")]),
            folder(vec![item("object 12")]),
        ]),
    );
    let mut r = http(1, "POST", "https://sim.example/cap/fetch", 200);
    r.response.as_mut().unwrap().body = llsd_xml(&Value::Map(root));
    let f = Filter::parse("body.folders[*].items[*].name ~ \"Object 1*\"").unwrap();
    let found = f.matches_detail(&r).expect("matches");
    let paths: Vec<(&str, &str)> = found
        .iter()
        .map(|m| (m.path.as_str(), m.value.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("body.folders[0].items[0].name", "Object 1"),
            ("body.folders[1].items[0].name", "object 12")
        ]
    );
    assert_eq!(found[0].side, Side::Response);
    // A negated or failed branch contributes nothing.
    let f = Filter::parse("body.folders[*].items[*].name ~ Box & method:GET | cap:x").unwrap();
    assert_eq!(f.matches_detail(&r), None);
    let f = Filter::parse("!body.folders[0].items[0].name ~ Nope").unwrap();
    assert_eq!(f.matches_detail(&r), Some(vec![]));
}

#[test]
fn bodies_are_decoded_once_per_record_per_evaluation() {
    let ev = teleport_event();
    let f = Filter::parse(
        "body.Info[0].SimPort == 13005 & body.Info[0].Flag == true & body.Info[*].Scale > 1 \
         & simport & !body.Missing",
    )
    .unwrap();
    eval::DECODES.with(|d| d.set(0));
    assert!(f.matches(&ev));
    // The response (event) body once; the request side once (it has none).
    assert!(eval::DECODES.with(|d| d.get()) <= 2);
    eval::DECODES.with(|d| d.set(0));
    let names_only = Filter::parse("cap:x | event:Teleport* & kind:event").unwrap();
    assert!(names_only.matches(&ev));
    assert_eq!(
        eval::DECODES.with(|d| d.get()),
        0,
        "name terms decode nothing"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_*?]{1,8}",
            "\\PC{0,8}",
            Just("and".to_owned()),
            Just("body.x".to_owned()),
            Just("12".to_owned()),
            Just("a\"b\\c".to_owned()),
        ]
    }

    fn nonempty_text() -> impl Strategy<Value = String> {
        any_text().prop_filter("non-empty", |s| !s.is_empty())
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            any::<i32>().prop_map(|i| Literal::Number {
                text: i.to_string(),
                value: f64::from(i)
            }),
            (-1.0e6f64..1.0e6).prop_map(|f| Literal::Number {
                text: format!("{f}"),
                value: format!("{f}").parse().unwrap()
            }),
            any_text().prop_map(Literal::Text),
        ]
    }

    fn segment() -> impl Strategy<Value = Segment> {
        prop_oneof![
            nonempty_text().prop_map(Segment::Key),
            Just(Segment::Key(String::new())),
            (0usize..1000).prop_map(Segment::Index),
            Just(Segment::Any),
        ]
    }

    fn cmp() -> impl Strategy<Value = Cmp> {
        prop_oneof![
            Just(Cmp::Eq),
            Just(Cmp::Ne),
            Just(Cmp::Lt),
            Just(Cmp::Le),
            Just(Cmp::Gt),
            Just(Cmp::Ge),
            Just(Cmp::Glob),
        ]
    }

    fn term() -> impl Strategy<Value = Term> {
        prop_oneof![
            nonempty_text().prop_map(|s| Term::Cap(Glob::new(&s))),
            nonempty_text().prop_map(|s| Term::Event(Glob::new(&s))),
            nonempty_text().prop_map(|s| Term::Host(Glob::new(&s))),
            nonempty_text().prop_map(|s| Term::Region(Glob::new(&s))),
            "[A-Z]{1,7}".prop_map(Term::Method),
            prop::array::uniform3(prop::option::of(0u8..10))
                .prop_map(|p| Term::Status(StatusPattern(p))),
            prop_oneof![
                Just(Kind::Http),
                Just(Kind::Event),
                Just(Kind::Login),
                Just(Kind::Tunnel),
                Just(Kind::Error)
            ]
            .prop_map(Term::Kind),
            any_text().prop_map(|s| Term::Text(Text::new(&s))),
            (
                prop_oneof![Just(Side::Request), Just(Side::Response)],
                prop::collection::vec(segment(), 1..4),
                prop::option::of((cmp(), literal()))
            )
                .prop_map(|(side, path, c)| Term::Path(PathPredicate::new(side, path, c))),
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        term()
            .prop_map(Expr::Term)
            .prop_recursive(4, 24, 4, |inner| {
                prop_oneof![
                    inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                    prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                    prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
                ]
            })
    }

    proptest! {
        #[test]
        fn display_parses_back_to_the_same_tree(e in expr()) {
            let text = e.to_string();
            let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text:?}: {err}")))?;
            prop_assert_eq!(back, e, "via {:?}", text);
        }

        #[test]
        fn parsing_anything_never_panics_and_errors_point_inside(s in "\\PC{0,40}") {
            match parse(&s) {
                Ok(e) => {
                    let again = parse(&e.to_string()).unwrap();
                    prop_assert_eq!(again, e);
                }
                Err(err) => prop_assert!(err.column >= 1 && err.column <= s.chars().count() + 1),
            }
        }
    }
}

#[test]
fn glob_shapes() {
    let cap = |name: &str| {
        let mut r = http(1, "GET", "http://h/", 200);
        r.cap = Some(name.into());
        r
    };
    let table: &[(&str, &str, bool)] = &[
        ("*", "", true),
        ("*", "Anything", true),
        ("a*", "a", true),
        ("a*", "ba", false),
        ("*a", "ba", true),
        ("a*b*c", "aXXbYc", true),
        ("a*b*c", "aXXbYcd", false),
        ("a*b*c", "abcbc", true),
        ("?", "é", true),
        ("??", "é", false),
        ("É?", "éx", true),
        ("*?*", "", false),
        ("GetMesh?", "getmesh2", true),
        ("GetMesh", "GetMesh2", false),
    ];
    for (pattern, name, want) in table {
        let f = format!("cap:{}", super::ast::quote(pattern));
        assert_eq!(m(&f, &cap(name)), *want, "{pattern} vs {name:?}");
    }
}
