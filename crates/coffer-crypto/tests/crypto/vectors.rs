//! Loading the committed known-answer files (tests/vectors/, sources in its README).

use std::path::PathBuf;

use serde_json::Value;

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

pub fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(path(name)).expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

pub fn hex_field(case: &Value, name: &str) -> Vec<u8> {
    hex::decode(case[name].as_str().unwrap_or("")).expect("hex field")
}

/// Each test case of a Wycheproof file with its group.
pub fn wycheproof_cases(name: &str) -> Vec<(Value, Value)> {
    let data = json(name);
    let mut out = Vec::new();
    for group in data["testGroups"].as_array().expect("testGroups") {
        for case in group["tests"].as_array().expect("tests") {
            out.push((group.clone(), case.clone()));
        }
    }
    out
}

pub fn is_valid(case: &Value) -> bool {
    case["result"] == "valid"
}
