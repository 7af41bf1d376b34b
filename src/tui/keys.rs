//! The key table: every key the UI answers to, as data. Dispatch ([`action_for`]) and the `?` help
//! screen ([`help_rows`]) both read [`BINDINGS`], so the help can never list a key that does nothing
//! or miss one that does something.
//!
//! Owns keys and actions only; it must not touch state or drawing.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Back,
    NextTab,
    PrevTab,
    Filter,
    Search,
    SearchNext,
    SearchPrev,
    Follow,
    Pause,
    Clear,
    ToggleIdle,
    Flows,
    Caps,
    Timeline,
    Fold,
    Save,
    ExportHar,
    Curl,
    Replay,
    EditReplay,
    Help,
    Quit,
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere (list, detail, other views).
    Global,
    /// The flow list.
    List,
    /// The detail of one record.
    Detail,
}

/// A key as written in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Ctrl(char),
    Code(KeyCode),
}

impl Key {
    fn matches(self, ev: &KeyEvent) -> bool {
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        match (self, ev.code) {
            (Key::Char(c), KeyCode::Char(got)) => !ctrl && got == c,
            (Key::Ctrl(c), KeyCode::Char(got)) => ctrl && got.eq_ignore_ascii_case(&c),
            (Key::Code(code), got) => code == got,
            _ => false,
        }
    }

    /// How the help screen writes the key.
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "Space".into(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("Ctrl-{}", c.to_ascii_uppercase()),
            Key::Code(code) => match code {
                KeyCode::Up => "↑".into(),
                KeyCode::Down => "↓".into(),
                KeyCode::PageUp => "PgUp".into(),
                KeyCode::PageDown => "PgDn".into(),
                KeyCode::Home => "Home".into(),
                KeyCode::End => "End".into(),
                KeyCode::Enter => "Enter".into(),
                KeyCode::Esc => "Esc".into(),
                KeyCode::Tab => "Tab".into(),
                KeyCode::BackTab => "Shift-Tab".into(),
                KeyCode::Backspace => "Backspace".into(),
                other => format!("{other:?}"),
            },
        }
    }
}

/// One row of the key table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    pub scope: Scope,
    /// What it does, for the help screen.
    pub help: &'static str,
    /// The short name shown in the footer's hints, when it is shown there.
    pub hint: Option<&'static str>,
}

use Key::{Char, Code, Ctrl};

/// Every key the UI answers to, in the order the help screen lists them.
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[Code(KeyCode::Up), Char('k')],
        action: Action::Up,
        scope: Scope::Global,
        help: "previous row",
        hint: None,
    },
    Binding {
        keys: &[Code(KeyCode::Down), Char('j')],
        action: Action::Down,
        scope: Scope::Global,
        help: "next row",
        hint: None,
    },
    Binding {
        keys: &[Code(KeyCode::PageUp), Ctrl('b')],
        action: Action::PageUp,
        scope: Scope::Global,
        help: "one page up",
        hint: None,
    },
    Binding {
        keys: &[Code(KeyCode::PageDown), Ctrl('f')],
        action: Action::PageDown,
        scope: Scope::Global,
        help: "one page down",
        hint: None,
    },
    Binding {
        keys: &[Char('g'), Code(KeyCode::Home)],
        action: Action::Top,
        scope: Scope::Global,
        help: "first row",
        hint: None,
    },
    Binding {
        keys: &[Char('G'), Code(KeyCode::End)],
        action: Action::Bottom,
        scope: Scope::Global,
        help: "last row (and follow, in the list)",
        hint: None,
    },
    Binding {
        keys: &[Code(KeyCode::Enter)],
        action: Action::Open,
        scope: Scope::List,
        help: "open the selected record",
        hint: Some("detail"),
    },
    Binding {
        keys: &[Code(KeyCode::Enter), Char(' ')],
        action: Action::Fold,
        scope: Scope::Detail,
        help: "fold or unfold the LLSD map or array under the cursor",
        hint: Some("fold"),
    },
    Binding {
        keys: &[Code(KeyCode::Esc)],
        action: Action::Back,
        scope: Scope::Global,
        help: "back (detail to list, help away, filter off)",
        hint: Some("back"),
    },
    Binding {
        keys: &[Code(KeyCode::Tab), Char('l')],
        action: Action::NextTab,
        scope: Scope::Detail,
        help: "next tab (summary, request, response, headers, raw)",
        hint: Some("tab"),
    },
    Binding {
        keys: &[Code(KeyCode::BackTab), Char('h')],
        action: Action::PrevTab,
        scope: Scope::Detail,
        help: "previous tab",
        hint: None,
    },
    Binding {
        keys: &[Char('/')],
        action: Action::Filter,
        scope: Scope::List,
        help: "filter the list (↑/↓ in the bar: history)",
        hint: Some("filter"),
    },
    Binding {
        keys: &[Char('/')],
        action: Action::Search,
        scope: Scope::Detail,
        help: "search the text of this record (bodies included)",
        hint: Some("search"),
    },
    Binding {
        keys: &[Char('n')],
        action: Action::SearchNext,
        scope: Scope::Global,
        help: "next match (in the list: next record holding it)",
        hint: None,
    },
    Binding {
        keys: &[Char('N')],
        action: Action::SearchPrev,
        scope: Scope::Global,
        help: "previous search match",
        hint: None,
    },
    Binding {
        keys: &[Char('f')],
        action: Action::Follow,
        scope: Scope::List,
        help: "follow new records on or off",
        hint: Some("follow"),
    },
    Binding {
        keys: &[Char('p')],
        action: Action::Pause,
        scope: Scope::List,
        help: "pause the list (records are still kept) or resume",
        hint: Some("pause"),
    },
    Binding {
        keys: &[Char('c')],
        action: Action::Clear,
        scope: Scope::List,
        help: "clear the list (the capture file keeps everything)",
        hint: None,
    },
    Binding {
        keys: &[Char('i')],
        action: Action::ToggleIdle,
        scope: Scope::List,
        help: "show or hide idle event-queue polls",
        hint: None,
    },
    Binding {
        keys: &[Char('1')],
        action: Action::Flows,
        scope: Scope::Global,
        help: "flows (the list)",
        hint: None,
    },
    Binding {
        keys: &[Char('2')],
        action: Action::Caps,
        scope: Scope::Global,
        help: "caps by region",
        hint: Some("caps"),
    },
    Binding {
        keys: &[Char('3')],
        action: Action::Timeline,
        scope: Scope::Global,
        help: "event timeline",
        hint: Some("timeline"),
    },
    Binding {
        keys: &[Char('w')],
        action: Action::Save,
        scope: Scope::List,
        help: "save the visible records as a capture (.jsonl)",
        hint: None,
    },
    Binding {
        keys: &[Char('e')],
        action: Action::ExportHar,
        scope: Scope::List,
        help: "export the visible records as HAR",
        hint: None,
    },
    Binding {
        keys: &[Char('y')],
        action: Action::Curl,
        scope: Scope::Global,
        help: "copy the request as curl (OSC 52, and shown)",
        hint: Some("curl"),
    },
    Binding {
        keys: &[Char('r')],
        action: Action::Replay,
        scope: Scope::Global,
        help: "replay the selected request through capscope (recorded, marked ↻)",
        hint: None,
    },
    Binding {
        keys: &[Char('R')],
        action: Action::EditReplay,
        scope: Scope::Global,
        help: "edit the request in $EDITOR, then replay it",
        hint: None,
    },
    Binding {
        keys: &[Char('?')],
        action: Action::Help,
        scope: Scope::Global,
        help: "this help",
        hint: Some("help"),
    },
    Binding {
        keys: &[Char('q'), Ctrl('c')],
        action: Action::Quit,
        scope: Scope::Global,
        help: "quit (the capture is saved as it goes)",
        hint: Some("quit"),
    },
];

/// The action `ev` asks for in `scope` (bindings of the scope first, then global ones).
pub fn action_for(ev: &KeyEvent, scope: Scope) -> Option<Action> {
    let pick = |want: Scope| {
        BINDINGS
            .iter()
            .find(|b| b.scope == want && b.keys.iter().any(|k| k.matches(ev)))
            .map(|b| b.action)
    };
    if scope == Scope::Global {
        pick(Scope::Global)
    } else {
        pick(scope).or_else(|| pick(Scope::Global))
    }
}

/// The help screen's rows: keys, where, what.
pub fn help_rows() -> Vec<(String, &'static str, &'static str)> {
    BINDINGS
        .iter()
        .map(|b| {
            let keys: Vec<String> = b.keys.iter().map(|k| k.label()).collect();
            let scope = match b.scope {
                Scope::Global => "",
                Scope::List => "list",
                Scope::Detail => "detail",
            };
            (keys.join(" "), scope, b.help)
        })
        .collect()
}

/// The footer's hints for `scope`: `(key, name)`.
pub fn hints(scope: Scope) -> Vec<(String, &'static str)> {
    BINDINGS
        .iter()
        .filter(|b| b.scope == scope || b.scope == Scope::Global)
        .filter_map(|b| Some((b.keys.first()?.label(), b.hint?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn the_same_key_means_what_its_scope_says() {
        let enter = key(KeyCode::Enter);
        assert_eq!(action_for(&enter, Scope::List), Some(Action::Open));
        assert_eq!(action_for(&enter, Scope::Detail), Some(Action::Fold));
        let q = key(KeyCode::Char('q'));
        assert_eq!(action_for(&q, Scope::Detail), Some(Action::Quit));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action_for(&ctrl_c, Scope::List), Some(Action::Quit));
        assert_eq!(
            action_for(&key(KeyCode::Char('c')), Scope::List),
            Some(Action::Clear)
        );
        assert_eq!(action_for(&key(KeyCode::Char('Z')), Scope::List), None);
    }

    #[test]
    fn every_binding_is_in_the_help_and_no_key_is_bound_twice_in_one_scope() {
        assert_eq!(help_rows().len(), BINDINGS.len());
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                let overlap = a.scope == b.scope || a.scope == Scope::Global;
                if overlap && a.scope == b.scope {
                    for k in a.keys {
                        assert!(!b.keys.contains(k), "{k:?} bound twice in {:?}", a.scope);
                    }
                }
            }
        }
    }
}
