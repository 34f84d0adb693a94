//! Prints the strict-parse outcome and every `validate` finding for the
//! files given on the command line (a quick look without the daemon).

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        match billd_x12::parse(&bytes, billd_x12::Mode::Strict) {
            Ok(_) => println!("{path}: parses"),
            Err(e) => println!("{path}: does not parse: {e}"),
        }
        match billd_x12::validate::validate(&bytes) {
            Ok(p) => {
                for i in &p.issues {
                    println!("{path}: {i}");
                }
            }
            Err(e) => println!("{path}: unreadable: {e}"),
        }
    }
}
