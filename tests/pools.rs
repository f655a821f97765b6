//! Pools and every code source: uploads with duplicate reports, generation jobs, bulk rules,
//! common and randomized codes, edits with update criteria, archiving.

mod common;

use std::collections::HashSet;

use common::{TestApp, expect_problem, json};
use reqwest::Method;
use serde_json::{Value, json};

async fn pool(app: &TestApp, body: Value) -> Value {
    let resp = app.post("/v1/pools", body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn upload_csv(app: &TestApp, pool_id: i64, csv: &str) -> Value {
    let resp = app
        .request(
            Method::POST,
            &format!("/v1/pools/{pool_id}/codes"),
            Some(&app.key),
        )
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    json(resp).await
}

async fn stats(app: &TestApp, pool_id: i64) -> Value {
    json(app.get(&format!("/v1/pools/{pool_id}/stats")).await).await
}

fn uploaded(name: &str) -> Value {
    json!({"name": name, "source": "uploaded", "discount_type": "amount", "value": 500, "currency": "EUR"})
}

both_databases! {
    async fn a_pool_is_created_read_and_listed(app) {
        let created = pool(&app, uploaded("Spring")).await;
        assert!(created["id"].as_i64().unwrap() > 0);
        assert_eq!(created["state"], "active");
        assert_eq!(created["source"], "uploaded");
        let id = created["id"].as_i64().unwrap();
        let read = json(app.get(&format!("/v1/pools/{id}")).await).await;
        assert_eq!(read["name"], "Spring");
        assert_eq!(read["value"], 500);
        let list = json(app.get("/v1/pools?source=uploaded").await).await;
        assert_eq!(list["total"], 1);
        assert_eq!(list["items"][0]["id"], id);
        let none = json(app.get("/v1/pools?source=bulk").await).await;
        assert_eq!(none["total"], 0);
        let (_, other_key) = app.other_org().await;
        let resp = app.request(Method::GET, &format!("/v1/pools/{id}"), Some(&other_key)).send().await.unwrap();
        expect_problem(resp, 404, "not_found").await;
    }

    async fn bad_pool_settings_are_422_naming_the_field(app) {
        let resp = app.post("/v1/pools", json!({"name": "x", "source": "uploaded", "discount_type": "amount", "value": 500})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "currency");
        let resp = app.post("/v1/pools", json!({"name": "x", "source": "generated", "discount_type": "percentage", "value": 1000})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "pattern");
        let resp = app.post("/v1/pools", json!({"name": "x", "source": "bulk", "pattern": "AB##", "discount_type": "free_shipping"})).await;
        expect_problem(resp, 422, "too_few_placeholders").await;
        let resp = app.post("/v1/pools", json!({"name": "x", "source": "generated", "pattern": "AB\\", "discount_type": "free_shipping"})).await;
        assert_eq!(expect_problem(resp, 422, "invalid_pattern").await["field"], "pattern");
        let list = json(app.get("/v1/pools").await).await;
        assert_eq!(list["total"], 0, "nothing was created");
    }

    async fn uploads_skip_duplicates_reject_malformed_and_report_them(app) {
        let a = pool(&app, uploaded("A")).await["id"].as_i64().unwrap();
        let b = pool(&app, uploaded("B")).await["id"].as_i64().unwrap();
        let first = upload_csv(&app, a, "code\nAAA1\nAAA2\nAAA1\n\nBAD CODE\nAAA3\n").await;
        assert_eq!((first["accepted"].as_i64(), first["skipped"].as_i64(), first["rejected"].as_i64()), (Some(3), Some(1), Some(1)));
        assert_eq!(first["state"], "done");
        // A code lives in one pool of the org only.
        let resp = app.post(&format!("/v1/pools/{b}/codes"), json!({"codes": ["AAA2", "BBB1"]})).await;
        assert_eq!(resp.status(), 201);
        let second = json(resp).await;
        assert_eq!((second["accepted"].as_i64(), second["skipped"].as_i64()), (Some(1), Some(1)));

        let issues = app.get(&format!("/v1/imports/{}/issues", first["id"])).await;
        assert!(issues.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let text = issues.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "row,value,code,reason");
        assert!(lines[1].starts_with("4,AAA1,duplicate,"), "{text}");
        assert!(lines[2].starts_with("6,BAD CODE,malformed,"), "{text}");
        assert_eq!(lines.len(), 3);

        let s = stats(&app, a).await;
        assert_eq!((s["total"].as_i64(), s["available"].as_i64(), s["remaining"].as_i64()), (Some(3), Some(3), Some(3)));
        let import = json(app.get(&format!("/v1/imports/{}", first["id"])).await).await;
        assert_eq!(import["accepted"], 3);

        let generated = pool(&app, json!({"name": "G", "source": "generated", "pattern": "G####", "discount_type": "free_shipping"})).await;
        let resp = app.post(&format!("/v1/pools/{}/codes", generated["id"]), json!({"codes": ["X1"]})).await;
        expect_problem(resp, 409, "wrong_source").await;
    }

    async fn a_large_upload_is_streamed_in_chunks(app) {
        let id = pool(&app, uploaded("Big")).await["id"].as_i64().unwrap();
        let csv: String = (0..12_345).map(|i| format!("BIG{i:06}\n")).collect();
        let import = upload_csv(&app, id, &csv).await;
        assert_eq!(import["accepted"], 12_345);
        assert_eq!(import["total"], 12_345);
        assert_eq!(stats(&app, id).await["available"], 12_345);
    }

    async fn generated_codes_come_from_the_pattern_in_background_jobs(app) {
        let p = pool(&app, json!({
            "name": "Gen", "source": "generated", "pattern": "SPR-$$$$$", "discount_type": "percentage", "value": 1500,
            "exclude_chars": ["O", "0", "I", "1"], "prefix": "EU", "prefix_enabled": true
        })).await;
        let id = p["id"].as_i64().unwrap();
        assert_eq!(p["prefix"], "EU");
        let resp = app.post(&format!("/v1/pools/{id}/generate"), json!({"count": 2500})).await;
        assert_eq!(resp.status(), 202);
        let job = app.wait_for_job(json(resp).await["id"].as_i64().unwrap()).await;
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!((job["done"].as_i64(), job["total"].as_i64()), (Some(2500), Some(2500)));
        // A second batch continues where the first stopped: no repeats.
        let resp = app.post(&format!("/v1/pools/{id}/generate"), json!({"count": 1500})).await;
        app.wait_for_job(json(resp).await["id"].as_i64().unwrap()).await;
        assert_eq!(stats(&app, id).await["available"], 4000);
        let codes = all_codes(&app, id).await;
        assert_eq!(codes.len(), 4000);
        for code in &codes {
            assert!(code.starts_with("EUSPR-"), "{code}");
            assert!(!code[6..].contains(['O', '0', 'I', '1']), "{code}");
        }
    }

    async fn generated_codes_skip_codes_the_org_has_and_make_more(app) {
        // Half the pattern's codes are already uploaded to another pool of the org.
        let taken: Vec<String> = (0..50).map(|i| format!("CL-{i:02}")).collect();
        let other = pool(&app, uploaded("Taken")).await["id"].as_i64().unwrap();
        assert_eq!(upload_csv(&app, other, &taken.join("\n")).await["accepted"], 50);
        let p = pool(&app, json!({"name": "Clash", "source": "generated", "pattern": "CL-##", "discount_type": "free_shipping"})).await;
        let id = p["id"].as_i64().unwrap();
        let resp = app.post(&format!("/v1/pools/{id}/generate"), json!({"count": 40})).await;
        let job = app.wait_for_job(json(resp).await["id"].as_i64().unwrap()).await;
        assert_eq!((job["state"].as_str(), job["accepted"].as_i64()), (Some("done"), Some(40)), "{job}");
        assert!(job["skipped"].as_i64().unwrap() > 0, "some generated codes clashed: {job}");
        let mine = all_codes(&app, id).await;
        assert_eq!(mine.len(), 40);
        assert!(mine.iter().all(|code| !taken.contains(code)), "{mine:?}");
        // The ten free codes left are all at positions past the cursor: the next job finds them.
        let resp = app.post(&format!("/v1/pools/{id}/generate"), json!({"count": 10})).await;
        let job = app.wait_for_job(json(resp).await["id"].as_i64().unwrap()).await;
        assert_eq!((job["state"].as_str(), job["accepted"].as_i64()), (Some("done"), Some(10)), "{job}");
        let mine = all_codes(&app, id).await;
        assert_eq!(mine.len(), 50);
        assert!(mine.iter().all(|code| !taken.contains(code)), "{mine:?}");
    }

    async fn a_source_change_keeps_source_and_pattern_consistent(app) {
        let id = pool(&app, uploaded("Empty")).await["id"].as_i64().unwrap();
        let path = format!("/v1/pools/{id}");
        // A source that makes codes needs a pattern: refused, and nothing changed.
        let resp = app.patch(&path, json!({"source": "generated"})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "pattern");
        assert_eq!(json(app.get(&path).await).await["source"], "uploaded");
        let resp = app.post(&format!("{path}/generate"), json!({"count": 5})).await;
        expect_problem(resp, 409, "wrong_source").await;
        // With one, the pool generates.
        let resp = app.patch(&path, json!({"source": "generated", "pattern": "SW-####"})).await;
        assert_eq!(resp.status(), 200);
        // Back to uploaded before any code exists: the pattern goes with the old source.
        let back = json(app.patch(&path, json!({"source": "uploaded"})).await).await;
        assert_eq!((back["source"].as_str(), back["pattern"].as_str()), (Some("uploaded"), None), "{back}");
        let resp = app.patch(&path, json!({"pattern": "SW-####"})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "pattern");
    }

    async fn bulk_generation_keeps_to_one_percent_of_the_space(app) {
        let p = pool(&app, json!({"name": "Bulk", "source": "bulk", "pattern": "B####", "discount_type": "free_shipping"})).await;
        let id = p["id"].as_i64().unwrap();
        let resp = app.post(&format!("/v1/pools/{id}/generate"), json!({"count": 101})).await;
        let problem = expect_problem(resp, 422, "bulk_too_large").await;
        assert!(problem["detail"].as_str().unwrap().contains("10000"), "{problem}");
        let resp = app.post(&format!("/v1/pools/{id}/generate"), json!({"count": 100})).await;
        let job = app.wait_for_job(json(resp).await["id"].as_i64().unwrap()).await;
        assert_eq!(job["done"], 100);
        let resp = app.post(&format!("/v1/pools/{id}/generate"), json!({"count": 1})).await;
        expect_problem(resp, 422, "bulk_too_large").await;
        let report = json(app.post("/v1/patterns/inspect", json!({"pattern": "$$$$", "exclude_chars": ["O", "0", "I", "1"]})).await).await;
        assert_eq!(report["combinations"], (32u64.pow(4)).to_string());
        assert_eq!(report["bulk_allowed"], true);
    }

    async fn common_and_randomized_common_pools(app) {
        let c = pool(&app, json!({"name": "Summer", "source": "common", "pattern": "SUMMER50", "discount_type": "percentage", "value": 5000})).await;
        let s = stats(&app, c["id"].as_i64().unwrap()).await;
        assert_eq!(s["total"], 1);
        // The common code belongs to that pool: no other pool of the org can take it.
        let other = pool(&app, uploaded("Other")).await["id"].as_i64().unwrap();
        let import = upload_csv(&app, other, "SUMMER50\n").await;
        assert_eq!(import["skipped"], 1);
        let resp = app.post("/v1/pools", json!({"name": "x", "source": "common", "pattern": "SUMMER50", "discount_type": "free_shipping"})).await;
        expect_problem(resp, 409, "pattern_taken").await;

        let r = pool(&app, json!({"name": "R", "source": "randomized_common", "sample_code": "TEST12345", "discount_type": "free_shipping"})).await;
        assert_eq!(r["pattern"], "TEST#####");
        assert_eq!(r["sample_code"], "TEST12345");
        let resp = app.post("/v1/pools", json!({"name": "x", "source": "randomized_common", "sample_code": "AB1", "discount_type": "free_shipping"})).await;
        assert_eq!(expect_problem(resp, 422, "invalid_sample").await["field"], "sample_code");
    }

    async fn remote_pools_keep_their_source_settings(app) {
        let r = pool(&app, json!({"name": "Remote", "source": "remote", "discount_type": "amount", "value": 100, "currency": "EUR",
                                  "remote": {"url": "http://127.0.0.1:9/codes", "secret": "czNjcmV0czNjcmV0czNjcmV0"}})).await;
        assert_eq!(r["remote"]["url"], "http://127.0.0.1:9/codes");
        assert_eq!(r["remote"]["timeout_ms"], 2000);
        assert!(r["remote"].get("secret").is_none(), "the secret is write-only");
        let resp = app.post("/v1/pools", json!({"name": "x", "source": "remote", "discount_type": "free_shipping", "remote": {"url": "ftp://x"}})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "remote.url");
    }

    async fn prefixes_follow_capillarys_rules(app) {
        let resp = app.post("/v1/pools", json!({"name": "x", "source": "generated", "pattern": "####", "discount_type": "free_shipping",
                                                "prefix_enabled": true, "use_org_prefix": true})).await;
        expect_problem(resp, 422, "org_default_missing").await;
        let resp = app.patch("/v1/org", json!({"code_prefix": "ACME_"})).await;
        assert_eq!(resp.status(), 200);
        let p = pool(&app, json!({"name": "x", "source": "generated", "pattern": "####", "discount_type": "free_shipping",
                                  "prefix_enabled": true, "use_org_prefix": true})).await;
        assert_eq!(p["prefix"], "ACME_");
        let p = pool(&app, json!({"name": "y", "source": "generated", "pattern": "###@", "discount_type": "free_shipping",
                                  "prefix_enabled": false, "use_org_prefix": true, "prefix": "NO"})).await;
        assert!(p["prefix"].is_null(), "prefix_enabled=false wins");
        let resp = app.post("/v1/pools", json!({"name": "z", "source": "generated", "pattern": "##@@", "discount_type": "free_shipping",
                                                "prefix_enabled": true, "prefix": "WAY-TOO-LONG-PREFIX"})).await;
        assert_eq!(expect_problem(resp, 422, "invalid_affix").await["field"], "prefix");
        let resp = app.patch("/v1/org", json!({"code_prefix": "bad prefix"})).await;
        expect_problem(resp, 422, "invalid_affix").await;
    }

    async fn edits_reach_existing_coupons_by_update_criterion(app) {
        let id = pool(&app, uploaded("Edit")).await["id"].as_i64().unwrap();
        upload_csv(&app, id, "E1\nE2\nE3\nE4\n").await;
        // Set up one coupon per status directly: issuing and redeeming have their own tests.
        set_status(&app, "E2", 1).await;
        set_status(&app, "E3", 2).await;
        let edit = |value: i64, criterion: &'static str, match_value: bool| {
            json!({"value": value, "update_criterion": criterion, "match_value": match_value})
        };
        assert_eq!(app.patch(&format!("/v1/pools/{id}"), edit(600, "none", false)).await.status(), 200);
        assert_eq!(values(&app, id).await, vec![500, 500, 500, 500]);
        app.patch(&format!("/v1/pools/{id}"), edit(700, "unassigned", false)).await;
        assert_eq!(values(&app, id).await, vec![700, 500, 500, 700]);
        app.patch(&format!("/v1/pools/{id}"), edit(800, "not_redeemed", false)).await;
        assert_eq!(values(&app, id).await, vec![800, 800, 500, 800]);
        // Only coupons still carrying the old value (800) follow.
        app.patch(&format!("/v1/pools/{id}"), edit(900, "all", true)).await;
        assert_eq!(values(&app, id).await, vec![900, 900, 500, 900]);
        app.patch(&format!("/v1/pools/{id}"), edit(1000, "all", false)).await;
        assert_eq!(values(&app, id).await, vec![1000, 1000, 1000, 1000]);
        let resp = app.patch(&format!("/v1/pools/{id}"), json!({"source": "bulk", "pattern": "####"})).await;
        expect_problem(resp, 409, "codes_exist").await;
    }

    async fn archived_pools_are_listed_only_on_request(app) {
        let id = pool(&app, uploaded("Old")).await["id"].as_i64().unwrap();
        pool(&app, uploaded("New")).await;
        let resp = app.patch(&format!("/v1/pools/{id}"), json!({"state": "archived"})).await;
        assert_eq!(json(resp).await["state"], "archived");
        assert_eq!(json(app.get("/v1/pools").await).await["total"], 1);
        assert_eq!(json(app.get("/v1/pools?include_archived=true").await).await["total"], 2);
        assert_eq!(json(app.get("/v1/pools?state=archived").await).await["items"][0]["id"], id);
        let resp = app.post(&format!("/v1/pools/{id}/codes"), json!({"codes": ["Z1"]})).await;
        expect_problem(resp, 409, "pool_archived").await;
        assert_eq!(app.get(&format!("/v1/pools/{id}")).await.status(), 200, "never deleted");
    }
}

async fn set_status(app: &TestApp, code: &str, status: i16) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    coupond::store::entity::coupons::Entity::update_many()
        .col_expr(
            coupond::store::entity::coupons::Column::Status,
            Expr::value(status),
        )
        .filter(coupond::store::entity::coupons::Column::Code.eq(code))
        .exec(&app.db)
        .await
        .unwrap();
}

async fn values(app: &TestApp, pool_id: i64) -> Vec<i64> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    coupond::store::entity::coupons::Entity::find()
        .filter(coupond::store::entity::coupons::Column::PoolId.eq(pool_id))
        .order_by_asc(coupond::store::entity::coupons::Column::Code)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.value.unwrap())
        .collect()
}

async fn all_codes(app: &TestApp, pool_id: i64) -> HashSet<String> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    coupond::store::entity::coupons::Entity::find()
        .filter(coupond::store::entity::coupons::Column::PoolId.eq(pool_id))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.code)
        .collect()
}
