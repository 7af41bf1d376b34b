//! Updating the UI's state: records, lags, keys, mouse, resizes and ticks in, state out. Nothing here
//! draws or touches the terminal, so every path is testable with plain values and explicit ticks.

use std::path::PathBuf;

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use super::detail;
use super::keys::{self, Action, Scope};
use super::state::{App, Input, InputKind, Screen, Source, Status, Tab, HISTORY_LEN};
use super::views;
use crate::capture::{self, FileHeader};
use crate::filter::Filter;
use crate::record::{Kind, Record, State};
use crate::store::Applied;

/// Rows the header takes at the top of the screen (the list starts below it).
pub const HEADER_ROWS: u16 = 3;
/// Rows the footer takes.
pub const FOOTER_ROWS: u16 = 1;

impl App {
    /// Takes in one record version.
    pub fn take(&mut self, r: &Record) {
        self.learn(r);
        let applied = self.store.apply(r);
        if self.store.generation() != self.visible_generation {
            self.rebuild_visible();
            return;
        }
        if let Some(evicted) = self.store.take_evicted() {
            self.evicted(evicted);
        }
        if self.paused {
            return;
        }
        // Events that arrived before their poll (a file's order) move under it now.
        for (kid, old) in self.store.take_adopted() {
            if let Ok(at) = self.visible.binary_search(&old) {
                self.visible.remove(at);
                if at < self.selected {
                    self.selected -= 1;
                }
            }
            self.refresh_row(kid);
        }
        let seq = applied.seq();
        match applied {
            Applied::Added(_) => self.refresh_row(seq),
            Applied::Updated(_) => {
                let was = self.is_shown(seq);
                self.refresh_row(seq);
                if was != self.is_shown(seq) {
                    let children = self
                        .store
                        .get(seq)
                        .map(|e| e.children.clone())
                        .unwrap_or_default();
                    for c in children {
                        self.refresh_row(c);
                    }
                }
                if self.detail.as_ref().is_some_and(|d| d.seq == seq) {
                    self.rebuild_detail();
                }
            }
        }
        self.follow_and_scroll();
    }

    /// The capture writer's state, polled (`None`: the writer is gone, keep what was seen). Returns
    /// whether the header changed.
    pub fn capture_state(&mut self, state: Option<super::CaptureState>) -> bool {
        match state {
            Some(s) if s != self.info.capture_state => {
                if let (Some(why), None) = (&s.failure, &self.info.capture_state.failure) {
                    self.say_error(format!("capture stopped: {why}"));
                }
                self.info.capture_state = s;
                true
            }
            _ => false,
        }
    }

    /// Notes that `lost` records were lost because the UI fell behind.
    pub fn lagged(&mut self, lost: u64) {
        self.store.lagged(lost, self.now_us);
    }

    /// The stream (or file) ended: nothing more will come.
    pub fn end(&mut self) {
        self.ended = true;
        let closed = self.store.close_lost(self.now_us, true);
        for seq in closed {
            self.refresh_row(seq);
        }
    }

    /// Time passes: close records whose final version was lost, refresh the other views.
    pub fn tick(&mut self, now_us: i64) {
        self.now_us = now_us;
        for seq in self.store.close_lost(now_us, false) {
            self.refresh_row(seq);
        }
        self.refresh_views();
    }

    /// Rebuilds the caps and timeline views when one of them is shown.
    pub fn refresh_views(&mut self) {
        match self.screen {
            Screen::Caps => self.caps_view = views::caps_by_region(&self.store),
            Screen::Timeline => self.timeline_view = views::timeline(&self.store),
            _ => {}
        }
    }

    /// The terminal's new size.
    pub fn resize(&mut self, width: u16, height: u16) {
        self.width = width;
        self.height = height;
        self.page = usize::from(height.saturating_sub(HEADER_ROWS + FOOTER_ROWS + 1)).max(1);
        self.scroll_to_selection();
    }

    fn learn(&mut self, r: &Record) {
        if r.kind == Kind::Login || r.request.as_ref().is_some_and(|q| q.client_url.is_some()) {
            self.seen.login_mode = true;
        }
        // HTTP proxy mode: a finished exchange the viewer addressed to the grid itself (an absolute
        // URL capscope did not route). A request cut off before routing has only its path.
        if r.kind == Kind::Http
            && r.is_final()
            && r.request
                .as_ref()
                .is_some_and(|q| q.client_url.is_none() && q.url.starts_with("http"))
        {
            self.seen.proxy_mode = true;
        }
        if r.kind == Kind::Login && r.is_final() {
            if let Some(name) = r.request.as_ref().and_then(|q| login_name(&q.body.data)) {
                if !self.seen.agents.contains(&name) {
                    self.seen.agents.push(name);
                }
            }
        }
        if r.kind == Kind::Http && r.cap.as_deref() == Some("EventQueueGet") {
            if let Some(region) = &r.region {
                self.seen.region = Some(region.clone());
            }
        }
    }

    /// Whether the row at `seq` is in `visible`.
    pub fn is_shown(&self, seq: u64) -> bool {
        self.store
            .row_key(seq)
            .is_some_and(|k| self.visible.binary_search(&k).is_ok())
    }

    /// Whether the row at `seq` passes the idle-poll toggle and the filter (the shared rule).
    fn passes(&self, seq: u64, poll_shown: &dyn Fn(u64) -> bool) -> bool {
        let Some(e) = self.store.get(seq) else {
            return false;
        };
        if !self.show_idle
            && e.children.is_empty()
            && e.record.notes.iter().any(|n| n.starts_with("idle poll"))
        {
            return false;
        }
        let poll_kept = e.parent.is_some_and(poll_shown);
        crate::filter::keeps(self.filter.as_ref(), &e.record, poll_kept)
    }

    /// Puts the row at `seq` in or out of `visible`, keeping the selection on the same row.
    fn refresh_row(&mut self, seq: u64) {
        let Some(key) = self.store.row_key(seq) else {
            return;
        };
        let want = {
            let visible = &self.visible;
            let store = &self.store;
            let shown = |p: u64| {
                store
                    .row_key(p)
                    .is_some_and(|k| visible.binary_search(&k).is_ok())
            };
            self.passes(seq, &shown)
        };
        match (self.visible.binary_search(&key), want) {
            (Err(at), true) => {
                self.visible.insert(at, key);
                if at <= self.selected && self.visible.len() > 1 && !self.follow {
                    self.selected += 1;
                }
            }
            (Ok(at), false) => {
                self.visible.remove(at);
                if at < self.selected {
                    self.selected -= 1;
                }
            }
            _ => {}
        }
        self.clamp_selection();
    }

    /// Follows the store's eviction of its oldest records without rebuilding `visible` (which would
    /// judge every held record by the filter again): their rows go, and events left without their
    /// poll are judged again on their own.
    fn evicted(&mut self, evicted: crate::store::Evicted) {
        let keep = self.selected_seq();
        self.visible.retain(|&(_, _, seq)| seq >= evicted.below);
        for (seq, old) in evicted.unparented {
            if let Ok(at) = self.visible.binary_search(&old) {
                self.visible.remove(at);
            }
            if !self.paused {
                self.refresh_row(seq);
            }
        }
        self.reselect(keep);
    }

    /// Rebuilds `visible` from the store (after a filter change, a clear, resume).
    pub fn rebuild_visible(&mut self) {
        self.store.take_adopted();
        self.store.take_evicted();
        let keep = self.selected_seq();
        let mut visible: Vec<crate::store::RowKey> = Vec::with_capacity(self.store.len());
        for seq in self.store.rows() {
            let shown = |p: u64| {
                self.store
                    .row_key(p)
                    .is_some_and(|k| visible.binary_search(&k).is_ok())
            };
            if self.passes(seq, &shown) {
                if let Some(k) = self.store.row_key(seq) {
                    visible.push(k);
                }
            }
        }
        self.visible = visible;
        self.visible_generation = self.store.generation();
        self.reselect(keep);
    }

    /// Puts the selection back on the row at `seq` (or where it was, if that row went), after
    /// `visible` changed under it.
    fn reselect(&mut self, seq: Option<u64>) {
        if let Some(k) = seq.and_then(|s| self.store.row_key(s)) {
            self.selected = self
                .visible
                .binary_search(&k)
                .unwrap_or_else(|at| at.min(self.visible.len().saturating_sub(1)));
        }
        self.clamp_selection();
        self.follow_and_scroll();
    }

    fn clamp_selection(&mut self) {
        self.selected = self.selected.min(self.visible.len().saturating_sub(1));
    }

    fn follow_and_scroll(&mut self) {
        if self.follow && !self.paused {
            self.selected = self.visible.len().saturating_sub(1);
        }
        self.scroll_to_selection();
    }

    fn scroll_to_selection(&mut self) {
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + self.page {
            self.offset = self.selected + 1 - self.page;
        }
        let max_offset = self.visible.len().saturating_sub(self.page);
        self.offset = self.offset.min(max_offset);
    }

    /// Handles a key.
    pub fn key(&mut self, ev: KeyEvent) {
        self.status = None;
        if self.input.is_some() {
            self.input_key(ev);
            return;
        }
        let scope = match self.screen {
            Screen::List => Scope::List,
            Screen::Detail => Scope::Detail,
            _ => Scope::Global,
        };
        if self.screen == Screen::Help {
            // Moving keys scroll the help, q quits, any other key leaves it.
            let max = keys::BINDINGS.len().saturating_sub(self.page / 2);
            match keys::action_for(&ev, Scope::Global) {
                Some(Action::Quit) => self.quit = true,
                Some(Action::Up) => self.view_scroll = self.view_scroll.saturating_sub(1),
                Some(Action::Down) => self.view_scroll = (self.view_scroll + 1).min(max),
                Some(Action::PageUp) => {
                    self.view_scroll = self.view_scroll.saturating_sub(self.page)
                }
                Some(Action::PageDown) => {
                    self.view_scroll = (self.view_scroll + self.page).min(max)
                }
                Some(Action::Top) => self.view_scroll = 0,
                Some(Action::Bottom) => self.view_scroll = max,
                _ => {
                    self.screen = self.under_help;
                    self.view_scroll = 0;
                }
            }
            return;
        }
        if let Some(action) = keys::action_for(&ev, scope) {
            self.act(action);
        }
    }

    /// Does what `action` asks.
    pub fn act(&mut self, action: Action) {
        match (self.screen, action) {
            (_, Action::Quit) => self.quit = true,
            (s, Action::Help) => {
                self.under_help = s;
                self.screen = Screen::Help;
                self.view_scroll = 0;
            }
            (_, Action::Flows) => self.screen = Screen::List,
            (_, Action::Caps) => {
                self.screen = Screen::Caps;
                self.view_scroll = 0;
                self.refresh_views();
            }
            (_, Action::Timeline) => {
                self.screen = Screen::Timeline;
                self.view_scroll = 0;
                self.refresh_views();
            }
            (Screen::Detail, a) => self.detail_action(a),
            (Screen::Caps | Screen::Timeline, a) => self.view_action(a),
            (Screen::List, a) => self.list_action(a),
            (Screen::Help, _) => self.screen = self.under_help,
        }
    }

    fn list_action(&mut self, action: Action) {
        let last = self.visible.len().saturating_sub(1);
        match action {
            Action::Up => self.select(self.selected.saturating_sub(1)),
            Action::Down => self.select((self.selected + 1).min(last)),
            Action::PageUp => self.select(self.selected.saturating_sub(self.page)),
            Action::PageDown => self.select((self.selected + self.page).min(last)),
            Action::Top => self.select(0),
            Action::Bottom => {
                self.follow = true;
                self.select(last);
            }
            Action::Open => self.open_detail(),
            Action::Back if self.filter.is_some() => self.set_filter(String::new()),
            Action::Filter => {
                let text = self.filter_text.clone();
                self.input = Some(Input {
                    kind: InputKind::Filter,
                    cursor: text.chars().count(),
                    error: None,
                    text,
                    history_pos: None,
                });
            }
            Action::SearchNext | Action::SearchPrev => {
                self.search_list(action == Action::SearchNext)
            }
            Action::Follow => {
                self.follow = !self.follow;
                self.say(if self.follow {
                    "follow on"
                } else {
                    "follow off"
                });
                self.follow_and_scroll();
            }
            Action::Pause => {
                self.paused = !self.paused;
                if !self.paused {
                    self.rebuild_visible();
                }
            }
            Action::Clear => {
                self.store.clear();
                self.detail = None;
                self.rebuild_visible();
                self.selected = 0;
                self.offset = 0;
            }
            Action::ToggleIdle => {
                self.show_idle = !self.show_idle;
                self.rebuild_visible();
            }
            Action::Save => self.save(false),
            Action::ExportHar => self.save(true),
            Action::Curl => self.curl(),
            Action::Replay => self.replay(false),
            Action::EditReplay => self.replay(true),
            _ => {}
        }
    }

    fn select(&mut self, row: usize) {
        if row != self.visible.len().saturating_sub(1) {
            self.follow = false;
        }
        self.selected = row;
        self.clamp_selection();
        self.scroll_to_selection();
    }

    fn open_detail(&mut self) {
        if self.selected_seq().is_none() {
            return;
        }
        self.screen = Screen::Detail;
        self.detail = None;
        self.rebuild_detail();
    }

    /// Rebuilds the detail of the selected record (new tab, fold, search, a new version).
    pub fn rebuild_detail(&mut self) {
        let seq = match &self.detail {
            Some(d) => d.seq,
            None => match self.selected_seq() {
                Some(s) => s,
                None => return,
            },
        };
        let (cursor, scroll) = self
            .detail
            .as_ref()
            .map_or((0, 0), |d| (d.cursor, d.scroll));
        let mut d = detail::build(
            &mut self.store,
            seq,
            self.tab,
            &self.folded,
            self.search.as_deref(),
        );
        d.cursor = cursor.min(d.lines.len().saturating_sub(1));
        d.scroll = scroll.min(d.lines.len().saturating_sub(1));
        self.detail = Some(d);
    }

    fn detail_action(&mut self, action: Action) {
        let page = self.page.saturating_sub(1).max(1);
        match action {
            Action::Back => {
                self.screen = Screen::List;
                self.detail = None;
            }
            Action::NextTab | Action::PrevTab => {
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                let n = Tab::ALL.len();
                let next = if action == Action::NextTab {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.tab = Tab::ALL[next];
                if let Some(d) = self.detail.as_mut() {
                    d.cursor = 0;
                    d.scroll = 0;
                }
                self.rebuild_detail();
            }
            Action::Up => self.move_cursor(-1),
            Action::Down => self.move_cursor(1),
            Action::PageUp => self.move_cursor(-(page as isize)),
            Action::PageDown => self.move_cursor(page as isize),
            Action::Top => self.move_cursor(isize::MIN / 2),
            Action::Bottom => self.move_cursor(isize::MAX / 2),
            Action::Fold => {
                let path = self
                    .detail
                    .as_ref()
                    .and_then(|d| d.lines.get(d.cursor))
                    .and_then(|l| l.fold.clone());
                if let Some(p) = path {
                    if !self.folded.remove(&p) {
                        self.folded.insert(p);
                    }
                    self.rebuild_detail();
                }
            }
            Action::Search => {
                self.input = Some(Input {
                    kind: InputKind::Search,
                    text: self.search.clone().unwrap_or_default(),
                    cursor: self.search.as_deref().map_or(0, |s| s.chars().count()),
                    error: None,
                    history_pos: None,
                })
            }
            Action::SearchNext | Action::SearchPrev => {
                self.jump_match(action == Action::SearchNext)
            }
            Action::Curl => self.curl(),
            Action::Replay => self.replay(false),
            Action::EditReplay => self.replay(true),
            _ => {}
        }
    }

    fn view_action(&mut self, action: Action) {
        let len = match self.screen {
            Screen::Caps => self.caps_view.len(),
            _ => self.timeline_view.len(),
        };
        let max = len.saturating_sub(self.page);
        self.view_scroll = match action {
            Action::Up => self.view_scroll.saturating_sub(1),
            Action::Down => (self.view_scroll + 1).min(max),
            Action::PageUp => self.view_scroll.saturating_sub(self.page),
            Action::PageDown => (self.view_scroll + self.page).min(max),
            Action::Top => 0,
            Action::Bottom => max,
            Action::Back => {
                self.screen = Screen::List;
                0
            }
            _ => self.view_scroll,
        };
    }

    fn move_cursor(&mut self, by: isize) {
        let page = self.page;
        if let Some(d) = self.detail.as_mut() {
            let last = d.lines.len().saturating_sub(1) as isize;
            d.cursor = (d.cursor as isize).saturating_add(by).clamp(0, last.max(0)) as usize;
            if d.cursor < d.scroll {
                d.scroll = d.cursor;
            } else if d.cursor >= d.scroll + page {
                d.scroll = d.cursor + 1 - page;
            }
        }
    }

    fn jump_match(&mut self, forward: bool) {
        let Some(d) = self.detail.as_ref() else {
            return;
        };
        if d.matches.is_empty() {
            self.say(match &self.search {
                Some(s) => format!("no match for {s:?} in this tab"),
                None => "no search yet: press / to search".into(),
            });
            return;
        }
        let target = if forward {
            d.matches
                .iter()
                .find(|&&m| m > d.cursor)
                .or(d.matches.first())
        } else {
            d.matches
                .iter()
                .rev()
                .find(|&&m| m < d.cursor)
                .or(d.matches.last())
        };
        if let Some(&t) = target {
            let by = t as isize - d.cursor as isize;
            self.move_cursor(by);
        }
    }

    /// `n`/`N` in the list: the next (previous) visible record whose text or bodies hold the search.
    fn search_list(&mut self, forward: bool) {
        let Some(needle) = self.search.clone().filter(|s| !s.is_empty()) else {
            self.say("no search yet: open a record (Enter) and press / to search");
            return;
        };
        let needle = needle.to_lowercase();
        let n = self.visible.len();
        for step in 1..=n {
            let i = if forward {
                (self.selected + step) % n
            } else {
                (self.selected + n - step % n) % n
            };
            let seq = self.visible[i].2;
            if self
                .store
                .get(seq)
                .is_some_and(|e| detail::record_contains(&e.record, &needle))
            {
                self.select(i);
                return;
            }
        }
        self.say(format!("no record holds {needle:?}"));
    }

    fn input_key(&mut self, ev: KeyEvent) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        let len = input.text.chars().count();
        match ev.code {
            KeyCode::Char('c') if ctrl => {
                self.input = None;
                return;
            }
            KeyCode::Esc => {
                self.input = None;
                return;
            }
            KeyCode::Enter => {
                let text = input.text.trim().to_owned();
                match input.kind {
                    InputKind::Filter => match Filter::parse(&text) {
                        Ok(_) | Err(_) if text.is_empty() => {
                            self.input = None;
                            self.set_filter(text);
                        }
                        Ok(_) => {
                            self.input = None;
                            self.remember(&text);
                            self.set_filter(text);
                        }
                        Err(e) => {
                            input.error = Some((e.column, e.message.clone()));
                        }
                    },
                    InputKind::Search => {
                        self.input = None;
                        self.search = (!text.is_empty()).then_some(text);
                        self.rebuild_detail();
                        if let Some(d) = self.detail.as_mut() {
                            d.cursor = d.cursor.saturating_sub(1);
                        }
                        self.jump_match(true);
                    }
                }
                return;
            }
            KeyCode::Left => input.cursor = input.cursor.saturating_sub(1),
            KeyCode::Right => input.cursor = (input.cursor + 1).min(len),
            KeyCode::Home => input.cursor = 0,
            KeyCode::End => input.cursor = len,
            KeyCode::Backspace if input.cursor > 0 => {
                let at = byte_at(&input.text, input.cursor - 1);
                input.text.remove(at);
                input.cursor -= 1;
            }
            KeyCode::Delete if input.cursor < len => {
                let at = byte_at(&input.text, input.cursor);
                input.text.remove(at);
            }
            KeyCode::Up | KeyCode::Down if input.kind == InputKind::Filter => {
                if self.history.is_empty() {
                    return;
                }
                let last = self.history.len() - 1;
                let pos = match (input.history_pos, ev.code) {
                    (None, KeyCode::Up) => Some(last),
                    (Some(p), KeyCode::Up) => Some(p.saturating_sub(1)),
                    (Some(p), KeyCode::Down) if p < last => Some(p + 1),
                    _ => None,
                };
                input.history_pos = pos;
                input.text = pos.map(|p| self.history[p].clone()).unwrap_or_default();
                input.cursor = input.text.chars().count();
            }
            KeyCode::Char(c) if !ctrl => {
                let at = byte_at(&input.text, input.cursor);
                input.text.insert(at, c);
                input.cursor += 1;
            }
            _ => {}
        }
        // The filter is parsed as it is typed, so an error shows at its column at once.
        if input.kind == InputKind::Filter {
            let text = input.text.trim();
            input.error = match Filter::parse(text) {
                Err(e) if !text.is_empty() => {
                    // The column is in the trimmed text; shift it back to the typed text.
                    let lead = input.text.chars().take_while(|c| c.is_whitespace()).count();
                    Some((e.column + lead, e.message.clone()))
                }
                _ => None,
            };
        }
    }

    fn remember(&mut self, text: &str) {
        self.history.retain(|h| h != text);
        self.history.push(text.to_owned());
        if self.history.len() > HISTORY_LEN {
            self.history.remove(0);
        }
    }

    /// Applies a filter expression (empty: no filter). Invalid text leaves the filter as it was.
    pub fn set_filter(&mut self, text: String) {
        if text.is_empty() {
            self.filter = None;
        } else {
            match Filter::parse(&text) {
                Ok(f) => self.filter = Some(f),
                Err(e) => {
                    self.say_error(format!("filter: {e}"));
                    return;
                }
            }
        }
        self.filter_text = text;
        self.rebuild_visible();
    }

    /// Handles a mouse event: the wheel scrolls, a click selects (a second click on the selected
    /// row opens it).
    pub fn mouse(&mut self, ev: MouseEvent) {
        match ev.kind {
            MouseEventKind::ScrollUp => self.act(Action::Up),
            MouseEventKind::ScrollDown => self.act(Action::Down),
            MouseEventKind::Down(MouseButton::Left) if self.screen == Screen::List => {
                let top = HEADER_ROWS + 1; // the column titles
                if ev.row >= top {
                    let row = self.offset + usize::from(ev.row - top);
                    if row < self.visible.len() {
                        if row == self.selected {
                            self.open_detail();
                        } else {
                            self.select(row);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn say(&mut self, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            error: false,
        });
    }

    fn say_error(&mut self, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            error: true,
        });
    }

    /// `y`: the selected request as a curl command, for the clipboard (OSC 52) and the footer.
    fn curl(&mut self) {
        let seq = match (&self.detail, self.screen) {
            (Some(d), Screen::Detail) => Some(d.seq),
            _ => self.selected_seq(),
        };
        let base = self.info.listen.as_ref().map(|l| format!("http://{l}"));
        let Some(cmd) = seq
            .and_then(|s| self.store.get(s))
            .and_then(|e| detail::curl(&e.record, base.as_deref()))
        else {
            self.say_error("this record has no request to copy");
            return;
        };
        self.clipboard = Some(cmd.clone());
        self.say(format!("copied: {cmd}"));
    }

    /// `r`: asks the loop to replay the selected (or shown) request through capscope.
    fn replay(&mut self, edit: bool) {
        if self.is_file() {
            self.say_error("replay needs a live session (capscope run or demo), not a file");
            return;
        }
        let seq = match (&self.detail, self.screen) {
            (Some(d), Screen::Detail) => Some(d.seq),
            _ => self.selected_seq(),
        };
        match seq.and_then(|s| self.store.get(s)) {
            Some(e) if e.record.request.is_some() && e.record.kind != Kind::Event => {
                self.replay_wanted = Some(e.seq);
                self.replay_edit = edit;
            }
            _ => self.say_error("this record has no request to replay"),
        }
    }

    /// Says how a replay went (the loop calls this with the replayer's answer).
    pub fn replayed(&mut self, result: Result<String, String>) {
        match result {
            Ok(text) => self.say(text),
            Err(text) => self.say_error(text),
        }
    }

    /// `w` / `e`: the visible records as a capture or a HAR file in the save directory.
    fn save(&mut self, har: bool) {
        let records: Vec<Record> = self
            .visible
            .iter()
            .filter_map(|&(_, _, s)| self.store.get(s))
            .filter(|e| e.record.state != State::Open)
            .map(|e| Record::clone(&e.record))
            .collect();
        let stamp = crate::util::time::compact(self.now_us.max(0))
            .unwrap_or_else(|| "00000000-000000".to_owned());
        let name = if har {
            format!("capscope-{stamp}.har")
        } else {
            format!("capscope-{stamp}.jsonl")
        };
        let path: PathBuf = self.save_dir.join(name);
        let header = FileHeader::new(
            self.info.listen.clone(),
            Some("ui selection".to_owned()),
            self.info.grid.clone(),
        );
        let result = if har {
            save_har(&path, header, records)
        } else {
            save_capture(&path, header, &records)
        };
        match result {
            Ok(n) => self.say(format!("saved {n} records to {}", path.display())),
            Err(e) => self.say_error(format!("could not save {}: {e}", path.display())),
        }
    }

    /// Whether this UI shows a file (not a live session).
    pub fn is_file(&self) -> bool {
        matches!(self.source, Source::File { .. })
    }
}

fn save_capture(path: &PathBuf, header: FileHeader, records: &[Record]) -> Result<usize, String> {
    let mut w = capture::writer::Writer::create(path, header, false).map_err(|e| e.to_string())?;
    let mut n = 0;
    for r in records {
        if w.write_record(r).map_err(|e| e.to_string())? {
            n += 1;
        }
    }
    w.finish().map_err(|e| e.to_string())?;
    Ok(n)
}

fn save_har(path: &PathBuf, header: FileHeader, records: Vec<Record>) -> Result<usize, String> {
    let n = records.len();
    let doc = capture::har::to_har(&capture::reader::Capture {
        header,
        records,
        lags: Vec::new(),
        warnings: Vec::new(),
    });
    let json = serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| e.to_string())?;
    Ok(n)
}

/// The byte index of character `chars` in `s`.
fn byte_at(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i)
}

/// `First Last` from an XML-RPC login request, when it names them.
fn login_name(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let member = |name: &str| -> Option<String> {
        let at = text.find(&format!("<name>{name}</name>"))?;
        let rest = &text[at..];
        let start = rest.find("<string>")? + "<string>".len();
        let end = rest[start..].find("</string>")?;
        Some(rest[start..start + end].trim().to_owned())
    };
    Some(format!("{} {}", member("first")?, member("last")?))
}

#[cfg(test)]
mod tests;
