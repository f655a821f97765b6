//! Wallet passes: a pool's pass template and logo, Apple Wallet passes signed with a
//! certificate chain the test makes with the openssl CLI (and verified with it), and Google
//! Wallet links whose JWT signature is checked with the service account's public key.

mod common;

use std::{
    fs,
    io::{Cursor, Read},
    path::{Path, PathBuf},
    process::Command,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{TestApp, expect_problem, fixtures, json};
use coupond::config::{DatabaseConfig, ServeConfig, WalletConfig};
use reqwest::{Method, Response};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

const PASS_TYPE_ID: &str = "pass.com.example.coupons";
const TEAM_ID: &str = "ABCDE12345";
const ISSUER_ID: &str = "3388000000022222222";
const CLIENT_EMAIL: &str = "wallet@coupond-test.iam.gserviceaccount.com";

/// A throwaway PKI in a temporary directory: a root CA, a WWDR-like intermediate it signs, a
/// pass type certificate the intermediate signs, and a Google service account key file.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir =
            std::env::temp_dir().join(format!("coupond-test-wallet-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let pki = Pki { dir };
        pki.write(
            "ca.ext",
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        );
        pki.write(
            "leaf.ext",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        );
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=coupond test root",
        ]);
        pki.certificate("wwdr", "/CN=coupond test WWDR/OU=G4", "ca", "ca.ext");
        pki.certificate(
            "pass",
            &format!("/UID={PASS_TYPE_ID}/CN=Pass Type ID: {PASS_TYPE_ID}/OU={TEAM_ID}"),
            "wwdr",
            "leaf.ext",
        );
        pki.openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "google.key",
        ]);
        pki.openssl(&["pkey", "-in", "google.key", "-pubout", "-out", "google.pub"]);
        let account = json!({"type": "service_account", "client_email": CLIENT_EMAIL,
            "private_key": fs::read_to_string(pki.path("google.key")).unwrap()});
        pki.write("google.json", account.to_string());
        pki
    }

    /// A key and a certificate for `subject`, signed by `issuer`'s key.
    fn certificate(&self, name: &str, subject: &str, issuer: &str, extensions: &str) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{issuer}.pem"),
            "-CAkey",
            &format!("{issuer}.key"),
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            extensions,
        ]);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        fs::write(self.path(name), contents).unwrap();
    }

    /// Runs openssl in the PKI's directory; true when it succeeded.
    fn run_openssl(&self, args: &[&str]) -> bool {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("the openssl CLI runs");
        if !out.status.success() {
            eprintln!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        out.status.success()
    }

    fn openssl(&self, args: &[&str]) {
        assert!(self.run_openssl(args), "openssl {args:?} failed");
    }

    fn config(&self) -> WalletConfig {
        WalletConfig {
            wallet_apple_cert: Some(self.path("pass.pem")),
            wallet_apple_key: Some(self.path("pass.key")),
            wallet_apple_wwdr_cert: Some(self.path("wwdr.pem")),
            wallet_apple_pass_type_id: Some(PASS_TYPE_ID.into()),
            wallet_apple_team_id: Some(TEAM_ID.into()),
            wallet_google_service_account: Some(self.path("google.json")),
            wallet_google_issuer_id: Some(ISSUER_ID.into()),
        }
    }

    fn configure(&self, serve: &mut ServeConfig) {
        serve.wallet = self.config();
    }

    /// `openssl smime -verify` of a detached signature over `manifest`, against the test root.
    fn verifies(&self, manifest: &[u8], signature: &[u8]) -> bool {
        self.write("manifest.json", manifest);
        self.write("signature", signature);
        self.run_openssl(&[
            "smime",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            "signature",
            "-content",
            "manifest.json",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "any",
            "-out",
            "verified.out",
        ])
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A pool whose coupons expire 30 days after issue, with `codes` uploaded; returns its id.
async fn pool_with(app: &TestApp, codes: &[&str]) -> i64 {
    let id = fixtures::pool(
        app,
        json!({"name": "Spring", "source": "uploaded", "discount_type": "amount",
               "value": 500, "currency": "EUR",
               "expiry": {"mode": "days_from_issual", "days": 30}}),
    )
    .await;
    let resp = app
        .post(&format!("/v1/pools/{id}/codes"), json!({"codes": codes}))
        .await;
    assert_eq!(json(resp).await["accepted"], codes.len());
    id
}

async fn put(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> Response {
    app.request(Method::PUT, path, Some(&app.key))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn put_json(app: &TestApp, path: &str, body: Value) -> Response {
    put(app, path, "application/json", body.to_string().into_bytes()).await
}

/// A `size` x `size` PNG.
fn png(size: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, size, size);
    encoder.set_color(png::ColorType::Rgb);
    let mut writer = encoder.write_header().unwrap();
    writer
        .write_image_data(&vec![200; (size * size * 3) as usize])
        .unwrap();
    writer.finish().unwrap();
    out
}

/// The files of a pkpass, by name.
fn unzip(pkpass: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(pkpass)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            (file.name().unwrap().to_string(), bytes)
        })
        .collect()
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &files
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} in the pass"))
        .1
}

/// Fetches the coupon's pass, checks every manifest digest and the signature, and returns its
/// `pass.json`.
async fn verified_pass(app: &TestApp, pki: &Pki, code: &str) -> Value {
    let resp = app.get(&format!("/v1/coupons/{code}/pass.pkpass")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.apple.pkpass"
    );
    let files = unzip(&resp.bytes().await.unwrap());
    let manifest: Value = serde_json::from_slice(file(&files, "manifest.json")).unwrap();
    let listed = manifest.as_object().unwrap();
    for (name, bytes) in &files {
        if name == "manifest.json" || name == "signature" {
            continue;
        }
        assert_eq!(listed[name], hex::encode(Sha1::digest(bytes)), "{name}");
    }
    assert_eq!(
        listed.len(),
        files.len() - 2,
        "every other file is in the manifest"
    );
    let signature = file(&files, "signature");
    assert!(pki.verifies(file(&files, "manifest.json"), signature));
    let mut tampered = file(&files, "manifest.json").to_vec();
    tampered[2] ^= 1;
    assert!(
        !pki.verifies(&tampered, signature),
        "a changed manifest fails"
    );
    serde_json::from_slice(file(&files, "pass.json")).unwrap()
}

/// Moves a coupon's expiry into the past, as time passing would.
async fn expire(app: &TestApp, code: &str) {
    coupond::store::entity::coupons::Entity::update_many()
        .col_expr(
            coupond::store::entity::coupons::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::TimeDelta::hours(1)),
        )
        .filter(coupond::store::entity::coupons::Column::Code.eq(code))
        .exec(&app.db)
        .await
        .unwrap();
}

async fn google_claims(app: &TestApp, pki: &Pki, code: &str) -> Value {
    let resp = app.get(&format!("/v1/coupons/{code}/pass/google")).await;
    assert_eq!(resp.status(), 200);
    let url = json(resp).await["save_url"].as_str().unwrap().to_string();
    let jwt = url
        .strip_prefix("https://pay.google.com/gp/v/save/")
        .expect("a Save to Google Wallet link");
    let (input, signature) = jwt.rsplit_once('.').unwrap();
    pki.write("jwt.input", input);
    pki.write("jwt.sig", URL_SAFE_NO_PAD.decode(signature).unwrap());
    pki.openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        "google.pub",
        "-signature",
        "jwt.sig",
        "jwt.input",
    ]);
    let (header, claims) = input.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
}

both_databases! {
    with pki = Pki::new();

    async fn apple_passes_are_signed_and_follow_the_coupon(app) {
        let pool = pool_with(&app, &["WAL-1", "WAL-2", "WAL-3", "WAL-4"]).await;
        fixtures::customer(&app, "c-1", json!({"attributes": {"name": "Ana"}})).await;
        let resp = put_json(&app, &format!("/v1/pools/{pool}/pass"), json!({
            "title": "Acme Spring", "description": "5 EUR off in spring",
            "foreground_color": "#FFFFFF", "background_color": "#1A2B3C", "label_color": "#C0C0C0",
            "barcode_format": "PDF417",
            "fields": [
                {"key": "offer", "label": "Offer", "value": "{{value}} off", "place": "primary"},
                {"key": "holder", "label": "For", "value": "{{customer_name}}"},
                {"key": "until", "label": "Until", "value": "{{expires_on}}", "place": "auxiliary"},
                {"key": "terms", "label": "Terms", "value": "{{code}} at {{pool_name}}", "place": "back"}]})).await;
        assert_eq!(resp.status(), 200);
        let logo = png(40);
        let resp = put(&app, &format!("/v1/pools/{pool}/pass/logo"), "image/png", logo.clone()).await;
        assert_eq!(json(resp).await["has_logo"], true);
        let mut codes = Vec::new();
        for _ in 0..4 {
            let issued = fixtures::issue_ok(&app, pool, "c-1").await;
            codes.push(issued["code"].as_str().unwrap().to_string());
        }

        let pass = verified_pass(&app, &pki, &codes[0]).await;
        assert_eq!(pass["passTypeIdentifier"], PASS_TYPE_ID);
        assert_eq!(pass["teamIdentifier"], TEAM_ID);
        assert_eq!(pass["serialNumber"], format!("{}-{}", app.org_id, codes[0]));
        assert_eq!(pass["organizationName"], "Test Org");
        assert_eq!(pass["description"], "5 EUR off in spring");
        assert_eq!(pass["logoText"], "Acme Spring");
        assert_eq!(pass["backgroundColor"], "rgb(26, 43, 60)");
        assert_eq!(pass["barcodes"][0]["format"], "PKBarcodeFormatPDF417");
        assert_eq!(pass["barcodes"][0]["message"], codes[0]);
        assert_eq!(pass["voided"], false);
        assert!(pass["expirationDate"].as_str().unwrap().ends_with('Z'));
        let style = &pass["coupon"];
        assert_eq!(style["primaryFields"][0]["value"], "5.00 EUR off");
        assert_eq!(style["secondaryFields"][0]["value"], "Ana");
        assert_eq!(style["backFields"][0]["value"], format!("{} at Spring", codes[0]));

        let resp = app.post(&format!("/v1/coupons/{}/redeem", codes[1]), json!({
            "customer": {"external_id": "c-1"}, "basket": {"total": 2000, "currency": "EUR"}})).await;
        assert_eq!(resp.status(), 201);
        assert_eq!(verified_pass(&app, &pki, &codes[1]).await["voided"], true);
        expire(&app, &codes[2]).await;
        assert_eq!(verified_pass(&app, &pki, &codes[2]).await["voided"], true);
        let resp = app.post(&format!("/v1/coupons/{}/invalidate", codes[3]), json!({})).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(verified_pass(&app, &pki, &codes[3]).await["voided"], true);
    }

    async fn passes_respect_tenancy_and_scopes(app) {
        let pool = pool_with(&app, &["TEN-1"]).await;
        fixtures::customer(&app, "c-1", json!({})).await;
        fixtures::issue_ok(&app, pool, "c-1").await;
        // No template, no logo: the default pass, with the default icon.
        let files = unzip(&app.get("/v1/coupons/TEN-1/pass.pkpass").await.bytes().await.unwrap());
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"icon.png") && !names.contains(&"logo.png"), "{names:?}");
        for path in ["/v1/coupons/NOPE-1/pass.pkpass", "/v1/coupons/NOPE-1/pass/google"] {
            expect_problem(app.get(path).await, 404, "coupon_not_found").await;
        }
        let (_, other) = app.other_org().await;
        for path in ["/v1/coupons/TEN-1/pass.pkpass", "/v1/coupons/TEN-1/pass/google"] {
            let resp = app.request(Method::GET, path, Some(&other)).send().await.unwrap();
            expect_problem(resp, 404, "coupon_not_found").await;
        }
        let market = app.key_with(&["market"]).await;
        let resp = app.request(Method::GET, "/v1/coupons/TEN-1/pass.pkpass", Some(&market))
            .send().await.unwrap();
        expect_problem(resp, 403, "missing_scope").await;
        let pos = app.key_with(&["pos"]).await;
        let resp = app.request(Method::GET, "/v1/coupons/TEN-1/pass/google", Some(&pos))
            .send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }

    async fn google_links_are_signed_and_follow_the_coupon(app) {
        let pool = pool_with(&app, &["GOO-1"]).await;
        fixtures::customer(&app, "c-1", json!({})).await;
        fixtures::issue_ok(&app, pool, "c-1").await;
        let resp = put_json(&app, &format!("/v1/pools/{pool}/pass"),
            json!({"barcode_format": "Code128", "background_color": "#112233"})).await;
        assert_eq!(resp.status(), 200);

        let claims = google_claims(&app, &pki, "GOO-1").await;
        assert_eq!(claims["iss"], CLIENT_EMAIL);
        assert_eq!(claims["aud"], "google");
        assert_eq!(claims["typ"], "savetowallet");
        let offer = &claims["payload"]["offerObjects"][0];
        assert_eq!(offer["id"], format!("{ISSUER_ID}.{}-GOO-1", app.org_id));
        assert_eq!(offer["classId"], format!("{ISSUER_ID}.coupond-pool-{pool}"));
        assert_eq!(offer["state"], "ACTIVE");
        assert_eq!(offer["barcode"]["type"], "CODE_128");
        assert_eq!(offer["barcode"]["value"], "GOO-1");
        assert!(offer["validTimeInterval"]["end"]["date"].is_string());
        assert_eq!(claims["payload"]["offerClasses"][0]["hexBackgroundColor"], "#112233");

        let resp = app.post("/v1/coupons/GOO-1/invalidate", json!({})).await;
        assert_eq!(resp.status(), 200);
        let claims = google_claims(&app, &pki, "GOO-1").await;
        assert_eq!(claims["payload"]["offerObjects"][0]["state"], "INACTIVE");
    }
}

both_databases! {
    async fn without_certificates_passes_are_a_409(app) {
        let pool = pool_with(&app, &["NOC-1"]).await;
        fixtures::customer(&app, "c-1", json!({})).await;
        fixtures::issue_ok(&app, pool, "c-1").await;
        for path in ["/v1/coupons/NOC-1/pass.pkpass", "/v1/coupons/NOC-1/pass/google"] {
            expect_problem(app.get(path).await, 409, "wallet_not_configured").await;
        }
    }

    async fn templates_and_logos_are_checked_when_saved(app) {
        let pool = pool_with(&app, &["TPL-1"]).await;
        let pass = format!("/v1/pools/{pool}/pass");
        let logo = format!("/v1/pools/{pool}/pass/logo");
        let saved = json(app.get(&pass).await).await;
        assert_eq!(saved["barcode_format"], "QR");
        assert_eq!(saved["has_logo"], false);

        let problem = expect_problem(put_json(&app, &pass, json!({"barcode_format": "EAN13"})).await,
            400, "malformed_body").await;
        assert!(problem["detail"].as_str().unwrap().contains("BarcodeFormat"), "{problem}");
        let problem = expect_problem(put_json(&app, &pass, json!({"background_color": "blue"})).await,
            422, "validation_failed").await;
        assert_eq!(problem["field"], "background_color");
        let problem = expect_problem(put_json(&app, &pass, json!({"fields": [
            {"key": "a", "label": "A", "value": "{{points}}"}]})).await, 422, "validation_failed").await;
        assert_eq!(problem["field"], "fields[0].value");
        expect_problem(put(&app, &logo, "image/png", b"GIF89a....".to_vec()).await,
            422, "invalid_logo").await;
        let mut big = png(8);
        big.resize(300 * 1024, 0);
        expect_problem(put(&app, &logo, "image/png", big).await, 413, "logo_too_large").await;
        expect_problem(put(&app, &logo, "image/gif", png(8)).await, 415, "unsupported_media_type")
            .await;
        expect_problem(put(&app, "/v1/pools/999999/pass/logo", "image/png", png(8)).await,
            404, "not_found").await;
        let saved = json(app.get(&pass).await).await;
        assert_eq!(saved["has_logo"], false, "refused uploads change nothing");
        assert!(saved["background_color"].is_null());

        let resp = put(&app, &logo, "image/png", png(8)).await;
        assert_eq!(resp.status(), 200);
        let resp = put_json(&app, &pass, json!({"title": "Spring"})).await;
        let saved = json(resp).await;
        assert_eq!(saved["title"], "Spring");
        assert_eq!(saved["has_logo"], true, "a new template keeps the logo");
    }
}

/// Start-up stops on wallet settings it cannot use, naming the setting.
#[tokio::test]
async fn bad_wallet_settings_stop_start_up() {
    let pki = Pki::new();
    let failure = |wallet: WalletConfig| async {
        let db = DatabaseConfig::new(common::sqlite_url(), 1);
        let mut serve = common::test_serve_config();
        serve.wallet = wallet;
        match coupond::app::Application::build(&db, &serve).await {
            Ok(_) => panic!("start-up accepted bad wallet settings"),
            Err(e) => e.to_string(),
        }
    };
    let missing = WalletConfig {
        wallet_apple_cert: Some(Path::new("/nonexistent/pass.pem").into()),
        ..pki.config()
    };
    let message = failure(missing).await;
    assert!(
        message.contains("COUPOND_WALLET_APPLE_CERT") && message.contains("/nonexistent/pass.pem"),
        "{message}"
    );
    let wrong_key = WalletConfig {
        wallet_apple_key: Some(pki.path("google.key")),
        ..pki.config()
    };
    assert!(failure(wrong_key).await.contains("is not the key of"));
    let wrong_wwdr = WalletConfig {
        wallet_apple_wwdr_cert: Some(pki.path("ca.pem")),
        ..pki.config()
    };
    assert!(
        failure(wrong_wwdr)
            .await
            .contains("COUPOND_WALLET_APPLE_WWDR_CERT did not issue")
    );
    let no_team = WalletConfig {
        wallet_apple_team_id: None,
        ..pki.config()
    };
    assert!(
        failure(no_team)
            .await
            .contains("COUPOND_WALLET_APPLE_TEAM_ID must be set")
    );
    let no_issuer = WalletConfig {
        wallet_google_issuer_id: None,
        ..pki.config()
    };
    assert!(
        failure(no_issuer)
            .await
            .contains("COUPOND_WALLET_GOOGLE_ISSUER_ID must be set")
    );
}
