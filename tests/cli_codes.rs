//! `coupond codes generate`: codes from a pattern on stdout, with no database.

use std::{
    collections::HashSet,
    process::{Command, Output},
};

fn generate(args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("coupond-codes-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_coupond"))
        .current_dir(&dir)
        .env_remove("COUPOND_DATABASE_URL")
        .env("COUPOND_LOG", "warn")
        .args(["codes", "generate"])
        .args(args)
        .output()
        .unwrap();
    assert!(!dir.join("coupond.db").exists(), "no database is touched");
    out
}

/// `PR-` + four of 0-9A-Z without O, 0, I and 1 + `-` + two digits + check character + `_S`.
fn fits_pattern(code: &str) -> bool {
    let Some(body) = code
        .strip_prefix("PR-")
        .and_then(|rest| rest.strip_suffix("_S"))
    else {
        return false;
    };
    let body = body.as_bytes();
    body.len() == 8
        && body[..4]
            .iter()
            .all(|c| matches!(c, b'2'..=b'9' | b'A'..=b'Z') && !b"OI".contains(c))
        && body[4] == b'-'
        && body[5..7].iter().all(u8::is_ascii_digit)
        && body[7].is_ascii_alphanumeric()
}

#[test]
fn prints_the_requested_number_of_distinct_codes_of_the_pattern() {
    let args = [
        "--pattern",
        "$$$$-##",
        "--count",
        "5000",
        "--exclude-chars",
        "O,0,I,1",
        "--exclude-phrases",
        "xx,zz",
        "--prefix",
        "PR-",
        "--suffix",
        "_S",
        "--check-char",
        "--key",
        "0123abcd",
    ];
    let out = generate(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "no progress when stderr is a pipe");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let codes: Vec<&str> = stdout.lines().collect();
    assert_eq!(codes.len(), 5000);
    assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 5000);
    for code in &codes {
        assert!(fits_pattern(code), "{code}");
        let lower = code.to_lowercase();
        assert!(!lower.contains("xx") && !lower.contains("zz"), "{code}");
    }

    let again = generate(&args);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), stdout);
}

#[test]
fn refuses_more_codes_than_the_pattern_has() {
    let out = generate(&["--pattern", "##", "--count", "101"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("only 100 combinations"), "{stderr}");
}

#[test]
fn refuses_a_malformed_pattern() {
    let out = generate(&["--pattern", "AB##\\", "--count", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("pattern: ends with `\\`"), "{stderr}");
}
