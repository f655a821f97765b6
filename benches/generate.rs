//! Code generation throughput: a million codes of a 10-placeholder pattern, reported in codes/s.

use std::hint::black_box;

use coupond::domain::{
    generator::Generator,
    pattern::{Pattern, PatternSpec},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CODES: u64 = 1_000_000;

fn generate(c: &mut Criterion) {
    let pattern = Pattern::parse(&PatternSpec {
        pattern: "$$$$$-$$$$$",
        exclude_chars: &[],
        exclude_phrases: &[],
        prefix: None,
        suffix: None,
        check_char: false,
        case_insensitive: false,
    })
    .expect("a valid pattern");
    let generator = Generator::new(&pattern, Generator::new_key().as_bytes());
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(CODES));
    group.sample_size(10);
    group.bench_function("$$$$$-$$$$$", |b| {
        b.iter(|| {
            generator
                .codes_from(black_box(0))
                .take(CODES as usize)
                .map(|(code, _)| code.len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
