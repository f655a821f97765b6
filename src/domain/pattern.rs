//! Code patterns: the placeholder grammar, excluded characters and phrases, prefix and suffix, the
//! check character, randomized common codes and the bulk-generation rules.
//!
//! Grammar: `#` is a digit (0-9), `@` a lowercase letter (a-z), `^` an uppercase letter (A-Z), `*` an
//! alphanumeric (0-9A-Za-z) and `$` an uppercase alphanumeric (0-9A-Z). Every other printable ASCII
//! character is a literal, and `\` makes the next character a literal (`\#` is a `#`). Codes are
//! typed at tills and travel in URLs and CSV files, so spaces, control characters and non-ASCII
//! characters are refused rather than taken as literals. A pattern without placeholders is a
//! *common* code: every customer gets the same one.
//!
//! A code is laid out as `prefix + pattern body + check character + suffix`.

use std::fmt;

/// Longest pattern accepted, in characters as written (escapes included).
pub const MAX_PATTERN_LEN: usize = 64;
/// Longest prefix or suffix (Capillary).
pub const MAX_AFFIX_LEN: usize = 10;
/// Placeholders a bulk pattern needs so that it can serve high demand (Antavo).
pub const MIN_BULK_PLACEHOLDERS: usize = 4;
/// Largest bulk batch generated at a time (Antavo).
pub const MAX_BULK_BATCH: u64 = 5_000_000;
/// Largest number of codes a bulk pool may hold (Antavo).
pub const MAX_BULK_POOL: u64 = 100_000_000;
/// Shortest and longest sample of a randomized common code (Capillary).
pub const SAMPLE_LEN: std::ops::RangeInclusive<usize> = 5..=10;

/// Longest code a pattern can make: prefix, body, check character and suffix.
const MAX_CODE_LEN: usize = MAX_AFFIX_LEN + MAX_PATTERN_LEN + 1 + MAX_AFFIX_LEN;
/// Marks a byte of the template that a placeholder or the check character fills in.
const VARIABLE: u8 = 0;
const ESCAPE: char = '\\';

/// What a caller sends to describe a pattern.
pub struct PatternSpec<'a> {
    pub pattern: &'a str,
    pub exclude_chars: &'a [char],
    pub exclude_phrases: &'a [String],
    pub prefix: Option<&'a str>,
    pub suffix: Option<&'a str>,
    pub check_char: bool,
    /// Forgiving entry: a till matches codes ignoring case, so `*` draws from upper-case letters
    /// and digits only; otherwise `a1B2` and `A1b2` would be two codes to the pool and one to
    /// the till.
    pub case_insensitive: bool,
}

/// Why a pattern, an affix or a bulk request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// Stable snake_case reason, e.g. `invalid_pattern`, `bulk_too_large`.
    pub code: &'static str,
    /// The request field at fault, e.g. `pattern`, `exclude_chars`, `count`.
    pub field: &'static str,
    pub message: String,
}

impl PatternError {
    fn new(code: &'static str, field: &'static str, message: String) -> PatternError {
        PatternError {
            code,
            field,
            message,
        }
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for PatternError {}

/// A parsed pattern with its options applied; knows every code it can make.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The whole code with `VARIABLE` where a placeholder or the check character goes.
    template: Vec<u8>,
    slots: Vec<Slot>,
    check: Option<CheckChar>,
    /// Excluded phrases, ASCII-lowercased (codes are ASCII, so this is case-insensitive matching).
    phrases: Vec<Vec<u8>>,
    combinations: u128,
    /// Codes are matched ignoring case (forgiving entry).
    case_insensitive: bool,
}

/// One placeholder: where it goes in the code and which characters it can take.
#[derive(Debug, Clone)]
struct Slot {
    at: usize,
    /// The characters it can take, ascending; the first `radix` are used.
    chars: [u8; 62],
    radix: u8,
    /// Bit `c` is set when ASCII character `c` may stand here.
    allowed: u128,
}

impl Slot {
    fn allows(&self, c: u8) -> bool {
        c < 128 && self.allowed >> c & 1 == 1
    }
}

/// The check character: Luhn mod N over the characters the placeholders hold.
///
/// The alphabet is the sorted union of every character a placeholder can produce, and a character's
/// value is its index in it. From the rightmost placeholder leftwards, every other value is
/// doubled: for even N the Luhn way (`2v / N + 2v % N`), for odd N as `2v mod N`, so doubling is a
/// permutation of the values either way and every single substitution changes the sum. The check
/// character brings the sum to 0 mod N. Adjacent transpositions are caught too, except (for even N)
/// swapping the first and last characters of the alphabet, like Luhn's 09/90. Literals, the prefix
/// and the suffix are fixed, so they are left out.
#[derive(Debug, Clone)]
struct CheckChar {
    at: usize,
    alphabet: Vec<u8>,
    /// Index of each ASCII character in `alphabet` (only read for characters in it).
    values: [u8; 128],
}

impl CheckChar {
    fn new(at: usize, alphabet: Vec<u8>) -> CheckChar {
        let mut values = [0; 128];
        for (value, &c) in (0..).zip(&alphabet) {
            values[usize::from(c)] = value;
        }
        CheckChar {
            at,
            alphabet,
            values,
        }
    }

    /// The check character for the placeholder characters `held`, left to right.
    fn char_for(&self, held: impl DoubleEndedIterator<Item = u8>) -> u8 {
        let n = self.alphabet.len() as u32;
        let mut sum = 0;
        for (i, c) in held.rev().enumerate() {
            let value = u32::from(self.values[usize::from(c)]);
            sum += match (i.is_multiple_of(2), n.is_multiple_of(2)) {
                (false, _) => value,
                (true, true) => 2 * value / n + 2 * value % n,
                (true, false) => 2 * value % n,
            };
        }
        self.alphabet[((n - sum % n) % n) as usize]
    }
}

/// One character of the pattern body.
enum Piece {
    Literal(u8),
    Placeholder(char, &'static [u8]),
}

/// A character mask with every lower-case letter moved onto its upper-case one.
fn fold_case(mask: u128) -> u128 {
    let lower: u128 = ((1 << 26) - 1) << b'a';
    (mask & !lower) | (mask & lower) >> (b'a' - b'A')
}

const UPPER_ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn placeholder_class(c: char) -> Option<&'static [u8]> {
    match c {
        '#' => Some(b"0123456789"),
        '@' => Some(b"abcdefghijklmnopqrstuvwxyz"),
        '^' => Some(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        '*' => Some(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
        '$' => Some(UPPER_ALPHANUMERIC),
        _ => None,
    }
}

impl Pattern {
    pub fn parse(spec: &PatternSpec) -> Result<Pattern, PatternError> {
        let prefix = spec.prefix.unwrap_or_default();
        let suffix = spec.suffix.unwrap_or_default();
        if let Some(prefix) = spec.prefix {
            validate_affix("prefix", prefix)?;
        }
        if let Some(suffix) = spec.suffix {
            validate_affix("suffix", suffix)?;
        }
        let pieces = parse_body(spec.pattern)?;

        let mut template = prefix.as_bytes().to_vec();
        let mut slots = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Literal(c) => template.push(c),
                Piece::Placeholder(symbol, class) => {
                    let class = match symbol {
                        '*' if spec.case_insensitive => UPPER_ALPHANUMERIC,
                        _ => class,
                    };
                    slots.push(slot(template.len(), symbol, class, spec.exclude_chars)?);
                    template.push(VARIABLE);
                }
            }
        }
        let check = spec
            .check_char
            .then(|| check_char(template.len(), &slots))
            .transpose()?;
        if check.is_some() {
            template.push(VARIABLE);
        }
        template.extend_from_slice(suffix.as_bytes());

        let pattern = Pattern {
            combinations: combinations(&slots)?,
            template,
            slots,
            check,
            phrases: phrases(spec.exclude_phrases)?,
            case_insensitive: spec.case_insensitive,
        };
        pattern.refuse_unavoidable_phrases()?;
        Ok(pattern)
    }

    pub fn placeholders(&self) -> usize {
        self.slots.len()
    }

    /// Unique codes the pattern can make after excluded characters. Excluded phrases are not
    /// subtracted: the codes they rule out are only known by looking at each one. Never saturates:
    /// `parse` refuses a pattern whose count would not fit in a `u128`.
    pub fn combinations(&self) -> u128 {
        self.combinations
    }

    pub fn is_common(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether some code could come from both patterns: the same length and, at every
    /// position, a character both allow (compared ignoring case when either matches codes
    /// that way). Excluded phrases are left out, so two shapes whose only shared codes are all
    /// excluded still overlap: a pool's codes must never be another's.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        let fold = self.case_insensitive || other.case_insensitive;
        let mask = |p: &Pattern, at| match fold {
            true => fold_case(p.allowed_at(at)),
            false => p.allowed_at(at),
        };
        self.template.len() == other.template.len()
            && (0..self.template.len()).all(|at| mask(self, at) & mask(other, at) != 0)
    }

    /// The characters before the first placeholder: the part every code shares.
    pub fn fixed_start(&self) -> &[u8] {
        let end = self.template.iter().position(|&c| c == VARIABLE);
        &self.template[..end.unwrap_or(self.template.len())]
    }

    /// Bit `c` is set when ASCII character `c` may stand at this position of a code.
    fn allowed_at(&self, at: usize) -> u128 {
        if self.template[at] != VARIABLE {
            return 1 << self.template[at];
        }
        match self.slots.iter().find(|s| s.at == at) {
            Some(slot) => slot.allowed,
            None => self.check.as_ref().map_or(0, |check| {
                check.alphabet.iter().fold(0, |mask, &c| mask | 1 << c)
            }),
        }
    }

    /// The one code of a common pattern (prefix + literals + suffix), None if it has placeholders.
    pub fn common_code(&self) -> Option<String> {
        self.is_common().then(|| self.code_at(0)).flatten()
    }

    /// Whether `code` has this pattern's shape and (when enabled) a correct check character —
    /// refuses a mistyped code without a database look-up. A code containing an excluded phrase
    /// is refused too: the pattern never makes one.
    pub fn verify(&self, code: &str) -> bool {
        let code = code.as_bytes();
        code.len() == self.template.len()
            && code
                .iter()
                .zip(&self.template)
                .all(|(c, t)| *t == VARIABLE || c == t)
            && self.slots.iter().all(|slot| slot.allows(code[slot.at]))
            && self.check.as_ref().is_none_or(|check| {
                code[check.at] == check.char_for(self.slots.iter().map(|slot| code[slot.at]))
            })
            && !self.contains_phrase(code)
    }

    /// Whether `code` has this pattern's shape but a wrong check character: a mistyped code,
    /// told apart from an unknown one without a database look-up. False without a check
    /// character.
    pub fn mistyped(&self, code: &str) -> bool {
        let Some(check) = &self.check else {
            return false;
        };
        let bytes = code.as_bytes();
        bytes.len() == self.template.len()
            && bytes
                .iter()
                .zip(&self.template)
                .all(|(c, t)| *t == VARIABLE || c == t)
            && self.slots.iter().all(|slot| slot.allows(bytes[slot.at]))
            && bytes[check.at] != check.char_for(self.slots.iter().map(|slot| bytes[slot.at]))
    }

    /// The code numbered `index` in mixed radix over the placeholders (the last one varies
    /// fastest), or None when it contains an excluded phrase.
    ///
    /// # Panics
    /// When `index` is not below `combinations()`.
    pub fn code_at(&self, index: u128) -> Option<String> {
        assert!(
            index < self.combinations,
            "code index {index} is outside the {} combinations",
            self.combinations
        );
        let mut buffer = [0; MAX_CODE_LEN];
        let code = &mut buffer[..self.template.len()];
        code.copy_from_slice(&self.template);
        self.fill_placeholders(index, code);
        if let Some(check) = &self.check {
            code[check.at] = check.char_for(self.slots.iter().map(|slot| code[slot.at]));
        }
        if self.contains_phrase(code) {
            return None;
        }
        Some(code.iter().map(|&c| char::from(c)).collect())
    }

    fn fill_placeholders(&self, index: u128, code: &mut [u8]) {
        let mut slots = self.slots.iter().rev();
        let mut wide = index;
        // u128 division is a slow library call: switch to u64 as soon as the rest fits.
        let mut rest = loop {
            match u64::try_from(wide) {
                Ok(narrow) => break narrow,
                Err(_) => {
                    let slot = slots.next().expect("index < combinations");
                    let radix = u128::from(slot.radix);
                    code[slot.at] = slot.chars[(wide % radix) as usize];
                    wide /= radix;
                }
            }
        };
        for slot in slots {
            let radix = u64::from(slot.radix);
            code[slot.at] = slot.chars[(rest % radix) as usize];
            rest /= radix;
        }
    }

    fn contains_phrase(&self, text: &[u8]) -> bool {
        self.phrase_in(text).is_some()
    }

    /// The first excluded phrase in `text` (at most `MAX_CODE_LEN` bytes), ignoring ASCII case.
    fn phrase_in(&self, text: &[u8]) -> Option<&[u8]> {
        if self.phrases.is_empty() {
            return None;
        }
        let mut buffer = [0; MAX_CODE_LEN];
        let lower = &mut buffer[..text.len()];
        lower.copy_from_slice(text);
        lower.make_ascii_lowercase();
        self.phrases
            .iter()
            .find(|phrase| lower.windows(phrase.len()).any(|w| w == phrase.as_slice()))
            .map(Vec::as_slice)
    }

    /// A phrase inside the fixed text (prefix, literals, suffix) would be in every code, and
    /// generation would scan the whole space for nothing.
    fn refuse_unavoidable_phrases(&self) -> Result<(), PatternError> {
        for run in self.template.split(|&c| c == VARIABLE) {
            if let Some(phrase) = self.phrase_in(run) {
                return Err(PatternError::new(
                    "invalid_phrase",
                    "exclude_phrases",
                    format!(
                        "`{}` is in the fixed text `{}`, so every code would contain it",
                        String::from_utf8_lossy(phrase),
                        String::from_utf8_lossy(run)
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn invalid_pattern(message: String) -> PatternError {
    PatternError::new("invalid_pattern", "pattern", message)
}

fn parse_body(pattern: &str) -> Result<Vec<Piece>, PatternError> {
    let len = pattern.chars().count();
    if len == 0 {
        return Err(invalid_pattern("must not be empty".into()));
    }
    if len > MAX_PATTERN_LEN {
        return Err(invalid_pattern(format!(
            "has {len} characters; at most {MAX_PATTERN_LEN} are allowed"
        )));
    }
    let mut pieces = Vec::with_capacity(len);
    let mut chars = pattern.chars().enumerate();
    while let Some((i, c)) = chars.next() {
        let (i, c) = match (c, placeholder_class(c)) {
            (_, Some(class)) => {
                pieces.push(Piece::Placeholder(c, class));
                continue;
            }
            (ESCAPE, None) => chars.next().ok_or_else(|| {
                invalid_pattern(
                    "ends with `\\`, which escapes nothing (write `\\\\` for a `\\`)".into(),
                )
            })?,
            (c, None) => (i, c),
        };
        if !c.is_ascii_graphic() {
            return Err(invalid_pattern(format!(
                "character {} ({c:?}) cannot be in a code: literals are printable ASCII without spaces",
                i + 1
            )));
        }
        pieces.push(Piece::Literal(c as u8));
    }
    Ok(pieces)
}

fn slot(at: usize, symbol: char, class: &[u8], excluded: &[char]) -> Result<Slot, PatternError> {
    let mut slot = Slot {
        at,
        chars: [0; 62],
        radix: 0,
        allowed: 0,
    };
    for &c in class
        .iter()
        .filter(|&&c| !excluded.contains(&char::from(c)))
    {
        slot.chars[usize::from(slot.radix)] = c;
        slot.radix += 1;
        slot.allowed |= 1 << c;
    }
    if slot.radix == 0 {
        return Err(PatternError::new(
            "empty_class",
            "exclude_chars",
            format!("excluding these characters leaves nothing for the `{symbol}` placeholder"),
        ));
    }
    Ok(slot)
}

fn check_char(at: usize, slots: &[Slot]) -> Result<CheckChar, PatternError> {
    if slots.is_empty() {
        return Err(PatternError::new(
            "invalid_pattern",
            "check_char",
            "a common code has no placeholders for a check character to check".into(),
        ));
    }
    let union = slots.iter().fold(0u128, |union, slot| union | slot.allowed);
    let alphabet = (0..128u8).filter(|&c| union >> c & 1 == 1).collect();
    Ok(CheckChar::new(at, alphabet))
}

fn combinations(slots: &[Slot]) -> Result<u128, PatternError> {
    slots
        .iter()
        .try_fold(1u128, |total, slot| {
            total.checked_mul(u128::from(slot.radix))
        })
        .ok_or_else(|| {
            invalid_pattern(format!(
                "{} placeholders make more than 2^128 combinations; use fewer",
                slots.len()
            ))
        })
}

fn phrases(excluded: &[String]) -> Result<Vec<Vec<u8>>, PatternError> {
    excluded
        .iter()
        .map(|phrase| {
            if phrase.is_empty() {
                Err(PatternError::new(
                    "invalid_phrase",
                    "exclude_phrases",
                    "an excluded phrase must not be empty".into(),
                ))
            } else {
                Ok(phrase.to_ascii_lowercase().into_bytes())
            }
        })
        .collect()
}

/// Prefix/suffix: at most 10 chars of A-Za-z0-9 _ -, case-sensitive, non-empty.
pub fn validate_affix(field: &'static str, value: &str) -> Result<(), PatternError> {
    let invalid = |message| Err(PatternError::new("invalid_affix", field, message));
    let len = value.chars().count();
    if len == 0 || len > MAX_AFFIX_LEN {
        return invalid(format!(
            "must be 1 to {MAX_AFFIX_LEN} characters; `{value}` has {len}"
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return invalid(format!(
            "{c:?} is not allowed: use A-Z, a-z, 0-9, `-` and `_`"
        ));
    }
    Ok(())
}

/// Capillary rules: `enabled` false => None whatever else is set; enabled + use_org_default => the
/// org default, and a 422-style error (code "org_default_missing") if the org has none; enabled +
/// custom => the custom value (validated); enabled with neither => error. `enabled: None` means
/// "not configured" => None. When both a custom value and the org default are asked for, the org
/// default wins, as Capillary's override flag does.
pub fn resolve_affix(
    field: &'static str,
    enabled: Option<bool>,
    custom: Option<&str>,
    use_org_default: bool,
    org_default: Option<&str>,
) -> Result<Option<String>, PatternError> {
    match enabled {
        Some(true) => {}
        Some(false) => return Ok(None),
        // Capillary ignores a value given without the switch; we say so instead.
        None if custom.is_some() || use_org_default => {
            return Err(PatternError::new(
                "invalid_affix",
                field,
                format!("a {field} is given but {field}_enabled is not: set {field}_enabled"),
            ));
        }
        None => return Ok(None),
    }
    let value = match (use_org_default, org_default, custom) {
        (true, Some(default), _) => default,
        (true, None, _) => {
            return Err(PatternError::new(
                "org_default_missing",
                field,
                format!("the org default {field} is asked for, but the org has none"),
            ));
        }
        (false, _, Some(custom)) => custom,
        (false, _, None) => {
            return Err(PatternError::new(
                "invalid_affix",
                field,
                format!("a {field} is enabled: give a custom value or use the org default"),
            ));
        }
    };
    validate_affix(field, value)?;
    Ok(Some(value.to_string()))
}

/// `text` as pattern literals: placeholder characters and `\` are escaped.
pub fn escape_literals(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c == ESCAPE || placeholder_class(c).is_some() {
            escaped.push(ESCAPE);
        }
        escaped.push(c);
    }
    escaped
}

/// Randomized common codes (Capillary): sample of 5..=10 chars [A-Za-z0-9]; the first
/// floor(len/2) chars stay fixed, the rest become placeholders of the sample's class: all digits in
/// the random half -> `#`, otherwise uppercase-only sample -> `$`, else `*`. e.g. "TEST12345" ->
/// "TEST#####". The fixed half is escaped, although an alphanumeric sample never needs it.
pub fn randomized_common_pattern(sample: &str) -> Result<String, PatternError> {
    let invalid = |message| Err(PatternError::new("invalid_sample", "sample_code", message));
    let len = sample.chars().count();
    if !SAMPLE_LEN.contains(&len) {
        return invalid(format!(
            "must be {} to {} characters; `{sample}` has {len}",
            SAMPLE_LEN.start(),
            SAMPLE_LEN.end()
        ));
    }
    if let Some(c) = sample.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return invalid(format!("{c:?} is not allowed: use A-Z, a-z and 0-9"));
    }
    let (fixed, random) = sample.split_at(len / 2);
    let placeholder = if random.bytes().all(|c| c.is_ascii_digit()) {
        '#'
    } else if !sample.bytes().any(|c| c.is_ascii_lowercase()) {
        '$'
    } else {
        '*'
    };
    let mut pattern = escape_literals(fixed);
    pattern.extend(std::iter::repeat_n(placeholder, random.len()));
    Ok(pattern)
}

/// The codes a pool may ever have generated from `pattern`: every combination, or for a bulk
/// pool 1% of them and at most `MAX_BULK_POOL`. Generation jobs reserve their count against it
/// when they are accepted.
pub fn generation_capacity(pattern: &Pattern, bulk: bool) -> u64 {
    let space = if bulk {
        (pattern.combinations() / 100).min(u128::from(MAX_BULK_POOL))
    } else {
        pattern.combinations()
    };
    u64::try_from(space)
        .unwrap_or(u64::MAX)
        .min(i64::MAX as u64)
}

/// Bulk rules (Antavo): at least 4 placeholders; one batch at most 5_000_000; a pool at most
/// 100_000_000 codes in total; and already_generated + batch may not exceed 1% of combinations
/// (so codes cannot be guessed).
pub fn check_bulk_batch(
    pattern: &Pattern,
    already_generated: u64,
    batch: u64,
) -> Result<(), PatternError> {
    if pattern.placeholders() < MIN_BULK_PLACEHOLDERS {
        return Err(PatternError::new(
            "too_few_placeholders",
            "pattern",
            format!(
                "a bulk pattern needs at least {MIN_BULK_PLACEHOLDERS} placeholders; this one has {}",
                pattern.placeholders()
            ),
        ));
    }
    let refuse = |code, message| Err(PatternError::new(code, "count", message));
    if batch == 0 {
        return refuse("invalid_count", "a batch must have at least 1 code".into());
    }
    if batch > MAX_BULK_BATCH {
        return refuse(
            "bulk_too_large",
            format!("a batch of {batch} exceeds the {MAX_BULK_BATCH} codes allowed at a time"),
        );
    }
    let total = already_generated.saturating_add(batch);
    if total > MAX_BULK_POOL {
        return refuse(
            "bulk_too_large",
            format!(
                "a batch of {batch} on top of the {already_generated} codes already generated \
                 exceeds the {MAX_BULK_POOL} codes a pool may hold"
            ),
        );
    }
    let combinations = pattern.combinations();
    let limit = combinations / 100;
    if u128::from(total) > limit {
        let already = if already_generated == 0 {
            String::new()
        } else {
            format!(" on top of the {already_generated} codes already generated")
        };
        return refuse(
            "bulk_too_large",
            format!(
                "a batch of {batch}{already} exceeds 1% of the {combinations} combinations of \
                 this pattern ({limit})"
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pattern: &str) -> PatternSpec<'_> {
        PatternSpec {
            pattern,
            exclude_chars: &[],
            exclude_phrases: &[],
            prefix: None,
            suffix: None,
            check_char: false,
            case_insensitive: false,
        }
    }

    fn parse(pattern: &str) -> Pattern {
        Pattern::parse(&spec(pattern)).unwrap()
    }

    fn refusal(spec: &PatternSpec) -> (&'static str, &'static str) {
        let err = Pattern::parse(spec).unwrap_err();
        (err.code, err.field)
    }

    /// Every code of a small pattern, in index order, excluded ones left out.
    fn all_codes(pattern: &Pattern) -> Vec<String> {
        (0..pattern.combinations())
            .filter_map(|i| pattern.code_at(i))
            .collect()
    }

    #[test]
    fn each_placeholder_has_its_class() {
        for (symbol, class) in [
            ("#", "0123456789"),
            ("@", "abcdefghijklmnopqrstuvwxyz"),
            ("^", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            (
                "*",
                "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            ),
            ("$", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        ] {
            let pattern = parse(symbol);
            assert_eq!(pattern.placeholders(), 1);
            assert_eq!(all_codes(&pattern).concat(), class, "{symbol}");
        }
    }

    #[test]
    fn literals_and_escapes_are_copied() {
        let pattern = parse(r"A-#\#\\\$x");
        assert_eq!(pattern.placeholders(), 1);
        assert_eq!(pattern.combinations(), 10);
        assert_eq!(pattern.code_at(7).unwrap(), r"A-7#\$x");
        assert!(pattern.verify(r"A-0#\$x"));
        assert!(!pattern.verify(r"A-a#\$x"));
        assert!(!pattern.verify(r"B-0#\$x"));
    }

    #[test]
    fn the_last_placeholder_varies_fastest() {
        let pattern = parse("#-@");
        assert_eq!(pattern.combinations(), 260);
        assert_eq!(pattern.code_at(0).unwrap(), "0-a");
        assert_eq!(pattern.code_at(27).unwrap(), "1-b");
        assert_eq!(pattern.code_at(259).unwrap(), "9-z");
    }

    #[test]
    fn a_pattern_without_placeholders_is_a_common_code() {
        let pattern = Pattern::parse(&PatternSpec {
            prefix: Some("VIP"),
            suffix: Some("_24"),
            ..spec(r"SPRING\#1")
        })
        .unwrap();
        assert!(pattern.is_common());
        assert_eq!(pattern.combinations(), 1);
        assert_eq!(pattern.common_code().as_deref(), Some("VIPSPRING#1_24"));
        assert!(pattern.verify("VIPSPRING#1_24"));
        assert!(!pattern.verify("VIPSPRING#1_25"));
        assert!(!parse("A#").is_common());
        assert_eq!(parse("A#").common_code(), None);
    }

    #[test]
    fn prefix_and_suffix_surround_the_code() {
        let pattern = Pattern::parse(&PatternSpec {
            prefix: Some("SUMMER-"),
            suffix: Some("_x"),
            ..spec("##")
        })
        .unwrap();
        assert_eq!(pattern.code_at(42).unwrap(), "SUMMER-42_x");
        assert!(pattern.verify("SUMMER-42_x"));
        assert!(!pattern.verify("summer-42_x"), "affixes are case-sensitive");
    }

    #[test]
    fn malformed_patterns_are_refused() {
        let long = "#".repeat(MAX_PATTERN_LEN + 1);
        for pattern in ["", "AB\\", "##\\", "A B", "caf\u{e9}#", "#\t", &long] {
            assert_eq!(
                refusal(&spec(pattern)),
                ("invalid_pattern", "pattern"),
                "{pattern:?}"
            );
        }
        assert!(Pattern::parse(&spec(&"A".repeat(MAX_PATTERN_LEN))).is_ok());
    }

    #[test]
    fn combinations_must_fit_in_a_u128() {
        // 62^21 < 2^128 < 62^22
        assert_eq!(parse(&"*".repeat(21)).combinations(), 62u128.pow(21));
        let err = Pattern::parse(&spec(&"*".repeat(22))).unwrap_err();
        assert_eq!((err.code, err.field), ("invalid_pattern", "pattern"));
        assert!(err.message.contains("2^128"), "{}", err.message);
    }

    #[test]
    fn excluded_characters_shrink_every_class_but_not_literals() {
        assert_eq!(parse("$$$$").combinations(), 36u128.pow(4));
        let pattern = Pattern::parse(&PatternSpec {
            exclude_chars: &['O', '0', 'I', '1'],
            ..spec("$$$$-O1")
        })
        .unwrap();
        assert_eq!(pattern.combinations(), 32u128.pow(4));
        let codes = all_codes(&pattern);
        assert!(
            codes
                .iter()
                .all(|c| c.ends_with("-O1") && !c[..4].contains(['O', '0', 'I', '1']))
        );
        assert!(!pattern.verify("O234-O1"));
        assert!(pattern.verify("2345-O1"));
    }

    #[test]
    fn a_class_emptied_by_exclusions_is_refused() {
        let digits: Vec<char> = ('0'..='9').collect();
        let err = Pattern::parse(&PatternSpec {
            exclude_chars: &digits,
            ..spec("^#")
        })
        .unwrap_err();
        assert_eq!((err.code, err.field), ("empty_class", "exclude_chars"));
        assert!(err.message.contains('#'));
        // `$` still has letters once digits are gone.
        let pattern = Pattern::parse(&PatternSpec {
            exclude_chars: &digits,
            ..spec("$")
        })
        .unwrap();
        assert_eq!(pattern.combinations(), 26);
    }

    #[test]
    fn excluded_phrases_are_never_made_or_accepted_whatever_their_case() {
        let phrases = ["Ab".to_string(), "zz".to_string()];
        let pattern = Pattern::parse(&PatternSpec {
            exclude_phrases: &phrases,
            ..spec("^@")
        })
        .unwrap();
        let codes = all_codes(&pattern);
        assert_eq!(codes.len(), 26 * 26 - 2);
        assert!(!codes.contains(&"Ab".to_string()) && !codes.contains(&"Zz".to_string()));
        assert!(!pattern.verify("Ab"));
        assert!(pattern.verify("Ac"));
    }

    #[test]
    fn a_phrase_every_code_would_contain_is_refused() {
        for (pattern, prefix, phrase) in [
            ("AB##", None, "ab"),
            ("##", Some("X_AB"), "b"),
            ("#-X", Some("Q"), "-x"),
            ("#", None, ""),
        ] {
            let phrases = [phrase.to_string()];
            let spec = PatternSpec {
                exclude_phrases: &phrases,
                prefix,
                ..spec(pattern)
            };
            assert_eq!(
                refusal(&spec),
                ("invalid_phrase", "exclude_phrases"),
                "{pattern} {phrase}"
            );
        }
    }

    #[test]
    fn bad_affixes_in_a_spec_name_their_field() {
        let with = |prefix, suffix| PatternSpec {
            prefix,
            suffix,
            ..spec("##")
        };
        assert_eq!(
            refusal(&with(Some("A B"), None)),
            ("invalid_affix", "prefix")
        );
        assert_eq!(refusal(&with(None, Some(""))), ("invalid_affix", "suffix"));
    }

    #[test]
    fn overlapping_shapes_are_found_across_affixes_and_classes() {
        let with_prefix = Pattern::parse(&PatternSpec {
            prefix: Some("ZZ"),
            ..spec("#")
        })
        .unwrap();
        assert!(with_prefix.overlaps(&parse("ZZ#")));
        assert!(parse("TEST#####").overlaps(&parse("TEST1****")));
        assert!(parse("A-##").overlaps(&parse("*-#$")));
        assert!(
            !parse("A-##").overlaps(&parse("B-##")),
            "a literal tells them apart"
        );
        assert!(!parse("####").overlaps(&parse("#####")), "lengths differ");
        assert!(!parse("@@##").overlaps(&parse("^^##")), "cases differ");
        let forgiving = Pattern::parse(&PatternSpec {
            case_insensitive: true,
            ..spec("@@##")
        })
        .unwrap();
        assert!(forgiving.overlaps(&parse("^^##")), "a till folds case");
        assert!(with_check("##", &[]).overlaps(&parse("P###S")));
        assert_eq!(parse("TEST#####").fixed_start(), b"TEST");
        assert_eq!(parse("SPRING").fixed_start(), b"SPRING");
    }

    #[test]
    fn a_case_insensitive_pattern_draws_from_one_case() {
        let pattern = Pattern::parse(&PatternSpec {
            case_insensitive: true,
            ..spec("CI-****")
        })
        .unwrap();
        assert_eq!(pattern.combinations(), 36u128.pow(4));
        let codes: std::collections::HashSet<String> = (0..2_000u128)
            .map(|i| pattern.code_at(i * 811).unwrap().to_ascii_uppercase())
            .collect();
        assert_eq!(codes.len(), 2_000, "no two codes fold to one");
        assert_eq!(parse("CI-****").combinations(), 62u128.pow(4));
    }

    #[test]
    fn a_check_character_needs_placeholders() {
        let spec = PatternSpec {
            check_char: true,
            ..spec("SPRING")
        };
        assert_eq!(refusal(&spec), ("invalid_pattern", "check_char"));
    }

    fn with_check(pattern: &str, exclude_chars: &[char]) -> Pattern {
        Pattern::parse(&PatternSpec {
            exclude_chars,
            check_char: true,
            prefix: Some("P"),
            suffix: Some("S"),
            ..spec(pattern)
        })
        .unwrap()
    }

    #[test]
    fn the_check_character_goes_after_the_body_and_before_the_suffix() {
        let pattern = with_check("##-#", &[]);
        assert_eq!(pattern.combinations(), 1000);
        // Luhn over 1, 2, 3: 3 doubled is 6, 2 stays, 1 doubled is 2: 10, so the check digit is 0.
        assert_eq!(pattern.code_at(123).unwrap(), "P12-30S");
        assert!(pattern.verify("P12-30S"));
        assert!(!pattern.verify("P12-31S"));
        assert!(!pattern.verify("P12-3S"));
        assert!(!pattern.verify("P12-30"));
    }

    /// Every code of `pattern` is valid, and every other character in any variable position of it
    /// is refused.
    fn assert_single_substitutions_are_caught(pattern: &Pattern) {
        let check = pattern.check.as_ref().unwrap();
        let variable: Vec<usize> = (0..pattern.template.len())
            .filter(|&i| pattern.template[i] == VARIABLE)
            .collect();
        for index in (0..pattern.combinations()).step_by(7) {
            let code = pattern.code_at(index).unwrap();
            assert!(pattern.verify(&code), "{code}");
            for &at in &variable {
                for &c in check.alphabet.iter().filter(|&&c| c != code.as_bytes()[at]) {
                    let mut typo = code.clone().into_bytes();
                    typo[at] = c;
                    let typo = String::from_utf8(typo).unwrap();
                    assert!(!pattern.verify(&typo), "{code} -> {typo}");
                }
            }
        }
    }

    #[test]
    fn generation_capacity_is_the_bulk_cap_or_the_whole_space() {
        let small = parse("B####");
        assert_eq!(generation_capacity(&small, true), 100);
        assert_eq!(generation_capacity(&small, false), 10_000);
        let huge = parse("$$$$$$$$$$$$");
        assert_eq!(generation_capacity(&huge, true), MAX_BULK_POOL);
        let vast = parse(&"*".repeat(20));
        assert_eq!(generation_capacity(&vast, false), i64::MAX as u64);
    }

    #[test]
    fn a_wrong_check_character_is_told_apart_from_another_shape() {
        let pattern = Pattern::parse(&PatternSpec {
            pattern: "CK-####",
            check_char: true,
            ..spec("")
        })
        .unwrap();
        let good = pattern.code_at(1234).unwrap();
        assert!(!pattern.mistyped(&good));
        let last = good.as_bytes()[good.len() - 1];
        let wrong = format!(
            "{}{}",
            &good[..good.len() - 1],
            (b'0' + (last - b'0' + 1) % 10) as char
        );
        assert!(pattern.mistyped(&wrong));
        assert!(!pattern.mistyped("CK-12"), "another shape");
        assert!(!pattern.mistyped("XX-12345"), "other literals");
        let plain = Pattern::parse(&spec("CK-####")).unwrap();
        assert!(!plain.mistyped("CK-1234"), "no check character");
    }

    #[test]
    fn the_check_character_catches_every_single_substitution() {
        // Even alphabets (10, 26, 36 and 62 characters) use Luhn doubling, odd ones plain doubling.
        assert_single_substitutions_are_caught(&with_check("###", &[]));
        assert_single_substitutions_are_caught(&with_check("^@", &[]));
        assert_single_substitutions_are_caught(&with_check("$-$", &[]));
        assert_single_substitutions_are_caught(&with_check("**", &[]));
        assert_single_substitutions_are_caught(&with_check("$$", &['O']));
        assert_single_substitutions_are_caught(&with_check("##", &['0', '1', '2']));
    }

    /// The share of adjacent transpositions of two different characters of the variable part that
    /// `verify` misses, over every code of `pattern`.
    fn missed_transpositions(pattern: &Pattern) -> f64 {
        let variable: Vec<usize> = (0..pattern.template.len())
            .filter(|&i| pattern.template[i] == VARIABLE)
            .collect();
        let (mut tried, mut missed) = (0u32, 0u32);
        for code in all_codes(pattern) {
            for pair in variable.windows(2) {
                let mut swapped = code.clone().into_bytes();
                if swapped[pair[0]] == swapped[pair[1]] {
                    continue;
                }
                swapped.swap(pair[0], pair[1]);
                tried += 1;
                missed += u32::from(pattern.verify(&String::from_utf8(swapped).unwrap()));
            }
        }
        f64::from(missed) / f64::from(tried)
    }

    #[test]
    fn the_check_character_catches_most_adjacent_transpositions() {
        let even = missed_transpositions(&with_check("###", &[]));
        assert!(even > 0.0 && even < 0.03, "{even}");
        assert_eq!(missed_transpositions(&with_check("$$", &['O'])), 0.0);
    }

    #[test]
    fn prefix_and_suffix_rules() {
        for ok in ["A", "SUMMER-XYZ", "a_b-C9", "0123456789"] {
            assert_eq!(validate_affix("prefix", ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ABCDEFGHIJK",
            "A B",
            "A@",
            "A#",
            "A.B",
            "A,B",
            "\u{e9}t\u{e9}",
        ] {
            let err = validate_affix("suffix", bad).unwrap_err();
            assert_eq!((err.code, err.field), ("invalid_affix", "suffix"), "{bad}");
        }
    }

    #[test]
    fn resolve_affix_follows_the_capillary_faq() {
        let resolve =
            |enabled, custom, use_org, org| resolve_affix("prefix", enabled, custom, use_org, org);
        // Not configured: no prefix, and a value without the switch is refused, not ignored.
        assert_eq!(resolve(None, None, false, Some("ORG")), Ok(None));
        let unswitched = resolve(None, Some("X"), false, None).unwrap_err();
        assert_eq!(
            (unswitched.code, unswitched.field),
            ("invalid_affix", "prefix")
        );
        assert!(resolve(None, None, true, Some("ORG")).is_err());
        // Disabled: no prefix whatever else is set (FAQ 5, 8).
        assert_eq!(resolve(Some(false), Some("X"), true, Some("ORG")), Ok(None));
        assert_eq!(resolve(Some(false), None, true, None), Ok(None));
        // Enabled with the org default (FAQ 3: it must exist).
        assert_eq!(
            resolve(Some(true), None, true, Some("ORG")),
            Ok(Some("ORG".into()))
        );
        assert_eq!(
            resolve(Some(true), Some("X"), true, Some("ORG")),
            Ok(Some("ORG".into()))
        );
        let missing = resolve(Some(true), Some("X"), true, None).unwrap_err();
        assert_eq!(
            (missing.code, missing.field),
            ("org_default_missing", "prefix")
        );
        // Enabled without the override: the custom value, case preserved (FAQ 4, 7).
        assert_eq!(
            resolve(Some(true), Some("Summer"), false, Some("ORG")),
            Ok(Some("Summer".into()))
        );
        let bad = resolve(Some(true), Some("SUMMER SALE"), false, None).unwrap_err();
        assert_eq!((bad.code, bad.field), ("invalid_affix", "prefix"));
        // Enabled with neither.
        let neither = resolve(Some(true), None, false, Some("ORG")).unwrap_err();
        assert_eq!((neither.code, neither.field), ("invalid_affix", "prefix"));
        // Both at once (FAQ 10).
        let suffix = resolve_affix("suffix", Some(true), Some("-END"), false, None);
        assert_eq!(suffix, Ok(Some("-END".into())));
    }

    #[test]
    fn randomized_common_keeps_the_first_half_and_randomizes_the_rest() {
        for (sample, pattern) in [
            ("TEST12345", "TEST#####"),
            ("12345", "12###"),
            ("ABCDEFGHIJ", "ABCDE$$$$$"),
            ("AB1C2", "AB$$$"),
            ("abc12", "ab***"),
            ("Test12345", "Test#####"),
            ("TESTab", "TES***"),
        ] {
            assert_eq!(
                randomized_common_pattern(sample).as_deref(),
                Ok(pattern),
                "{sample}"
            );
        }
        for bad in [
            "TEST",
            "ABCDEFGHIJK",
            "TEST-1234",
            "TEST 1234",
            "T\u{e9}ST1",
        ] {
            let err = randomized_common_pattern(bad).unwrap_err();
            assert_eq!(
                (err.code, err.field),
                ("invalid_sample", "sample_code"),
                "{bad}"
            );
        }
    }

    #[test]
    fn escaped_literals_parse_back_to_themselves() {
        let text = r"50%OFF#1@^*$\";
        let pattern = parse(&escape_literals(text));
        assert_eq!(pattern.common_code().as_deref(), Some(text));
    }

    #[test]
    fn a_bulk_pattern_needs_four_placeholders() {
        let err = check_bulk_batch(&parse("SALE-###"), 0, 1).unwrap_err();
        assert_eq!((err.code, err.field), ("too_few_placeholders", "pattern"));
        assert_eq!(
            err.message,
            "a bulk pattern needs at least 4 placeholders; this one has 3"
        );
        assert_eq!(check_bulk_batch(&parse("SALE-####"), 0, 100), Ok(()));
    }

    #[test]
    fn a_bulk_batch_may_use_at_most_one_percent_of_the_space() {
        let pattern = parse("#####");
        assert_eq!(check_bulk_batch(&pattern, 0, 1000), Ok(()));
        let err = check_bulk_batch(&pattern, 0, 2000).unwrap_err();
        assert_eq!((err.code, err.field), ("bulk_too_large", "count"));
        assert_eq!(
            err.message,
            "a batch of 2000 exceeds 1% of the 100000 combinations of this pattern (1000)"
        );
        assert_eq!(check_bulk_batch(&pattern, 600, 400), Ok(()));
        let err = check_bulk_batch(&pattern, 600, 401).unwrap_err();
        assert_eq!(
            err.message,
            "a batch of 401 on top of the 600 codes already generated exceeds 1% of the 100000 \
             combinations of this pattern (1000)"
        );
    }

    #[test]
    fn bulk_batches_and_pools_have_absolute_limits() {
        let huge = parse("$$$$$$$$$$");
        assert_eq!(check_bulk_batch(&huge, 0, MAX_BULK_BATCH), Ok(()));
        let err = check_bulk_batch(&huge, 0, MAX_BULK_BATCH + 1).unwrap_err();
        assert_eq!(
            err.message,
            "a batch of 5000001 exceeds the 5000000 codes allowed at a time"
        );
        assert_eq!(check_bulk_batch(&huge, 95_000_000, 5_000_000), Ok(()));
        let err = check_bulk_batch(&huge, 95_000_001, 5_000_000).unwrap_err();
        assert_eq!((err.code, err.field), ("bulk_too_large", "count"));
        assert!(err.message.contains("100000000"), "{}", err.message);
        assert_eq!(
            check_bulk_batch(&huge, 0, 0).unwrap_err().code,
            "invalid_count"
        );
    }

    #[test]
    fn errors_display_their_field_and_message() {
        let err = Pattern::parse(&spec("")).unwrap_err();
        assert_eq!(err.to_string(), "pattern: must not be empty");
    }
}
