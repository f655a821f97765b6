//! Access groups (Antavo's "User group"): an admin key bound to groups sees and changes only the
//! pools of its groups and what lives under them; everything else is a 404, as for another org.

mod common;

use common::{
    TestApp, expect_problem,
    fixtures::{self, customer, issue_ok},
    json,
};
use reqwest::{Method, Response};
use serde_json::{Value, json};

async fn send(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let req = app.request(method, path, Some(key));
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    req.send().await.unwrap()
}

async fn csv(app: &TestApp, key: &str, path: &str, text: &str) -> Response {
    app.request(Method::POST, path, Some(key))
        .header("content-type", "text/csv")
        .body(text.to_string())
        .send()
        .await
        .unwrap()
}

async fn group(app: &TestApp, name: &str) -> i64 {
    let resp = app.post("/v1/groups", json!({"name": name})).await;
    let body = json(resp).await;
    body["id"].as_i64().unwrap_or_else(|| panic!("{body}"))
}

/// A key whose one scope is admin, bound to these groups.
async fn bound_key(app: &TestApp, groups: &[i64]) -> String {
    let resp = app
        .post(
            "/v1/api-keys",
            json!({"name": "manager", "scopes": ["admin"], "groups": groups}),
        )
        .await;
    let status = resp.status();
    let body = json(resp).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["groups"], json!(groups));
    body["api_key"].as_str().unwrap().to_string()
}

/// Everything the walk looks at, as an unbound admin key reads it.
async fn snapshot(app: &TestApp, pools: &[i64], codes: &[&str], products: &[i64]) -> Vec<Value> {
    let mut paths: Vec<String> = Vec::new();
    for id in pools {
        paths.extend([
            format!("/v1/pools/{id}"),
            format!("/v1/pools/{id}/stats"),
            format!("/v1/pools/{id}/reminders"),
            format!("/v1/pools/{id}/messages"),
            format!("/v1/coupons?pool={id}&per_page=200"),
        ]);
    }
    paths.extend(codes.iter().map(|c| format!("/v1/coupons/{c}")));
    paths.extend(products.iter().map(|p| format!("/v1/market/products/{p}")));
    paths.push("/v1/customers/walker".into());
    let mut out = Vec::new();
    for path in paths {
        let resp = app.get(&path).await;
        assert_eq!(resp.status(), 200, "{path}");
        out.push(json(resp).await);
    }
    out
}

/// Everything a bound key could try on one pool, its coupon, an import and a job of it and a
/// product selling it, with the problem code a hidden one answers.
fn pool_scoped_calls(
    pool: i64,
    code: &str,
    import: i64,
    job: i64,
    product: i64,
) -> Vec<(Method, String, Option<Value>, &'static str)> {
    let p = |s: &str| format!("/v1/pools/{pool}{s}");
    let c = |s: &str| format!("/v1/coupons/{code}{s}");
    let nf = "not_found";
    let cnf = "coupon_not_found";
    vec![
        (Method::GET, p(""), None, nf),
        (Method::PATCH, p(""), Some(json!({"name": "taken"})), nf),
        (Method::PATCH, p(""), Some(json!({"state": "archived"})), nf),
        (Method::GET, p("/stats"), None, nf),
        (
            Method::POST,
            p("/codes"),
            Some(json!({"codes": ["WALK-1"]})),
            nf,
        ),
        (Method::POST, p("/generate"), Some(json!({"count": 10})), nf),
        (
            Method::POST,
            p("/revoke"),
            Some(json!({"scope": "all_unredeemed"})),
            nf,
        ),
        (Method::POST, p("/claim"), None, nf),
        (Method::POST, p("/unclaim"), None, nf),
        (Method::GET, p("/reminders"), None, nf),
        (Method::PUT, p("/reminders"), Some(json!({"items": []})), nf),
        (Method::GET, p("/messages"), None, nf),
        (
            Method::PUT,
            p("/messages"),
            Some(json!({"resend_template": "Yours: {{code}}"})),
            nf,
        ),
        (Method::GET, format!("/v1/imports/{import}"), None, nf),
        (
            Method::GET,
            format!("/v1/imports/{import}/issues"),
            None,
            nf,
        ),
        (Method::GET, format!("/v1/jobs/{job}"), None, nf),
        (Method::GET, c(""), None, cnf),
        (Method::GET, c("/events"), None, cnf),
        (Method::POST, c("/invalidate"), None, cnf),
        (Method::POST, c("/unassign"), None, cnf),
        (
            Method::POST,
            c("/transfer"),
            Some(json!({"customer": {"external_id": "walker"}})),
            cnf,
        ),
        (
            Method::GET,
            format!("/v1/market/products/{product}"),
            None,
            nf,
        ),
        (
            Method::PATCH,
            format!("/v1/market/products/{product}"),
            Some(json!({"price_points": 1})),
            nf,
        ),
        (
            Method::POST,
            "/v1/market/products".into(),
            Some(json!({"name": "Stolen", "price_points": 1, "pool_id": pool})),
            nf,
        ),
    ]
}

/// A pool with codes, one coupon issued from it, an import, a batch-issue job and a product.
struct Fixture {
    pool: i64,
    code: String,
    import: i64,
    job: i64,
    product: i64,
}

async fn fixture(app: &TestApp, group_id: Option<i64>) -> Fixture {
    let pool = fixtures::pool(
        app,
        json!({"name": "P", "source": "uploaded", "discount_type": "amount", "value": 500,
               "currency": "EUR", "group_id": group_id}),
    )
    .await;
    let codes: Vec<String> = (0..5).map(|i| format!("G{pool}C{i}")).collect();
    let import = json(
        app.post(&format!("/v1/pools/{pool}/codes"), json!({"codes": codes}))
            .await,
    )
    .await;
    let code = issue_ok(app, pool, "holder").await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = csv(
        app,
        &app.key,
        &format!("/v1/pools/{pool}/issue/batch"),
        "external_id\nholder\n",
    )
    .await;
    let job = json(resp).await["id"].as_i64().unwrap();
    app.wait_for_job(job).await;
    let resp = app
        .post(
            "/v1/market/products",
            json!({"name": "Voucher", "price_points": 5, "pool_id": pool}),
        )
        .await;
    let product = json(resp).await["id"].as_i64().unwrap();
    Fixture {
        pool,
        code,
        import: import["id"].as_i64().unwrap(),
        job,
        product,
    }
}

both_databases! {
    async fn a_bound_key_reaches_only_the_pools_of_its_groups(app) {
        customer(&app, "holder", json!({})).await;
        customer(&app, "walker", json!({})).await;
        let (a, b) = (group(&app, "North").await, group(&app, "South").await);
        let mine = fixture(&app, Some(a)).await;
        let theirs = fixture(&app, Some(b)).await;
        let ungrouped = fixture(&app, None).await;
        let key = bound_key(&app, &[a]).await;

        let pools = [theirs.pool, ungrouped.pool];
        let codes = [theirs.code.as_str(), ungrouped.code.as_str()];
        let products = [theirs.product, ungrouped.product];
        let before = snapshot(&app, &pools, &codes, &products).await;
        for f in [&theirs, &ungrouped] {
            for (method, path, body, code) in pool_scoped_calls(f.pool, &f.code, f.import, f.job, f.product) {
                let resp = send(&app, &key, method.clone(), &path, body).await;
                assert_eq!(resp.status(), 404, "{method} {path}");
                expect_problem(resp, 404, code).await;
            }
        }
        assert_eq!(snapshot(&app, &pools, &codes, &products).await, before, "nothing changed");

        // The same calls on its own group's pool are answered (some refused by the pool's
        // state as the walk archives and revokes it, none hidden).
        for (method, path, body, _) in pool_scoped_calls(mine.pool, &mine.code, mine.import, mine.job, mine.product) {
            let status = send(&app, &key, method.clone(), &path, body).await.status();
            assert!(status.is_success() || status == 409 || status == 422, "{method} {path}: {status}");
        }

        // Lists show its group's pools, coupons and products only; an unbound key sees all.
        let list = json(send(&app, &key, Method::GET, "/v1/pools?include_archived=true", None).await).await;
        let ids: Vec<i64> = list["items"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect();
        assert_eq!((ids, list["total"].as_i64()), (vec![mine.pool], Some(1)));
        let coupons = json(send(&app, &key, Method::GET, "/v1/coupons?per_page=200", None).await).await;
        assert!(coupons["items"].as_array().unwrap().iter().all(|c| c["pool_id"] == mine.pool), "{coupons}");
        assert!(coupons["total"].as_i64().unwrap() > 0);
        let none = json(send(&app, &key, Method::GET, &format!("/v1/coupons?pool={}", theirs.pool), None).await).await;
        assert_eq!(none["total"], 0);
        let products = json(send(&app, &key, Method::GET, "/v1/market/products", None).await).await;
        let products = products["items"].as_array().unwrap();
        assert!(products.iter().any(|p| p["id"] == mine.product));
        assert!(products.iter().all(|p| p["pool_id"] == mine.pool), "{products:?}");
        let all = json(app.get("/v1/pools?include_archived=true").await).await;
        assert_eq!(all["total"], 3);
        let all = json(app.get("/v1/market/products").await).await;
        let pools: Vec<&Value> = all["items"].as_array().unwrap().iter().map(|p| &p["pool_id"]).collect();
        assert!(pools.contains(&&json!(theirs.pool)) && pools.contains(&&json!(ungrouped.pool)));
    }

    async fn a_bound_key_keeps_its_pools_in_its_groups_and_manages_nothing_org_wide(app) {
        let (a, b) = (group(&app, "North").await, group(&app, "South").await);
        let key = bound_key(&app, &[a]).await;
        let pool = |group: Value| json!({"name": "P", "source": "uploaded", "discount_type": "amount",
                                         "value": 500, "currency": "EUR", "group_id": group});
        let resp = send(&app, &key, Method::POST, "/v1/pools", Some(pool(Value::Null))).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "group_id");
        let resp = send(&app, &key, Method::POST, "/v1/pools", Some(pool(json!(b)))).await;
        assert_eq!(expect_problem(resp, 422, "unknown_group").await["field"], "group_id");
        // Naming another group's pool in a rule is as unknown as naming a missing one.
        let theirs = json(app.post("/v1/pools", pool(json!(b))).await).await["id"].clone();
        let mut excluding = pool(json!(a));
        excluding["issuance"] = json!({"exclude_if_issued_from": [theirs]});
        let resp = send(&app, &key, Method::POST, "/v1/pools", Some(excluding)).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "issuance.exclude_if_issued_from");
        let resp = send(&app, &key, Method::POST, "/v1/pools", Some(pool(json!(a)))).await;
        assert_eq!(resp.status(), 201);
        let id = json(resp).await["id"].as_i64().unwrap();
        let path = format!("/v1/pools/{id}");
        let resp = send(&app, &key, Method::PATCH, &path, Some(json!({"group_id": b}))).await;
        expect_problem(resp, 422, "unknown_group").await;
        let resp = send(&app, &key, Method::PATCH, &path, Some(json!({"group_id": null}))).await;
        expect_problem(resp, 422, "validation_failed").await;
        let resp = send(&app, &key, Method::POST, "/v1/market/products", Some(json!({"name": "X", "price_points": 5, "codes": ["M1"]}))).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "codes");
        assert_eq!(json(app.get(&path).await).await["group_id"], a, "the pool stayed in its group");
        let pools = json(app.get("/v1/pools").await).await;
        assert_eq!(pools["total"], 2, "nothing else was created");

        // Org-wide management and the operational scopes are refused like a missing scope.
        let calls = [
            (Method::GET, "/v1/api-keys", None),
            (Method::POST, "/v1/api-keys", Some(json!({"name": "x", "scopes": ["admin"]}))),
            (Method::GET, "/v1/groups", None),
            (Method::POST, "/v1/groups", Some(json!({"name": "Mine"}))),
            (Method::PATCH, "/v1/org", Some(json!({"name": "Taken over"}))),
            (Method::GET, "/v1/webhooks", None),
            (Method::GET, "/v1/outbox", None),
            (Method::PUT, "/v1/customers/c1", Some(json!({}))),
            (Method::POST, "/v1/coupons/ANY/redeem", Some(json!({"basket": {"total": 100, "currency": "EUR"}}))),
        ];
        for (method, path, body) in calls {
            let resp = send(&app, &key, method.clone(), path, body).await;
            expect_problem(resp, 403, "missing_scope").await;
        }
        assert_eq!(send(&app, &key, Method::GET, "/v1/org", None).await.status(), 200);
        let groups = json(app.get("/v1/groups").await).await;
        assert_eq!(groups["items"].as_array().unwrap().len(), 2, "no group was made");
    }

    async fn groups_are_named_renamed_and_deleted_once_unused(app) {
        let north = group(&app, "North").await;
        expect_problem(app.post("/v1/groups", json!({"name": " North "})).await, 409, "group_exists").await;
        let resp = app.post("/v1/groups", json!({"name": "  "})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "name");
        let renamed = json(app.patch(&format!("/v1/groups/{north}"), json!({"name": "Nord"})).await).await;
        assert_eq!(renamed["name"], "Nord");
        assert_eq!(json(app.get(&format!("/v1/groups/{north}")).await).await["name"], "Nord");
        expect_problem(app.get("/v1/groups/999999").await, 404, "not_found").await;

        // Another org's group is as unknown as a missing one, everywhere.
        let (_, other_key) = app.other_org().await;
        let resp = send(&app, &other_key, Method::POST, "/v1/groups", Some(json!({"name": "Theirs"}))).await;
        let theirs = json(resp).await["id"].as_i64().unwrap();
        expect_problem(app.get(&format!("/v1/groups/{theirs}")).await, 404, "not_found").await;
        expect_problem(app.delete(&format!("/v1/groups/{theirs}")).await, 404, "not_found").await;
        let pool = |group: i64| json!({"name": "P", "source": "uploaded", "discount_type": "amount",
                                       "value": 500, "currency": "EUR", "group_id": group});
        for unknown in [theirs, 999999] {
            let resp = app.post("/v1/pools", pool(unknown)).await;
            assert_eq!(expect_problem(resp, 422, "unknown_group").await["field"], "group_id");
            let resp = app.post("/v1/api-keys", json!({"name": "m", "scopes": ["admin"], "groups": [north, unknown]})).await;
            assert_eq!(expect_problem(resp, 422, "unknown_group").await["field"], "groups");
        }
        let resp = app.post("/v1/api-keys", json!({"name": "m", "scopes": ["admin", "pos"], "groups": [north]})).await;
        assert_eq!(expect_problem(resp, 422, "validation_failed").await["field"], "groups");
        let keys = json(app.get("/v1/api-keys").await).await;
        assert_eq!(keys["items"].as_array().unwrap().len(), 1, "no key was made");
        assert_eq!(keys["items"][0]["groups"], json!([]));

        // A group with a pool or a bound key stays; once both are gone it can go.
        let resp = app.post("/v1/pools", pool(north)).await;
        let pool_id = json(resp).await["id"].as_i64().unwrap();
        bound_key(&app, &[north]).await;
        expect_problem(app.delete(&format!("/v1/groups/{north}")).await, 409, "group_in_use").await;
        app.patch(&format!("/v1/pools/{pool_id}"), json!({"group_id": null})).await;
        expect_problem(app.delete(&format!("/v1/groups/{north}")).await, 409, "group_in_use").await;
        let keys = json(app.get("/v1/api-keys").await).await;
        let bound = keys["items"].as_array().unwrap().iter().find(|k| k["groups"] == json!([north])).unwrap();
        app.delete(&format!("/v1/api-keys/{}", bound["id"])).await;
        assert_eq!(app.delete(&format!("/v1/groups/{north}")).await.status(), 204);
        expect_problem(app.get(&format!("/v1/groups/{north}")).await, 404, "not_found").await;
        assert_eq!(json(app.get(&format!("/v1/pools/{pool_id}")).await).await["group_id"], Value::Null);
    }
}
