//! Arbitrary bytes through every entry point that reads X12: the raw
//! reader in both modes, the typed parse, validation (which includes 835
//! balancing), the 999 generator, and, when a document parses, writing it
//! back. None of them may panic.
#![no_main]

use billd_x12::writer::{SequentialControlNumbers, WriteOptions, write_document};
use billd_x12::{Mode, parse, read_raw};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_raw(data, Mode::Strict);
    let _ = read_raw(data, Mode::Lenient);
    let _ = billd_x12::validate::validate(data);
    let _ = billd_x12::t999::acknowledge(data);
    if let Ok(p) = parse(data, Mode::Lenient) {
        let mut n = SequentialControlNumbers::starting_at(1);
        let _ = write_document(&p.document, &WriteOptions::default(), &mut n);
    }
});
