//! The operator console (SPEC §15) in a real headless Chromium: sign in,
//! find a paused production destination, open its failing log by address,
//! fix the receiver, press `Retry` and see `Succeeded` without a reload; a
//! viewer sees no buttons and no payload; sessions end at sign-out and
//! when their token is removed; the search pages; times show in the
//! browser's time zone.

use std::future::Future;

use serde_json::{Value, json};

use crate::{
    browser::Browser,
    client::patient_admin,
    delivery::{Dest, Sent, Setup, wait_status, webhook_ids},
    harness::{ADMIN_TOKEN, Options, Server},
    receiver::{Behavior, Receiver},
    roles::{OPERATOR, VIEWER, operators_toml},
};

fn run<F: Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(test);
}

/// The engine with the roles' operators, `destinations` subscribed to
/// every PatientAdmin event, and a first retry ten minutes away.
fn start(destinations: &[Dest]) -> Server {
    let setup =
        Setup { destinations: destinations.to_vec(), retry_schedule_ms: Some(vec![600_000]), ..Setup::default() };
    Server::start_with(&Options {
        config_text: Some(format!("{}{}", setup.toml(), operators_toml())),
        ..Options::default()
    })
}

fn named(mut dest: Dest, name: &str) -> Dest {
    dest.name = name.to_owned();
    dest
}

pub(crate) async fn sign_in(browser: &Browser, token: &str) {
    browser.find("#token").await.send_keys(token).await.expect("typing the token");
    browser.find("form button[type=submit]").await.click().await.expect("pressing Sign in");
    browser.find("header .who").await;
}

/// The rows of the page's first table, as the cells' texts.
async fn rows(browser: &Browser) -> Vec<Vec<String>> {
    let cells = browser
        .eval("return Array.from(document.querySelectorAll('main tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent.trim()))")
        .await;
    serde_json::from_value(cells).expect("rows of cells")
}

#[test]
fn an_operator_retries_a_paused_queues_failing_log_and_a_viewer_sees_no_buttons_nor_payload() {
    let lab_receiver = Receiver::start();
    lab_receiver.set_default(Behavior::Status(503, "lab system down for maintenance".to_owned()));
    let analytics_receiver = Receiver::start();
    let lab = named(Dest::new(1, "production", lab_receiver.url("/lab")), "Lab System");
    let analytics = named(Dest::new(2, "staging", analytics_receiver.url("/analytics")), "Analytics");
    let server = start(&[lab.clone(), analytics.clone()]);
    let token = server.token();
    let first = Sent::of(&server.send(&token, &patient_admin("NewPatient", "mrn-0000012345")));
    let second = Sent::of(&server.send(&token, &patient_admin("Arrival", "mrn-0000012345")));
    let failing = first.log(&lab);
    wait_status(&server, &failing, "Retrying");
    let base = server.base_url().to_owned();

    run(async {
        let browser = Browser::start("America/New_York").await;
        // 1. Sign in: any console address leads there first.
        browser.goto(&format!("{base}/ui")).await;
        browser.find("#token").await;
        assert!(browser.path().await.starts_with("/ui/sign-in"), "{}", browser.path().await);
        browser.screenshot("console-sign-in").await;
        sign_in(&browser, OPERATOR).await;
        assert_eq!(browser.text("main h1").await, "Destinations");
        browser.screenshot("console-destinations").await;

        // 2. Find the paused production destination.
        let table = rows(&browser).await;
        let paused: Vec<&Vec<String>> =
            table.iter().filter(|r| r.get(1).is_some_and(|e| e == "production") && r[2] == "paused").collect();
        assert_eq!(paused.len(), 1, "one paused production destination in {table:?}");
        assert_eq!((paused[0][0].as_str(), paused[0][3].as_str()), ("Lab System", "2"), "{table:?}");
        browser.find(&format!("main a[href='/ui/destinations/{}']", lab.id)).await.click().await.expect("a click");
        assert_eq!(browser.text("main h1").await, "Lab System paused");
        let head = browser.find(&format!("main a[href='/ui/logs/{failing}']")).await;
        assert_eq!(head.text().await.expect("its text"), failing);
        browser.screenshot("console-destination").await;

        // 3. Open its failing log by address: the receiver's answer and
        //    error text, no payload for an operator without PHI access.
        browser.goto(&format!("{base}/ui/logs/{failing}")).await;
        assert_eq!(browser.text("main .state .badge").await, "Retrying");
        let attempt = &rows(&browser).await[0];
        assert_eq!(attempt[2], "503", "{attempt:?}");
        assert!(attempt[4].contains("lab system down for maintenance"), "the receiver's error in {attempt:?}");
        assert!(browser.text("main .redacted").await.contains("no PHI access"));
        assert!(browser.all("main pre.payload").await.is_empty());
        // Times show in the browser's zone, with the UTC time as a title.
        let shown =
            browser.eval("const t = document.querySelector('main time'); return [t.textContent, t.title]").await;
        let (local, utc) = (shown[0].as_str().unwrap_or(""), shown[1].as_str().unwrap_or(""));
        assert!(local.contains("EST") && utc.ends_with('Z'), "shown {local:?} for {utc:?}");
        browser.screenshot("console-log-failing").await;

        // 4. Fix the receiver, press Retry, see Succeeded: same page, no reload.
        lab_receiver.set_default(Behavior::Status(200, "{}".to_owned()));
        browser.eval("window.sameDocument = true; return true").await;
        browser.find("main button[data-label=Retry]").await.click().await.expect("pressing Retry");
        browser
            .wait_until(
                "the log to show Succeeded",
                "return document.querySelector('main .state .badge')?.textContent === 'Succeeded'",
            )
            .await;
        assert_eq!(browser.eval("return window.sameDocument === true").await, json!(true), "the page was reloaded");
        assert_eq!(browser.text("#status").await, "Retry: done.");
        assert!(browser.all("main button[data-label=Retry]").await.is_empty(), "Retry offered for a Succeeded log");
        assert_eq!(browser.all("main button[data-label=Resend]").await.len(), 1);
        browser.screenshot("console-log-retried").await;

        // The queue flows again, in order, and the action is in the audit
        // trail under the operator's name.
        wait_status(&server, &second.log(&lab), "Succeeded");
        let delivered = webhook_ids(&lab_receiver.received());
        let firsts: Vec<&String> = delivered.iter().filter(|id| **id != failing).collect();
        assert_eq!(delivered.last(), Some(&second.log(&lab)), "{delivered:?}");
        assert_eq!(firsts, [&second.log(&lab)], "{delivered:?}");
        browser.find("header a[href='/ui/audit']").await.click().await.expect("a click");
        let audit = rows(&browser).await;
        assert_eq!(
            (audit[0][1].as_str(), audit[0][2].as_str(), audit[0][3].as_str()),
            ("otto", "log.retry", failing.as_str()),
            "{audit:?}"
        );
        browser.screenshot("console-audit").await;

        // 5. A viewer: no action buttons, no payload.
        browser.find("header .who button").await.click().await.expect("pressing Sign out");
        browser.find("#token").await;
        browser.goto(&format!("{base}/ui/logs/{failing}")).await;
        assert!(browser.path().await.starts_with("/ui/sign-in?next="), "{}", browser.path().await);
        sign_in(&browser, VIEWER).await;
        assert_eq!(browser.path().await, format!("/ui/logs/{failing}"), "back to the log after signing in");
        assert_eq!(browser.text("main .state .badge").await, "Succeeded");
        assert!(browser.all("button[data-post]").await.is_empty(), "a viewer was offered an action");
        assert!(browser.all("main pre.payload").await.is_empty());
        let source = browser.client.source().await.expect("the page's source");
        assert!(!source.contains("mrn-0000012345"), "the payload reached a viewer without PHI access");
        browser.goto(&format!("{base}/ui/destinations/{}", lab.id)).await;
        assert_eq!(browser.text("main h1").await, "Lab System flowing");
        assert!(browser.all("button[data-post]").await.is_empty(), "a viewer was offered Pause");
        browser.close().await;

        // An operator with PHI access reads the payload.
        let admin = Browser::start("UTC").await;
        admin.goto(&format!("{base}/ui/logs/{failing}")).await;
        sign_in(&admin, ADMIN_TOKEN).await;
        let payload: Value = serde_json::from_str(&admin.text("main pre.payload").await).expect("the payload as JSON");
        assert_eq!(payload["Patient"]["Identifiers"][0]["ID"], "mrn-0000012345", "{payload}");
        admin.close().await;
    });
}

#[test]
fn sessions_end_at_sign_out_and_with_their_token_and_the_api_takes_a_session_only_with_its_csrf_token() {
    let receiver = Receiver::start();
    let lab = named(Dest::new(1, "production", receiver.url("/lab")), "Lab System");
    let server = start(std::slice::from_ref(&lab));
    let base = server.base_url().to_owned();
    let nina = "nina-console-token-0123456789";
    let made = json!({ "name": "nina", "role": "operator", "token": nina });
    assert_eq!(server.admin_as(Some(ADMIN_TOKEN), "POST", "/operators", Some(&made)).status, 201);
    let pause = format!("/destinations/{}/pause", lab.id);

    run(async {
        let browser = Browser::start("UTC").await;
        browser.goto(&format!("{base}/ui/sign-in")).await;
        // A wrong token is refused on the page, in words.
        browser.find("#token").await.send_keys("not-an-operator-token").await.expect("typing");
        browser.find("form button[type=submit]").await.click().await.expect("pressing Sign in");
        assert!(browser.text("main .error").await.contains("not an operator's"));
        sign_in(&browser, nina).await;
        browser.goto(&format!("{base}/ui/destinations/{}", lab.id)).await;

        // The session cookie alone does not make an API call: a page of
        // another site could make the browser send it.
        let cookie = browser.client.get_named_cookie("ferrox_session").await.expect("the session cookie");
        assert!(cookie.http_only().unwrap_or(false), "the session cookie is readable by scripts");
        let session = format!("ferrox_session={}", cookie.value());
        let csrf = browser.eval("return document.querySelector('meta[name=ferrox-csrf]').content").await;
        let csrf = csrf.as_str().expect("the page's CSRF token").to_owned();
        for header in [None, Some("a-guess")] {
            let reply = server.post_with_headers(&format!("/api/v1{pause}"), &[("cookie", &session)], header);
            assert_eq!(reply.status, 401, "{}", reply.text);
        }
        assert_eq!(server.admin_get(&format!("/destinations/{}/queue", lab.id)).json["state"], "flowing");

        // Pause by keyboard: Enter on the focused button.
        browser.find("main button[data-label=Pause]").await.send_keys("\u{E007}").await.expect("pressing Enter");
        browser
            .wait_until(
                "the queue to show paused",
                "return document.querySelector('main h1 .badge')?.textContent === 'paused'",
            )
            .await;
        assert_eq!(browser.all("main button[data-label=Resume]").await.len(), 1);
        let audit = server.admin_get("/audit?limit=1");
        assert_eq!(
            (audit.json["audit"][0]["operator"].as_str(), audit.json["audit"][0]["action"].as_str()),
            (Some("nina"), Some("destination.pause"))
        );
        // The page's own token makes the same call work.
        let resume = format!("/api/v1/destinations/{}/resume", lab.id);
        let reply = server.post_with_headers(&resume, &[("cookie", &session)], Some(&csrf));
        assert_eq!(reply.status, 200, "{}", reply.text);

        // Her token removed, her session ends.
        assert_eq!(server.admin_as(Some(ADMIN_TOKEN), "DELETE", "/operators/nina", None).status, 200);
        browser.goto(&format!("{base}/ui")).await;
        browser.find("#token").await;
        assert!(browser.path().await.starts_with("/ui/sign-in"), "{}", browser.path().await);
        let reply = server.post_with_headers(&format!("/api/v1{pause}"), &[("cookie", &session)], Some(&csrf));
        assert_eq!(reply.status, 401, "{}", reply.text);

        // Signing out ends a session for good, cookie or not.
        sign_in(&browser, OPERATOR).await;
        let cookie = browser.client.get_named_cookie("ferrox_session").await.expect("the session cookie");
        let session = format!("ferrox_session={}", cookie.value());
        browser.find("header .who button").await.click().await.expect("pressing Sign out");
        browser.find("#token").await;
        let page = server.get_with_headers("/ui", &[("cookie", &session)]);
        assert_eq!((page.status, page.header("location")), (303, Some("/ui/sign-in?next=%2Fui")), "{}", page.text);
        browser.close().await;
    });
}

#[test]
fn the_log_search_filters_and_pages_and_keeps_its_times_in_the_viewers_zone() {
    let receiver = Receiver::start();
    let analytics = named(Dest::new(2, "staging", receiver.url("/analytics")), "Analytics");
    let server = start(std::slice::from_ref(&analytics));
    let token = server.token();
    let sent: Vec<Sent> =
        (0..30).map(|n| Sent::of(&server.send(&token, &patient_admin("NewPatient", &format!("mrn-{n}"))))).collect();
    let _ = server.send(&token, &patient_admin("Discharge", "mrn-d"));
    for s in &sent {
        wait_status(&server, &s.log(&analytics), "Succeeded");
    }
    let base = server.base_url().to_owned();

    run(async {
        let browser = Browser::start("Asia/Kolkata").await;
        browser.goto(&format!("{base}/ui/logs")).await;
        sign_in(&browser, VIEWER).await;
        // Every filter of GET /logs has a labelled field.
        for field in ["destination", "source", "status", "type", "data_model", "event_type", "since", "until", "limit"]
        {
            let label = browser
                .eval(&format!("return document.querySelector(\"label[for='f-{field}']\")?.textContent ?? null"))
                .await;
            assert!(label.is_string(), "no label for the {field} filter");
        }
        browser.find("#f-event_type").await.send_keys("NewPatient").await.expect("typing");
        browser.find("#f-limit option[value='25']").await.click().await.expect("choosing 25");
        browser.find("main form button[type=submit]").await.click().await.expect("pressing Search");
        browser.find("main nav.pager a[rel=next]").await;
        let page = rows(&browser).await;
        assert_eq!(page.len(), 25);
        assert!(page.iter().all(|r| r[6] == "NewPatient"), "{page:?}");
        let newest: Vec<String> = sent.iter().rev().take(25).map(|s| s.log(&analytics)).collect();
        let shown: Vec<String> = browser
            .eval(
                "return Array.from(document.querySelectorAll('main tbody tr td:nth-child(2) code')).map(c => c.title)",
            )
            .await
            .as_array()
            .expect("IDs")
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(shown, newest, "newest first");
        browser.screenshot("console-logs").await;
        browser.find("main nav.pager a[rel=next]").await.click().await.expect("Older");
        browser.find("main nav.pager a").await;
        assert_eq!(rows(&browser).await.len(), 5);
        assert!(browser.all("main nav.pager a[rel=next]").await.is_empty(), "a page after the last");

        // A time typed in the browser's zone (UTC+5:30) searches in UTC: a
        // time after every log finds none, one before all finds them.
        let after =
            browser.eval("const d = new Date(Date.now() + 3600e3); d.setSeconds(0); d.setMilliseconds(0); return d.toISOString()").await;
        let path = format!("/ui/logs?since={}", after.as_str().unwrap_or_default());
        browser.goto(&format!("{base}{path}")).await;
        // The field shows the same instant as wall-clock time in the
        // viewer's zone (a browser may leave out seconds that are zero).
        let since = after.as_str().unwrap_or_default();
        browser
            .wait_until(
                "the since field to show the filter's time",
                &format!(
                    "const v = document.querySelector('#f-since').value; \
                     return v !== '' && new Date(v).getTime() === new Date('{since}').getTime()"
                ),
            )
            .await;
        let typed = browser.eval("return document.querySelector('#f-since').value").await;
        let expected = browser
            .eval(&format!("const d = new Date('{since}'); const p = n => String(n).padStart(2, '0'); return `${{d.getFullYear()}}-${{p(d.getMonth()+1)}}-${{p(d.getDate())}}T${{p(d.getHours())}}:${{p(d.getMinutes())}}`"))
            .await;
        assert!(
            typed.as_str().unwrap_or_default().starts_with(expected.as_str().unwrap_or("?")),
            "the filter's time is shown in the viewer's zone: {typed} for {since}"
        );
        assert_eq!(browser.text("main p:not(.hint)").await, "No logs match.");
        browser.find("main form button[type=submit]").await.click().await.expect("pressing Search");
        browser.find("main p:not(.hint)").await;
        let query = browser.path().await;
        assert!(
            query.contains(&format!("since={}", after.as_str().unwrap_or_default().replace(':', "%3A"))),
            "{query}"
        );
        browser.close().await;
    });
}
