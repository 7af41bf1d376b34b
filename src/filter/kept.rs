//! The one filter rule every consumer applies (the headless log, the capture writer, the UI and
//! `view`): a record is kept when it matches, and an event is also kept when the poll that carried
//! it is kept. [`KeptIds`] applies it to a stream, where events arrive before their poll finishes.
//!
//! Pure: owns the rule only; it must not touch files, the network or the records it is given.

use std::collections::VecDeque;

use super::Filter;
use crate::record::{Kind, Record};

/// The one filter rule every consumer applies (headless log, UI, `view`): a record is kept when it
/// matches, and an event is also kept when the poll that carried it is kept.
pub fn keeps(filter: Option<&Filter>, record: &Record, poll_kept: bool) -> bool {
    match filter {
        None => true,
        Some(f) => (record.kind == Kind::Event && poll_kept) || f.matches(record),
    }
}

/// How many kept record ids a streaming consumer remembers for [`keeps`] (events arrive while
/// their poll is recent).
pub const KEPT_IDS_REMEMBERED: usize = 4096;

/// The ids a streaming consumer (the headless log, the capture writer) kept lately, so the events of a kept poll are
/// kept too, by the same rule as the UI's.
#[derive(Debug, Default)]
pub struct KeptIds {
    ids: VecDeque<u64>,
}

impl KeptIds {
    /// Applies [`keeps`] to `record` and remembers it when kept. Every version counts: a poll is
    /// judged on its open version too, since its events arrive before its final one.
    pub fn keep(&mut self, filter: Option<&Filter>, record: &Record) -> bool {
        let Some(f) = filter else {
            return true;
        };
        let poll_kept = record.parent.is_some_and(|p| self.ids.contains(&p));
        if !keeps(Some(f), record, poll_kept) {
            return false;
        }
        if !self.ids.contains(&record.id) {
            if self.ids.len() >= KEPT_IDS_REMEMBERED {
                self.ids.pop_front();
            }
            self.ids.push_back(record.id);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EventInfo, State};

    fn poll(id: u64, state: State) -> Record {
        let mut r = Record::new(id, Kind::Http);
        r.state = state;
        r.cap = Some("EventQueueGet".into());
        r
    }

    fn event(id: u64, parent: u64) -> Record {
        let mut r = Record::new(id, Kind::Event);
        r.state = State::Done;
        r.parent = Some(parent);
        r.event = Some(EventInfo {
            message: "TeleportFinish".into(),
            ..EventInfo::default()
        });
        r
    }

    #[test]
    fn the_rule_keeps_events_of_kept_polls() {
        let f = Filter::parse("cap:EventQueueGet").unwrap();
        let ev = event(2, 1);
        assert!(!keeps(Some(&f), &ev, false));
        assert!(keeps(Some(&f), &ev, true));
        assert!(keeps(None, &ev, false));
        assert!(!keeps(Some(&f), &Record::new(3, Kind::Http), true));
    }

    #[test]
    fn a_stream_keeps_the_events_of_a_poll_kept_on_its_open_version() {
        let f = Filter::parse("cap:EventQueueGet").unwrap();
        let mut kept = KeptIds::default();
        assert!(kept.keep(Some(&f), &poll(1, State::Open)));
        assert!(
            kept.keep(Some(&f), &event(2, 1)),
            "the event of a kept poll"
        );
        assert!(
            !kept.keep(Some(&f), &event(3, 9)),
            "an event of a poll not kept"
        );
        assert!(kept.keep(None, &event(3, 9)));
    }
}
