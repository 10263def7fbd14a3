//! What the client does with one answer: the retry policy, pure.
//!
//! [`classify`] reads a status, the answer's body and what this call has
//! already been through, and says what comes next; `Client::call` only
//! carries it out (waits, refreshes, sends again). Kept apart so the policy
//! is read, and tested, without a server or a clock.

use jiff::SignedDuration;

use super::error::{ApiError, ErrorBody};

/// 429s are waited out without counting as attempts, but no more than
/// this many times for one call.
pub const MAX_THROTTLES: u32 = 10;

/// What one call has been through so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// The access token was refreshed once after a 401.
    pub refreshed: bool,
    /// 429s answered so far.
    pub throttles: u32,
}

/// What to do after an answer.
#[derive(Debug)]
pub enum Step {
    /// A success: hand the answer back.
    Done,
    /// A 429 within the allowance: wait for the window (the budget has
    /// learnt it), then send again without spending an attempt. Carries
    /// the answer's request id, for the log.
    Throttled(Option<String>),
    /// A first 401: refresh the access token and send again; if no newer
    /// token can be had, fail with this error.
    Refresh(ApiError),
    /// Worth another attempt after a backoff (transport failure, 5xx);
    /// once attempts run out, fail with this error.
    Retry(ApiError),
    /// Final: fail with this error.
    Fail(ApiError),
}

/// The step after an answer with `status` and `body` to a call on
/// `bucket` (a team id, or the list-teams bucket), `echoed` being the
/// request id the server echoed or ours.
pub fn classify(
    status: u16,
    body: &[u8],
    echoed: &str,
    retry_after: Option<SignedDuration>,
    bucket: &str,
    team_call: bool,
    seen: Seen,
) -> Step {
    if (200..300).contains(&status) {
        return Step::Done;
    }
    let err_body = ErrorBody::parse(body);
    let request_id = err_body.request_id.clone().or(Some(echoed.to_owned()));
    let detail = err_body.summary(status);
    match status {
        429 if seen.throttles < MAX_THROTTLES => Step::Throttled(request_id),
        429 => Step::Fail(ApiError::RateLimited {
            team: bucket.to_owned(),
            retry_after,
            request_id,
        }),
        401 if !seen.refreshed => Step::Refresh(ApiError::Unauthorized { detail, request_id }),
        401 => Step::Fail(ApiError::Unauthorized { detail, request_id }),
        // A 403 on a team's call means "not an admin of it", unless the
        // server names a missing scope; listing teams is no team's call.
        403 if team_call && !detail.to_lowercase().contains("scope") => {
            Step::Fail(ApiError::Forbidden {
                team: bucket.to_owned(),
                request_id,
            })
        }
        403 => Step::Fail(ApiError::MissingScope { detail, request_id }),
        404 => Step::Fail(ApiError::NotFound { detail, request_id }),
        422 => Step::Fail(ApiError::Unprocessable { detail, request_id }),
        400 => Step::Fail(ApiError::BadRequest { detail, request_id }),
        500..=599 => Step::Retry(ApiError::Server {
            status,
            detail,
            request_id,
        }),
        _ => Step::Fail(ApiError::Server {
            status,
            detail,
            request_id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(status: u16, body: &str, seen: Seen) -> Step {
        classify(
            status,
            body.as_bytes(),
            "rid-ours",
            None,
            "100001",
            true,
            seen,
        )
    }

    #[test]
    fn successes_are_done_whatever_the_body() {
        for s in [200, 201, 204] {
            assert!(matches!(step(s, "not json", Seen::default()), Step::Done));
        }
    }

    #[test]
    fn a_429_is_waited_out_ten_times_then_fails_with_the_retry_after() {
        let mut seen = Seen::default();
        for _ in 0..MAX_THROTTLES {
            assert!(matches!(step(429, "", seen), Step::Throttled(_)));
            seen.throttles += 1;
        }
        let last = classify(
            429,
            b"",
            "rid",
            Some(SignedDuration::from_secs(7)),
            "100001",
            true,
            seen,
        );
        match last {
            Step::Fail(ApiError::RateLimited {
                team, retry_after, ..
            }) => {
                assert_eq!(team, "100001");
                assert_eq!(retry_after, Some(SignedDuration::from_secs(7)));
            }
            other => panic!("expected a final 429, got {other:?}"),
        }
    }

    #[test]
    fn a_401_refreshes_once_then_fails() {
        let body = r#"{"detail":"token expired","requestId":"rid-server"}"#;
        match step(401, body, Seen::default()) {
            Step::Refresh(ApiError::Unauthorized { detail, request_id }) => {
                assert_eq!(detail, "token expired");
                assert_eq!(request_id.as_deref(), Some("rid-server"));
            }
            other => panic!("expected a refresh, got {other:?}"),
        }
        let seen = Seen {
            refreshed: true,
            ..Seen::default()
        };
        assert!(matches!(
            step(401, body, seen),
            Step::Fail(ApiError::Unauthorized { .. })
        ));
    }

    #[test]
    fn a_403_is_forbidden_on_a_team_and_a_missing_scope_otherwise() {
        assert!(matches!(
            step(403, r#"{"detail":"Forbidden"}"#, Seen::default()),
            Step::Fail(ApiError::Forbidden { .. })
        ));
        assert!(matches!(
            step(
                403,
                r#"{"detail":"missing scope user-profile:read"}"#,
                Seen::default()
            ),
            Step::Fail(ApiError::MissingScope { .. })
        ));
        let listing = classify(
            403,
            b"{}",
            "r",
            None,
            "(list teams)",
            false,
            Seen::default(),
        );
        assert!(matches!(listing, Step::Fail(ApiError::MissingScope { .. })));
    }

    #[test]
    fn server_errors_are_retried_and_client_errors_are_not() {
        for s in [500, 502, 503, 599] {
            assert!(
                matches!(step(s, "", Seen::default()), Step::Retry(ApiError::Server { status, .. }) if status == s),
                "{s}"
            );
        }
        for (s, is) in [
            (400, "BadRequest"),
            (404, "NotFound"),
            (422, "Unprocessable"),
            (409, "Server"),
        ] {
            let got = format!("{:?}", step(s, "", Seen::default()));
            assert!(got.starts_with(&format!("Fail({is}")), "{s}: {got}");
        }
    }

    #[test]
    fn the_request_id_is_the_servers_else_the_echoed_one() {
        match step(422, r#"{"detail":"no seats"}"#, Seen::default()) {
            Step::Fail(ApiError::Unprocessable { detail, request_id }) => {
                assert_eq!(detail, "no seats");
                assert_eq!(request_id.as_deref(), Some("rid-ours"));
            }
            other => panic!("{other:?}"),
        }
    }
}
