//! `get_grid_info`: the small XML document a grid serves to describe itself, which Firestorm's grid
//! manager fetches before it adds a grid (it appends `get_grid_info` to the login URI it is given:
//! `http://127.0.0.1:8080/login` → `http://127.0.0.1:8080/login/get_grid_info`;
//! FirestormViewer/phoenix-firestorm indra/newview/fsgridhandler.cpp, `LLGridManager::addGrid`), and
//! then logs in at the document's `login` element (`gridInfoResponderCB`).
//!
//! OpenSimulator serves `<gridinfo><login>…</login><gridname>…</gridname>…</gridinfo>` at
//! `/get_grid_info` on its login port, one element per `[GridInfoService]` setting, text escaped
//! (opensim/opensim OpenSim/Server/Handlers/Grid/GridInfoServerInConnector.cs registers the path,
//! GridInfoHandlers.cs `RestGetGridInfoMethod` writes the document). Second Life has no such
//! document; capscope makes one up.
//!
//! Owns reading and rewriting that document. Knows nothing of sockets (the hook fetches it).

use super::xmlrpc::{self, escape_text};
use super::CapsError;

/// The path OpenSimulator serves its grid info at, and the one capscope answers (also under `/login/`).
pub const GRID_INFO_PATH: &str = "/get_grid_info";

/// The document's root element.
const ROOT: &str = "gridinfo";

/// How deep the document is read: `gridinfo/element/text`.
const GRID_INFO_DEPTH: usize = 3;

/// Second Life's login page (the Linden viewer's `DEFAULT_LOGIN_PAGE`, secondlife/viewer
/// indra/newview/llviewernetwork.cpp). Not a `lindenlab.com` host: Firestorm switches to its own
/// Second Life grid when a grid's login page is on `lindenlab.com` (fsgridhandler.cpp,
/// `updateIsInProductionGrid`'s "TPVP compliance" check), which would bypass capscope.
const SL_LOGIN_PAGE: &str = "https://viewer-splash.secondlife.com/";

/// Second Life's helper URI (llviewernetwork.cpp, the built-in agni entry).
const SL_HELPERS: &str = "https://secondlife.com/helpers/";

/// The grid info capscope answers with: the grid's own document with `login` pointing at capscope,
/// or one made up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridInfo {
    pub body: Vec<u8>,
    pub notes: Vec<String>,
}

/// A Second Life grid by its login host (`login.agni.lindenlab.com`, `login.aditi.lindenlab.com`):
/// `agni` or `aditi`, else `None`.
pub fn second_life_grid(host: &str) -> Option<&'static str> {
    let host = host.to_ascii_lowercase();
    if !host.ends_with(".lindenlab.com") {
        return None;
    }
    if host.contains("aditi") {
        Some("aditi")
    } else {
        Some("agni")
    }
}

/// The grid's own document with its `login` element's text replaced by `login` (capscope's login
/// URL), everything else byte-identical. A document without a `login` element gets one added.
pub fn rewrite(body: &[u8], login: &str) -> Result<GridInfo, CapsError> {
    const WHAT: &str = "grid info";
    let root = xmlrpc::parse_to_depth(body, WHAT, GRID_INFO_DEPTH)?;
    if root.name != ROOT {
        return Err(CapsError::Shape {
            what: WHAT,
            expected: "a <gridinfo> document",
            found: format!("root element <{}>", root.name),
        });
    }
    let escaped = escape_text(login);
    let mut out = Vec::with_capacity(body.len() + escaped.len());
    let mut notes = Vec::new();
    match root.child("login") {
        Some(el) => {
            out.extend_from_slice(&body[..el.content.start]);
            out.extend_from_slice(escaped.as_bytes());
            out.extend_from_slice(&body[el.content.end..]);
            notes.push(format!(
                "the grid's own grid info; login {} -> {login}",
                el.text().trim()
            ));
        }
        None if root.content.end > root.content.start || body_has_end_tag(body, &root) => {
            out.extend_from_slice(&body[..root.content.end]);
            out.extend_from_slice(format!("<login>{escaped}</login>").as_bytes());
            out.extend_from_slice(&body[root.content.end..]);
            notes.push(format!(
                "the grid's own grid info had no login; added login {login}"
            ));
        }
        None => {
            return Err(CapsError::Shape {
                what: WHAT,
                expected: "a <gridinfo> element with content",
                found: "an empty <gridinfo/>".to_owned(),
            })
        }
    }
    Ok(GridInfo { body: out, notes })
}

/// Whether `<gridinfo>` was written with an end tag (so content can be inserted before it).
fn body_has_end_tag(body: &[u8], root: &xmlrpc::Element) -> bool {
    body.get(root.content.end..)
        .is_some_and(|rest| rest.starts_with(b"</"))
}

/// A made-up grid info: for Second Life (which serves none), or for a grid whose own could not be
/// had (`why` says why). `grid_host` names the grid, `login` is capscope's login URL.
pub fn made_up(grid_host: &str, login: &str, why: &str) -> GridInfo {
    let sl = second_life_grid(grid_host);
    let (name, nick, platform) = match sl {
        Some(g) => (
            format!("Second Life ({g}) through capscope"),
            format!("capscope-{g}"),
            "SecondLife",
        ),
        None => (
            format!("{grid_host} through capscope"),
            "capscope".to_owned(),
            "OpenSim",
        ),
    };
    let mut fields: Vec<(&str, String)> = vec![
        ("login", login.to_owned()),
        ("gridname", name),
        ("gridnick", nick),
        ("platform", platform.to_owned()),
    ];
    if sl.is_some() {
        fields.push(("welcome", SL_LOGIN_PAGE.to_owned()));
        fields.push(("economy", SL_HELPERS.to_owned()));
    }
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<gridinfo>");
    for (k, v) in fields {
        body.push_str(&format!("<{k}>{}</{k}>", escape_text(&v)));
    }
    body.push_str("</gridinfo>\n");
    GridInfo {
        body: body.into_bytes(),
        notes: vec![format!(
            "grid info made up by capscope ({why}); login {login}"
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = "http://127.0.0.1:8080/login";

    /// As OpenSimulator writes it: no declaration, no whitespace, escaped text.
    const OPENSIM: &str = "<gridinfo><platform>OpenSim</platform><login>http://127.0.0.1:9000/</login>\
<gridname>Test &amp; Grid</gridname><gridnick>test</gridnick><welcome>http://127.0.0.1:9000/welcome</welcome></gridinfo>";

    #[test]
    fn opensim_grid_info_keeps_everything_but_login() {
        let out = rewrite(OPENSIM.as_bytes(), LOGIN).unwrap();
        let text = String::from_utf8(out.body).unwrap();
        assert_eq!(
            text,
            OPENSIM.replace(
                "http://127.0.0.1:9000/</login>",
                &format!("{LOGIN}</login>")
            )
        );
        assert!(
            out.notes[0].contains("http://127.0.0.1:9000/ -> "),
            "{:?}",
            out.notes
        );
    }

    #[test]
    fn a_document_without_login_gets_one() {
        let body = "<gridinfo>\n  <gridname>G</gridname>\n</gridinfo>";
        let text = String::from_utf8(rewrite(body.as_bytes(), LOGIN).unwrap().body).unwrap();
        assert_eq!(
            text,
            format!("<gridinfo>\n  <gridname>G</gridname>\n<login>{LOGIN}</login></gridinfo>")
        );
    }

    #[test]
    fn other_documents_are_refused() {
        assert!(rewrite(b"<html><body>404</body></html>", LOGIN).is_err());
        assert!(rewrite(b"not xml at all <", LOGIN).is_err());
        assert!(rewrite(b"", LOGIN).is_err());
        assert!(rewrite(b"<gridinfo/>", LOGIN).is_err());
    }

    #[test]
    fn second_life_gets_a_made_up_document_whose_login_page_keeps_firestorm_on_capscope() {
        let info = made_up("login.agni.lindenlab.com", LOGIN, "Second Life serves none");
        let text = String::from_utf8(info.body.clone()).unwrap();
        let root = xmlrpc::parse_to_depth(&info.body, "t", GRID_INFO_DEPTH).unwrap();
        assert_eq!(root.name, "gridinfo");
        assert_eq!(root.child("login").unwrap().text(), LOGIN);
        assert_eq!(root.child("platform").unwrap().text(), "SecondLife");
        assert_eq!(root.child("gridnick").unwrap().text(), "capscope-agni");
        assert!(!root
            .child("welcome")
            .unwrap()
            .text()
            .contains("lindenlab.com"));
        assert!(text.contains("Second Life (agni)"), "{text}");
        assert_eq!(second_life_grid("login.aditi.lindenlab.com"), Some("aditi"));
        assert_eq!(second_life_grid("127.0.0.1"), None);
    }
}
