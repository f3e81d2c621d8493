//! The spec reader never panics: arbitrary bytes and arbitrary JSON give a plan or an
//! error, and any plan it returns honours the limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use beacon_core::Catalogue;
use beacon_core::spec::{Limits, read_spec, read_spec_bytes};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        // Values the reader looks for, so fuzzing reaches deep paths.
        prop_oneof![
            Just("US"),
            Just("math_basic"),
            Just("10m"),
            Just("llama3.2-1b"),
            Just("v1")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        let keys = prop_oneof![
            Just("id".to_string()),
            Just("questions".to_string()),
            Just("models".to_string()),
            Just("metadata".to_string()),
            Just("model".to_string()),
            Just("constraints".to_string()),
            Just("regions".to_string()),
            Just("runs".to_string()),
            Just("params".to_string()),
            Just("timeout".to_string()),
            Just("min_success_rate".to_string()),
            Just("text".to_string()),
            ".{0,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_spec_bytes(&bytes, &Catalogue::builtin(), &Limits::default());
    }

    #[test]
    fn arbitrary_json_never_panics_and_plans_respect_limits(v in any_json()) {
        let limits = Limits::default();
        if let Ok(plan) = read_spec(v.clone(), &Catalogue::builtin(), &limits) {
            prop_assert!(!plan.questions.is_empty() && !plan.models.is_empty() && !plan.regions.is_empty());
            prop_assert!(plan.total_executions() <= limits.max_executions);
            prop_assert_eq!(&plan.spec, &v);
        }
        let text = v.to_string();
        let _ = read_spec_bytes(text.as_bytes(), &Catalogue::builtin(), &limits);
    }

    #[test]
    fn mutated_valid_specs_never_panic(
        key in prop_oneof![Just("questions"), Just("models"), Just("constraints"), Just("runs"), Just("params"), Just("metadata"), Just("id")],
        v in any_json(),
    ) {
        let mut spec = json!({"id": "j", "questions": ["math_basic"], "models": ["m"],
                              "constraints": {"regions": ["EU"]}, "params": {"temperature": 0.1}});
        spec[key] = v;
        let _ = read_spec(spec, &Catalogue::builtin(), &Limits::default());
    }
}
