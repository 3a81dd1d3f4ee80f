//! Concurrent senders: each sends PatientAdmin messages one after another
//! until stopped or the engine is gone, and keeps what it was answered 200
//! for.

use std::{cell::RefCell, rc::Rc};

use serde_json::{Value, json};

use super::check::Acked;

/// The senders of a run, started and stopped once per engine start.
pub struct Senders {
    count: usize,
    acked: Rc<RefCell<Vec<Acked>>>,
    running: Rc<RefCell<bool>>,
    tasks: Vec<actix_web::rt::task::JoinHandle<()>>,
    next: Rc<RefCell<u64>>,
}

impl Senders {
    pub fn new(count: usize) -> Self {
        Self { count, acked: Rc::default(), running: Rc::default(), tasks: Vec::new(), next: Rc::default() }
    }

    pub fn start(&mut self, base: &str, token: &str) {
        *self.running.borrow_mut() = true;
        for _ in 0..self.count {
            let (base, token) = (base.to_owned(), token.to_owned());
            let (acked, running, next) = (self.acked.clone(), self.running.clone(), self.next.clone());
            self.tasks.push(actix_web::rt::spawn(async move {
                let client = awc::Client::default();
                while *running.borrow() {
                    let n = {
                        let mut next = next.borrow_mut();
                        *next += 1;
                        *next
                    };
                    match send(&client, &base, &token, n).await {
                        Some(Ok(message)) => acked.borrow_mut().push(message),
                        // Refused while a disk fills, say: the next goes on.
                        Some(Err(())) => {}
                        // The engine is gone.
                        None => return,
                    }
                }
            }));
        }
    }

    /// Stops sending and waits for the senders' last requests.
    pub async fn stop(&mut self) {
        *self.running.borrow_mut() = false;
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    pub fn acked(&self) -> Vec<Acked> {
        self.acked.borrow().clone()
    }
}

/// One SEND: `Some(Ok)` for a 200, `Some(Err)` for another answer, `None`
/// when no answer came.
async fn send(client: &awc::Client, base: &str, token: &str, n: u64) -> Option<Result<Acked, ()>> {
    let body = json!({
        "Meta": { "DataModel": "PatientAdmin", "EventType": "NewPatient" },
        "Patient": { "Identifiers": [{ "ID": format!("t-{n}"), "IDType": "MR" }], "Notes": "x".repeat(600) },
    });
    let request = client.post(format!("{base}/endpoint")).insert_header(("authorization", format!("Bearer {token}")));
    let mut resp = request.send_json(&body).await.ok()?;
    if !resp.status().is_success() {
        return Some(Err(()));
    }
    let value: Value = resp.json().await.ok()?;
    let message_id = value["Meta"]["Message"]["ID"].as_u64()?;
    let logs = value["Meta"]["Logs"].as_array()?;
    let logs = logs
        .iter()
        .filter_map(|l| {
            let destination = super::destination_number(l["DestinationID"].as_str()?)?;
            Some((destination, l["ID"].as_str()?.to_owned()))
        })
        .collect();
    Some(Ok(Acked { message_id, logs }))
}
