//! `cors`, and a route's own `cors:` policy.

use std::str::FromStr;

use http::Uri;

use crate::config::model::CorsPolicy;
use crate::config::raw;

use super::Validator;

impl Validator<'_> {
    pub(super) fn cors(&mut self, c: raw::Cors, path: &str) -> CorsPolicy {
        let d = CorsPolicy::default();
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
        let allow_credentials = c.allow_credentials.unwrap_or(d.allow_credentials);
        if any_origin && allow_credentials {
            self.err(&format!("{path}.allow_credentials"), "`allow_origins: [\"*\"]` with `allow_credentials: true` is refused by browsers; list the origins instead");
        }
        let allow_methods = match c.allow_methods {
            Some(names) => self.methods(&format!("{path}.allow_methods"), &names),
            None => d.allow_methods,
        };
        CorsPolicy {
            allow_origins: origins,
            any_origin,
            allow_methods,
            allow_headers: c.allow_headers.unwrap_or(d.allow_headers),
            expose_headers: c.expose_headers.unwrap_or(d.expose_headers),
            allow_credentials,
            max_age: self.duration(&format!("{path}.max_age"), c.max_age, d.max_age),
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
