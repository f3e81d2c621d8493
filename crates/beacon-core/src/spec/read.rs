//! Every reading rule of a job spec (runner.md "Job spec"), applied once at the edge.
//! The reader never panics: any bytes or JSON give a plan or a [`SpecError`].

use serde_json::{Map, Value};

use super::error::SpecErrorCode as Code;
use super::{JobPlan, Limits, PlannedModel, PlannedQuestion, SpecError};
use crate::catalogue::Catalogue;
use crate::ids::{JobId, ModelId, QuestionId};
use crate::region::Region;

type Result<T> = std::result::Result<T, SpecError>;

/// Reads a request body: size limit, JSON syntax, then [`read_spec`].
pub fn read_spec_bytes(body: &[u8], catalogue: &Catalogue, limits: &Limits) -> Result<JobPlan> {
    if body.len() > limits.max_body_bytes {
        return Err(SpecError::new(
            Code::PayloadTooLarge,
            "body",
            format!(
                "body is {} bytes; the limit is {} bytes",
                body.len(),
                limits.max_body_bytes
            ),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| SpecError {
        code: Code::InvalidJson,
        message: format!("body is not valid JSON: {e}"),
        field: None,
    })?;
    read_spec(value, catalogue, limits)
}

/// The path of the first key or string holding U+0000. NUL has no use in a spec and
/// PostgreSQL text cannot store it: refused here, the same on both backends.
fn nul_path(v: &Value, path: String) -> Option<String> {
    match v {
        Value::String(s) => s.contains('\0').then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let here = format!("{path}.{}", k.replace('\0', "\\u0000"));
            if k.contains('\0') {
                Some(here)
            } else {
                nul_path(item, here)
            }
        }),
        _ => None,
    }
}

/// Validates a parsed spec into a plan. The value is kept verbatim inside the plan.
pub fn read_spec(spec: Value, catalogue: &Catalogue, limits: &Limits) -> Result<JobPlan> {
    let Value::Object(obj) = &spec else {
        return Err(SpecError::new(
            Code::InvalidSpec,
            "$",
            "a job spec must be a JSON object",
        ));
    };
    if let Some(path) = nul_path(&spec, "$".to_string()) {
        let path = path.strip_prefix("$.").unwrap_or(&path).to_string();
        return Err(SpecError::new(
            Code::InvalidCharacter,
            path.clone(),
            format!("{path} contains U+0000 (NUL), which no field of a job spec may hold"),
        ));
    }
    let id = read_id(obj)?;
    check_version(obj)?;
    let benchmark = obj
        .get("benchmark")
        .and_then(|b| b.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let questions = read_questions(obj, catalogue, limits)?;
    let models = read_models(obj, limits)?;
    let constraints = match obj.get("constraints") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => Some(c),
        Some(_) => return Err(invalid("constraints", "constraints must be an object")),
    };
    let regions = read_regions(constraints, limits)?;
    let runs = read_runs(obj, limits)?;
    let options = super::options::read_options(obj, constraints)?;

    let total = questions
        .len()
        .saturating_mul(models.len())
        .saturating_mul(regions.len())
        .saturating_mul(runs as usize);
    if total > limits.max_executions {
        return Err(SpecError::new(
            Code::LimitExceeded,
            "executions",
            format!(
                "the job has {total} executions (questions × models × regions × runs); the limit is {}",
                limits.max_executions
            ),
        ));
    }
    Ok(JobPlan {
        id,
        benchmark,
        questions,
        models,
        regions,
        runs,
        options,
        spec,
    })
}

pub(super) fn invalid(field: &str, message: impl Into<String>) -> SpecError {
    SpecError::new(Code::InvalidSpec, field, message)
}

fn over_limit(field: &str, what: &str, got: usize, limit: usize) -> SpecError {
    SpecError::new(
        Code::LimitExceeded,
        field,
        format!("{got} {what}; the limit is {limit}"),
    )
}

fn read_id(obj: &Map<String, Value>) -> Result<JobId> {
    match obj.get("id") {
        Some(Value::String(s)) => {
            JobId::parse(s).map_err(|e| SpecError::new(Code::InvalidJobId, "id", e.to_string()))
        }
        None | Some(Value::Null) => Err(SpecError::new(
            Code::InvalidJobId,
            "id",
            "the spec has no id",
        )),
        Some(_) => Err(SpecError::new(
            Code::InvalidJobId,
            "id",
            "id must be a string",
        )),
    }
}

fn check_version(obj: &Map<String, Value>) -> Result<()> {
    match obj.get("version") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(v)) if v.eq_ignore_ascii_case("v1") => Ok(()),
        Some(other) => Err(SpecError::new(
            Code::UnsupportedVersion,
            "version",
            format!("spec version {other} is not supported; this runner reads \"v1\""),
        )),
    }
}

fn read_questions(
    obj: &Map<String, Value>,
    catalogue: &Catalogue,
    limits: &Limits,
) -> Result<Vec<PlannedQuestion>> {
    let items = match obj.get("questions") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("questions", "questions must be an array")),
    };
    if items.is_empty() {
        return Err(SpecError::new(
            Code::NoQuestions,
            "questions",
            "the job asks no questions",
        ));
    }
    if items.len() > limits.max_questions {
        return Err(over_limit(
            "questions",
            "questions",
            items.len(),
            limits.max_questions,
        ));
    }
    let mut out: Vec<PlannedQuestion> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("questions[{i}]");
        let q = read_question(item, &field, catalogue, limits)?;
        match out.iter().find(|seen| seen.id == q.id) {
            // The same question twice is a harmless repeat; drop it, keep order.
            Some(seen) if seen.text == q.text => continue,
            Some(_) => {
                return Err(SpecError::new(
                    Code::DuplicateQuestion,
                    field,
                    format!("question id {} is given twice with different texts", q.id),
                ));
            }
            None => out.push(q),
        }
    }
    Ok(out)
}

fn read_question(
    item: &Value,
    field: &str,
    catalogue: &Catalogue,
    limits: &Limits,
) -> Result<PlannedQuestion> {
    match item {
        Value::String(id) => {
            let Some(q) = catalogue.get(id) else {
                return Err(SpecError::new(
                    Code::UnknownQuestion,
                    field,
                    format!(
                        "unknown question id {:?}; see GET /api/v1/questions",
                        truncate(id)
                    ),
                ));
            };
            Ok(PlannedQuestion {
                id: q.id.clone(),
                text: q.text.clone(),
                category: q.category.clone(),
                sensitive: q.sensitive,
                markers: q.markers.clone(),
                inline: false,
            })
        }
        Value::Object(o) => {
            let bad = |msg: String| SpecError::new(Code::InvalidQuestion, field, msg);
            let id = o
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("an inline question needs a string id".into()))?;
            let id = QuestionId::parse(id).map_err(|e| bad(e.to_string()))?;
            let text = o
                .get("text")
                .and_then(Value::as_str)
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| bad(format!("inline question {id} needs a non-empty text")))?;
            if text.len() > limits.max_question_text_bytes {
                return Err(over_limit(
                    &format!("{field}.text"),
                    "bytes of question text",
                    text.len(),
                    limits.max_question_text_bytes,
                ));
            }
            let category = o
                .get("category")
                .and_then(Value::as_str)
                .unwrap_or("custom")
                .to_string();
            let markers = match o.get("markers") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(m)) => m
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("markers must be strings".into()))?,
                Some(_) => return Err(bad("markers must be an array of strings".into())),
            };
            // A custom question is sensitive unless it says it is a control.
            let sensitive = o.get("sensitive").and_then(Value::as_bool).unwrap_or(
                catalogue.get(id.as_str()).is_none_or(|q| q.sensitive)
                    && category != "control_questions",
            );
            Ok(PlannedQuestion {
                id,
                text: text.to_string(),
                category,
                sensitive,
                markers,
                inline: true,
            })
        }
        _ => Err(SpecError::new(
            Code::InvalidQuestion,
            field,
            "a question is a catalogue id or an object {id, text}",
        )),
    }
}

/// Models come from `models`, else `metadata.models`, else `metadata.model`.
fn read_models(obj: &Map<String, Value>, limits: &Limits) -> Result<Vec<PlannedModel>> {
    let metadata = obj.get("metadata").and_then(Value::as_object);
    let present = |v: Option<&Value>| match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    let (field, source) = if present(obj.get("models")) {
        ("models", obj.get("models"))
    } else if present(metadata.and_then(|m| m.get("models"))) {
        ("metadata.models", metadata.and_then(|m| m.get("models")))
    } else if present(metadata.and_then(|m| m.get("model"))) {
        ("metadata.model", metadata.and_then(|m| m.get("model")))
    } else {
        return Err(SpecError::new(
            Code::NoModels,
            "models",
            "the job names no model (models, metadata.models or metadata.model)",
        ));
    };
    let single;
    let items: &[Value] = match source {
        Some(Value::Array(a)) => a,
        Some(v @ Value::String(_)) => {
            single = [v.clone()];
            &single
        }
        _ => {
            return Err(SpecError::new(
                Code::InvalidModel,
                field,
                format!("{field} must be an array of model ids"),
            ));
        }
    };
    if items.len() > limits.max_models {
        return Err(over_limit(field, "models", items.len(), limits.max_models));
    }
    let mut out: Vec<PlannedModel> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let (raw_id, name) = match item {
            Value::String(s) => (s.as_str(), None),
            Value::Object(o) => match o.get("id").and_then(Value::as_str) {
                Some(id) => (
                    id,
                    o.get("name").and_then(Value::as_str).map(str::to_string),
                ),
                None => {
                    return Err(SpecError::new(
                        Code::InvalidModel,
                        at,
                        "a model object needs a string id",
                    ));
                }
            },
            _ => {
                return Err(SpecError::new(
                    Code::InvalidModel,
                    at,
                    "a model is an id string or an object {id, name}",
                ));
            }
        };
        let id = ModelId::parse(raw_id)
            .map_err(|e| SpecError::new(Code::InvalidModel, at.clone(), e.to_string()))?;
        if !out.iter().any(|m| m.id == id) {
            out.push(PlannedModel { id, name });
        }
    }
    Ok(out)
}

fn read_regions(constraints: Option<&Map<String, Value>>, limits: &Limits) -> Result<Vec<Region>> {
    let items = match constraints.and_then(|c| c.get("regions")) {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(invalid(
                "constraints.regions",
                "constraints.regions must be an array",
            ));
        }
    };
    if items.is_empty() {
        return Err(SpecError::new(
            Code::NoRegions,
            "constraints.regions",
            "the job names no region (constraints.regions)",
        ));
    }
    if items.len() > limits.max_regions {
        return Err(over_limit(
            "constraints.regions",
            "regions",
            items.len(),
            limits.max_regions,
        ));
    }
    let mut out: Vec<Region> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("constraints.regions[{i}]");
        let region = item
            .as_str()
            .ok_or_else(|| SpecError::new(Code::UnknownRegion, at.clone(), "a region is a string"))
            .and_then(|s| {
                Region::parse(s).map_err(|e| SpecError::new(Code::UnknownRegion, at, e.to_string()))
            })?;
        // `US` and `us-east` are one region: ask it once.
        if !out.contains(&region) {
            out.push(region);
        }
    }
    Ok(out)
}

fn read_runs(obj: &Map<String, Value>, limits: &Limits) -> Result<u32> {
    let runs = match obj.get("runs") {
        None | Some(Value::Null) => return Ok(1),
        Some(v) => v.as_u64().filter(|r| *r >= 1).ok_or_else(|| {
            SpecError::new(Code::InvalidRuns, "runs", "runs must be a whole number ≥ 1")
        })?,
    };
    if runs > u64::from(limits.max_runs) {
        return Err(over_limit(
            "runs",
            "runs",
            runs.min(usize::MAX as u64) as usize,
            limits.max_runs as usize,
        ));
    }
    Ok(runs as u32)
}

pub(super) fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
