//! The audit hash chain: canonical encoding is deterministic and injective
//! (two events encode alike only if they are equal), chains built with
//! `Head::append` verify, survive the JSON round trip the API and
//! `idv audit verify` rely on, and any change to an event's content is found
//! at exactly that event; `Verifier` never panics on arbitrary stored events.
#![no_main]

use idv_core::Timestamp;
use idv_core::audit::{Event, Head, Verifier};
use idv_fuzz::{DraftInput, Text};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Arbitrary)]
enum Tamper {
    /// Move the last character of one text field to the front of the next.
    Shift(u8),
    /// Replace one text field.
    Replace(u8, Text),
    /// Flip an optional field between absent and present-but-empty.
    Presence(u8),
    /// Change the time by a microsecond.
    Time,
    /// Replace the details.
    Details(idv_fuzz::Json),
}

#[derive(Debug, Arbitrary)]
enum Input {
    Chain {
        drafts: Vec<DraftInput>,
        start: i64,
        at: u8,
        tamper: Tamper,
    },
    /// Events as a stored chain or an API page could hold them.
    Stored(Vec<u8>),
}

fn text_fields(ev: &mut Event) -> [&mut String; 5] {
    [
        &mut ev.actor.name,
        &mut ev.action,
        &mut ev.target_type,
        &mut ev.target_id,
        ev.reason.get_or_insert_with(String::new),
    ]
}

fn tamper(ev: &mut Event, t: &Tamper) {
    match t {
        Tamper::Shift(i) => {
            let i = usize::from(*i) % 4;
            let fields = text_fields(ev);
            if let Some(c) = fields[i].pop() {
                fields[i + 1].insert(0, c);
            }
        }
        Tamper::Replace(i, s) => *text_fields(ev)[usize::from(*i) % 5] = s.0.clone(),
        Tamper::Presence(i) => match i % 3 {
            0 => ev.reason = if ev.reason.is_some() { None } else { Some(String::new()) },
            1 => {
                ev.request_id = if ev.request_id.is_some() {
                    None
                } else {
                    Some(String::new())
                }
            }
            _ => {
                ev.actor.token_id = if ev.actor.token_id.is_some() {
                    None
                } else {
                    Some(Uuid::nil())
                }
            }
        },
        Tamper::Time => ev.time = Timestamp::from_micros(ev.time.as_micros().wrapping_add(1)),
        Tamper::Details(d) => ev.details = d.to_value(),
    }
}

fn verify(events: &[Event]) -> Result<(), idv_core::audit::Break> {
    let mut v = Verifier::default();
    events.iter().try_for_each(|e| v.push(e))
}

fuzz_target!(|input: Input| {
    match input {
        Input::Stored(bytes) => {
            if let Ok(events) = serde_json::from_slice::<Vec<Event>>(&bytes) {
                let _ = verify(&events);
                for e in &events {
                    assert_eq!(e.canonical_bytes(), e.clone().canonical_bytes());
                }
            }
        }
        Input::Chain {
            drafts,
            start,
            at,
            tamper: t,
        } => {
            if drafts.is_empty() {
                return;
            }
            // Events get their time from the clock: an instant RFC 3339 can
            // write (1970 to 9999), not any i64 (`Timestamp::to_rfc3339`
            // writes `@<micros>` outside years 0000-9999, which does not parse).
            let start = start.rem_euclid(253_402_300_799_000_000 - 1_000_000);
            let mut head = Head::EMPTY;
            let events: Vec<Event> = drafts
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    head.append(
                        d.to_draft(),
                        Uuid::from_u128(i as u128),
                        Timestamp::from_micros(start.wrapping_add(i as i64)),
                    )
                })
                .collect();
            assert_eq!(verify(&events), Ok(()));
            assert_eq!(head.seq, events.len() as i64);

            // Deterministic: the same event encodes and hashes the same,
            // also after the JSON round trip of the API and of storage.
            let json = serde_json::to_vec(&events).expect("events serialize");
            let back: Vec<Event> = serde_json::from_slice(&json).expect("events deserialize");
            for (e, b) in events.iter().zip(&back) {
                assert_eq!(e.canonical_bytes(), e.canonical_bytes());
                assert_eq!(
                    e.canonical_bytes(),
                    b.canonical_bytes(),
                    "event {} encodes differently after a JSON round trip: {} vs {}",
                    e.seq,
                    e.details,
                    b.details
                );
            }
            assert_eq!(verify(&back), Ok(()));
            // Details stored as text and parsed again (how the store keeps them).
            for e in &events {
                let stored = idv_core::audit::canonical_json(&e.details);
                let reread: Value = serde_json::from_str(&stored).expect("canonical JSON parses");
                assert_eq!(idv_core::audit::canonical_json(&reread), stored);
            }

            // Tamper with one event: found at exactly that event, unless the
            // change left its encoding as it was, in which case the event must
            // be unchanged (the encoding is injective).
            let i = usize::from(at) % events.len();
            let mut forged = events.clone();
            tamper(&mut forged[i], &t);
            let (before, after) = (&events[i], &forged[i]);
            if before.canonical_bytes() == after.canonical_bytes() {
                assert_eq!(before, after, "two different events have the same canonical encoding");
                assert_eq!(verify(&forged), Ok(()));
            } else {
                let err = verify(&forged).expect_err("a forged event verified");
                assert_eq!(err.seq, i as i64 + 1, "{err}");
            }
        }
    }
});
