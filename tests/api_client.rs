//! The Team Admin API client against the sandbox over loopback.

mod client_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use client_support::start;
use flexsync::api::{ApiError, Assigned, ClientConfig, ReadHint, Unassigned, UserStrategy};
use flexsync::model::{AssignmentType, Email, ProductId, TeamId, UserId};
use flexsync_sandbox::FaultSettings;

fn team(id: &str) -> TeamId {
    TeamId(id.into())
}

#[tokio::test]
async fn reading_a_team_costs_the_documented_minimum_of_calls() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    // 141 users → 2 pages of 100, 2 pools → 1 page, assignments → 1 call.
    let (observed, stats) = client
        .fetch_observed(&team("100002"), &ReadHint::default())
        .await
        .unwrap();
    assert_eq!(observed.users.len(), 141);
    assert_eq!(observed.name, "Example Manufacturing");
    assert_eq!(stats.calls, 2 + 1 + 1);
    assert_eq!(stats.user_strategy, UserStrategy::List);
    // List Teams is paid from the per-client bucket, not the team's.
    assert_eq!(client.stats("100002").calls.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn a_small_declaration_in_a_big_team_looks_people_up_by_email() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    let hint = ReadHint {
        emails: [Email::parse("alice@example.com").unwrap()].into(),
        known_users: Some(141),
    };
    let (observed, stats) = client.fetch_observed(&team("100002"), &hint).await.unwrap();
    // The holders of assignments are not all declared, so the client must
    // fall back to listing: lookups are only kept when they cover everyone.
    assert_eq!(observed.users.len(), 141);
    assert_eq!(stats.user_strategy, UserStrategy::List);
    // Three holders, one declared person: no lookup is spent before listing.
    assert_eq!(stats.calls, 4);

    // Team 100003 has one member, who is the one declared.
    let h3 = start(|c| {
        c.auth.default_login = Some("USADMIN00002".into());
    })
    .await;
    let client = h3.logged_in_client().await;
    let hint = ReadHint {
        emails: [Email::parse("GINA@example.org").unwrap()].into(),
        known_users: Some(250),
    };
    let (observed, stats) = client.fetch_observed(&team("100003"), &hint).await.unwrap();
    assert_eq!(stats.user_strategy, UserStrategy::EmailLookups);
    assert_eq!(stats.calls, 3);
    assert_eq!(observed.users[0].email.as_str(), "gina@example.org");
}

#[tokio::test]
async fn inherited_assignments_are_read_with_their_type() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    let rows = client
        .list_assignments(&team("100001"), Some(&UserId("US1000000003".into())), None)
        .await
        .unwrap();
    let types: BTreeSet<AssignmentType> = rows.iter().map(|a| a.assignment_type).collect();
    assert!(types.contains(&AssignmentType::Group), "{rows:?}");
    assert!(types.contains(&AssignmentType::Team), "{rows:?}");
}

#[tokio::test]
async fn writes_converge_and_repeats_are_harmless() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    let t = team("100001");
    let email = Email::parse("New.Person@example.com").unwrap();
    let (user, receipt) = client
        .add_user(&t, &email, Some("New"), Some("Person"))
        .await
        .unwrap();
    assert_eq!(receipt.status, 201);
    assert!(!receipt.request_id.is_empty());
    let (again, receipt) = client.add_user(&t, &email, None, None).await.unwrap();
    assert_eq!(receipt.status, 200);
    assert_eq!(user.id, again.id);
    assert_eq!(h.sandbox.invitations("100001", "new.person@example.com"), 1);

    let ps = ProductId("prod_flex_platform".into());
    assert_eq!(
        client.assign(&t, &user.id, &ps).await.unwrap().0,
        Assigned::Created
    );
    assert_eq!(
        client.assign(&t, &user.id, &ps).await.unwrap().0,
        Assigned::AlreadyThere
    );
    assert_eq!(
        client.unassign(&t, &user.id, &ps).await.unwrap().0,
        Unassigned::Removed
    );
    assert_eq!(
        client.unassign(&t, &user.id, &ps).await.unwrap().0,
        Unassigned::WasNotAssigned
    );

    // Bob holds AutoCAD directly and through a group: removing the direct
    // one leaves the inherited one, and a retry counts as done.
    let bob = UserId("US1000000002".into());
    let acad = ProductId("prod_acad_premium".into());
    assert_eq!(
        client.unassign(&t, &bob, &acad).await.unwrap().0,
        Unassigned::Removed
    );
    assert_eq!(
        client.unassign(&t, &bob, &acad).await.unwrap().0,
        Unassigned::OnlyInheritedRemains
    );
}

#[tokio::test]
async fn refusals_are_typed_errors_with_request_ids() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    let err = client.list_pools(&team("100003")).await.unwrap_err();
    assert!(matches!(err, ApiError::Forbidden { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("you are not an administrator of team 100003, or it does not exist"),
        "{text}"
    );
    assert!(err.request_id().is_some());

    // The unsupported pool's 422 is an error, not "already done".
    let t = team("100001");
    let err = client
        .unassign(
            &t,
            &UserId("US1000000001".into()),
            &ProductId("prod_legacy_suite".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Unprocessable { .. }), "{err:?}");

    // No seat left: 422 with the API's words.
    let acad = ProductId("prod_acad_premium".into());
    client
        .assign(&t, &UserId("US1000000004".into()), &acad)
        .await
        .unwrap();
    let err = client
        .assign(&t, &UserId("US1000000005".into()), &acad)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
}

#[tokio::test]
async fn a_burst_waits_for_the_next_window_instead_of_hitting_429() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    let t = team("100001");
    let start = h.now();
    for _ in 0..120 {
        client.list_assignments(&t, None, None).await.unwrap();
    }
    let stats = client.stats("100001");
    assert_eq!(stats.rate_limited.load(Ordering::Relaxed), 0);
    assert_eq!(stats.calls.load(Ordering::Relaxed), 120);
    // 55 calls per window (5 kept in reserve): 120 calls span three windows,
    // so the clock moved past two minute boundaries and no further.
    let elapsed = h.now().duration_since(start).as_secs();
    assert!((100..160).contains(&elapsed), "{elapsed} s");
}

#[tokio::test]
async fn the_budget_learns_what_others_spent_from_the_headers() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    let t = team("100001");
    client.list_pools(&t).await.unwrap();
    assert_eq!(client.budget_remaining(&t), 54);
    // Another admin's tool spends 50 calls of the same window.
    let other = h.logged_in_client().await;
    for _ in 0..50 {
        other.list_pools(&t).await.unwrap();
    }
    client.list_pools(&t).await.unwrap();
    // The server says 60 - 52 = 8 remain; 5 are the reserve.
    assert_eq!(client.budget_remaining(&t), 3);
}

async fn calls(client: &flexsync::api::Client, team_id: &str, n: usize) {
    for _ in 0..n {
        client
            .list_assignments(&team(team_id), None, None)
            .await
            .unwrap();
    }
}

fn throttled(client: &flexsync::api::Client, team_id: &str) -> u64 {
    client.stats(team_id).rate_limited.load(Ordering::Relaxed)
}

#[tokio::test]
async fn two_processes_on_one_team_share_its_budget_and_cause_no_429() {
    // Without the server's rate headers, nothing but the shared count
    // tells one process what the other spent.
    let mut h = start(|_| {}).await;
    h.hide_rate_headers().await;
    h.login().await;
    // Two applies at once: separate memory, one budget directory.
    let (a, b) = (h.client(), h.client());
    let start = h.now();
    tokio::join!(calls(&a, "100001", 40), calls(&b, "100001", 40));
    assert_eq!(throttled(&a, "100001"), 0);
    assert_eq!(throttled(&b, "100001"), 0);
    // 80 calls need two windows: they waited for the second.
    assert!(h.now() >= flexsync::api::budget::next_minute(start));
}

#[tokio::test]
async fn together_they_leave_the_reserve_to_others() {
    let mut h = start(|_| {}).await;
    h.hide_rate_headers().await;
    h.login().await;
    let (a, b) = (h.client(), h.client());
    tokio::join!(calls(&a, "100001", 30), calls(&b, "100001", 30));
    // Another admin's tool, which counts only its own calls and keeps no
    // reserve, still finds the 5 calls flexsync leaves in every window.
    let mut config = h.config();
    config.budget_dir = None;
    config.reserve = 0;
    let other = h.client_with(config);
    calls(&other, "100001", 5).await;
    assert_eq!(throttled(&other, "100001"), 0);
}

#[tokio::test]
async fn a_rerun_in_the_same_minute_counts_what_the_killed_run_spent() {
    let mut h = start(|_| {}).await;
    h.hide_rate_headers().await;
    h.login().await;
    let first = h.client();
    calls(&first, "100001", 55).await;
    // Gone without a goodbye (kill -9): nothing but the file remembers.
    drop(first);
    let rerun = h.client();
    calls(&rerun, "100001", 10).await;
    assert_eq!(throttled(&rerun, "100001"), 0);
}

#[tokio::test]
async fn budgets_of_different_apis_are_not_shared() {
    let mut real = start(|_| {}).await;
    let mut sandbox = start(|_| {}).await;
    real.hide_rate_headers().await;
    sandbox.hide_rate_headers().await;
    real.login().await;
    sandbox.login().await;
    // One budget directory, two APIs (their clocks start at the same time).
    let mut config = sandbox.config();
    config.budget_dir = Some(real.budget_dir());
    let on_sandbox = sandbox.client_with(config);
    calls(&on_sandbox, "100001", 55).await;
    let on_real = real.client();
    let before = real.now();
    calls(&on_real, "100001", 55).await;
    assert_eq!(
        real.now(),
        before,
        "waited for a window the other API spent"
    );
}

#[tokio::test]
async fn an_unusable_budget_directory_or_file_falls_back_to_counting_in_process() {
    let mut h = start(|_| {}).await;
    h.hide_rate_headers().await;
    h.login().await;
    // A file where the directory should be.
    std::fs::write(h.budget_dir(), b"not a directory").unwrap();
    let client = h.client();
    calls(&client, "100001", 60).await;
    assert_eq!(throttled(&client, "100001"), 0);

    // A corrupt window file.
    let mut h = start(|_| {}).await;
    h.hide_rate_headers().await;
    h.login().await;
    let client = h.client();
    calls(&client, "100001", 30).await;
    for entry in std::fs::read_dir(h.budget_dir()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"{\"used\": tr").unwrap();
    }
    calls(&client, "100001", 30).await;
    assert_eq!(throttled(&client, "100001"), 0);
    // Repaired: a second process sees this one's count again.
    let other = h.client();
    calls(&other, "100001", 10).await;
    assert_eq!(throttled(&other, "100001"), 0);
}

#[tokio::test]
async fn forced_429s_are_waited_out() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    h.sandbox.set_faults(FaultSettings {
        forced429: 2,
        ..FaultSettings::default()
    });
    let before = h.now();
    let pools = client.list_pools(&team("100001")).await.unwrap();
    assert!(!pools.is_empty());
    let stats = client.stats("100001");
    assert_eq!(stats.rate_limited.load(Ordering::Relaxed), 2);
    // Retry-After pointed at the next minute: the client waited for it.
    assert!(h.now().duration_since(before).as_secs() >= 40);
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    h.sandbox.set_faults(FaultSettings {
        error503_share: 0.5,
        ..FaultSettings::default()
    });
    for _ in 0..6 {
        client.list_pools(&team("100001")).await.unwrap();
    }
    assert!(client.stats("100001").retries.load(Ordering::Relaxed) >= 3);

    h.sandbox.set_faults(FaultSettings {
        drop_share: 0.5,
        ..FaultSettings::default()
    });
    for _ in 0..4 {
        client.list_pools(&team("100001")).await.unwrap();
    }

    // Always failing: a bounded number of attempts, then a clear error.
    h.sandbox.set_faults(FaultSettings {
        error500_share: 1.0,
        ..FaultSettings::default()
    });
    let before = client.stats("100001").calls.load(Ordering::Relaxed);
    let err = client.list_pools(&team("100001")).await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    let attempts = client.stats("100001").calls.load(Ordering::Relaxed) - before;
    assert_eq!(attempts, 5);
}

#[tokio::test]
async fn plain_http_is_refused_except_on_loopback() {
    let err = ClientConfig::new("http://api.example.com/team-admin/v1").unwrap_err();
    assert!(err.to_string().contains("plain http"), "{err}");
    assert!(ClientConfig::new("http://127.0.0.1:8787/team-admin/v1").is_ok());
    assert!(ClientConfig::new("http://localhost:8787/team-admin/v1").is_ok());
    assert!(ClientConfig::new("https://developer.api.autodesk.com/team-admin/v1").is_ok());
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_rotated_refresh_token_saved() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    let first = h.saved_tokens();
    client.list_pools(&team("100001")).await.unwrap();
    h.advance(61 * 60);
    client.list_pools(&team("100001")).await.unwrap();
    let second = h.saved_tokens();
    assert_ne!(first["refreshToken"], second["refreshToken"]);
    assert_ne!(first["accessToken"], second["accessToken"]);

    // The old refresh token is spent: presenting it again is refused, and
    // the error tells the admin what to do.
    let oauth = h.oauth();
    let old = flexsync::api::auth::Secret::new(first["refreshToken"].as_str().unwrap());
    let err = oauth.refresh(&old, h.now()).await.unwrap_err();
    assert!(matches!(err, ApiError::LoginRequired { .. }), "{err:?}");
    assert!(err.to_string().contains("run `flexsync login` again"));
}

#[tokio::test]
async fn the_token_file_and_its_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let h = start(|_| {}).await;
    h.login().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&h.token_file), 0o600);
    // The login created the directory: nobody else may list or enter it.
    assert_eq!(mode(h.token_file.parent().unwrap()), 0o700);
}

#[tokio::test]
async fn a_token_file_readable_by_others_is_made_private_and_still_works() {
    use std::os::unix::fs::PermissionsExt;
    let h = start(|_| {}).await;
    h.login().await;
    std::fs::set_permissions(&h.token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let client = h.client();
    client.list_pools(&team("100001")).await.unwrap();
    let mode = std::fs::metadata(&h.token_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_symlinked_token_file_stays_a_symlink_and_its_target_gets_the_new_tokens() {
    let h = start(|_| {}).await;
    h.login().await;
    // As with a token kept on another volume and linked into place.
    let target = h.dir.path().join("vault").join("token.json");
    std::fs::create_dir(target.parent().unwrap()).unwrap();
    std::fs::rename(&h.token_file, &target).unwrap();
    std::os::unix::fs::symlink("../vault/token.json", &h.token_file).unwrap();
    let before = h.saved_tokens();

    let client = h.client();
    h.advance(61 * 60);
    client.list_pools(&team("100001")).await.unwrap();

    let meta = std::fs::symlink_metadata(&h.token_file).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_ne!(after["refreshToken"], before["refreshToken"]);
    // The target holds a live refresh token: a new process can use it.
    h.advance(61 * 60);
    h.client().list_pools(&team("100001")).await.unwrap();
}

#[tokio::test]
async fn a_service_keeps_working_after_another_process_rotated_the_shared_token_file() {
    let h = start(|_| {}).await;
    h.login().await;
    // `run --token-file T` and `plan --token-file T`: two token sources.
    let service = h.client();
    let plan = h.client();
    let t = team("100001");
    service.list_pools(&t).await.unwrap();
    h.advance(61 * 60);
    plan.list_pools(&t).await.unwrap();
    let rotated = h.saved_tokens();

    // The service's refresh token was spent by `plan`: it must take the
    // file's tokens instead of presenting its own.
    for _ in 0..3 {
        service.list_pools(&t).await.unwrap();
    }
    assert_eq!(h.saved_tokens()["refreshToken"], rotated["refreshToken"]);
    h.advance(61 * 60);
    service.list_pools(&t).await.unwrap();
    plan.list_pools(&t).await.unwrap();
}

#[tokio::test]
async fn clients_sharing_a_token_file_refresh_once_between_them() {
    let h = start(|_| {}).await;
    h.login().await;
    let clients = [Arc::new(h.client()), Arc::new(h.client())];
    h.advance(61 * 60);
    // Two refreshes would present one refresh token twice: invalid_grant.
    eight_reads_at_once(&clients).await;
}

/// Eight List Product Pools calls at once, spread over `clients` in turn;
/// every one must succeed.
async fn eight_reads_at_once(clients: &[Arc<flexsync::api::Client>]) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = clients[i % clients.len()].clone();
        tasks.push(tokio::spawn(
            async move { c.list_pools(&team("100001")).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_refused_access_token_is_compared_with_the_file_before_refreshing() {
    let h = start(|c| {
        c.auth.access_token_lifetime = std::time::Duration::from_secs(3600);
    })
    .await;
    h.login().await;
    // Both processes start with an access token the server does not know
    // (as after a revocation) and a valid refresh token.
    let stale = h.revoke_saved_access_token();
    let first = h.client();
    let second = h.client();
    let t = team("100001");
    // Both read the file now: the stale token is in memory of both.
    let _ = first.tokens().access_token(h.now()).await.unwrap();
    let _ = second.tokens().access_token(h.now()).await.unwrap();
    first.list_pools(&t).await.unwrap();
    let rotated = h.saved_tokens();
    assert_ne!(rotated["refreshToken"], stale["refreshToken"]);
    // The second one's 401 must not spend the refresh token the first one
    // already used.
    second.list_pools(&t).await.unwrap();
    assert_eq!(h.saved_tokens()["refreshToken"], rotated["refreshToken"]);
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries() {
    let h = start(|c| {
        c.auth.access_token_lifetime = std::time::Duration::from_secs(3600);
    })
    .await;
    let client = h.logged_in_client().await;
    client.list_pools(&team("100001")).await.unwrap();
    // The server forgets the access token (as after a revocation) while our
    // file still thinks it is valid: the 401 triggers one refresh.
    let saved = h.saved_tokens();
    h.revoke_saved_access_token();
    let fresh_client = h.client();
    fresh_client.list_pools(&team("100001")).await.unwrap();
    assert_ne!(h.saved_tokens()["refreshToken"], saved["refreshToken"]);
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let h = start(|_| {}).await;
    let client = Arc::new(h.logged_in_client().await);
    h.advance(61 * 60);
    // With two refreshes, the second would present a spent refresh token
    // and fail with invalid_grant.
    eight_reads_at_once(&[client]).await;
}

#[tokio::test]
async fn renewed_tokens_that_could_not_be_saved_are_never_used() {
    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    let t = team("100001");
    client.list_pools(&t).await.unwrap();
    let spent = h.saved_tokens();
    h.advance(61 * 60);
    // A non-empty directory squats the name the new file is written under
    // before its rename: the rotated token cannot be saved (even by root).
    let squatter = h.token_file.with_file_name("token.json.tmp");
    std::fs::create_dir(&squatter).unwrap();
    std::fs::write(squatter.join("blocker"), b"x").unwrap();
    let calls = || client.stats("100001").calls.load(Ordering::Relaxed);
    let calls_before = calls();

    // The refresh happened, the save failed: no call with the new token...
    let first = client.list_pools(&t).await;
    assert!(
        matches!(first, Err(ApiError::TokenStore { .. })),
        "{first:?}"
    );
    assert!(
        first.unwrap_err().to_string().contains("flexsync login"),
        "the error says how to recover"
    );
    // ...and none on the next call either, though the tokens are in memory.
    let second = client.list_pools(&t).await;
    assert!(
        matches!(second, Err(ApiError::TokenStore { .. })),
        "{second:?}"
    );
    assert_eq!(calls(), calls_before);
    assert_eq!(h.saved_tokens()["refreshToken"], spent["refreshToken"]);

    // Once the file can be written, the renewed tokens are saved, then used.
    std::fs::remove_dir_all(&squatter).unwrap();
    client.list_pools(&t).await.unwrap();
    let saved = h.saved_tokens();
    assert_ne!(saved["refreshToken"], spent["refreshToken"]);
    // What was saved is what the client uses: a new process can go on.
    h.advance(61 * 60);
    h.client().list_pools(&t).await.unwrap();
}

#[tokio::test]
async fn a_login_nobody_completes_times_out_with_a_clear_message() {
    let h = start(|_| {}).await;
    let oauth = h.oauth();
    let callback = url::Url::parse("http://127.0.0.1:0/callback").unwrap();
    // The browser never comes back.
    let pending = flexsync::api::login::start(&oauth, &callback)
        .await
        .unwrap()
        .with_timeout(std::time::Duration::from_millis(20));
    let err = pending.finish(&oauth, h.now()).await.unwrap_err();
    assert!(matches!(err, ApiError::LoginTimedOut { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("timed out"), "{text}");
    assert!(text.contains("run `flexsync login` again"), "{text}");

    // Something connects and never sends a request.
    let pending = flexsync::api::login::start(&oauth, &callback)
        .await
        .unwrap()
        .with_timeout(std::time::Duration::from_millis(20));
    let addr = url::Url::parse(pending.redirect_uri()).unwrap();
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", addr.port().unwrap()))
        .await
        .unwrap();
    let err = pending.finish(&oauth, h.now()).await.unwrap_err();
    assert!(matches!(err, ApiError::LoginTimedOut { .. }), "{err:?}");
    // No login was saved.
    assert!(!h.token_file.exists());
}

#[tokio::test]
async fn secrets_never_reach_debug_output_errors_or_logs() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // Global, so events from every thread of the runtime are captured.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let h = start(|_| {}).await;
    let client = h.logged_in_client().await;
    client.list_pools(&team("100001")).await.unwrap();
    h.advance(61 * 60);
    client.list_pools(&team("100001")).await.unwrap();
    let _ = client.list_pools(&team("100003")).await.unwrap_err();
    let tokens = h.saved_tokens();
    let secrets = [
        tokens["accessToken"].as_str().unwrap().to_owned(),
        tokens["refreshToken"].as_str().unwrap().to_owned(),
        flexsync_sandbox::DEFAULT_CLIENT_SECRET.to_owned(),
    ];
    let mut seen = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    seen.push_str(&format!("{client:?}"));
    seen.push_str(&format!("{:?}", h.oauth()));
    let stored = flexsync::api::auth::TokenStore::new(h.token_file.clone())
        .load()
        .unwrap();
    seen.push_str(&format!("{stored:?}"));
    assert!(seen.contains("api call"), "logs were not captured: {seen}");
    for s in secrets {
        assert!(!seen.contains(&s), "a secret leaked into output");
    }
}
