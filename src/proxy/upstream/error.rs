//! How an upstream exchange failed, sorted by the status it implies.

use std::error::Error as _;

use crate::http::body::{BodyTooLarge, BoxError, ClientBodyError};
use crate::telemetry::metrics::UpstreamErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to the upstream")]
    Connect(#[source] BoxError),
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream closed or reset the connection")]
    Reset(#[source] BoxError),
    #[error("the upstream sent a malformed response")]
    Protocol(#[source] BoxError),
    #[error("the request body is larger than the {0}-byte limit")]
    BodyTooLarge(u64),
    /// The client's body broke off mid-stream (malformed chunking, a reset).
    #[error("the request body is malformed or was cut off")]
    ClientBody(#[source] BoxError),
}

impl UpstreamError {
    /// The `kind` label of `gateway_upstream_errors_total`; `None` for the client's fault.
    pub fn metric_kind(&self) -> Option<UpstreamErrorKind> {
        match self {
            UpstreamError::Connect(_) => Some(UpstreamErrorKind::Connect),
            UpstreamError::Timeout => Some(UpstreamErrorKind::Timeout),
            UpstreamError::Reset(_) => Some(UpstreamErrorKind::Reset),
            UpstreamError::Protocol(_) => Some(UpstreamErrorKind::Protocol),
            UpstreamError::BodyTooLarge(_) | UpstreamError::ClientBody(_) => None,
        }
    }

    /// Sorts a failure after the request was handed to a connection.
    pub fn from_send(e: hyper::Error) -> UpstreamError {
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(too_large) = s.downcast_ref::<BodyTooLarge>() {
                return UpstreamError::BodyTooLarge(too_large.0);
            }
            if s.is::<ClientBodyError>() {
                return UpstreamError::ClientBody(Box::new(e));
            }
            source = s.source();
        }
        match e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
            true => UpstreamError::Protocol(Box::new(e)),
            false => UpstreamError::Reset(Box::new(e)),
        }
    }
}
