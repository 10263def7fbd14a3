//! Connecting to the Team Admin API: flags and environment, the token store,
//! and the embedded sandbox behind `--sandbox`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flexsync_sandbox::{self as sandbox, Sandbox, SandboxConfig, SandboxError, Seed};

use crate::Error;
use crate::api::auth::{OAuthClient, Secret, TokenSource, TokenStore};
use crate::api::{self, CallObserver, Client, ClientConfig, SystemClock, login};

use super::sandbox::SANDBOX_STATE;
const SANDBOX_TOKENS: &str = ".flexsync/sandbox-token.json";

/// How to reach Autodesk (or the sandbox). Flattened into each command that
/// connects, and only those, so `validate` or `schema` do not list them.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// Work against the local sandbox instead of Autodesk: it starts
    /// in-process on a free loopback port, with its state in
    /// .flexsync/sandbox.json (created from the bundled seed on first use;
    /// `flexsync sandbox reset` restores it). No Autodesk account needed.
    #[arg(long)]
    pub sandbox: bool,
    /// Rehearse on a copy of live teams: like --sandbox, but the sandbox
    /// starts in memory from SNAPSHOT (`flexsync snapshot`, or the service's
    /// /snapshot) for this one command, and what the command changes is
    /// thrown away when it ends. .flexsync/sandbox.json is not touched. To
    /// keep a rehearsal across commands, serve it: `flexsync sandbox serve
    /// --from-snapshot`.
    #[arg(long, global = true, value_name = "SNAPSHOT")]
    pub sandbox_from_snapshot: Option<PathBuf>,
    /// Team Admin API base URL. Plain http is refused except on loopback.
    #[arg(long, env = "FLEXSYNC_API_URL", value_name = "URL",
          default_value = api::DEFAULT_API_URL)]
    pub api_url: String,
    /// The token store (created 0600 in a 0700 directory, replaced
    /// atomically on every refresh; processes sharing it take turns to
    /// refresh, and a symlink stays a symlink).
    /// Default: $XDG_STATE_HOME/flexsync/token.json or
    /// ~/.local/state/flexsync/token.json.
    #[arg(long, env = "FLEXSYNC_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// APS app client id (a Traditional Web App with the Team Admin API).
    #[arg(long, env = "FLEXSYNC_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// File holding the APS app client secret (or set FLEXSYNC_CLIENT_SECRET).
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// Calls per UTC minute and team left for the people and tools that
    /// share the team's 60-call budget (0 to 50).
    #[arg(long, default_value_t = 5, value_name = "CALLS",
          value_parser = clap::value_parser!(u32).range(0..=50))]
    pub rate_reserve: u32,
    /// Attempts per API call on server errors, timeouts and dropped
    /// connections (exponential backoff with jitter in between).
    #[arg(long, default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,
}

/// The teams a login administers, by id, or why they could not be listed.
pub type Teams = Result<std::collections::BTreeMap<crate::model::TeamId, String>, Error>;

/// A live connection. Holding it keeps the embedded sandbox running.
pub struct Connection {
    pub client: Arc<Client>,
    pub sandbox: Option<EmbeddedSandbox>,
}

/// The in-process sandbox; dropping it stops the server (its state is
/// saved after every change). The running sandbox owns its state file, so a
/// second process cannot load the state and then overwrite this one's
/// changes with its own.
pub struct EmbeddedSandbox {
    pub base_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// A rehearsal's token file: its tokens die with the sandbox.
    throwaway_tokens: Option<PathBuf>,
}

impl Drop for EmbeddedSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(path) = self.throwaway_tokens.take() {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(path.with_extension("json.lock"));
        }
    }
}

/// Largest secret file flexsync reads (`--client-secret-file`,
/// `--snapshot-token-file`): a secret is a line of text, and the cap keeps a
/// mistyped path (a log, a device) from being read whole into memory.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a file holding a secret, named in errors by the `flag` that gave
/// it; never quotes the content.
pub(crate) fn read_secret_file(path: &Path, flag: &str) -> Result<String, Error> {
    crate::input_file::read_text_capped(path, MAX_SECRET_FILE_BYTES)
        .map_err(|e| Error::file(format!("cannot read {flag}"), path, e))
}

/// flexsync's directory for state that must survive restarts:
/// $XDG_STATE_HOME/flexsync or ~/.local/state/flexsync.
pub(crate) fn state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("flexsync")
}

pub(crate) fn default_token_file() -> PathBuf {
    state_dir().join("token.json")
}

/// Where processes share each team's call budget: beside the token file
/// (the state directory by default), because processes that share a login
/// are the ones working on the same teams, and a service's token directory
/// is writable where its home may not be. With FLEXSYNC_ACCESS_TOKEN, the
/// state directory.
fn budget_dir(tokens: &TokenSource) -> PathBuf {
    let dir = tokens
        .store()
        .map(|store| {
            store.real_dir().unwrap_or_else(|_| {
                store
                    .path()
                    .parent()
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
            })
        })
        .unwrap_or_else(state_dir);
    dir.join("budget")
}

fn no_app() -> Error {
    Error::Usage(
        "no APS app: set FLEXSYNC_CLIENT_ID (and FLEXSYNC_CLIENT_SECRET or --client-secret-file), or try --sandbox".into(),
    )
}

impl ConnectArgs {
    /// `--sandbox-from-snapshot` is a sandbox for every purpose (the audit
    /// log's default, a saved plan's target): called once after parsing.
    pub fn imply_sandbox(&mut self) {
        if self.sandbox_from_snapshot.is_some() {
            self.sandbox = true;
        }
    }

    /// An empty URL or client id almost always comes from a variable set to
    /// nothing (`FLEXSYNC_API_URL=` in a unit or manifest): name it.
    fn check_not_empty(&self) -> Result<(), Error> {
        for (value, flag, var) in [
            (Some(self.api_url.as_str()), "--api-url", "FLEXSYNC_API_URL"),
            (
                self.client_id.as_deref(),
                "--client-id",
                "FLEXSYNC_CLIENT_ID",
            ),
        ] {
            if value.is_some_and(|v| v.trim().is_empty()) {
                let from_env =
                    std::env::var_os(var).is_some_and(|v| v.to_string_lossy().trim().is_empty());
                return Err(Error::Usage(if from_env {
                    format!(
                        "{var} is set but empty: unset it, or set it to a value (it stands for {flag})"
                    )
                } else {
                    format!("{flag} is empty")
                }));
            }
        }
        Ok(())
    }

    fn client_secret(&self) -> Result<Option<Secret>, Error> {
        if let Some(path) = &self.client_secret_file {
            let text = read_secret_file(path, "--client-secret-file")?;
            return Ok(Some(Secret::new(text.trim())));
        }
        Ok(std::env::var("FLEXSYNC_CLIENT_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
            .map(Secret::new))
    }

    fn oauth(&self, config: &ClientConfig) -> Result<OAuthClient, Error> {
        let Some(client_id) = self.client_id.clone() else {
            return Err(no_app());
        };
        let (authorize, token) = config.oauth_urls()?;
        Ok(OAuthClient::new(
            authorize,
            token,
            client_id,
            self.client_secret()?,
            api::http_client(config)?,
        ))
    }

    /// Connects: the embedded sandbox (logged in through the real OAuth
    /// code path), `FLEXSYNC_ACCESS_TOKEN`, or the token store.
    pub async fn connect(&self) -> Result<Connection, Error> {
        self.connect_observed(None).await
    }

    /// Like [`connect`](Self::connect), reporting every API answer to
    /// `observer` (the service's metrics).
    pub async fn connect_observed(
        &self,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> Result<Connection, Error> {
        if self.sandbox {
            return connect_sandbox(self, observer).await;
        }
        self.check_not_empty()?;
        let mut config = ClientConfig::new(&self.api_url)?;
        config.reserve = self.rate_reserve;
        config.max_attempts = self.max_attempts as usize;
        let http = api::http_client(&config)?;
        let tokens = match std::env::var("FLEXSYNC_ACCESS_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
        {
            Some(t) => TokenSource::Fixed(Secret::new(t)),
            None => {
                let store =
                    TokenStore::new(self.token_file.clone().unwrap_or_else(default_token_file));
                match self.client_id {
                    Some(_) => TokenSource::stored(store, self.oauth(&config)?),
                    // Reads need only an unexpired access token; the app
                    // is needed to renew it (said when that happens). An
                    // empty store gets the message about the app at once,
                    // since logging in needs it too.
                    None if store.load()?.is_some() => {
                        TokenSource::stored_without_app(store, config.oauth_urls()?.1)
                    }
                    None => return Err(no_app()),
                }
            }
        };
        config.budget_dir = Some(budget_dir(&tokens));
        let mut client = Client::new(config, http, Arc::new(tokens), Arc::new(SystemClock));
        if let Some(o) = observer {
            client = client.with_observer(o);
        }
        Ok(Connection {
            client: Arc::new(client),
            sandbox: None,
        })
    }

    /// `flexsync login --from-file`: installs tokens saved by `flexsync
    /// login` elsewhere (a workstation with a browser) into this token
    /// file, as a refresh does: under the lock, atomically, private, and
    /// owned by the token directory's owner when run as root.
    pub async fn import_login(&self, from: &Path) -> Result<PathBuf, Error> {
        const MAX: u64 = crate::api::auth::MAX_TOKEN_FILE_BYTES;
        let text = if from == Path::new("-") {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(std::io::stdin(), MAX + 1),
                &mut buf,
            )?;
            if buf.len() as u64 > MAX {
                return Err(Error::File {
                    context: "the tokens on standard input".into(),
                    cause: "too large".into(),
                });
            }
            String::from_utf8(buf).map_err(|e| Error::File {
                context: "the tokens on standard input".into(),
                cause: e.into(),
            })?
        } else {
            crate::input_file::read_text_capped(from, MAX)
                .map_err(|e| Error::file("--from-file", from, e))?
        };
        let tokens = crate::api::auth::Tokens::from_file_bytes(text.as_bytes())
            .map_err(|e| Error::file("--from-file", from, e))?;
        if tokens.refresh_token.is_none() {
            return Err(Error::file(
                "--from-file",
                from,
                "it holds no refresh token, so the login would end within the hour",
            ));
        }
        let path = self.token_file.clone().unwrap_or_else(default_token_file);
        TokenStore::new(path.clone()).save_async(&tokens).await?;
        Ok(path)
    }

    /// `flexsync login`: the browser flow, saving the tokens. Returns where
    /// they were saved and the teams the login administers (which say who
    /// signed in; listing them may fail without failing the login).
    pub async fn login(
        &self,
        callback: &str,
        open_browser: bool,
    ) -> Result<(PathBuf, Teams), Error> {
        if self.sandbox {
            // Listed while this process still owns the sandbox's state.
            let conn = connect_sandbox(self, None).await?;
            let teams = conn.client.teams().await.map_err(Error::from);
            return Ok((PathBuf::from(SANDBOX_TOKENS), teams));
        }
        self.check_not_empty()?;
        let config = ClientConfig::new(&self.api_url)?;
        let oauth = self.oauth(&config)?;
        let callback = url::Url::parse(callback)
            .map_err(|e| Error::Usage(format!("--callback-url {callback}: {e}")))?;
        let pending = login::start(&oauth, &callback).await?;
        eprintln!(
            "Open this URL in a browser and sign in as an administrator of your team:\n\n  {}\n",
            pending.url
        );
        if open_browser {
            try_open_browser(pending.url.as_str());
        }
        eprintln!(
            "Waiting for the sign-in to finish (up to {} minutes; Ctrl-C to give up)…",
            login::LOGIN_TIMEOUT.as_secs() / 60
        );
        let tokens = pending.finish(&oauth, jiff::Timestamp::now()).await?;
        let path = self.token_file.clone().unwrap_or_else(default_token_file);
        TokenStore::new(path.clone()).save_async(&tokens).await?;
        let teams = match self.connect().await {
            Ok(conn) => conn.client.teams().await.map_err(Error::from),
            Err(e) => Err(e),
        };
        Ok((path, teams))
    }
}

fn try_open_browser(url: &str) {
    let has_display = std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
        || cfg!(target_os = "macos");
    if !has_display {
        return;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    // Best effort: the URL is printed anyway.
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// The embedded sandbox of `--sandbox`, on its state file. It owns the file
/// (an exclusive lock) until the server task ends, after its last save.
fn open_embedded() -> Result<Sandbox, Error> {
    let seed = Seed::bundled()?;
    Sandbox::open(SANDBOX_STATE, &seed, SandboxConfig::default()).map_err(|error| {
        let next_step = match error {
            SandboxError::Locked { .. } => format!(
                ". Wait for that process to finish, or stop it. To use one sandbox from \
                 several processes, serve it with `flexsync sandbox serve --state {SANDBOX_STATE}` \
                 (it then owns the state) and point them all at it with --api-url; see docs/sandbox.md"
            ),
            _ => " (run `flexsync sandbox reset` to start over)".to_owned(),
        };
        Error::Sandbox { error, next_step }
    })
}

/// Starts the embedded sandbox and logs in to it the way a real login
/// works: authorize (auto-approved), callback listener, code + PKCE exchange.
async fn connect_sandbox(
    args: &ConnectArgs,
    observer: Option<Arc<dyn CallObserver>>,
) -> Result<Connection, Error> {
    let (sandbox, token_file, throwaway) = match &args.sandbox_from_snapshot {
        // In memory, with tokens of its own: a rehearsal leaves nothing
        // behind and never disturbs the embedded sandbox of --sandbox.
        Some(snapshot) => {
            let seed = super::sandbox::rehearsal_seed(snapshot)?;
            let tokens = PathBuf::from(format!(
                ".flexsync/rehearsal-token-{}.json",
                std::process::id()
            ));
            let sandbox = Sandbox::new(&seed, SandboxConfig::default());
            (sandbox, tokens.clone(), Some(tokens))
        }
        None => (open_embedded()?, PathBuf::from(SANDBOX_TOKENS), None),
    };
    let listen = |cause| Error::Listen {
        addr: "127.0.0.1:0 (the embedded sandbox)".into(),
        cause,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(listen)?;
    let addr = listener.local_addr().map_err(listen)?;
    let base_url = format!("http://{addr}");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sandbox::serve(listener, sandbox, async {
        let _ = rx.await;
    }));
    let embedded = EmbeddedSandbox {
        base_url: base_url.clone(),
        stop: Some(tx),
        throwaway_tokens: throwaway,
    };
    // No shared budget: one process at a time runs the embedded sandbox
    // (its lock), and each run serves on a new port with fresh counts.
    let mut config = ClientConfig::new(&format!("{base_url}{}", sandbox::API_BASE_PATH))?;
    config.reserve = args.rate_reserve;
    config.max_attempts = args.max_attempts as usize;
    let (authorize, token) = config.oauth_urls()?;
    let http = api::http_client(&config)?;
    let oauth = OAuthClient::new(
        authorize,
        token,
        sandbox::DEFAULT_CLIENT_ID.into(),
        Some(Secret::new(sandbox::DEFAULT_CLIENT_SECRET)),
        http.clone(),
    );
    let callback = url::Url::parse("http://127.0.0.1:0/callback")
        .map_err(|e| Error::Internal(e.to_string()))?;
    let pending = login::start(&oauth, &callback).await?;
    let url = pending.url.clone();
    let approver = http.clone();
    let approve =
        tokio::spawn(async move { login::approve_without_browser(&approver, &url).await });
    let tokens = pending.finish(&oauth, jiff::Timestamp::now()).await?;
    approve
        .await
        .map_err(|e| Error::Internal(format!("sandbox login: {e}")))??;
    let store = TokenStore::new(token_file);
    store.save_async(&tokens).await?;
    let source = TokenSource::stored(store, oauth);
    let mut client = Client::new(config, http, Arc::new(source), Arc::new(SystemClock));
    if let Some(o) = observer {
        client = client.with_observer(o);
    }
    Ok(Connection {
        client: Arc::new(client),
        sandbox: Some(embedded),
    })
}
