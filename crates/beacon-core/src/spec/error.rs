//! Why a job spec was refused: one code per rule, each with its HTTP status, so the
//! runner answers a clear 4xx naming the field and stores nothing.

use std::fmt;

/// The API error code of a refused spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecErrorCode {
    InvalidJson,
    PayloadTooLarge,
    InvalidSpec,
    InvalidCharacter,
    InvalidJobId,
    UnsupportedVersion,
    NoQuestions,
    UnknownQuestion,
    InvalidQuestion,
    DuplicateQuestion,
    NoModels,
    InvalidModel,
    NoRegions,
    UnknownRegion,
    InvalidDuration,
    InvalidMinSuccessRate,
    InvalidRuns,
    InvalidParams,
    LimitExceeded,
}

impl SpecErrorCode {
    pub fn as_str(self) -> &'static str {
        use SpecErrorCode::*;
        match self {
            InvalidJson => "INVALID_JSON",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            InvalidSpec => "INVALID_SPEC",
            InvalidCharacter => "INVALID_CHARACTER",
            InvalidJobId => "INVALID_JOB_ID",
            UnsupportedVersion => "UNSUPPORTED_VERSION",
            NoQuestions => "NO_QUESTIONS",
            UnknownQuestion => "UNKNOWN_QUESTION",
            InvalidQuestion => "INVALID_QUESTION",
            DuplicateQuestion => "DUPLICATE_QUESTION",
            NoModels => "NO_MODELS",
            InvalidModel => "INVALID_MODEL",
            NoRegions => "NO_REGIONS",
            UnknownRegion => "UNKNOWN_REGION",
            InvalidDuration => "INVALID_DURATION",
            InvalidMinSuccessRate => "INVALID_MIN_SUCCESS_RATE",
            InvalidRuns => "INVALID_RUNS",
            InvalidParams => "INVALID_PARAMS",
            LimitExceeded => "LIMIT_EXCEEDED",
        }
    }

    /// 413 for the body size, 400 for everything else.
    pub fn http_status(self) -> u16 {
        match self {
            SpecErrorCode::PayloadTooLarge => 413,
            _ => 400,
        }
    }
}

impl fmt::Display for SpecErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused spec: the code, a sentence for humans, and the JSON path of the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    pub code: SpecErrorCode,
    pub message: String,
    /// Dotted path of the offending field (`constraints.regions[2]`), when there is one.
    pub field: Option<String>,
}

impl SpecError {
    pub(crate) fn new(
        code: SpecErrorCode,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        SpecError {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn error_code(&self) -> &'static str {
        self.code.as_str()
    }

    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}
