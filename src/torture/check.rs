//! What the torture run checks, from what the receivers saw and what the
//! senders were answered: nothing acknowledged is missing, first deliveries
//! per destination come in acceptance order, and a message sent again
//! carries the same `webhook-id`, within the bound per crash.

use std::collections::{BTreeMap, HashMap};

/// One request a receiver got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub destination: usize,
    pub message_id: u64,
    pub webhook_id: String,
    /// Whether the receiver answered 2xx.
    pub taken: bool,
    /// The engine's run (0 before the first kill, 1 after it, ...).
    pub run: u32,
}

/// One message a sender was answered 200 for: its ID and, per destination,
/// its log ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub message_id: u64,
    pub logs: Vec<(usize, String)>,
}

/// What the checks found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    pub acked: usize,
    /// Receipts taken with a 2xx, first ones only.
    pub delivered: usize,
    /// Acknowledged (message, destination) pairs the destination never
    /// took (production) or never got (staging).
    pub lost: Vec<(u64, usize)>,
    /// First deliveries out of acceptance order: (destination, message).
    pub reordered: Vec<(usize, u64)>,
    /// Receipts of a message its destination had already taken.
    pub dup: usize,
    /// Repeats under another `webhook-id` than the first: never allowed.
    pub foreign_repeats: Vec<(usize, u64)>,
    /// The most messages one destination was sent again after one crash.
    pub most_resent_per_crash: usize,
}

impl Findings {
    pub fn ok(&self, resend_bound: usize) -> bool {
        self.lost.is_empty()
            && self.reordered.is_empty()
            && self.foreign_repeats.is_empty()
            && self.most_resent_per_crash <= resend_bound
    }
}

/// Checks `receipts` against `acked`; `production[d]` tells whether
/// destination `d` retries until it succeeds.
pub fn check(acked: &[Acked], receipts: &[Receipt], production: &[bool]) -> Findings {
    let mut findings = Findings { acked: acked.len(), ..Findings::default() };
    // Per (destination, message): the first webhook-id, whether taken, and
    // the run it was first taken in.
    let mut seen: HashMap<(usize, u64), (String, Option<u32>)> = HashMap::new();
    let mut first_order: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut resent: HashMap<(u32, usize), usize> = HashMap::new();
    for r in receipts {
        let key = (r.destination, r.message_id);
        match seen.get_mut(&key) {
            None => {
                first_order.entry(r.destination).or_default().push(r.message_id);
                seen.insert(key, (r.webhook_id.clone(), r.taken.then_some(r.run)));
                findings.delivered += usize::from(r.taken);
            }
            Some((webhook_id, taken_in)) => {
                if *webhook_id != r.webhook_id {
                    findings.foreign_repeats.push(key);
                }
                // Staging does not retry: any repeat there is a re-send.
                let resend = taken_in.is_some() || !production[r.destination];
                if resend {
                    findings.dup += 1;
                    *resent.entry((r.run, r.destination)).or_default() += 1;
                }
                if taken_in.is_none() && r.taken {
                    *taken_in = Some(r.run);
                    findings.delivered += 1;
                }
            }
        }
    }
    findings.most_resent_per_crash = resent.values().copied().max().unwrap_or(0);
    for (destination, order) in &first_order {
        for pair in order.windows(2) {
            if pair[1] < pair[0] {
                findings.reordered.push((*destination, pair[1]));
            }
        }
    }
    for message in acked {
        for (destination, _) in &message.logs {
            let got = seen.get(&(*destination, message.message_id));
            let complete = match got {
                None => false,
                Some((_, taken)) => !production[*destination] || taken.is_some(),
            };
            if !complete {
                findings.lost.push((message.message_id, *destination));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(destination: usize, message_id: u64, webhook_id: &str, taken: bool, run: u32) -> Receipt {
        Receipt { destination, message_id, webhook_id: webhook_id.to_owned(), taken, run }
    }

    fn acked(message_id: u64, destinations: &[usize]) -> Acked {
        Acked { message_id, logs: destinations.iter().map(|&d| (d, format!("log-{d}-{message_id}"))).collect() }
    }

    #[test]
    fn a_clean_run_passes_and_retries_are_not_duplicates() {
        let production = [true, false];
        let acked = [acked(1, &[0, 1]), acked(2, &[0, 1])];
        let receipts = [
            receipt(0, 1, "a", false, 0),
            receipt(1, 1, "b", false, 0),
            receipt(0, 1, "a", true, 0),
            receipt(1, 2, "d", true, 0),
            receipt(0, 2, "c", true, 0),
        ];
        let findings = check(&acked, &receipts, &production);
        assert!(findings.ok(17), "{findings:?}");
        assert_eq!((findings.delivered, findings.dup), (3, 0), "{findings:?}");
    }

    #[test]
    fn losses_reorders_foreign_repeats_and_resends_are_found() {
        let production = [true, false];
        let acked = [acked(1, &[0]), acked(2, &[0]), acked(3, &[0, 1])];
        let receipts = [
            receipt(0, 2, "b", true, 0),
            receipt(0, 1, "a", true, 0),
            // After the first crash: sent again, once under another ID.
            receipt(0, 2, "b", true, 1),
            receipt(0, 1, "x", true, 1),
        ];
        let findings = check(&acked, &receipts, &production);
        assert_eq!(findings.lost, [(3, 0), (3, 1)]);
        assert_eq!(findings.reordered, [(0, 1)]);
        assert_eq!(findings.foreign_repeats, [(0, 1)]);
        assert_eq!((findings.dup, findings.most_resent_per_crash), (2, 2));
        assert!(!findings.ok(17));
        assert!(!check(&acked[..2], &receipts[..3], &production).ok(0), "one re-send over a bound of 0");
    }
}
