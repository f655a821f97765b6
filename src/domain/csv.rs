//! CSV of uploaded files (codes, customer lists, revocation lists) and of the issue reports we
//! write, through the `csv` crate: RFC 4180 quoting, fields with embedded line breaks, ragged
//! rows, and the UTF-8 byte-order mark Excel puts in front of its files.

use std::{
    collections::VecDeque,
    io::{self, BufRead, Read},
    sync::{Arc, Mutex},
};

use super::text::BOM;

/// One record of an uploaded file: the line it starts on and its trimmed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: u64,
    pub fields: Vec<String>,
}

impl Record {
    /// A record of nothing but blanks, which uploads skip.
    pub fn is_blank(&self) -> bool {
        self.fields.iter().all(String::is_empty)
    }
}

/// Reads the records of an upload, after skipping a byte-order mark. Every record is returned,
/// the first one too: callers decide whether it is a header. Bytes that are not UTF-8 are
/// replaced, so such a value is reported as malformed instead of failing the file.
pub fn records<R: BufRead>(mut input: R) -> io::Result<impl Iterator<Item = io::Result<Record>>> {
    if input.fill_buf()?.starts_with(BOM) {
        input.consume(BOM.len());
    }
    // The reader skips empty lines without counting them, so lines are counted here: the
    // starts of non-empty lines read ahead are kept until the records pass them.
    let starts = Arc::new(Mutex::new(VecDeque::new()));
    let counting = LineStarts {
        inner: input,
        offset: 0,
        line: 1,
        at_line_start: true,
        starts: starts.clone(),
    };
    let reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(counting);
    Ok(reader.into_byte_records().map(move |r| {
        let record = r.map_err(io::Error::other)?;
        let start = record.position().map_or(0, |p| p.byte());
        let mut pending = starts.lock().unwrap_or_else(|e| e.into_inner());
        while pending.front().is_some_and(|&(at, _)| at < start) {
            pending.pop_front();
        }
        let line = pending.front().map_or(0, |&(_, line)| line);
        drop(pending);
        Ok(Record {
            line,
            fields: record
                .iter()
                .map(|f| String::from_utf8_lossy(f).trim().to_string())
                .collect(),
        })
    }))
}

/// Notes where each non-empty line starts (offset, line number) as the bytes pass through.
struct LineStarts<R> {
    inner: R,
    offset: u64,
    line: u64,
    at_line_start: bool,
    starts: Arc<Mutex<VecDeque<(u64, u64)>>>,
}

impl<R: Read> Read for LineStarts<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        for (i, &byte) in buf[..n].iter().enumerate() {
            match byte {
                b'\n' => {
                    self.line += 1;
                    self.at_line_start = true;
                }
                b'\r' => {}
                _ if self.at_line_start => {
                    starts.push_back((self.offset + i as u64, self.line));
                    self.at_line_start = false;
                }
                _ => {}
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Writes rows of a CSV we produce (issue reports), quoting fields that need it.
pub fn write<W: io::Write>(out: W, rows: &[Vec<String>]) -> io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    for row in rows {
        writer.write_record(row).map_err(io::Error::other)?;
    }
    writer.flush()
}

/// Reads the whole of a small input (tests, lists given as JSON) into records.
pub fn parse(text: impl Read) -> io::Result<Vec<Record>> {
    records(io::BufReader::new(text))?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firsts(text: &str) -> Vec<String> {
        parse(text.as_bytes())
            .unwrap()
            .iter()
            .map(|r| r.fields[0].clone())
            .collect()
    }

    #[test]
    fn splits_plain_and_quoted_fields() {
        let rows = parse(" a , b ,c\r\n\"a,b\",c\n\"say \"\"hi\"\"\",x\n".as_bytes()).unwrap();
        assert_eq!(rows[0].fields, ["a", "b", "c"]);
        assert_eq!(rows[1].fields, ["a,b", "c"]);
        assert_eq!(rows[2].fields, ["say \"hi\"", "x"]);
        assert_eq!((rows[0].line, rows[2].line), (1, 3));
    }

    #[test]
    fn quoted_fields_keep_their_line_breaks() {
        let rows = parse("code,note\n\"A1\",\"two\nlines\"\nB2,x\n".as_bytes()).unwrap();
        assert_eq!(rows[1].fields, ["A1", "two\nlines"]);
        assert_eq!(rows[2].fields, ["B2", "x"]);
        assert_eq!(rows[2].line, 4);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_header() {
        assert_eq!(firsts("\u{feff}code\nAB12\n"), ["code", "AB12"]);
    }

    #[test]
    fn blank_lines_and_ragged_rows_are_read() {
        let rows = parse("A\n\n  \nB,1,2\n".as_bytes()).unwrap();
        assert!(rows.iter().any(Record::is_blank));
        assert_eq!(rows.last().unwrap().fields, ["B", "1", "2"]);
        assert_eq!(rows.last().unwrap().line, 4, "blank lines count");
        let rows = parse("code\nA1\n\n\r\nB2\n\"C\n3\"\nD4".as_bytes()).unwrap();
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2, 5, 6, 8]);
    }

    #[test]
    fn written_rows_read_back() {
        let mut out = Vec::new();
        let row = vec!["1".to_string(), "x,\"y\"\nz".to_string()];
        write(&mut out, std::slice::from_ref(&row)).unwrap();
        assert_eq!(parse(&out[..]).unwrap()[0].fields, row);
    }
}
