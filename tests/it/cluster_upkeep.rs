//! Cluster mode's upkeep end to end (SPEC §17 with §6, §10 and §15):
//! retention on the journal stream, with nodes starting from its snapshot,
//! the console on a node that does not deliver, in a real browser, and an
//! alert channel configured on one node only. Three `ferrox serve` nodes
//! on three NATS servers, as in `cluster_engine.rs`.

use serde_json::json;

use crate::{
    browser::Browser,
    client::{patient_admin, to_destinations},
    cluster_engine::{Fleet, node_options, operate, send_round},
    console::sign_in,
    delivery::{Dest, Sent, Setup, alerts, eventually, kinds, logs_in_order, wait_first_seen},
    harness::{ADMIN_TOKEN, Options, Server},
    nats::NatsCluster,
    receiver::{Behavior, Receiver},
    roles::{OPERATOR, operators_toml},
};

/// Retention in cluster mode: the node holding the retention duty
/// snapshots on the stream and purges what every node delivered and no
/// longer needs; every node lets it go. A node started again, and a new
/// node with no data at all, start from the snapshot: the pause, the token
/// key and the held message were only in purged records.
#[test]
fn cluster_retention_purges_the_stream_and_nodes_start_from_its_snapshot() {
    let (receiver, held_receiver) = (Receiver::start(), Receiver::start());
    let fast = Dest::new(1, "production", receiver.url("/fast"));
    let held = Dest::new(2, "production", held_receiver.url("/held"));
    let setup = Setup { destinations: vec![fast.clone(), held.clone()], ..Setup::default() };
    let nats = NatsCluster::start(3);
    const RETAIN_NOTHING: &str = "[storage]\nretention_hours = 0\ncompaction_interval_ms = 100\n";
    let with_retention = |mut options: Options| {
        options.config_text.as_mut().expect("a configuration").push_str(RETAIN_NOTHING);
        options
    };
    let nodes = (0..3).map(|i| Server::start_with(&with_retention(node_options(&setup, &nats, i)))).collect();
    // A fourth node, started later on an empty data directory.
    let mut newcomer = with_retention(node_options(&setup, &nats, 0));
    newcomer.config_text = newcomer.config_text.map(|text| text.replace("\"node-1\"", "\"node-4\""));
    let mut fleet = Fleet { nats: Some(nats), nodes };

    operate(&fleet.nodes[0], &format!("/destinations/{}/pause", held.id));
    let tokens: Vec<String> = fleet.nodes.iter().map(|n| n.token()).collect();
    let send_to = |node: usize, dest: &Dest, mrn: &str| {
        let body = to_destinations(patient_admin("NewPatient", mrn), json!([{ "ID": dest.id }]));
        let reply = fleet.nodes[node].send(&tokens[node], &body);
        assert_eq!(reply.status, 200, "node {node}: {}", reply.text);
        Sent::of(&reply)
    };
    let early: Vec<Sent> = (0..30).map(|n| send_to(n % 3, &fast, &format!("early-{n}"))).collect();
    let waiting = send_to(1, &held, "waiting");
    let late: Vec<Sent> = (0..5).map(|n| send_to(n % 3, &fast, &format!("late-{n}"))).collect();
    let mut delivered = logs_in_order(&early, &fast);
    delivered.extend(logs_in_order(&late, &fast));
    wait_first_seen(&receiver, &delivered);

    // Every node drops the delivered messages ahead of the held one.
    let gone = early[29].log(&fast);
    for (i, node) in fleet.nodes.iter().enumerate() {
        eventually(&format!("node {i} to let the delivered messages go"), || {
            let first = node.metric("ferrox_wal_first_position").unwrap_or(0.0);
            let r = node.admin_as(Some(ADMIN_TOKEN), "GET", &format!("/logs/{gone}"), None);
            (first > 1.0 && r.status == 404).then_some(())
        });
    }
    let stream_start = fleet.nodes[0].metric("ferrox_wal_first_position").expect("the first position");

    // A node killed and started again, and a new one, start from the
    // snapshot, past the purged records.
    fleet.nodes[1].kill9();
    fleet.nodes[1].restart();
    fleet.nodes.push(Server::start_with(&newcomer));
    let token = &tokens[0];
    for i in [1, 3] {
        let node = &fleet.nodes[i];
        assert!(node.metric("ferrox_wal_first_position").expect("the first position") >= stream_start);
        let r = node.admin_as(Some(ADMIN_TOKEN), "GET", &format!("/logs/{gone}"), None);
        assert_eq!(r.status, 404, "node {i} serves a purged log: {}", r.text);
        let q = node.admin_as(Some(ADMIN_TOKEN), "GET", &format!("/destinations/{}/queue", held.id), None);
        assert_eq!((&q.json["state"], &q.json["depth"]), (&json!("paused"), &json!(1)), "node {i}: {}", q.text);
        let r = node.admin_as(Some(ADMIN_TOKEN), "GET", &format!("/logs/{}", late[0].log(&fast)), None);
        assert_eq!(r.json["status"], "Succeeded", "node {i}: {}", r.text);
        // A token issued before the purge still works: the same token key.
        let after =
            node.send(token, &to_destinations(patient_admin("NewPatient", "after"), json!([{ "ID": fast.id }])));
        assert_eq!(after.status, 200, "node {i}: {}", after.text);
        assert!(Sent::of(&after).message_id > late[4].message_id, "numbering goes on at node {i}");
        delivered.push(Sent::of(&after).log(&fast));
    }
    operate(&fleet.nodes[3], &format!("/destinations/{}/resume", held.id));
    wait_first_seen(&held_receiver, &[waiting.log(&held)]);
    wait_first_seen(&receiver, &delivered);
    // Delivered, the held message is no longer needed either: every node
    // lets it go.
    for (i, node) in fleet.nodes.iter().enumerate() {
        eventually(&format!("node {i} to let the held message go"), || {
            let first = node.metric("ferrox_wal_first_position").unwrap_or(0.0);
            let r = node.admin_as(Some(ADMIN_TOKEN), "GET", &format!("/logs/{}", waiting.log(&held)), None);
            (first > stream_start && r.status == 404).then_some(())
        });
    }
    // Nothing was purged that a live node had not folded yet.
    for (i, node) in fleet.nodes.iter().enumerate() {
        let log = node.server_log();
        assert!(!log.contains("before this node folded them"), "node {i} met a purged gap:\n{log}");
    }
}

/// The console on a node that does not deliver a destination, in a real
/// browser: an operator pauses the destination there and the node that
/// delivers it stops; an operator made through a second node's API signs
/// in on a third, whose console shows it paused; resumed
/// from the first node's console, the held message is delivered, and the
/// audit trail on the third node names the operator.
#[test]
fn cluster_the_console_on_a_node_that_does_not_deliver() {
    let receiver = Receiver::start();
    let mut lab = Dest::new(1, "production", receiver.url("/lab"));
    lab.name = "Lab System".into();
    let setup = Setup { destinations: vec![lab.clone()], ..Setup::default() };
    let fleet = with_operators(&setup);
    let owner = fleet.owner(&lab);
    let others = fleet.others(owner);
    let (console, witness) = (&fleet.nodes[others[0]], &fleet.nodes[others[1]]);
    let page = format!("{}/ui/destinations/{}", console.base_url(), lab.id);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let browser = runtime.block_on(async {
        let browser = Browser::start("UTC").await;
        browser.goto(&page).await;
        sign_in(&browser, OPERATOR).await;
        assert_eq!(browser.text("main h1").await, "Lab System flowing");
        press(&browser, "Pause", "Lab System paused").await;
        browser
    });
    // The node that delivers the destination holds the next message.
    let sent = send_round(&fleet, &[others[1]], 1, "held");
    let queue = format!("/destinations/{}/queue", lab.id);
    eventually("the delivering node's queue to hold the message, paused", || {
        let q = fleet.nodes[owner].admin_as(Some(ADMIN_TOKEN), "GET", &queue, None);
        (q.json["state"] == "paused" && q.json["depth"] == 1).then_some(())
    });
    assert!(receiver.received().is_empty(), "a paused destination got a delivery");
    // An operator made through the API of one node signs in on another.
    let made = fleet.nodes[owner].admin_as(
        Some(ADMIN_TOKEN),
        "POST",
        "/operators",
        Some(&json!({ "name": "nina", "role": "viewer" })),
    );
    assert_eq!(made.status, 201, "{}", made.text);
    let nina = made.json["token"].as_str().expect("the new operator's token").to_owned();
    eventually("the new operator to be known on the third node", || {
        (witness.admin_as(Some(&nina), "GET", "/destinations", None).status == 200).then_some(())
    });
    runtime.block_on(async {
        let elsewhere = Browser::start("UTC").await;
        elsewhere.goto(&format!("{}/ui/destinations/{}", witness.base_url(), lab.id)).await;
        sign_in(&elsewhere, &nina).await;
        assert_eq!(elsewhere.text("main h1").await, "Lab System paused", "another node's console");
        elsewhere.close().await;

        press(&browser, "Resume", "Lab System flowing").await;
        browser.close().await;
    });
    wait_first_seen(&receiver, &logs_in_order(&sent, &lab));
    let trail = eventually("the audit trail on the third node to show both actions", || {
        let r = witness.admin_get("/audit?limit=100");
        let entries = r.json["audit"].as_array().cloned().unwrap_or_default();
        let resumed = entries.iter().any(|e| e["action"] == "destination.resume");
        resumed.then_some(entries)
    });
    let actions: Vec<(&str, &str)> =
        trail.iter().map(|e| (e["operator"].as_str().unwrap_or(""), e["action"].as_str().unwrap_or(""))).collect();
    assert!(actions.contains(&("otto", "destination.pause")), "{actions:?}");
    assert!(actions.contains(&("otto", "destination.resume")), "{actions:?}");
}

/// Three nodes with the operators of the role tests.
fn with_operators(setup: &Setup) -> Fleet {
    let nats = NatsCluster::start(3);
    let nodes = (0..3)
        .map(|i| {
            let mut options = node_options(setup, &nats, i);
            options.config_text.as_mut().expect("a configuration").push_str(&operators_toml());
            Server::start_with(&options)
        })
        .collect();
    Fleet { nats: Some(nats), nodes }
}

/// Presses the page's button `label` and waits until the page's heading
/// reads `heading`.
async fn press(browser: &Browser, label: &str, heading: &str) {
    browser.find(&format!("main button[data-label={label}]")).await.click().await.expect("pressing a button");
    let shown = format!("return document.querySelector('main h1')?.textContent === {heading:?}");
    browser.wait_until(&format!("the heading to read {heading:?}"), &shown).await;
}

/// The IDs of the alerts posted to `hook`, sorted, each as often as posted.
fn posted(hook: &Receiver) -> Vec<String> {
    let mut ids: Vec<String> =
        hook.received().iter().map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned()).collect();
    ids.sort();
    ids
}

/// Waits until `node` lists `count` alerts of `dest`, every one sent
/// through the webhook, and returns their IDs, sorted.
fn all_posted(node: &Server, dest: &Dest, count: usize) -> Vec<String> {
    let listed = eventually(&format!("{count} alerts sent through the webhook"), || {
        let listed = alerts(node, dest);
        (listed.len() == count && listed.iter().all(|a| a["sent"]["webhook"] == true)).then_some(listed)
    });
    assert_eq!(kinds(&listed[..2]), ["QueueRecovered", "QueuePaused"], "the newest episode first");
    let mut ids: Vec<String> = listed.iter().map(|a| a["id"].as_str().unwrap_or_default().to_owned()).collect();
    ids.sort();
    ids
}

/// Each node has its own configuration: an alert webhook configured on one
/// node only is sent by that node, once per alert, and the nodes without
/// it, started after it or started again, leave its channel open.
#[test]
fn cluster_an_alert_channel_configured_on_one_node_only() {
    let failing = || Behavior::Status(500, "{}".to_owned());
    let receiver = Receiver::start();
    receiver.script([failing(), failing()]);
    let hook = Receiver::start();
    let dest = Dest::new(1, "production", receiver.url("/flaky"));
    let plain = Setup { destinations: vec![dest.clone()], retry_schedule_ms: Some(vec![200]), ..Setup::default() };
    let hooked = Setup { alert_webhook_url: Some(hook.url("/alerts")), ..plain.clone() };
    let nats = NatsCluster::start(3);
    let mut nodes = vec![Server::start_with(&node_options(&hooked, &nats, 0))];
    nodes.extend((1..3).map(|i| Server::start_with(&node_options(&plain, &nats, i))));
    let mut fleet = Fleet { nats: Some(nats), nodes };

    // A pause and its recovery: both alerts posted, each once.
    let mut sent = send_round(&fleet, &[1], 1, "flaky");
    wait_first_seen(&receiver, &logs_in_order(&sent, &dest));
    let ids = all_posted(&fleet.nodes[2], &dest, 2);
    assert_eq!(posted(&hook), ids, "each alert posted once, by the node with the webhook");

    // A node without the webhook started again: the channel stays open,
    // and the next episode's alerts are posted too.
    fleet.nodes[1].stop();
    fleet.nodes[1].restart();
    receiver.script([failing()]);
    sent.extend(send_round(&fleet, &[1], 1, "flaky-again"));
    wait_first_seen(&receiver, &logs_in_order(&sent, &dest));
    let ids = all_posted(&fleet.nodes[1], &dest, 4);
    assert_eq!(posted(&hook), ids, "every alert posted once, after a restart of a node without the webhook");
}

/// A plain HTTP client of the console: no redirects followed, no cookie
/// kept but the one given.
struct ConsoleClient(ureq::Agent);

impl ConsoleClient {
    fn new() -> Self {
        let config = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).proxy(None);
        Self(config.build().new_agent())
    }

    /// The status, `Location`, session cookie set, and body of a request.
    fn call(&self, method: &str, url: &str, cookie: &str, form: &[(&str, &str)]) -> (u16, String, String, String) {
        let cookie = format!("ferrox_session={cookie}");
        let response = match method {
            "GET" => self.0.get(url).header("cookie", &cookie).call(),
            _ => self.0.post(url).header("cookie", &cookie).send_form(form.iter().copied()),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let (location, set) = (header("location"), header("set-cookie"));
        let session = set.strip_prefix("ferrox_session=").and_then(|v| v.split(';').next()).unwrap_or("").to_owned();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), location, session, body)
    }
}

/// Console sessions are the cluster's: signed in on one node, an operator
/// is signed in on every node, acts through the operator API of another
/// with the session's CSRF token, and signing out on a third ends the
/// session everywhere.
#[test]
fn cluster_a_console_session_is_good_on_every_node() {
    let receiver = Receiver::start();
    let lab = Dest::new(1, "production", receiver.url("/lab"));
    let setup = Setup { destinations: vec![lab.clone()], ..Setup::default() };
    let fleet = with_operators(&setup);
    let url = |i: usize, path: &str| format!("{}{path}", fleet.nodes[i].base_url());
    let client = ConsoleClient::new();

    let (status, location, cookie, _) =
        client.call("POST", &url(0, "/ui/sign-in"), "", &[("token", OPERATOR), ("next", "/ui")]);
    assert_eq!((status, location.as_str()), (303, "/ui"), "signing in on node 1");
    assert!(!cookie.is_empty(), "no session cookie");

    let (status, _, _, page) = client.call("GET", &url(1, "/ui"), &cookie, &[]);
    assert_eq!(status, 200, "node 2 takes the session: {page}");
    let csrf = page
        .split("name=\"ferrox-csrf\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's CSRF token")
        .to_owned();

    let pause = url(2, &format!("/api/v1/destinations/{}/pause", lab.id));
    let cookie_header = format!("ferrox_session={cookie}");
    let response = client.0.post(&pause).header("cookie", &cookie_header).header("x-ferrox-csrf", &csrf).send_empty();
    let status = response.expect("pausing").status().as_u16();
    assert_eq!(status, 200, "the operator API of node 3 takes the session and its CSRF token");
    let audit = eventually("the pause in node 1's audit trail", || {
        let r = fleet.nodes[0].admin_as(Some(ADMIN_TOKEN), "GET", "/audit", None);
        let entries = r.json["audit"].as_array().cloned().unwrap_or_default();
        entries.into_iter().find(|e| e["action"] == "destination.pause")
    });
    assert_eq!(audit["operator"], "otto", "{audit}");

    let (status, location, _, _) = client.call("POST", &url(2, "/ui/sign-out"), &cookie, &[("csrf", &csrf)]);
    assert_eq!((status, location.as_str()), (303, "/ui/sign-in"), "signing out on node 3");
    for i in 0..3 {
        let (status, location, _, _) = client.call("GET", &url(i, "/ui"), &cookie, &[]);
        assert_eq!(status, 303, "node {} still takes the session after signing out", i + 1);
        assert!(location.starts_with("/ui/sign-in"), "node {}: {location}", i + 1);
    }
}
