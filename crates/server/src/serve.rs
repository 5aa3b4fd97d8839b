//! The listener: binding, the accept loop, TLS handshakes, the connection caps, the
//! header-read timeout and graceful shutdown.
//!
//! Owns connection lifetime. A semaphore caps open connections (further clients wait in the
//! kernel's accept queue) and a per-address cap on *waiting* connections — not yet done sending
//! a request head, or idle between requests — closes surplus connections from one host at once,
//! so a single idle or slow client cannot take every slot, while requests in progress are not
//! counted against their address (`per_ip`; a connection over the cap waits up to the
//! header-read timeout for a slot, so a burst whose request heads are still in flight is
//! served); hyper's header-read timeout and a
//! TLS-handshake timeout close clients that trickle bytes; each connection is wrapped so that
//! the errors hyper answers by itself get JSON and the security headers (`raw_errors`). On shutdown the listener
//! closes at once, streamed answers (the console's live events) end, in-flight requests
//! finish, idle keep-alive connections are closed, and the wait is bounded by the request
//! timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::ServerConfig;
use crate::http::{router, ClientAddr, Shared, SharedState, ADMIN_PATHS, PUBLIC_PATHS};
use crate::metrics::Metrics;
use crate::per_ip::{BodyPending, Slot, Waiting};
use crate::raw_errors::JsonErrors;
use crate::service::{
    is_console_path, is_records_path, AccessHooks, AdminService, AgentRoutes, AgentService,
    ConsoleService, RecordsService, SecurityEvents,
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Two agents, or an agent and a built-in endpoint, want the same path.
    #[error("agent route {route:?} is not usable: {reason}")]
    Route {
        /// The offending route.
        route: String,
        /// Why.
        reason: &'static str,
    },
    /// The admin credentials equal the platform's Basic credentials.
    #[error("the admin credentials must differ from the platform's Basic credentials, which every webhook URL carries")]
    AdminCredentials,
    /// No agent was registered.
    #[error("no agent registered: add at least one agent before serving")]
    NoAgents,
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// A server with its agents, ready to bind.
pub struct Server {
    config: ServerConfig,
    agents: Vec<Arc<dyn AgentService>>,
    admin: Option<Arc<dyn AdminService>>,
    records: Option<Arc<dyn RecordsService>>,
    console: Option<Arc<dyn ConsoleService>>,
    events: Option<Arc<dyn SecurityEvents>>,
    access: Option<Arc<dyn AccessHooks>>,
    metrics: Metrics,
}

impl Server {
    /// A server with `config` and no agents yet.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            agents: Vec::new(),
            admin: None,
            records: None,
            console: None,
            events: None,
            access: None,
            metrics: Metrics::new(),
        }
    }

    /// Record metrics into `metrics` (share the handle with the agent runtime).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Call `hooks` around every request.
    pub fn access(mut self, hooks: Arc<dyn AccessHooks>) -> Self {
        self.access = Some(hooks);
        self
    }

    /// Report refused authentications to `events` (e.g. the audit trail).
    pub fn events(mut self, events: Arc<dyn SecurityEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// Serve the operator endpoints (`POST /admin/emergency`, `GET /ready/detail`) with
    /// `admin`. They answer only when `ServerConfig::admin_credentials` is set.
    pub fn admin(mut self, admin: Arc<dyn AdminService>) -> Self {
        self.admin = Some(admin);
        self
    }

    /// Serve the operator records API on `/records` with `records`. Requests there skip the
    /// platform's Basic auth: the service authenticates operators itself.
    pub fn records(mut self, records: Arc<dyn RecordsService>) -> Self {
        self.records = Some(records);
        self
    }

    /// Serve the security console on `/console` with `console`. Requests there skip the
    /// platform's Basic auth: the console signs operators in itself.
    pub fn console(mut self, console: Arc<dyn ConsoleService>) -> Self {
        self.console = Some(console);
        self
    }

    /// Serve `agent` on its route.
    pub fn agent(mut self, agent: Arc<dyn AgentService>) -> Self {
        self.agents.push(agent);
        self
    }

    /// Check the routes, load TLS and bind the listening socket.
    pub async fn bind(self) -> Result<BoundServer, ServeError> {
        check_routes(&self.agents, self.records.is_some(), self.console.is_some())?;
        let late_auth = LateAuth {
            records: self.records.is_some(),
            console: self.console.is_some(),
        };
        if let Some(admin) = &self.config.admin_credentials {
            // The platform's credentials travel in every webhook URL: they must never open the
            // operator endpoints.
            if admin.user() == self.config.credentials.user()
                && admin.expose_password() == self.config.credentials.expose_password()
            {
                return Err(ServeError::AdminCredentials);
            }
        }
        let tls = match &self.config.tls {
            Some(tls) => Some(crate::tls::acceptor(tls)?),
            None => None,
        };
        let addr = SocketAddr::new(self.config.host, self.config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let mut config = self.config;
        config.port = local_addr.port();
        let config = Arc::new(config);
        let known_paths: std::collections::HashSet<String> = self
            .agents
            .iter()
            .flat_map(|agent| AgentRoutes::new(agent.route()).all())
            .chain(
                PUBLIC_PATHS
                    .iter()
                    .chain(ADMIN_PATHS.iter())
                    .map(|p| p.to_string()),
            )
            .chain(std::iter::once(crate::http::METRICS_PATH.to_string()))
            .collect();
        let stopping = tokio::sync::watch::Sender::new(false);
        let shared = Shared::new(SharedState {
            credentials: Arc::new(config.credentials.clone()),
            config: config.clone(),
            agents: Arc::new(self.agents),
            admin: self.admin,
            records: self.records,
            console: self.console,
            events: self.events,
            access: self.access,
            metrics: self.metrics,
            known_paths: Arc::new(known_paths),
            stopping: stopping.subscribe(),
        });
        Ok(BoundServer {
            listener,
            local_addr,
            app: router(shared),
            tls,
            config,
            stopping,
            late_auth,
        })
    }
}

fn check_routes(
    agents: &[Arc<dyn AgentService>],
    records: bool,
    console: bool,
) -> Result<(), ServeError> {
    if agents.is_empty() {
        return Err(ServeError::NoAgents);
    }
    // Every path any agent answers, so that `/a` and `/a/swaig` cannot both claim `/a/swaig`.
    let mut taken: std::collections::HashMap<String, String> = PUBLIC_PATHS
        .iter()
        .chain(ADMIN_PATHS.iter())
        .chain(std::iter::once(&crate::http::METRICS_PATH))
        .map(|p| (p.to_string(), "the health checks".to_string()))
        .collect();
    for agent in agents {
        let route = agent.route();
        let fail = |reason| ServeError::Route {
            route: route.to_string(),
            reason,
        };
        if !route.starts_with('/') {
            return Err(fail("a route must start with '/'"));
        }
        if route.len() > 1 && route.ends_with('/') {
            return Err(fail("a route must not end with '/'"));
        }
        for path in AgentRoutes::new(route).all() {
            if records && crate::service::is_records_path(&path) {
                return Err(fail("this path is reserved for the operator records API"));
            }
            if console && crate::service::is_console_path(&path) {
                return Err(fail("this path is reserved for the security console"));
            }
            if taken.contains_key(&path) {
                return Err(fail(
                    if PUBLIC_PATHS.contains(&path.as_str()) || ADMIN_PATHS.contains(&path.as_str())
                    {
                        "this path is reserved for health checks and operator endpoints"
                    } else {
                        "another agent already answers one of this agent's paths (route, /swaig, /post_prompt)"
                    },
                ));
            }
            taken.insert(path, route.to_string());
        }
    }
    Ok(())
}

/// A bound server: knows its address, serves until told to stop.
pub struct BoundServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    app: Router,
    tls: Option<TlsAcceptor>,
    config: Arc<ServerConfig>,
    /// Set when shutdown starts: streamed answers (the console's live events) end then, so
    /// that they do not hold the graceful shutdown until its timeout.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The services served that read a body before they know who is calling.
    late_auth: LateAuth,
}

/// What each connection serves: the router, and which of its paths authenticate after the
/// body.
#[derive(Clone)]
struct Served {
    router: Router,
    late_auth: LateAuth,
}

/// Which of the services that authenticate after the body are served (a path of one that is
/// not may be an agent's route).
#[derive(Debug, Clone, Copy)]
struct LateAuth {
    records: bool,
    console: bool,
}

impl LateAuth {
    /// Whether a request to `path` reaches such a service.
    fn covers(self, path: &str) -> bool {
        (self.records && is_records_path(path)) || (self.console && is_console_path(path))
    }
}

impl BoundServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Serve until SIGTERM or Ctrl-C, then shut down gracefully.
    pub async fn serve(self) {
        self.serve_until(shutdown_signal()).await
    }

    /// Serve until `shutdown` completes, then stop accepting, let in-flight requests finish
    /// (bounded by the request timeout) and return.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()> + Send) {
        let BoundServer {
            listener,
            app,
            tls,
            config,
            stopping,
            late_auth,
            ..
        } = self;
        let permits = Arc::new(Semaphore::new(config.max_connections));
        let waiting = Waiting::new(config.max_connections_per_ip, config.max_connections);
        // A connection over its address's cap waits for a slot no longer than any connection
        // has to send its request head.
        let grace = config.header_read_timeout;
        let graceful = GracefulShutdown::new();
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            // Reap finished connection tasks so the set stays as small as the open connections.
            while connections.try_join_next().is_some() {}
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Typically EMFILE: back off briefly instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let watcher = graceful.watcher();
            let app = Served {
                router: app.clone(),
                late_auth,
            };
            let tls = tls.clone();
            let config = config.clone();
            let waiting = waiting.clone();
            let permits = permits.clone();
            // Counted here, in accept order, so an address's connections take its slots first
            // come, first served (a task spawned later can run first). An IPv6 /64 counts as
            // one address: a host holds at least that many.
            let counted_as = voxguard_guard::source_network(peer.ip(), 64);
            let slot = waiting.try_acquire(counted_as);
            connections.spawn(async move {
                let (slot, _permit) = match slot {
                    Some(slot) => (slot, permit),
                    None => {
                        // Over its address's cap: wait for a slot in the bounded queue, holding
                        // no place of the global cap meanwhile, then take one again.
                        drop(permit);
                        let Some(queued) = waiting.enqueue() else {
                            tracing::debug!(%peer, "connection queue full; closing");
                            return;
                        };
                        let Some(slot) = waiting.acquire(counted_as, grace).await else {
                            // One host may not hold more than its share of waiting connections.
                            tracing::debug!(%peer, "per-address connection cap reached; closing");
                            return;
                        };
                        drop(queued);
                        let Ok(Ok(permit)) =
                            tokio::time::timeout(grace, permits.acquire_owned()).await
                        else {
                            return;
                        };
                        (slot, permit)
                    }
                };
                serve_connection(stream, peer, app, tls, &config, watcher, slot).await;
            });
        }
        drop(listener);
        stopping.send_replace(true);
        let grace = config.request_timeout + Duration::from_secs(1);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                open = connections.len(),
                "graceful shutdown timed out; closing the remaining connections"
            );
        }
        connections.shutdown().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Served,
    tls: Option<TlsAcceptor>,
    config: &ServerConfig,
    watcher: hyper_util::server::graceful::Watcher,
    slot: Slot,
) {
    let Served {
        router: app,
        late_auth,
    } = app;
    let slot = Arc::new(slot);
    let trusted_proxies = Arc::new(config.trusted_proxies.clone());
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // Who the request came from: the peer, or behind a trusted proxy the address it
        // forwarded (per-source limits, locks and the audit trail read this; the per-address
        // connection cap counts the peer).
        let client = crate::public_url::client_addr(&trusted_proxies, req.headers(), peer);
        crate::public_url::warn_if_forwarding_ignored(&trusted_proxies, req.headers(), peer);
        req.extensions_mut().insert(ClientAddr(client));
        let app = app.clone();
        let slot = slot.clone();
        async move {
            // The records API and the console read the body before they know who is calling:
            // until then the connection counts as waiting, like one sending its head.
            if late_auth.covers(req.uri().path()) {
                req.extensions_mut().insert(BodyPending(slot.clone()));
            } else {
                slot.busy();
            }
            let mut response = app.oneshot(req.map(axum::body::Body::new)).await?;
            if !slot.idle() {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let result = match tls {
        None => {
            let io = TokioIo::new(JsonErrors::new(stream, false));
            watcher.watch(builder.serve_connection(io, service)).await
        }
        Some(acceptor) => {
            match tokio::time::timeout(config.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let io = TokioIo::new(JsonErrors::new(stream, true));
                    watcher.watch(builder.serve_connection(io, service)).await
                }
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection closed with an error");
    }
}

/// Resolves on SIGTERM or Ctrl-C. The signal handlers are installed when this function is
/// *called*, not when the future is first polled, so a signal that arrives between start-up
/// and serving is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut term, mut int) = signals;
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = term => {},
                () = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}
