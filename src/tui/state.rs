//! The UI's state: everything a frame is drawn from, and nothing else. Updating it lives in
//! [`super::update`], drawing it in [`super::render`].
//!
//! Owns the view of the store (which rows are visible, which one is selected, what the detail shows);
//! it must not touch the terminal.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ratatui::text::Line;

use crate::filter::Filter;
use crate::store::{Limits, Store};

/// The screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    List,
    Detail,
    Caps,
    Timeline,
    Help,
}

/// The detail's tabs, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Summary,
    Request,
    Response,
    Headers,
    Raw,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Summary,
        Tab::Request,
        Tab::Response,
        Tab::Headers,
        Tab::Raw,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Summary => "summary",
            Tab::Request => "request",
            Tab::Response => "response",
            Tab::Headers => "headers",
            Tab::Raw => "raw",
        }
    }
}

/// Where the records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A running session.
    Live,
    /// A capture file (`view`), followed as it grows or not.
    File { path: PathBuf, follow: bool },
}

/// What the header says about the session beyond the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    pub listen: Option<String>,
    pub grid: Option<String>,
    pub capture: Option<PathBuf>,
    pub capture_size: u64,
    /// Records the bus published without bodies because of a slow consumer.
    pub bus_shed: u64,
    /// The capture writer's failure and losses, as last polled.
    pub capture_state: super::CaptureState,
}

/// What the session looks like so far, learnt from the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub login_mode: bool,
    pub proxy_mode: bool,
    /// Agents that logged in (`First Last`).
    pub agents: Vec<String>,
    /// The region of the latest event-queue poll.
    pub region: Option<String>,
}

/// A text bar at the bottom: the filter or the detail's search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub kind: InputKind,
    pub text: String,
    /// Cursor position in characters.
    pub cursor: usize,
    /// A parse error: its 1-based column and message.
    pub error: Option<(usize, String)>,
    /// Position in the history while browsing it with ↑/↓.
    pub history_pos: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Filter,
    Search,
}

/// One line of the detail, with what folding needs.
#[derive(Debug, Clone)]
pub struct DetailLine {
    pub line: Line<'static>,
    /// The LLSD path of a map or array that can be folded here.
    pub fold: Option<String>,
}

/// The detail of the selected record, prepared for drawing.
#[derive(Debug, Clone)]
pub struct Detail {
    pub seq: u64,
    pub title: Line<'static>,
    pub lines: Vec<DetailLine>,
    /// The line the cursor is on (folding acts there).
    pub cursor: usize,
    pub scroll: usize,
    /// Lines matching the search, in order.
    pub matches: Vec<usize>,
}

/// A message shown in the footer until the next key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

/// Log lines routed away from the terminal while the UI owns it (see [`super::log`]).
pub type LogLines = Arc<Mutex<std::collections::VecDeque<String>>>;

/// The whole UI state.
#[derive(Debug)]
pub struct App {
    pub store: Store,
    pub source: Source,
    pub info: Info,
    pub seen: Seen,
    pub filter: Option<Filter>,
    pub filter_text: String,
    /// Row keys of the visible rows, sorted (tree order).
    pub visible: Vec<crate::store::RowKey>,
    /// The store generation `visible` was built for.
    pub visible_generation: u64,
    pub show_idle: bool,
    pub selected: usize,
    pub offset: usize,
    pub follow: bool,
    pub paused: bool,
    pub screen: Screen,
    /// The screen under the help.
    pub under_help: Screen,
    pub tab: Tab,
    pub detail: Option<Detail>,
    pub folded: HashSet<String>,
    pub input: Option<Input>,
    pub history: Vec<String>,
    pub search: Option<String>,
    pub status: Option<Status>,
    /// Rows of the list and detail bodies (set from the terminal size).
    pub page: usize,
    pub width: u16,
    pub height: u16,
    pub quit: bool,
    /// The stream or file has ended.
    pub ended: bool,
    /// The current microsecond time (explicit ticks; tests set it).
    pub now_us: i64,
    pub log: LogLines,
    /// Text written for the terminal's clipboard (OSC 52) by the loop, then cleared.
    pub clipboard: Option<String>,
    /// The record `r` asked to replay, for the loop to hand to the session's replayer.
    pub replay_wanted: Option<u64>,
    /// Whether the replay is to be edited in `$EDITOR` first (`R`).
    pub replay_edit: bool,
    /// Where `w` and `e` write.
    pub save_dir: PathBuf,
    /// The per-region cap table and the timeline, rebuilt on ticks while shown.
    pub caps_view: Vec<Line<'static>>,
    pub timeline_view: Vec<Line<'static>>,
    pub view_scroll: usize,
}

/// The most filter expressions remembered.
pub const HISTORY_LEN: usize = 50;

impl App {
    pub fn new(source: Source, limits: Limits) -> Self {
        Self {
            store: Store::new(limits),
            follow: matches!(source, Source::Live | Source::File { follow: true, .. }),
            source,
            info: Info::default(),
            seen: Seen::default(),
            filter: None,
            filter_text: String::new(),
            visible: Vec::new(),
            visible_generation: 0,
            show_idle: false,
            selected: 0,
            offset: 0,
            paused: false,
            screen: Screen::List,
            under_help: Screen::List,
            tab: Tab::Summary,
            detail: None,
            folded: HashSet::new(),
            input: None,
            history: Vec::new(),
            search: None,
            status: None,
            page: 20,
            width: 80,
            height: 24,
            quit: false,
            ended: false,
            now_us: 0,
            log: LogLines::default(),
            clipboard: None,
            replay_wanted: None,
            replay_edit: false,
            save_dir: PathBuf::from("."),
            caps_view: Vec::new(),
            timeline_view: Vec::new(),
            view_scroll: 0,
        }
    }

    /// The seq of the selected row, if any.
    pub fn selected_seq(&self) -> Option<u64> {
        self.visible.get(self.selected).map(|&(_, _, s)| s)
    }
}
