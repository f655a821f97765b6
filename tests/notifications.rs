//! Scheduler and notifications with real parts: mail is received by an SMTP server the test
//! runs, SMS by an HTTP server; the scheduler's clock is moved by the test.

mod common;

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::{Europe::Madrid, Tz};
use common::{
    Backend, TestApp, expect_problem,
    fixtures::{customer, events, issue_ok, outbox},
    json, quiet_notifications,
    receiver::{Receiver, Reply},
    smtp::{self, SmtpServer},
};
use coupond::{config::NotifyConfig, domain::signature};
use reqwest::Method;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Each listed `async fn name(backend)` runs once on SQLite and once on PostgreSQL.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    )*};
}

on_both_databases!(
    email_and_sms_reach_real_servers,
    twilio_gets_its_form_with_basic_auth,
    templates_are_checked_when_saved,
    reminders_follow_the_clock_once_each,
    two_instances_send_each_message_once,
    smtp_down_then_back_and_dead_messages_retried,
    without_transports_messages_stay_queued,
    housekeeping_closes_run_out_holds_and_drops_old_messages,
    each_scheduled_run_happens_once_across_replicas,
    running_short_of_codes_notifies_once_per_crossing,
);

fn config(smtp: Option<String>, sms: Option<(String, &str)>) -> NotifyConfig {
    NotifyConfig {
        smtp_url: smtp,
        sms_gateway_url: sms.as_ref().map(|(url, _)| url.clone()),
        sms_gateway_kind: sms.map_or("webhook", |(_, kind)| kind).to_string(),
        sms_gateway_secret: Some(SECRET.into()),
        sms_from: "Coupons".into(),
        outbox_retry_base_ms: 100,
        ..quiet_notifications()
    }
}

async fn put(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.request(Method::PUT, path, Some(&app.key))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// An uploaded pool of `n` codes, expiring 10 days after issue, with `extra` settings.
async fn coupon_pool(app: &TestApp, name: &str, n: usize, extra: Value) -> i64 {
    let mut body = json!({"name": name, "source": "uploaded", "discount_type": "amount",
        "value": 500, "currency": "EUR", "expiry": {"mode": "days_from_issual", "days": 10}});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let id = common::fixtures::pool(app, body).await;
    let codes: Vec<String> = (0..n).map(|i| format!("{name}{id}X{i:03}")).collect();
    let resp = app
        .post(&format!("/v1/pools/{id}/codes"), json!({"codes": codes}))
        .await;
    assert_eq!(json(resp).await["accepted"], n);
    id
}

async fn sent_count(app: &TestApp) -> usize {
    app.dispatcher.run_once().await.unwrap().sent
}

async fn email_and_sms_reach_real_servers(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let gateway = Receiver::start(|_, _| Reply::status(200)).await;
    let sms = Some((gateway.url.clone(), "webhook"));
    let Some(app) = TestApp::spawn_with(backend, config(Some(smtp.url()), sms)).await else {
        return;
    };
    customer(
        &app,
        "ana",
        json!({"email": "ana@example.com", "mobile": "+34600111222", "attributes": {"name": "Ana"}}),
    )
    .await;
    let p = coupon_pool(&app, "W", 2, json!({})).await;
    let code = issue_ok(&app, p, "ana").await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let template = "Hola {{customer_name}}, tu cupón {{code}} vale {{value}}";
    let refused = put(
        &app,
        &format!("/v1/pools/{p}/messages"),
        json!({"resend_template": template}),
    )
    .await;
    expect_problem(refused, 422, "validation_failed").await;
    let saved = put(
        &app,
        &format!("/v1/pools/{p}/messages"),
        json!({"resend_template": template, "allow_unicode": true, "resend_subject": "Tu cupón {{code}}"}),
    )
    .await;
    assert_eq!(saved.status(), 200);

    let by_sms = json(
        app.post(&format!("/v1/coupons/{code}/resend"), json!({}))
            .await,
    )
    .await;
    assert_eq!(
        (by_sms["channel"].as_str(), by_sms["to"].as_str()),
        (Some("sms"), Some("+34600111222"))
    );
    let by_email = app
        .post(
            &format!("/v1/coupons/{code}/resend"),
            json!({"channel": "email"}),
        )
        .await;
    assert_eq!(json(by_email).await["to"], "ana@example.com");
    assert_eq!(sent_count(&app).await, 2);

    let got = gateway.received();
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    let text = format!("Hola Ana, tu cupón {code} vale 5.00 EUR");
    assert_eq!(
        body,
        json!({"to": "+34600111222", "from": "Coupons", "body": text})
    );
    let timestamp: i64 = got[0].header("webhook-timestamp").parse().unwrap();
    signature::verify(
        SECRET,
        got[0].header("webhook-id"),
        timestamp,
        &got[0].body,
        got[0].header("webhook-signature"),
        Utc::now().timestamp(),
    )
    .expect("signed the Standard Webhooks way");

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_to, ["ana@example.com"]);
    assert!(mails[0].to.contains("ana@example.com"), "{}", mails[0].to);
    assert!(mails[0].body.contains("text/plain") && mails[0].body.contains("text/html"));
    assert!(mails[0].body.contains(&code), "{}", mails[0].body);

    let listed = json(app.get("/v1/outbox?state=sent&channel=sms").await).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["payload"]["unicode"], true);
    assert_eq!(items[0]["payload"]["segments"], 1);
}

async fn twilio_gets_its_form_with_basic_auth(backend: Backend) {
    let twilio = Receiver::start(|n, _| Reply::status(if n == 0 { 201 } else { 400 })).await;
    let url = twilio
        .url
        .replacen("http://", "http://AC123:secret-token@", 1)
        + "/2010-04-01/Accounts/AC123/Messages.json";
    let Some(app) = TestApp::spawn_with(backend, config(None, Some((url, "twilio")))).await else {
        return;
    };
    customer(&app, "ana", json!({"mobile": "+34600111222"})).await;
    customer(&app, "bad", json!({"mobile": "+34600999999"})).await;
    let p = coupon_pool(&app, "T", 2, json!({})).await;
    let code = issue_ok(&app, p, "ana").await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = issue_ok(&app, p, "bad").await["code"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(&format!("/v1/coupons/{code}/resend"), json!({}))
        .await;
    assert_eq!(sent_count(&app).await, 1);
    app.post(&format!("/v1/coupons/{bad}/resend"), json!({}))
        .await;
    assert_eq!(sent_count(&app).await, 0);

    let got = twilio.received();
    assert!(
        got[0]
            .path
            .ends_with("/2010-04-01/Accounts/AC123/Messages.json"),
        "{}",
        got[0].path
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("AC123:secret-token");
    assert_eq!(got[0].header("authorization"), format!("Basic {basic}"));
    assert_eq!(
        got[0].header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form = String::from_utf8(got[0].body.clone()).unwrap();
    let pairs: Vec<&str> = form.split('&').collect();
    assert_eq!(pairs[0], "To=%2B34600111222");
    assert_eq!(pairs[1], "From=Coupons");
    assert!(
        pairs[2].starts_with("Body=Your+coupon+for+T") && pairs[2].contains(&code),
        "{form}"
    );
    // Twilio refusing a number (4xx) is final: the message is dead at once.
    let dead = json(app.get("/v1/outbox?state=dead").await).await;
    assert_eq!(dead["items"][0]["payload"]["to"], "+34600999999", "{dead}");
    assert!(
        dead["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("400")
    );
}

async fn templates_are_checked_when_saved(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let p = coupon_pool(&app, "C", 1, json!({})).await;
    let path = format!("/v1/pools/{p}/reminders");
    let reminder = |extra: Value| {
        let mut r = json!({"days_before": 3, "at": "09:00", "channel": "sms", "template": "{{code}} ends {{expires_on}}"});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"items": [r]})
    };
    let unknown = put(&app, &path, reminder(json!({"template": "Hi {{name}}"}))).await;
    let problem = expect_problem(unknown, 422, "validation_failed").await;
    assert_eq!(problem["field"], "reminders[0].template");
    assert!(problem["detail"].as_str().unwrap().contains("{{name}}"));
    let unicode = put(&app, &path, reminder(json!({"template": "Купон {{code}}"}))).await;
    expect_problem(unicode, 422, "validation_failed").await;
    let time = put(&app, &path, reminder(json!({"at": "9am"}))).await;
    expect_problem(time, 422, "validation_failed").await;
    assert_eq!(
        json(app.get(&path).await).await["items"],
        json!([]),
        "nothing saved"
    );

    let ok = put(
        &app,
        &path,
        reminder(json!({"template": "Купон {{code}}", "allow_unicode": true})),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let first = json(app.get(&path).await).await["items"][0].clone();
    // Saving the same reminder with new wording keeps its identity.
    put(&app, &path, reminder(json!({"template": "Your {{code}}"}))).await;
    let again = json(app.get(&path).await).await["items"][0].clone();
    assert_eq!(
        (again["id"].clone(), again["template"].as_str()),
        (first["id"].clone(), Some("Your {{code}}"))
    );
    let missing = put(&app, "/v1/pools/999999/reminders", reminder(json!({}))).await;
    assert_eq!(missing.status(), 404);
}

/// The local time `days_before` the expiry date of `expires_at`, at `at`, as UTC.
fn local(expires_at: &Value, days_before: u64, at: &str) -> DateTime<Utc> {
    let expires: DateTime<Utc> = expires_at.as_str().unwrap().parse().unwrap();
    let day = expires.with_timezone(&Madrid).date_naive() - chrono::Days::new(days_before);
    let time = NaiveTime::parse_from_str(at, "%H:%M").unwrap();
    let tz: Tz = Madrid;
    tz.from_local_datetime(&day.and_time(time))
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

async fn tick_at(app: &TestApp, at: DateTime<Utc>) {
    app.clock.set(at);
    app.scheduler.tick().await.unwrap();
    app.dispatcher.run_once().await.unwrap();
}

async fn reminders_follow_the_clock_once_each(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let gateway = Receiver::start(|_, _| Reply::status(200)).await;
    let sms = Some((gateway.url.clone(), "webhook"));
    let Some(app) = TestApp::spawn_with(backend, config(Some(smtp.url()), sms)).await else {
        return;
    };
    let hook = Receiver::start(|_, _| Reply::status(200)).await;
    let sub = app
        .post(
            "/v1/webhooks",
            json!({"url": hook.url, "events": ["coupon.expired"]}),
        )
        .await;
    assert_eq!(sub.status(), 201);
    for (i, who) in ["ana", "bob", "carl"].into_iter().enumerate() {
        customer(
            &app,
            who,
            json!({"email": format!("{who}@example.com"), "mobile": format!("+3460000000{i}")}),
        )
        .await;
    }
    let a = coupon_pool(&app, "A", 3, json!({})).await;
    let b = coupon_pool(&app, "B", 3, json!({})).await;
    let reminders = json!({"items": [
        {"days_before": 3, "at": "09:00", "channel": "sms", "template": "{{code}} ends {{expires_on}}"},
        {"days_before": 1, "at": "18:30", "channel": "email", "template": "Last day tomorrow: {{code}}"},
    ]});
    for p in [a, b] {
        assert_eq!(
            put(&app, &format!("/v1/pools/{p}/reminders"), reminders.clone())
                .await
                .status(),
            200
        );
    }
    let ana = issue_ok(&app, a, "ana").await;
    let bob = issue_ok(&app, a, "bob").await;
    issue_ok(&app, b, "carl").await;
    let bob_code = bob["code"].as_str().unwrap();
    let redeemed = app
        .post(&format!("/v1/coupons/{bob_code}/redeem"), json!({"customer": {"external_id": "bob"}, "basket": {"total": 1000, "currency": "EUR"}}))
        .await;
    assert_eq!(redeemed.status(), 201);
    let revoked = app
        .post(
            &format!("/v1/pools/{b}/revoke"),
            json!({"scope": "all_unredeemed"}),
        )
        .await;
    assert_eq!(revoked.status(), 200);
    let code = ana["code"].as_str().unwrap();
    let sms_due = local(&ana["expires_at"], 3, "09:00");

    tick_at(&app, sms_due - TimeDelta::minutes(1)).await;
    assert!(gateway.received().is_empty(), "not before its local time");
    tick_at(&app, sms_due + TimeDelta::minutes(1)).await;
    let got = gateway.received();
    assert_eq!(got.len(), 1, "ana only: bob redeemed, carl revoked");
    assert_eq!(got[0].json()["to"], "+34600000000");
    assert!(got[0].json()["body"].as_str().unwrap().starts_with(code));
    tick_at(&app, sms_due + TimeDelta::hours(2)).await;
    assert_eq!(gateway.received().len(), 1, "once");

    // Down from before the email's time until the next morning: it catches up.
    let expiry_day_morning = local(&ana["expires_at"], 0, "08:00");
    tick_at(&app, expiry_day_morning).await;
    tick_at(&app, expiry_day_morning + TimeDelta::minutes(5)).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].rcpt_to, ["ana@example.com"]);
    assert!(
        mails[0]
            .body
            .contains(&format!("Last day tomorrow: {code}"))
    );

    // A reminder added for a time the coupon did not live to see is never sent.
    let mut three = reminders.clone();
    three["items"].as_array_mut().unwrap().push(
        json!({"days_before": 0, "at": "12:00", "channel": "email", "template": "Today: {{code}}"}),
    );
    put(&app, &format!("/v1/pools/{a}/reminders"), three).await;
    tick_at(
        &app,
        local(&ana["expires_at"], 0, "08:00") + TimeDelta::days(1),
    )
    .await;
    assert_eq!(smtp.mails().len(), 1, "nothing after expiry");
    assert_eq!(gateway.received().len(), 1);
    let coupon = json(app.get(&format!("/v1/coupons/{code}")).await).await;
    assert_eq!(coupon["status"], "expired", "{coupon}");
    assert_eq!(events(&app, "coupon_expire").await, 1);
    let expired: Vec<Value> = outbox(&app, "webhook")
        .await
        .into_iter()
        .map(|m| m.payload["body"].clone())
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["type"], "coupon.expired");
    assert_eq!(expired[0]["data"]["coupon"]["code"], code);
}

async fn two_instances_send_each_message_once(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let running = NotifyConfig {
        scheduler_tick_ms: 20,
        outbox_interval_ms: 20,
        ..config(Some(smtp.url()), None)
    };
    let Some(app) = TestApp::spawn_with(backend, running.clone()).await else {
        return;
    };
    let _second = app.another_instance(running).await;
    let org = app
        .patch("/v1/org", json!({"poc_emails": ["poc@example.com"]}))
        .await;
    assert_eq!(org.status(), 200);
    let p = coupon_pool(
        &app,
        "L",
        6,
        json!({"issuance": {"max_total": 6, "notify_remaining_at": 3}}),
    )
    .await;
    let reminders = json!({"items": [{"days_before": 2, "at": "10:00", "channel": "email", "template": "Soon: {{code}}"}]});
    put(&app, &format!("/v1/pools/{p}/reminders"), reminders).await;
    let mut expires_at = Value::Null;
    for i in 0..4 {
        let who = format!("c{i}");
        customer(&app, &who, json!({"email": format!("{who}@example.com")})).await;
        expires_at = issue_ok(&app, p, &who).await["expires_at"].clone();
    }
    app.clock
        .set(local(&expires_at, 2, "10:00") + TimeDelta::minutes(1));
    let mut mails = Vec::new();
    for _ in 0..400 {
        mails = smtp.mails();
        if mails.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut to: Vec<String> = smtp
        .mails()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            "c0@example.com",
            "c1@example.com",
            "c2@example.com",
            "c3@example.com",
            "poc@example.com"
        ],
        "{mails:?}"
    );
    let limit = smtp
        .mails()
        .into_iter()
        .find(|m| m.rcpt_to == ["poc@example.com"])
        .unwrap();
    assert!(
        limit.subject.contains("3 coupons left"),
        "{}",
        limit.subject
    );
}

async fn smtp_down_then_back_and_dead_messages_retried(backend: Backend) {
    let port = SmtpServer::free_port().await;
    let Some(app) = TestApp::spawn_with(backend, config(Some(smtp::url_for(port)), None)).await
    else {
        return;
    };
    customer(&app, "ana", json!({"email": "ana@example.com"})).await;
    customer(&app, "bob", json!({"email": "bounce@example.com"})).await;
    let p = coupon_pool(&app, "D", 2, json!({})).await;
    let ana = issue_ok(&app, p, "ana").await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = issue_ok(&app, p, "bob").await["code"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(&format!("/v1/coupons/{ana}/resend"), json!({}))
        .await;
    assert_eq!(app.dispatcher.run_once().await.unwrap().failed, 1);
    let pending = json(app.get("/v1/outbox?channel=email&state=pending").await).await;
    assert_eq!(pending["items"][0]["attempts"], 1, "{pending}");
    assert!(pending["items"][0]["last_error"].as_str().is_some());

    let smtp = SmtpServer::start_on(port).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sent_count(&app).await, 1);
    assert_eq!(sent_count(&app).await, 0);
    assert_eq!(smtp.mails().len(), 1, "went out once");

    smtp.refuse("bounce@example.com");
    app.post(&format!("/v1/coupons/{bob}/resend"), json!({}))
        .await;
    assert_eq!(sent_count(&app).await, 0);
    let dead = json(app.get("/v1/outbox?state=dead").await).await;
    let row = &dead["items"][0];
    assert_eq!(row["payload"]["to"], "bounce@example.com", "{dead}");
    assert!(row["last_error"].as_str().unwrap().contains("550"), "{row}");
    let id = row["id"].as_i64().unwrap();

    smtp.accept("bounce@example.com");
    let retried = json(app.post(&format!("/v1/outbox/{id}/retry"), json!({})).await).await;
    assert_eq!(
        (retried["state"].as_str(), retried["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    assert_eq!(sent_count(&app).await, 1);
    assert_eq!(
        smtp.mails()
            .iter()
            .filter(|m| m.rcpt_to == ["bounce@example.com"])
            .count(),
        1
    );
    let again = app.post(&format!("/v1/outbox/{id}/retry"), json!({})).await;
    expect_problem(again, 409, "message_not_dead").await;
}

async fn without_transports_messages_stay_queued(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let text = ready.text().await.unwrap();
    assert!(
        text.contains("emails stay queued") && text.contains("SMS stay queued"),
        "{text}"
    );
    customer(&app, "ana", json!({"mobile": "+34600111222"})).await;
    let p = coupon_pool(&app, "Q", 1, json!({})).await;
    let code = issue_ok(&app, p, "ana").await["code"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(&format!("/v1/coupons/{code}/resend"), json!({}))
        .await;
    assert_eq!(app.dispatcher.run_once().await.unwrap(), Default::default());
    let pending = json(app.get("/v1/outbox?state=pending").await).await;
    assert_eq!(pending["items"][0]["attempts"], 0, "{pending}");
}

async fn housekeeping_closes_run_out_holds_and_drops_old_messages(backend: Backend) {
    let gateway = Receiver::start(|_, _| Reply::status(200)).await;
    let sms = Some((gateway.url.clone(), "webhook"));
    let Some(app) = TestApp::spawn_with(backend, config(None, sms)).await else {
        return;
    };
    customer(
        &app,
        "ana",
        json!({"mobile": "+34600111222", "email": "ana@example.com"}),
    )
    .await;
    let card = common::fixtures::pool(
        &app,
        json!({"name": "Gift", "source": "generated", "pattern": "HK####",
        "discount_type": "gift_card", "value": 10000, "currency": "EUR",
        "redemption": {"redeem_more_than_once": true}}),
    )
    .await;
    let code = issue_ok(&app, card, "ana").await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let hold = app
        .post(
            &format!("/v1/coupons/{code}/reserve"),
            json!({"customer": {"external_id": "ana"},
            "basket": {"total": 3000, "currency": "EUR"}, "amount": 2500, "ttl_seconds": 1}),
        )
        .await;
    assert_eq!(json(hold).await["coupon_balance"], 7500);
    app.post(&format!("/v1/coupons/{code}/resend"), json!({}))
        .await;
    app.post(
        &format!("/v1/coupons/{code}/resend"),
        json!({"channel": "email"}),
    )
    .await;
    assert_eq!(
        sent_count(&app).await,
        1,
        "the SMS; the email has no transport"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let housekeeping = coupond::scheduler::Job::Housekeeping;
    app.scheduler
        .run_job(housekeeping, Utc::now())
        .await
        .unwrap();
    let holds = coupond::store::entity::redemptions::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert!(!holds[0].active, "the run-out hold is closed");
    let coupon = json(app.get(&format!("/v1/coupons/{code}")).await).await;
    assert_eq!(coupon["balance"], 10000, "{coupon}");
    assert_eq!(
        outbox(&app, "sms").await.len(),
        1,
        "kept within the retention"
    );

    app.scheduler
        .run_job(housekeeping, Utc::now() + TimeDelta::days(31))
        .await
        .unwrap();
    assert!(
        outbox(&app, "sms").await.is_empty(),
        "sent and old: deleted"
    );
    assert_eq!(
        outbox(&app, "email").await.len(),
        1,
        "never deleted while queued"
    );
}

async fn each_scheduled_run_happens_once_across_replicas(backend: Backend) {
    use coupond::scheduler::Job;
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let second = app.another_instance(quiet_notifications()).await;
    // 03:29:30 UTC: housekeeping (03:30) and the sweep (every 5 minutes) are a step away.
    let start = Utc::now()
        .date_naive()
        .and_hms_opt(3, 29, 30)
        .unwrap()
        .and_utc();
    let mut runs: Vec<(DateTime<Utc>, Job)> = Vec::new();
    for step in 0..4 {
        let at = start + TimeDelta::seconds(40 * step);
        app.clock.set(at);
        let (a, b) = tokio::join!(app.scheduler.tick(), second.scheduler.tick());
        runs.extend(
            a.unwrap()
                .into_iter()
                .chain(b.unwrap())
                .map(|job| (at, job)),
        );
    }
    let at = |s: i64| start + TimeDelta::seconds(s);
    let all = [
        Job::ExpirySweep,
        Job::Reminders,
        Job::LimitWatch,
        Job::Housekeeping,
    ];
    let mut expected: Vec<(DateTime<Utc>, Job)> = all.iter().map(|j| (at(0), *j)).collect();
    // 03:30:00 passes between 03:29:30 and 03:30:10: every job but the limit watch (at :30)
    // is due once more.
    expected.extend(
        all.iter()
            .filter(|j| **j != Job::LimitWatch)
            .map(|j| (at(40), *j)),
    );
    expected.push((at(80), Job::LimitWatch));
    // 03:31:00 and 03:31:30 pass by 03:31:30: the minutely reminder scan and limit watch.
    expected.push((at(120), Job::Reminders));
    expected.push((at(120), Job::LimitWatch));
    runs.sort_by_key(|(t, j)| (*t, j.name()));
    expected.sort_by_key(|(t, j)| (*t, j.name()));
    assert_eq!(runs, expected, "each run once, by one of the two replicas");
}

async fn running_short_of_codes_notifies_once_per_crossing(backend: Backend) {
    use coupond::scheduler::Job;
    let smtp = SmtpServer::start().await;
    let Some(app) = TestApp::spawn_with(backend, config(Some(smtp.url()), None)).await else {
        return;
    };
    app.patch("/v1/org", json!({"poc_emails": ["poc@example.com"]}))
        .await;
    let p = coupon_pool(
        &app,
        "S",
        5,
        json!({"issuance": {"max_total": 100, "notify_remaining_at": 2}}),
    )
    .await;
    let watch = || async {
        app.scheduler
            .run_job(Job::LimitWatch, Utc::now())
            .await
            .unwrap();
        app.dispatcher.run_once().await.unwrap();
        smtp.mails()
    };
    for i in 0..8 {
        customer(&app, &format!("c{i}"), json!({})).await;
    }
    for i in 0..2 {
        issue_ok(&app, p, &format!("c{i}")).await;
    }
    assert!(watch().await.is_empty(), "3 codes left");
    issue_ok(&app, p, "c2").await;
    let mails = watch().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_to, ["poc@example.com"]);
    assert!(
        mails[0].subject.contains("2 coupons left"),
        "{}",
        mails[0].subject
    );
    assert_eq!(watch().await.len(), 1, "once per crossing");

    let codes: Vec<String> = (0..5).map(|i| format!("REFILL{p}X{i}")).collect();
    app.post(&format!("/v1/pools/{p}/codes"), json!({"codes": codes}))
        .await;
    assert_eq!(watch().await.len(), 1, "refilled above the threshold");
    for i in 3..8 {
        issue_ok(&app, p, &format!("c{i}")).await;
    }
    assert_eq!(watch().await.len(), 2, "a new crossing after the refill");
}
