//! The server's one error type and its one mapping to HTTP: Redox
//! `Meta.Errors` on the Data Model API and the operator API, FHIR
//! `OperationOutcome` on `/fhir`.

use actix_web::{HttpResponse, http::StatusCode};
use serde_json::{Value, json};

use crate::journal::JournalError;

/// What kind of failure; decides the HTTP status and the FHIR issue code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed or invalid input (400, FHIR `invalid`).
    Invalid,
    /// A required field is missing (400, FHIR `required`).
    Required,
    /// Authentication failed (401, FHIR `security`).
    Unauthorized,
    /// Authenticated, but the role does not allow it (403, FHIR `forbidden`).
    Forbidden,
    /// Unknown object (404, FHIR `not-found`).
    NotFound,
    /// Conflicts with the current state (409, FHIR `conflict`).
    Conflict,
    /// Body over the limit (413, FHIR `too-long`).
    TooLarge,
    /// Content type not JSON (415, FHIR `not-supported`).
    UnsupportedMediaType,
    /// The body did not arrive in time (408, FHIR `timeout`).
    RequestTimeout,
    /// Too many requests from one address (429, FHIR `throttled`).
    TooManyRequests,
    /// Well formed, but at odds with what was received before: an
    /// `Idempotency-Key` reused with another body (422, FHIR `business-rule`).
    Unprocessable,
    /// A destination failed to answer a query (502, FHIR `transient`).
    BadGateway,
    /// A destination did not answer a query in time (504, FHIR `timeout`).
    GatewayTimeout,
    /// The write-ahead log cannot take writes (503, FHIR `transient`).
    Unavailable,
    /// A bug or an unexpected failure (500, FHIR `exception`).
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            Self::Invalid | Self::Required => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Redox error `Type`.
    fn redox_type(self) -> &'static str {
        match self {
            Self::Invalid | Self::Required => "Validation",
            Self::Unauthorized => "Authentication",
            Self::Forbidden => "Authorization",
            Self::NotFound => "NotFound",
            Self::Conflict => "Conflict",
            Self::TooLarge => "PayloadTooLarge",
            Self::UnsupportedMediaType => "UnsupportedMediaType",
            Self::RequestTimeout => "Timeout",
            Self::TooManyRequests => "RateLimit",
            Self::Unprocessable => "Unprocessable",
            Self::BadGateway | Self::GatewayTimeout => "Destination",
            Self::Unavailable => "Unavailable",
            Self::Internal => "Internal",
        }
    }

    /// The FHIR `IssueType` code.
    fn fhir_code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Required => "required",
            Self::Unauthorized => "security",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::Conflict => "conflict",
            Self::TooLarge => "too-long",
            Self::UnsupportedMediaType => "not-supported",
            Self::RequestTimeout => "timeout",
            Self::TooManyRequests => "throttled",
            Self::Unprocessable => "business-rule",
            Self::BadGateway | Self::Unavailable => "transient",
            Self::GatewayTimeout => "timeout",
            Self::Internal => "exception",
        }
    }
}

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub text: String,
    /// Seconds the client should wait before trying again (`Retry-After`).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, text: impl Into<String>) -> Self {
        Self { kind, text: text.into(), retry_after_s: None }
    }

    /// The same error, telling the client to wait `seconds` first.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    fn response(&self) -> actix_web::HttpResponseBuilder {
        let mut builder = HttpResponse::build(self.status());
        if let Some(seconds) = self.retry_after_s {
            builder.insert_header(("retry-after", seconds.to_string()));
        }
        builder
    }

    pub fn invalid(text: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, text)
    }

    pub fn required(text: impl Into<String>) -> Self {
        Self::new(ErrorKind::Required, text)
    }

    pub fn unauthorized(text: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, text)
    }

    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, text)
    }

    pub fn conflict(text: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, text)
    }

    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, text)
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The Redox shape: `{"Meta": {"DataModel", "EventType", "Errors": [...]}}`.
    pub fn redox_body(&self, module: &str, data_model: Option<&str>, event_type: Option<&str>) -> Value {
        json!({
            "Meta": {
                "DataModel": data_model,
                "EventType": event_type,
                "Errors": [{
                    "ID": u32::from(self.status().as_u16()),
                    "Text": self.text,
                    "Type": self.kind.redox_type(),
                    "Module": module,
                }],
            }
        })
    }

    /// The FHIR shape: an `OperationOutcome` with one error issue.
    pub fn fhir_body(&self) -> Value {
        json!({
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "error",
                "code": self.kind.fhir_code(),
                "details": { "text": self.text },
            }],
        })
    }

    pub fn redox_response(&self, module: &str, data_model: Option<&str>, event_type: Option<&str>) -> HttpResponse {
        self.response().json(self.redox_body(module, data_model, event_type))
    }

    pub fn fhir_response(&self) -> HttpResponse {
        self.response().content_type("application/fhir+json").json(self.fhir_body())
    }
}

/// A journal that cannot take a write: nothing was acknowledged, so the
/// client may try again once the log takes writes again (503).
impl From<JournalError> for ApiError {
    fn from(e: JournalError) -> Self {
        tracing::error!(error = %e, "journal write failed");
        Self::new(ErrorKind::Unavailable, format!("the message could not be stored: {e}")).retry_after(1)
    }
}

/// Operator API errors render in the Redox shape with module `Admin`.
impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.redox_response("Admin", None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redox_and_fhir_shapes() {
        let e = ApiError::required("Required field missing - Patient in PatientAdmin:NewPatient");
        let body = e.redox_body("Send", Some("PatientAdmin"), Some("NewPatient"));
        assert_eq!(body["Meta"]["Errors"][0]["Text"], "Required field missing - Patient in PatientAdmin:NewPatient");
        assert_eq!(body["Meta"]["Errors"][0]["Module"], "Send");
        assert_eq!(body["Meta"]["DataModel"], "PatientAdmin");
        let fhir = e.fhir_body();
        assert_eq!(fhir["resourceType"], "OperationOutcome");
        assert_eq!(fhir["issue"][0]["code"], "required");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::new(ErrorKind::TooLarge, "x").fhir_body()["issue"][0]["code"], "too-long");
    }
}
