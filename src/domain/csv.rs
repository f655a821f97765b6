//! CSV rows of uploaded files (codes, customer lists, revocation lists). Files are read a line at
//! a time so a million-row upload is never held whole; a record is one line (codes and customer
//! identifiers never contain line breaks), with RFC 4180 quoting inside the line.

/// Splits one line into trimmed fields. `"a,b"` is one field and `""` inside quotes is a quote.
pub fn fields(line: &str) -> Vec<String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (',', false) => out.push(std::mem::take(&mut field).trim().to_string()),
            (c, _) => field.push(c),
        }
    }
    out.push(field.trim().to_string());
    out
}

/// Whether a first row is a header: its first field is one of the expected column names.
pub fn is_header(first_row: &[String], names: &[&str]) -> bool {
    first_row
        .first()
        .is_some_and(|f| names.iter().any(|n| f.eq_ignore_ascii_case(n)))
}

/// Quotes a value for a CSV we produce (issue reports), when it needs quoting.
pub fn quote(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_and_quoted_fields() {
        assert_eq!(fields("ABC123"), vec!["ABC123"]);
        assert_eq!(fields(" a , b ,c\r"), vec!["a", "b", "c"]);
        assert_eq!(fields("\"a,b\",c"), vec!["a,b", "c"]);
        assert_eq!(fields("\"say \"\"hi\"\"\",x"), vec!["say \"hi\"", "x"]);
        assert_eq!(fields(""), vec![""]);
    }

    #[test]
    fn recognises_headers_case_insensitively() {
        assert!(is_header(&fields("Code"), &["code"]));
        assert!(is_header(
            &fields("external_id,count"),
            &["external_id", "email"]
        ));
        assert!(!is_header(&fields("SUMMER50"), &["code"]));
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(fields(&quote("x,\"y\"")), vec!["x,\"y\""]);
    }
}
