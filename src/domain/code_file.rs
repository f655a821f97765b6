//! The shape of an uploaded code file, set by its first row, and what each row asks for.
//!
//! A file is either codes only (no header, or a header naming only code columns: every field of
//! a row is a code or a comma-separated list of codes, as Omniwallet takes them), or named
//! columns: a code column and optionally one naming the customer each code was already given
//! to (Capillary's "coupons with customer details"). Nothing a row holds is dropped unread: a
//! row with a value in a column the upload does not read is refused whole, with its issue row.

use super::{Invalid, coupon::split_codes, csv::Record, customer::CustomerIdentifier};

/// Header names of the code column.
const CODE_COLUMNS: [&str; 4] = ["code", "codes", "coupon_code", "coupon"];

/// Header names of the holder column and the identifier each one holds: `customer` is the
/// brand's own id; the others are the names customer lists take.
const CUSTOMER_COLUMNS: [(&str, &str); 5] = [
    ("customer", "external_id"),
    ("external_id", "external_id"),
    ("email", "email"),
    ("mobile", "mobile"),
    ("user_id", "user_id"),
];

/// The issue code of a row refused for a value in a column that is not read.
pub const UNEXPECTED_COLUMN: &str = "unexpected_column";

/// How the rows of a code file are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Every field is a code, or a list of codes.
    Codes,
    /// Named columns: where the codes are and where the holder is, if anywhere.
    Columns {
        /// The header's names as written, for issue reasons.
        names: Vec<String>,
        code: usize,
        /// The holder column and the identifier kind it holds.
        holder: Option<(usize, &'static str)>,
    },
}

/// The customer a row gives its codes to, as written and as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub value: String,
    pub identifier: Result<CustomerIdentifier, Invalid>,
}

/// One unit of an upload's work: a code to add (issued to `holder` when there is one), or a
/// row refused before any of its codes is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Code {
        line: i64,
        code: String,
        holder: Option<Holder>,
    },
    Refused {
        line: i64,
        value: String,
        code: &'static str,
        reason: String,
    },
}

impl Entry {
    /// The line of the file the entry's row starts on.
    pub fn line(&self) -> i64 {
        match self {
            Entry::Code { line, .. } | Entry::Refused { line, .. } => *line,
        }
    }
}

/// A header name compared loosely: `Coupon Code`, `coupon-code` and `coupon_code` are one.
fn normalized(name: &str) -> String {
    name.trim()
        .trim_start_matches('\u{feff}')
        .to_ascii_lowercase()
        .replace([' ', '-'], "_")
}

fn holder_kind(name: &str) -> Option<&'static str> {
    CUSTOMER_COLUMNS
        .iter()
        .find(|(column, _)| *column == name)
        .map(|(_, kind)| *kind)
}

impl Layout {
    /// The layout a file's first row sets. `None`: the row is no header but the first codes,
    /// and the file is codes only, as files without a header always were. A header names a
    /// code or a customer column; one naming a customer but no code column is refused, since
    /// none of its rows could be read.
    pub fn from_first_row(first: &Record) -> Result<Option<Layout>, Invalid> {
        let names: Vec<String> = first.fields.iter().map(|f| normalized(f)).collect();
        let code = names
            .iter()
            .position(|n| CODE_COLUMNS.contains(&n.as_str()));
        let holder = names
            .iter()
            .enumerate()
            .find_map(|(i, n)| holder_kind(n).map(|kind| (i, kind)));
        let Some(code) = code else {
            return match holder {
                Some(_) => Err(Invalid {
                    field: "header",
                    reason: format!(
                        "the header `{}` names a customer column but no code column; name it \
                         code, codes, coupon_code or coupon",
                        first.fields.join(",")
                    ),
                }),
                None => Ok(None),
            };
        };
        let codes_only = names
            .iter()
            .all(|n| n.is_empty() || CODE_COLUMNS.contains(&n.as_str()));
        Ok(Some(if codes_only {
            Layout::Codes
        } else {
            Layout::Columns {
                names: first.fields.clone(),
                code,
                holder,
            }
        }))
    }

    /// What a non-blank row asks for: each of its codes (an empty one when it has none, which
    /// the upload reports as malformed), or its refusal when it holds a value that would not
    /// be read.
    pub fn entries(&self, record: &Record) -> Vec<Entry> {
        let line = record.line as i64;
        let (cells, holder): (&[String], _) = match self {
            Layout::Codes => (&record.fields, None),
            Layout::Columns {
                names,
                code,
                holder,
            } => {
                let value = record.fields.get(*code).cloned().unwrap_or_default();
                let read = |i: usize| i == *code || holder.is_some_and(|(h, _)| h == i);
                let unread: Vec<String> = record
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(i, v)| !v.is_empty() && !read(*i))
                    .map(|(i, v)| unread_field(names, i, v))
                    .collect();
                if !unread.is_empty() {
                    return vec![Entry::Refused {
                        line,
                        value,
                        code: UNEXPECTED_COLUMN,
                        reason: format!(
                            "a code upload does not read {}; remove it or leave it empty \
                             (columns read: the code, and one customer column: customer, \
                             external_id, email, mobile or user_id)",
                            unread.join(", ")
                        ),
                    }];
                }
                let holder = holder.map(|(i, kind)| {
                    let value = record.fields.get(i).cloned().unwrap_or_default();
                    Holder {
                        identifier: CustomerIdentifier::from_column(kind, &value),
                        value,
                    }
                });
                // A short row has no code cell: it yields the empty code.
                (record.fields.get(*code..=*code).unwrap_or_default(), holder)
            }
        };
        let mut codes: Vec<String> = cells.iter().flat_map(|c| split_codes(c)).collect();
        if codes.is_empty() {
            codes.push(String::new());
        }
        codes
            .into_iter()
            .map(|code| Entry::Code {
                line,
                code,
                holder: holder.clone(),
            })
            .collect()
    }
}

/// How an issue reason names a field that is not read.
fn unread_field(names: &[String], index: usize, value: &str) -> String {
    let column = match names.get(index).map(|n| n.trim()) {
        Some("") => format!("the unnamed column {}", index + 1),
        Some(name) => format!("column `{name}`"),
        None => format!(
            "field {} (the header names {} columns)",
            index + 1,
            names.len()
        ),
    };
    format!("{column} (`{value}`)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::csv::parse;

    /// The layout of `text`'s first row and the entries of every other row (of every row when
    /// there is no header).
    fn read(text: &str) -> (Layout, Vec<Entry>) {
        let records = parse(text.as_bytes()).unwrap();
        let (layout, skip) = match Layout::from_first_row(&records[0]).unwrap() {
            Some(layout) => (layout, 1),
            None => (Layout::Codes, 0),
        };
        let entries = records[skip..]
            .iter()
            .filter(|r| !r.is_blank())
            .flat_map(|r| layout.entries(r))
            .collect();
        (layout, entries)
    }

    fn codes(entries: &[Entry]) -> Vec<(i64, &str)> {
        entries
            .iter()
            .filter_map(|e| match e {
                Entry::Code { line, code, .. } => Some((*line, code.as_str())),
                Entry::Refused { .. } => None,
            })
            .collect()
    }

    fn refused(entries: &[Entry]) -> Vec<(i64, &'static str, &str)> {
        entries
            .iter()
            .filter_map(|e| match e {
                Entry::Refused {
                    line, code, reason, ..
                } => Some((*line, *code, reason.as_str())),
                Entry::Code { .. } => None,
            })
            .collect()
    }

    #[test]
    fn files_without_a_header_are_codes_and_every_field_counts() {
        let (layout, entries) = read("A1\nA2,A3\n\"A4,A5\"\n");
        assert_eq!(layout, Layout::Codes);
        assert_eq!(
            codes(&entries),
            [(1, "A1"), (2, "A2"), (2, "A3"), (3, "A4"), (3, "A5")]
        );
    }

    #[test]
    fn a_header_of_code_columns_only_reads_every_field_as_codes() {
        for header in ["code", "Codes,", "\u{feff}Coupon Code", "code,codes"] {
            let (layout, entries) = read(&format!("{header}\nA1,A2\n\"B1, B2\nB3\",,\n"));
            assert_eq!(layout, Layout::Codes, "{header}");
            assert_eq!(
                codes(&entries),
                [(2, "A1"), (2, "A2"), (3, "B1"), (3, "B2"), (3, "B3")]
            );
        }
    }

    #[test]
    fn a_row_without_codes_yields_the_empty_code() {
        let (_, entries) = read("code\n\",\"\n");
        assert_eq!(codes(&entries), [(2, "")]);
        let (_, entries) = read("code,customer\n,c-1\n");
        assert_eq!(codes(&entries), [(2, "")]);
    }

    #[test]
    fn a_customer_column_tags_each_code_of_its_row() {
        let (layout, entries) = read("Code,Customer\nA1,c-1\n\"A2,A3\",c-2\nA4,\n");
        assert!(matches!(
            layout,
            Layout::Columns {
                code: 0,
                holder: Some((1, "external_id")),
                ..
            }
        ));
        let holders: Vec<(&str, Option<&str>)> = entries
            .iter()
            .map(|e| match e {
                Entry::Code { code, holder, .. } => (
                    code.as_str(),
                    holder.as_ref().map(|h| match &h.identifier {
                        Ok(CustomerIdentifier::ExternalId(id)) => id.as_str(),
                        Ok(_) => "other",
                        Err(_) => "invalid",
                    }),
                ),
                Entry::Refused { .. } => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(
            holders,
            [
                ("A1", Some("c-1")),
                ("A2", Some("c-2")),
                ("A3", Some("c-2")),
                ("A4", Some("invalid"))
            ]
        );
    }

    #[test]
    fn customer_list_identifier_columns_name_the_holder() {
        let (layout, entries) = read("email,coupon_code\nAna@Example.com,A1\n");
        assert!(matches!(
            layout,
            Layout::Columns {
                code: 1,
                holder: Some((0, "email")),
                ..
            }
        ));
        let Entry::Code { holder, .. } = &entries[0] else {
            panic!()
        };
        assert_eq!(
            holder.as_ref().unwrap().identifier,
            Ok(CustomerIdentifier::Email("ana@example.com".into()))
        );
    }

    #[test]
    fn values_in_unread_columns_refuse_their_row() {
        let (_, entries) = read("code,note,\nA1,,\nA2,hello\nA3,,x\nA4,,,y\n");
        assert_eq!(
            codes(&entries),
            [(2, "A1")],
            "empty unread cells lose nothing"
        );
        let refused = refused(&entries);
        assert_eq!(
            refused.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
            [
                (3, UNEXPECTED_COLUMN),
                (4, UNEXPECTED_COLUMN),
                (5, UNEXPECTED_COLUMN)
            ]
        );
        assert!(
            refused[0].2.contains("column `note` (`hello`)"),
            "{}",
            refused[0].2
        );
        assert!(
            refused[1].2.contains("the unnamed column 3"),
            "{}",
            refused[1].2
        );
        assert!(
            refused[2]
                .2
                .contains("field 4 (the header names 3 columns)"),
            "{}",
            refused[2].2
        );
    }

    #[test]
    fn a_second_customer_column_is_not_read() {
        let (_, entries) = read("code,customer,email\nA1,c-1,\nA2,c-2,a@b.c\n");
        assert_eq!(codes(&entries), [(2, "A1")]);
        assert!(refused(&entries)[0].2.contains("column `email`"));
    }

    #[test]
    fn a_header_naming_a_customer_but_no_code_is_refused() {
        let first = &parse("external_id,voucher\n".as_bytes()).unwrap()[0];
        let err = Layout::from_first_row(first).unwrap_err();
        assert_eq!(err.field, "header");
        assert!(err.reason.contains("external_id,voucher"));
    }
}
