//! `cors`, and a route's own `cors:` policy.

use std::str::FromStr;
use std::time::Duration;

use http::Uri;

use crate::config::model::CorsPolicy;
use crate::config::raw;

use super::Validator;

impl Validator<'_> {
    pub(super) fn cors(&mut self, c: raw::Cors, path: &str) -> CorsPolicy {
        let origins: Vec<String> = c
            .allow_origins
            .unwrap_or_default()
            .iter()
            .map(|o| o.to_ascii_lowercase())
            .collect();
        let any_origin = origins.iter().any(|o| o == "*");
        if any_origin && origins.len() > 1 {
            self.err(
                &format!("{path}.allow_origins"),
                "`*` must be the only entry when present",
            );
        }
        for (i, o) in origins.iter().enumerate().filter(|(_, o)| *o != "*") {
            if !is_origin(o) {
                self.err(
                    &format!("{path}.allow_origins[{i}]"),
                    format!("{o:?} is not an origin; write scheme://host[:port] with no path"),
                );
            }
        }
        let allow_credentials = c.allow_credentials.unwrap_or(false);
        if any_origin && allow_credentials {
            self.err(&format!("{path}.allow_credentials"), "`allow_origins: [\"*\"]` with `allow_credentials: true` is refused by browsers; list the origins instead");
        }
        let methods = c.allow_methods.unwrap_or_else(|| {
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec()
        });
        CorsPolicy {
            allow_origins: origins,
            any_origin,
            allow_methods: self.methods(&format!("{path}.allow_methods"), &methods),
            allow_headers: c
                .allow_headers
                .unwrap_or_else(|| vec!["Authorization".into(), "Content-Type".into()]),
            expose_headers: c
                .expose_headers
                .unwrap_or_else(|| vec!["X-Request-Id".into()]),
            allow_credentials,
            max_age: self.duration(
                &format!("{path}.max_age"),
                c.max_age,
                Duration::from_secs(600),
            ),
        }
    }
}

fn is_origin(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && !rest.is_empty()
        && !rest.contains('/')
        && Uri::from_str(o).is_ok_and(|u| u.host().is_some())
}
