//! The command line: `org create`, `migrate`, `openapi` and `--help`.

use std::process::Command;

fn coupond(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coupond"));
    cmd.current_dir(dir)
        .env_remove("COUPOND_DATABASE_URL")
        .env("COUPOND_LOG", "warn");
    cmd
}

#[test]
fn org_create_prints_one_json_line_and_uses_coupond_db_by_default() {
    let dir = std::env::temp_dir().join(format!("coupond-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = coupond(&dir)
        .args([
            "org",
            "create",
            "--name",
            "Acme",
            "--timezone",
            "Europe/Madrid",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(line["org_id"], 1);
    assert!(line["api_key"].as_str().unwrap().starts_with("cpd_"));
    assert!(dir.join("coupond.db").exists());

    let secret = line["api_key"].as_str().unwrap();
    let db = std::fs::read(dir.join("coupond.db")).unwrap();
    let needle = secret.as_bytes();
    assert!(
        !db.windows(needle.len()).any(|w| w == needle),
        "the key itself is never stored"
    );

    let migrate = coupond(&dir).arg("migrate").output().unwrap();
    assert!(migrate.status.success());
}

#[test]
fn org_create_refuses_an_unknown_time_zone() {
    let dir = std::env::temp_dir().join(format!("coupond-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = coupond(&dir)
        .args([
            "org",
            "create",
            "--name",
            "Acme",
            "--timezone",
            "Mars/Olympus",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Mars/Olympus"));
    assert!(!dir.join("coupond.db").exists(), "nothing was created");
}

#[test]
fn help_documents_every_flag_with_its_environment_variable() {
    let dir = std::env::temp_dir();
    let top = String::from_utf8(coupond(&dir).arg("--help").output().unwrap().stdout).unwrap();
    for env in [
        "COUPOND_DATABASE_URL",
        "COUPOND_DATABASE_MAX_CONNECTIONS",
        "COUPOND_LOG",
    ] {
        assert!(top.contains(env), "{env} missing from --help:\n{top}");
    }
    let serve = String::from_utf8(
        coupond(&dir)
            .args(["serve", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for env in ["COUPOND_BIND", "COUPOND_SHUTDOWN_GRACE_SECS"] {
        assert!(
            serve.contains(env),
            "{env} missing from serve --help:\n{serve}"
        );
    }
}

/// The committed spec is exactly what the code generates, so it never drifts.
#[test]
fn committed_openapi_yaml_matches_the_code() {
    let out = coupond(&std::env::temp_dir())
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml"))
        .expect("openapi/openapi.yaml exists; regenerate with `cargo run -- openapi > openapi/openapi.yaml`");
    assert!(
        generated == committed,
        "openapi/openapi.yaml is stale: run `cargo run -- openapi > openapi/openapi.yaml`"
    );
}
