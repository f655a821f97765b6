//! Bulk code generation from a keyed pseudo-random permutation of a pattern's combination space.
//!
//! A pool keeps a secret key and a cursor. Position p = 0, 1, 2, ... goes through a balanced Feistel
//! network over the smallest even-bit domain holding the N combinations, walking the cycle until
//! the result is below N; that index is decoded into the placeholders by [`Pattern::code_at`]. A
//! permutation never repeats, so any batch is unique with no dedup set, in constant memory, and the
//! next batch continues from the cursor. Codes containing an excluded phrase are skipped: the
//! cursor moves past them and the batch still gets its full count.
//!
//! The round function is a cheap keyed mixer, not a cipher: it keeps consecutive codes from
//! looking related and the order unknown without the key, at millions of codes a second. The 1%
//! bulk rule is what keeps guessing a valid code hopeless.

use sha2::{Digest, Sha512};

use super::pattern::Pattern;

/// Feistel rounds; each takes a 64-bit key from the SHA-512 of the pool key.
const ROUNDS: usize = 8;
/// Separates these round keys from any other use of a pool key.
const KEY_CONTEXT: &[u8] = b"coupond generator v1\0";

/// Makes the codes of one pattern under one key.
pub struct Generator {
    pattern: Pattern,
    permutation: Permutation,
    /// Positions run over [0, end): the combinations, or as many as a u64 cursor can reach.
    end: u64,
}

impl Generator {
    /// Any bytes make a key; pools pass their stored key string (see [`Generator::new_key`]) as is.
    pub fn new(pattern: &Pattern, key: &[u8]) -> Generator {
        let combinations = pattern.combinations();
        Generator {
            pattern: pattern.clone(),
            permutation: Permutation::new(combinations, key),
            end: u64::try_from(combinations).unwrap_or(u64::MAX),
        }
    }

    /// A fresh random key for a pool, as lowercase hex (32 random bytes).
    pub fn new_key() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    /// Codes from permutation position `cursor` on; each item is (code, cursor after it). Ends
    /// when the space is exhausted.
    pub fn codes_from(&self, cursor: u64) -> impl Iterator<Item = (String, u64)> + '_ {
        Codes {
            generator: self,
            position: cursor,
        }
    }

    /// Up to `want` codes from position `cursor` on, sorted, with the cursor after the last
    /// one taken; an empty batch means the space is exhausted.
    pub fn sorted_batch(&self, cursor: u64, want: usize) -> (SortedCodes, u64) {
        let mut next = cursor;
        let codes = self.codes_from(cursor).take(want).map(|(code, after)| {
            next = after;
            code
        });
        let batch = SortedCodes::new(codes);
        (batch, next)
    }

    /// The codes of positions `from..to`, sorted: a batch taken before, made again.
    pub fn sorted_between(&self, from: u64, to: u64) -> SortedCodes {
        let codes = self.codes_from(from).take_while(|(_, after)| *after <= to);
        SortedCodes::new(codes.map(|(code, _)| code))
    }
}

/// A batch of codes in byte order (PostgreSQL's order under the C collation), held in one
/// buffer rather than one allocation each: five million 15-character codes take about 115 MB
/// instead of about 280 MB as strings.
pub struct SortedCodes {
    text: String,
    /// (start, length) of each code in `text`, in sorted order.
    spans: Vec<(u32, u32)>,
}

impl SortedCodes {
    fn new(codes: impl Iterator<Item = String>) -> SortedCodes {
        let mut text = String::new();
        let mut spans = Vec::new();
        for code in codes {
            spans.push((text.len() as u32, code.len() as u32));
            text.push_str(&code);
        }
        spans.sort_unstable_by(|&a, &b| span(&text, a).cmp(span(&text, b)));
        SortedCodes { text, spans }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The codes from the `from`-th in sorted order, in slices of at most `size`.
    pub fn chunks(&self, from: usize, size: usize) -> impl Iterator<Item = Vec<&str>> + '_ {
        let spans = self.spans.get(from..).unwrap_or_default();
        let text = &self.text;
        spans
            .chunks(size)
            .map(move |chunk| chunk.iter().map(|&at| span(text, at)).collect())
    }
}

/// The code at `(start, length)` of a batch's buffer.
fn span(text: &str, (start, len): (u32, u32)) -> &str {
    &text[start as usize..(start + len) as usize]
}

struct Codes<'a> {
    generator: &'a Generator,
    position: u64,
}

impl Iterator for Codes<'_> {
    type Item = (String, u64);

    fn next(&mut self) -> Option<(String, u64)> {
        let generator = self.generator;
        while self.position < generator.end {
            let index = generator.permutation.index_of(self.position);
            self.position += 1;
            if let Some(code) = generator.pattern.code_at(index) {
                return Some((code, self.position));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.generator.end.saturating_sub(self.position);
        (0, usize::try_from(left).ok())
    }
}

/// A keyed bijection of [0, size).
struct Permutation {
    size: u128,
    half_bits: u32,
    half_mask: u64,
    keys: [u64; ROUNDS],
}

impl Permutation {
    fn new(size: u128, key: &[u8]) -> Permutation {
        // Smallest even number of bits holding [0, size), at least 2 so that each half has a bit;
        // the domain is then under 4 × size, so cycle walking takes under 4 steps on average.
        let bits = (u128::BITS - size.saturating_sub(1).leading_zeros())
            .max(2)
            .next_multiple_of(2);
        let half_bits = bits / 2;
        Permutation {
            size,
            half_bits,
            half_mask: u64::MAX >> (64 - half_bits),
            keys: round_keys(key),
        }
    }

    /// The index at `position`; cycle walking keeps it below `size`, and stops because the
    /// cycle through `position` comes back to it.
    fn index_of(&self, position: u64) -> u128 {
        let mut index = self.encrypt(u128::from(position));
        while index >= self.size {
            index = self.encrypt(index);
        }
        index
    }

    fn encrypt(&self, block: u128) -> u128 {
        let mut left = (block >> self.half_bits) as u64;
        let mut right = block as u64 & self.half_mask;
        for key in self.keys {
            (left, right) = (right, left ^ self.round(right, key));
        }
        (u128::from(left) << self.half_bits) | u128::from(right)
    }

    /// `half_bits` pseudo-random bits of a half under a round key: the top bits of a
    /// SplitMix64 finalizer, which are its best mixed.
    fn round(&self, half: u64, key: u64) -> u64 {
        let mut z = half ^ key;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) >> (64 - self.half_bits)
    }
}

fn round_keys(key: &[u8]) -> [u64; ROUNDS] {
    let digest = Sha512::new()
        .chain_update(KEY_CONTEXT)
        .chain_update(key)
        .finalize();
    let mut keys = [0; ROUNDS];
    for (round_key, bytes) in keys.iter_mut().zip(digest.chunks_exact(8)) {
        *round_key = u64::from_le_bytes(bytes.try_into().expect("chunks of 8 bytes"));
    }
    keys
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::domain::pattern::PatternSpec;

    fn pattern(pattern: &str, exclude_phrases: &[String]) -> Pattern {
        Pattern::parse(&PatternSpec {
            pattern,
            exclude_chars: &[],
            exclude_phrases,
            prefix: None,
            suffix: None,
            check_char: false,
            case_insensitive: false,
        })
        .unwrap()
    }

    fn codes(generator: &Generator, cursor: u64, count: usize) -> Vec<String> {
        generator
            .codes_from(cursor)
            .take(count)
            .map(|(code, _)| code)
            .collect()
    }

    #[test]
    fn a_million_codes_are_unique_and_fit_the_pattern() {
        let pattern = pattern("$$$$$-$$$$$", &[]);
        let generator = Generator::new(&pattern, b"pool key");
        let mut seen = HashSet::with_capacity(1_000_000);
        for (code, _) in generator.codes_from(0).take(1_000_000) {
            assert!(pattern.verify(&code), "{code}");
            assert!(seen.insert(code));
        }
        assert_eq!(seen.len(), 1_000_000);
    }

    #[test]
    fn a_batch_continues_where_the_last_one_stopped() {
        let generator = Generator::new(&pattern("^^^^##", &[]), b"k");
        let first: Vec<(String, u64)> = generator.codes_from(0).take(1000).collect();
        let cursor = first.last().unwrap().1;
        assert_eq!(cursor, 1000);
        let mut both: Vec<String> = first.into_iter().map(|(code, _)| code).collect();
        both.extend(codes(&generator, cursor, 1000));
        assert_eq!(both, codes(&generator, 0, 2000));
    }

    #[test]
    fn the_same_key_gives_the_same_codes_and_another_key_another_order() {
        let pattern = pattern("$$$$$$", &[]);
        let a = Generator::new(&pattern, b"key a");
        let again = Generator::new(&pattern, b"key a");
        let b = Generator::new(&pattern, b"key b");
        assert_eq!(codes(&a, 0, 100), codes(&again, 0, 100));
        assert_ne!(codes(&a, 0, 100), codes(&b, 0, 100));
        assert_ne!(
            codes(&a, 0, 1)[0],
            "000000",
            "the order is not the index order"
        );
    }

    #[test]
    fn a_tiny_space_is_exhausted_exactly() {
        let generator = Generator::new(&pattern("##", &[]), b"k");
        let all: Vec<(String, u64)> = generator.codes_from(0).collect();
        assert_eq!(all.len(), 100);
        assert_eq!(all.last().unwrap().1, 100);
        let distinct: HashSet<&String> = all.iter().map(|(code, _)| code).collect();
        assert_eq!(distinct.len(), 100);
        assert_eq!(generator.codes_from(100).next(), None);
    }

    #[test]
    fn excluded_phrases_are_skipped_without_gaps_in_the_count() {
        let phrases = ["A".to_string(), "zz".to_string()];
        let pattern = pattern("^@", &phrases);
        let generator = Generator::new(&pattern, b"k");
        let first: Vec<(String, u64)> = generator.codes_from(0).take(300).collect();
        assert_eq!(first.len(), 300);
        let cursor = first.last().unwrap().1;
        assert!(cursor > 300, "some positions were skipped");
        let rest: Vec<(String, u64)> = generator.codes_from(cursor).collect();
        let all: HashSet<String> = first.into_iter().chain(rest).map(|(c, _)| c).collect();
        // Phrases ignore case: 51 codes hold an A or an a, and Zz is the other one left out.
        assert_eq!(all.len(), 26 * 26 - 52);
        assert!(
            all.iter()
                .all(|code| !code.contains(['A', 'a']) && code != "Zz")
        );
    }

    #[test]
    fn every_domain_size_is_a_permutation() {
        for size in [1u128, 2, 3, 4, 5, 17, 64, 100, 1000, 4097] {
            let permutation = Permutation::new(size, b"k");
            let end = u64::try_from(size).unwrap();
            let indexes: HashSet<u128> = (0..end).map(|p| permutation.index_of(p)).collect();
            assert_eq!(indexes.len() as u128, size);
            assert!(indexes.iter().all(|&i| i < size));
        }
    }

    #[test]
    fn spaces_beyond_a_u64_still_make_valid_codes() {
        let pattern = pattern(&"*".repeat(21), &[]);
        let generator = Generator::new(&pattern, b"k");
        let codes = codes(&generator, u64::MAX - 10, 100);
        assert_eq!(codes.len(), 10, "a u64 cursor ends the iteration");
        assert!(codes.iter().all(|code| pattern.verify(code)));
    }

    #[test]
    fn a_common_pattern_makes_its_one_code() {
        let generator = Generator::new(&pattern("SPRING", &[]), b"k");
        assert_eq!(
            generator.codes_from(0).collect::<Vec<_>>(),
            [("SPRING".to_string(), 1)]
        );
    }

    #[test]
    fn a_sorted_batch_holds_the_same_codes_in_order_and_can_be_made_again() {
        let generator = Generator::new(&pattern("SB-#####", &["13".into()]), b"key");
        let (batch, next) = generator.sorted_batch(7, 5_000);
        let mut expected = codes(&generator, 7, 5_000);
        expected.sort();
        let all: Vec<&str> = batch.chunks(0, 1_000).flatten().collect();
        assert_eq!(all, expected);
        assert!(
            next > 7 + 5_000,
            "excluded phrases move the cursor further: {next}"
        );
        let again = generator.sorted_between(7, next);
        let tail: Vec<&str> = again.chunks(4_990, 3).flatten().collect();
        assert_eq!(tail, expected[4_990..]);
        assert_eq!(again.len(), 5_000);
    }

    #[test]
    fn a_batch_past_the_end_of_the_space_is_empty() {
        let generator = Generator::new(&pattern("#", &[]), b"key");
        let (batch, next) = generator.sorted_batch(0, 50);
        assert_eq!((batch.len(), next), (10, 10));
        let (rest, after) = generator.sorted_batch(next, 50);
        assert!(rest.is_empty());
        assert_eq!(after, next);
    }

    #[test]
    fn new_keys_are_64_hex_digits_and_differ() {
        let key = Generator::new_key();
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(key, Generator::new_key());
    }
}
