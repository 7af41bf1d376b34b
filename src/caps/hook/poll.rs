//! EventQueueGet as the hook runs it: the upstream poll in its own task (so it outlives the viewer's
//! poll), its answer kept per queue keyed by the `ack` of the viewer poll that started it, a repeated
//! `ack` answered from the kept answer or joined to the poll still open, and one record per event.
//!
//! Owns the poll orchestration of [`super::CapsHook`]; the pure reading and rewriting of poll bodies is
//! `caps::event_queue`'s. Must not hold a lock across an `await`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use tokio::sync::watch;

use super::{handled_now, set_length, upstream_request, Inner};
use crate::caps::body::decode_content;
use crate::caps::event_queue::{
    self, check_id, is_idle, parse_poll_request, Answer, PollPlan, EVENT_QUEUE_CAP,
};
use crate::caps::registry::{normalize_url, MatchedCap};
use crate::caps::Action;
use crate::llsd::{self, Format};
use crate::proxy::decode::Coding;
use crate::proxy::hook::{BoxFuture, Handled, RequestHead, Upstream, UpstreamError};
use crate::proxy::INLINE_BODY_LIMIT;
use crate::record::{Body, EventInfo, Kind, Record, State};

/// How many event names a poll's note lists before "and N more".
const MAX_EVENT_NAMES_IN_NOTE: usize = 8;

/// Runs one viewer poll of the event queue `found` (upstream `url`).
pub(super) fn handle_poll(
    inner: Arc<Inner>,
    head: RequestHead,
    body: Bytes,
    upstream: Upstream,
    found: MatchedCap,
    url: String,
) -> BoxFuture<'static, Handled> {
    let target: Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            let msg = format!("capscope: the event queue URL {url} is not usable: {e}\n");
            return Box::pin(async move { handled_now(StatusCode::BAD_GATEWAY, &msg) });
        }
    };
    let mut notes = Vec::new();
    let poll = match parse_poll_request(&body) {
        Ok(p) => Some(p),
        Err(e) => {
            notes.push(format!(
                "poll request not understood ({e}); polled upstream as sent"
            ));
            None
        }
    };
    if let Some(p) = poll {
        notes.push(match p.ack {
            Some(a) => format!("ack {a}"),
            None => "ack undef".to_owned(),
        });
        if p.done {
            notes.push("done: the viewer is closing this queue".to_owned());
        }
    }
    let ctx = PollContext {
        queue: normalize_url(&found.upstream),
        region: found.region,
        region_label: found.region_label.clone(),
        agent: found.agent.clone(),
        record_id: head.record_id,
        client: compact_str::ToCompactString::to_compact_string(&head.client),
        action: inner.action(&head),
    };
    let upstream_url = (target != head.uri).then(|| target.to_string());
    let request = upstream_request(&head, target, body);
    // Polls that must not be shared (done, or unreadable) run on their own.
    let shareable = poll.filter(|p| !p.done);
    let (slot, joined) = {
        let mut queues = inner.queues();
        let queue = queues.entry(ctx.queue.clone()).or_default();
        let plan = match shareable {
            Some(p) => queue.plan(p.ack),
            None => PollPlan::Start,
        };
        match plan {
            PollPlan::Join { slot, answered } => (slot, Some(answered)),
            PollPlan::Start => {
                let (tx, rx) = watch::channel(None);
                if let Some(p) = shareable {
                    queue.started(p.ack, rx.clone());
                }
                drop(queues);
                start_poll(Arc::clone(&inner), ctx, request, upstream, tx);
                (rx, None)
            }
        }
    };
    Box::pin(async move {
        let mut slot = slot;
        let answer = match slot.wait_for(Option::is_some).await {
            Ok(a) => a.clone(),
            Err(_) => None,
        };
        let Some(answer) = answer else {
            return handled_now(
                StatusCode::BAD_GATEWAY,
                "capscope: the upstream event-queue poll task ended without an answer\n",
            );
        };
        match joined {
            Some(true) => {
                inner.counters.replayed.fetch_add(1, Ordering::Relaxed);
                notes.push(format!(
                        "replayed the answer upstream gave to poll #{} (the viewer had not received it)",
                        answer.first_record
                    ));
            }
            Some(false) => {
                inner.counters.joined.fetch_add(1, Ordering::Relaxed);
                notes.push(format!(
                    "joined the upstream poll started by poll #{} (still open upstream)",
                    answer.first_record
                ));
            }
            None => {}
        }
        notes.extend(answer.notes.iter().cloned());
        let mut response = Response::new(answer.body.clone());
        *response.status_mut() = answer.status;
        *response.headers_mut() = answer.headers.clone();
        Handled {
            response,
            upstream_url,
            original_body: answer.original_body.clone(),
            notes,
        }
    })
}

/// What the task running an upstream poll needs to know.
#[derive(Debug, Clone)]
struct PollContext {
    queue: String,
    region: Option<crate::caps::RegionId>,
    region_label: Option<String>,
    agent: Option<String>,
    record_id: u64,
    client: crate::record::HeaderText,
    action: Action,
}

/// Runs the upstream poll in its own task (so it outlives the viewer's poll), keeps the answer in the
/// slot, then publishes its events.
fn start_poll(
    inner: Arc<Inner>,
    ctx: PollContext,
    request: Request<Bytes>,
    upstream: Upstream,
    tx: watch::Sender<Option<Arc<Answer>>>,
) {
    let task = async move {
        let result = upstream.send(request).await;
        let (answer, records) = answer_off_worker(Arc::clone(&inner), ctx, result).await;
        tx.send_replace(Some(Arc::new(answer)));
        for record in records {
            inner.bus.publish(record);
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(task);
        }
        Err(_) => tracing::error!("no tokio runtime to run an event-queue poll on"),
    }
}

/// Whether reading this answer is too much work for an async worker.
fn heavy(result: &Result<Response<Bytes>, UpstreamError>) -> bool {
    let Ok(response) = result else {
        return false;
    };
    let encoded = response
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !Coding::is_identity(v));
    encoded || response.body().len() > INLINE_BODY_LIMIT
}

/// [`Inner::answer_poll`], on the blocking pool when the answer is [`heavy`], else here.
async fn answer_off_worker(
    inner: Arc<Inner>,
    ctx: PollContext,
    result: Result<Response<Bytes>, UpstreamError>,
) -> (Answer, Vec<Record>) {
    if !heavy(&result) {
        return inner.answer_poll(&ctx, result);
    }
    let record_id = ctx.record_id;
    let task = tokio::task::spawn_blocking(move || inner.answer_poll(&ctx, result));
    match task.await {
        Ok(done) => done,
        // Only a panic gets here (the pool is never shut down while the runtime serves).
        Err(e) => {
            let body = Bytes::from(format!(
                "capscope: reading the event-queue answer failed: {e}\n"
            ));
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            set_length(&mut headers, body.len());
            let answer = Answer {
                status: StatusCode::BAD_GATEWAY,
                headers,
                body,
                original_body: None,
                id: None,
                has_events: false,
                notes: vec![format!("reading the upstream answer failed: {e}")],
                first_record: record_id,
            };
            (answer, Vec::new())
        }
    }
}

impl Inner {
    /// Turns upstream's answer into what the viewer gets, plus one record per event.
    fn answer_poll(
        &self,
        ctx: &PollContext,
        result: Result<Response<Bytes>, UpstreamError>,
    ) -> (Answer, Vec<Record>) {
        let mut answer = Answer {
            status: StatusCode::BAD_GATEWAY,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            original_body: None,
            id: None,
            has_events: false,
            notes: Vec::new(),
            first_record: ctx.record_id,
        };
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, UpstreamError::Timeout { .. }) {
                    answer.status = StatusCode::GATEWAY_TIMEOUT;
                    self.counters.idle_polls.fetch_add(1, Ordering::Relaxed);
                    answer
                        .notes
                        .push(format!("idle poll (upstream timed out: {e})"));
                } else {
                    answer.notes.push(format!("upstream poll failed: {e}"));
                }
                answer.body = Bytes::from(format!("capscope: {e}\n"));
                answer.headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                set_length(&mut answer.headers, answer.body.len());
                return (answer, Vec::new());
            }
        };
        let (parts, body) = response.into_parts();
        answer.status = parts.status;
        answer.headers = parts.headers;
        answer.body = body.clone();
        set_length(&mut answer.headers, body.len());
        if is_idle(parts.status) {
            self.counters.idle_polls.fetch_add(1, Ordering::Relaxed);
            answer
                .notes
                .push(format!("idle poll ({})", parts.status.as_u16()));
            return (answer, Vec::new());
        }
        if parts.status == StatusCode::NOT_FOUND {
            answer
                .notes
                .push("event queue closed (404): the viewer stops polling it".to_owned());
            return (answer, Vec::new());
        }
        if parts.status != StatusCode::OK {
            answer
                .notes
                .push(format!("upstream answered the poll with {}", parts.status));
            return (answer, Vec::new());
        }
        let decoded = match decode_content(&answer.headers, body, "event-queue response") {
            Ok(d) => d,
            Err(e) => {
                answer.notes.push(format!("events not read: {e}"));
                return (answer, Vec::new());
            }
        };
        let result = event_queue::rewrite_events(
            &decoded.bytes,
            ctx.region,
            &mut self.registry(),
            ctx.action,
        );
        let events = match result {
            Ok(e) => e,
            Err(e) => {
                answer.notes.push(format!("events not read: {e}"));
                return (answer, Vec::new());
            }
        };
        if let Some(id) = events.id {
            let mut queues = self.queues();
            let queue = queues.entry(ctx.queue.clone()).or_default();
            if let Some(note) = check_id(queue.last_id, id) {
                answer.notes.push(note);
            }
            queue.last_id = Some(id);
        }
        answer.id = events.id;
        answer.has_events = !events.events.is_empty();
        answer.notes.push(events_summary(&events));
        answer.notes.extend(events.notes.iter().cloned());
        if let Some(new_body) = events.body.clone() {
            answer.original_body = Some(answer.body.clone());
            answer.body = new_body;
            answer.headers.remove(CONTENT_ENCODING);
            set_length(&mut answer.headers, answer.body.len());
        }
        self.counters
            .events
            .fetch_add(events.events.len() as u64, Ordering::Relaxed);
        let records = events
            .events
            .into_iter()
            .enumerate()
            .map(|(index, event)| {
                let mut record = Record::new(self.bus.next_id(), Kind::Event);
                record.state = State::Done;
                record.client = Some(ctx.client.clone());
                record.parent = Some(ctx.record_id);
                record.cap = Some(EVENT_QUEUE_CAP.to_owned());
                record.region = ctx.region_label.clone();
                record.agent = ctx.agent.clone();
                record.notes = event.notes;
                record.event = Some(EventInfo {
                    message: event.message,
                    index,
                    queue_id: events.id,
                    body: Body::whole(llsd::to_vec(&event.body, Format::Xml)),
                });
                record
            })
            .collect();
        (answer, records)
    }
}

fn events_summary(events: &event_queue::EventsRewritten) -> String {
    let n = events.events.len();
    let id = events.id.map(|i| format!(", id {i}")).unwrap_or_default();
    if n == 0 {
        return format!("no events{id}");
    }
    let names: Vec<&str> = events
        .events
        .iter()
        .take(MAX_EVENT_NAMES_IN_NOTE)
        .map(|e| e.message.as_str())
        .collect();
    let more = n.saturating_sub(names.len());
    let mut list = names.join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    format!("{n} event{}{id}: {list}", if n == 1 { "" } else { "s" })
}
