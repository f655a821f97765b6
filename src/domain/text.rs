//! Text that may reach the database: control characters (NUL, escape, ...) are refused before
//! any look-up, naming the field. PostgreSQL cannot store NUL at all; the others only hide
//! differences between codes, names and ids that look the same.

use serde_json::Value;

/// The UTF-8 byte-order mark. Excel puts it in front of the CSV files it saves (uploads skip
/// it); in front of a JSON body it is refused by name, as RFC 8259 lets a parser do.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether a path or query value carries a control character (whitespace controls included:
/// no identifier or code has them).
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Text from a file as an issue row quotes it: control characters other than tab and line
/// breaks written as escapes (`\u{0}`), so a NUL in a bad row is shown, not a failure to
/// store the report.
pub fn quoted(s: &str) -> String {
    if !has_hidden_control(s) {
        return s.to_string();
    }
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Whether body text carries a control character other than tab, line feed and carriage
/// return, which free text (descriptions, messages) may hold.
fn has_hidden_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// The first field of a JSON document holding a control character, as a dotted path
/// (`store.id`, `basket.lines[2].product_id`); `None` when the document is clean.
pub fn control_field(doc: &Value) -> Option<String> {
    find(doc, String::new())
}

fn find(v: &Value, at: String) -> Option<String> {
    match v {
        Value::String(s) if has_hidden_control(s) => Some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find(item, format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, value)| {
            let here = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            if has_hidden_control(key) {
                return Some(here.escape_default().to_string());
            }
            find(value, here)
        }),
        _ => None,
    }
}

/// A route template from the spec, e.g. `/v1/coupons/{code}/validate`, split into segments.
#[derive(Debug, Clone)]
pub struct Template(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl Template {
    pub fn parse(path: &str) -> Template {
        Template(
            segments(path)
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Segment::Param(name.to_string()),
                        None => Segment::Literal(s.to_string()),
                    },
                )
                .collect(),
        )
    }

    /// Whether a path, as percent-decoded segments, takes this route.
    pub fn matches(&self, decoded: &[String]) -> bool {
        self.0.len() == decoded.len()
            && self.0.iter().zip(decoded).all(|(t, s)| match t {
                Segment::Literal(l) => l == s,
                Segment::Param(_) => true,
            })
    }

    /// The names of its parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The parameter this template gives the `index`th segment of a path it matches.
    fn param_at(&self, decoded: &[String], index: usize) -> Option<&str> {
        match self.0.get(index) {
            Some(Segment::Param(name)) if self.matches(decoded) => Some(name),
            _ => None,
        }
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// A percent-encoded URL part as text (`+` stays as it is: paths do not encode spaces so).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path's segments, percent-decoded.
pub fn decoded_segments(path: &str) -> Vec<String> {
    segments(path).map(percent_decode).collect()
}

/// The first query parameter whose name or value holds a control character.
pub fn control_in_query(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(&name.replace('+', " "));
        let value = percent_decode(&value.replace('+', " "));
        (has_control(&name) || has_control(&value)).then(|| name.escape_default().to_string())
    })
}

/// The path parameter (or, off any known route, the segment number) holding a control
/// character, given the percent-decoded segments.
pub fn control_in_path(templates: &[Template], decoded: &[String]) -> Option<String> {
    let index = decoded.iter().position(|s| has_control(s))?;
    let named = templates.iter().find_map(|t| t.param_at(decoded, index));
    Some(named.map_or_else(|| format!("path segment {}", index + 1), str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quoted_text_shows_control_characters_as_escapes() {
        assert_eq!(quoted("E\u{0}5"), "E\\u{0}5");
        assert_eq!(quoted("a\u{1b}b\tc"), "a\\u{1b}b\tc");
        assert_eq!(quoted("plain, \"quoted\"\nnext"), "plain, \"quoted\"\nnext");
    }

    #[test]
    fn body_fields_are_named_by_their_path() {
        assert_eq!(control_field(&json!({"a": "fine\ttab\nline"})), None);
        assert_eq!(
            control_field(&json!({"store": {"id": "s\u{0000}"}})).as_deref(),
            Some("store.id")
        );
        let doc = json!({"basket": {"lines": [{"product_id": "a"}, {"product_id": "b\u{001b}"}]}});
        assert_eq!(
            control_field(&doc).as_deref(),
            Some("basket.lines[1].product_id")
        );
        assert_eq!(control_field(&json!(["x\u{0085}"])).as_deref(), Some("[0]"));
    }

    #[test]
    fn path_segments_are_named_by_the_route() {
        let routes = [
            Template::parse("/v1/coupons/{code}/validate"),
            Template::parse("/v1/customers/{external_id}"),
        ];
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let bad = path(&["v1", "coupons", "AB\0", "validate"]);
        assert_eq!(control_in_path(&routes, &bad).as_deref(), Some("code"));
        let bad = path(&["v1", "customers", "a\tb"]);
        assert_eq!(
            control_in_path(&routes, &bad).as_deref(),
            Some("external_id")
        );
        let bad = path(&["v1", "nowhere\u{7f}"]);
        assert_eq!(
            control_in_path(&routes, &bad).as_deref(),
            Some("path segment 2")
        );
        assert_eq!(
            control_in_path(&routes, &path(&["v1", "coupons", "AB"])),
            None
        );
        assert_eq!(
            decoded_segments("/v1/coupons/AB%00/x%2"),
            ["v1", "coupons", "AB\0", "x%2"]
        );
        assert_eq!(
            control_in_query("status=issued&code=a%01").as_deref(),
            Some("code")
        );
        assert_eq!(control_in_query("q=a+b%20c"), None);
    }
}
