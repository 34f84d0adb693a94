fn input() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/{{ input_file }}");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Builds the connector (once per test run) and loads it.
fn harness() -> Harness {
    Harness::for_crate(env!("CARGO_MANIFEST_DIR"))
        .fixtures_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/http"))
        .secret("api-key", "test-key")
        .start()
        .expect("the connector builds and loads")
}
