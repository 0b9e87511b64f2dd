//! Building the whole service from its settings, then running it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::Method;
use serde_json::json;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::auth::{SecretError, TokenAuthority};
use crate::bus::nats::{ConsumerHandle, NatsBus, NatsError, NatsSettings};
use crate::bus::{EventBus, InProcessBus, Publisher};
use crate::domain::Timestamp;
use crate::http::{self, AppState};
use crate::ingest::Ingest;
use crate::photos::{PhotoError, PhotoFiles, Photos, WorkerHandle};
use crate::realtime::{self, Expiries, Hub, HubOptions, Realtime};
use crate::retention::{RetentionError, RetentionScheduler, RetentionView};
use crate::settings::{AllowedOrigins, CorsSettings, Settings, SettingsError};
use crate::store::{EventLog, StoreError};
use crate::telemetry::{self, ErrorChain};

/// Why the hub could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The event log could not be opened or closed.
    #[error("event log")]
    Store(#[from] StoreError),
    /// The token secret could not be loaded.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Binding or serving the listener failed.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The retention schedule is invalid or could not start.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// A setting cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The event log could not write; the hub stopped so that its supervisor restarts it.
    #[error("the event log could not write (the log above says why); the hub stopped")]
    StoreFailed,
    /// The NATS bus cannot be used (bad settings, or a conflicting stream or consumer).
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// The photos could not be set up.
    #[error(transparent)]
    Photos(#[from] PhotoError),
}

impl AppError {
    /// What the operator can do about it, when there is a usual remedy.
    pub fn hint(&self) -> Option<&'static str> {
        use std::io::ErrorKind;
        let io_kind = match self {
            AppError::Listen { source, .. } => {
                return Some(match source.kind() {
                    ErrorKind::AddrInUse => {
                        "stop what listens there, or pass --listen with another port"
                    }
                    ErrorKind::PermissionDenied => {
                        "ports below 1024 need privileges; pass --listen with a higher port"
                    }
                    _ => "pass --listen with an address of this machine",
                });
            }
            AppError::Store(StoreError::Io { source, .. })
            | AppError::Secret(SecretError::Io { source, .. }) => source.kind(),
            AppError::Store(StoreError::Sled(sled::Error::Io(source))) => source.kind(),
            AppError::Store(StoreError::NoRoom { .. }) => {
                return Some("free some space on the data dir's disk");
            }
            AppError::StoreFailed => {
                return Some(
                    "free space on (or repair) the data dir's disk, then start the hub again",
                );
            }
            _ => return None,
        };
        match io_kind {
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
                Some("make the data dir writable by this user, or pass --data-dir")
            }
            ErrorKind::StorageFull => Some("free some space on the data dir's disk"),
            _ => None,
        }
    }
}

/// How long a hub whose event log cannot write keeps answering (503 for writes, reads as usual)
/// before it stops and exits non-zero.
pub const STORE_FAILURE_GRACE: Duration = Duration::from_secs(2);

/// How long the hub waits for NATS at start before serving without it.
const NATS_START_WAIT: Duration = Duration::from_secs(2);

/// How long shutdown waits for the photos being processed.
const WORKER_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// How long shutdown waits for the NATS consumer to store and ack its last batch.
const NATS_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The websocket read buffer each connection starts with and keeps (engineioxide's default is
/// 4 KiB): clients send small packets (requests, acks), and a larger message grows the buffer for
/// as long as it needs. Idle connections are most connections (docs/benchmarks.md, idle clients).
const WS_READ_BUFFER: usize = 1024;

/// The bus the hub was built with.
enum Bus {
    /// The default, single-process bus.
    InProcess(InProcessBus),
    /// NATS JetStream, with the settings its consumer starts with.
    Nats(NatsBus, Box<NatsSettings>),
}

/// A built hub, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    io: SocketIo,
    hub: Hub,
    log: EventLog,
    ingest: Ingest,
    bus: Bus,
    retention: RetentionScheduler,
    worker: Option<WorkerHandle>,
    header_timeout: Duration,
    /// `/metrics` on its own listener (`--metrics-listen`).
    metrics: Option<(TcpListener, Router)>,
}

impl Application {
    /// Binds the listener first (so that a taken port is found before anything is written),
    /// then opens the store, loads the token secret and wires everything.
    pub async fn build(settings: &Settings) -> Result<Self, AppError> {
        if settings.insecure_dev_auth && !settings.listen.ip().is_loopback() {
            return Err(SettingsError::InsecureOnPublicAddress(settings.listen).into());
        }
        let listener =
            http::listener::bind(settings.listen).map_err(|source| AppError::Listen {
                addr: settings.listen.to_string(),
                source,
            })?;
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(
                http::listener::bind(addr).map_err(|source| AppError::Listen {
                    addr: addr.to_string(),
                    source,
                })?,
            ),
            None => None,
        };
        let log = EventLog::open_with(settings.store_dir(), settings.store.clone())?;
        let (tokens, generated) =
            TokenAuthority::load(settings.jwt_secret.as_deref(), &settings.data_dir)?;
        let tokens = tokens.with_leeway(settings.token_leeway);
        if generated {
            let binary = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "socket-bridge".into());
            tracing::info!(
                path = %settings.data_dir.join("jwt-secret").display(),
                "generated a token secret; mint a token with `{binary} token --user <id> --permission read:photos` (from a checkout: `cargo run --release -- token ...`)"
            );
        }
        if settings.insecure_dev_auth {
            tracing::warn!(
                "--insecure-dev-auth: sockets may connect with a bare userId and no token; never use this in production"
            );
        }
        let (bus, shared_bus): (Bus, Arc<dyn EventBus>) = match &settings.nats {
            None => {
                let bus = InProcessBus::default();
                (Bus::InProcess(bus.clone()), Arc::new(bus))
            }
            Some(nats) => {
                // JetStream keeps no message longer than retention keeps its event.
                let nats = &NatsSettings {
                    stream_max_age: settings.retention.max_age,
                    ..nats.clone()
                };
                let bus = NatsBus::connect(nats).await?;
                bus.prepare(nats, NATS_START_WAIT, &log).await?;
                (
                    Bus::Nats(bus.clone(), Box::new(nats.clone())),
                    Arc::new(bus),
                )
            }
        };
        let hub = Hub::new(
            log.clone(),
            HubOptions {
                slow_client_timeout: settings.socket.slow_client_timeout,
            },
        );
        let realtime = Realtime {
            log: log.clone(),
            hub: hub.clone(),
            tokens: tokens.clone(),
            expiries: Expiries::start(),
            bus: Publisher::spawn(Arc::clone(&shared_bus)),
            insecure_dev_auth: settings.insecure_dev_auth,
            limits: settings.limits.clone(),
        };
        let socket = &settings.socket;
        let (socket_layer, io) = SocketIo::builder()
            .ping_interval(socket.ping_interval)
            .ping_timeout(socket.ping_timeout)
            .max_payload(socket.max_payload_bytes as u64)
            .ws_max_message_size(socket.max_payload_bytes)
            .ws_read_buffer_size(WS_READ_BUFFER)
            .max_buffer_size(socket.queue_packets)
            .max_buffer_bytes(socket.queue_bytes)
            // The hub reads the handshake from the connect packet, never the request's headers.
            .keep_request_headers(false)
            .with_state(realtime)
            .build_layer();
        realtime::register(&io);
        hub.start();

        let ingest = Ingest::new(log.clone()).with_max_json_depth(settings.limits.max_json_depth);
        realtime::live::spawn(io.clone(), hub.clone(), ingest.live_events());
        let nats_client = match &bus {
            Bus::Nats(bus, _) => Some(bus.client()),
            Bus::InProcess(_) => None,
        };
        let (photos, worker) = Photos::start(
            &settings.photos,
            &settings.data_dir,
            log.clone(),
            ingest.clone(),
            nats_client,
        )
        .await?;
        let retention = RetentionScheduler::start(
            log.clone(),
            settings.retention,
            &settings.prune_schedule,
            Arc::new(PhotoFiles::new(&settings.data_dir)),
        )
        .await?;
        let state = AppState {
            log: log.clone(),
            hub: hub.clone(),
            ingest: ingest.clone(),
            tokens,
            bus: shared_bus,
            metrics: telemetry::metrics_handle(),
            started: Instant::now(),
            max_batch_events: settings.limits.max_batch_events,
            retention: RetentionView {
                policy: settings.retention,
                schedule: settings.prune_schedule.clone(),
                last_run: retention.last_run(),
            },
            photos,
        };
        telemetry::register_metrics();
        let metrics =
            metrics_listener.map(|listener| (listener, http::metrics_router(state.clone())));
        let router = http::router(state, socket.max_payload_bytes, metrics.is_none())
            .layer(socket_layer)
            .layer(cors(&settings.cors))
            .layer(RequestBodyTimeoutLayer::new(settings.http.body_timeout));
        Ok(Self {
            listener,
            router,
            io,
            hub,
            log,
            ingest,
            bus,
            retention,
            worker,
            header_timeout: settings.http.header_timeout,
            metrics,
        })
    }

    /// The address the hub listens on (with the real port when configured with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, AppError> {
        self.listener
            .local_addr()
            .map_err(|source| AppError::Listen {
                addr: "bound listener".into(),
                source,
            })
    }

    /// The address `/metrics` is served on when it has a listener of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Resolves once the event log has failed: the hub then stops by itself after
    /// [`STORE_FAILURE_GRACE`].
    pub fn store_failed(&self) -> impl Future<Output = ()> + Send + 'static {
        let log = self.log.clone();
        async move { log.failed().await }
    }

    /// The in-process bus, to observe what the hub publishes (`None` when it uses NATS).
    pub fn bus(&self) -> Option<InProcessBus> {
        match &self.bus {
            Bus::InProcess(bus) => Some(bus.clone()),
            Bus::Nats(..) => None,
        }
    }

    /// Serves (and consumes NATS, when configured) until `shutdown` resolves; then stores and acks
    /// the NATS batch in hand, sends `system.shutdown` to every client, closes the sockets, stops
    /// accepting, waits for in-flight requests and the photos being processed, and flushes the
    /// store.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, epoch = self.log.epoch(), "socket-bridge listening");
        let (io, ingest, hub) = (self.io.clone(), self.ingest.clone(), self.hub.clone());
        let log = self.log.clone();
        let store_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failed_flag = Arc::clone(&store_failed);
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                () = log.failed() => {
                    tracing::error!(
                        "the event log cannot write; answering 503 for {STORE_FAILURE_GRACE:?}, then exiting so that the supervisor restarts the hub"
                    );
                    failed_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(STORE_FAILURE_GRACE).await;
                }
            }
        };
        let consumer: Option<ConsumerHandle> = match &self.bus {
            Bus::Nats(bus, settings) => Some(bus.start_consumer(settings, self.ingest.clone())),
            Bus::InProcess(_) => None,
        };
        let graceful = async move {
            shutdown.await;
            tracing::info!("shutting down");
            if let Some(consumer) = consumer {
                consumer.stop(NATS_DRAIN_LIMIT).await;
            }
            ingest.close();
            hub.stop_following();
            let notice = json!({ "message": "Server is shutting down", "timestamp": Timestamp::now().to_rfc3339() });
            if let Err(e) = io.emit("system.shutdown", &notice).await {
                tracing::debug!(error = %ErrorChain(&e), "system.shutdown did not reach every socket");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            io.close().await;
        };
        let metrics = self.metrics.map(|(listener, router)| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "serving /metrics");
            }
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let served = tokio::spawn(http::serve::serve(
                listener,
                router,
                self.header_timeout,
                async move {
                    let _ = stopped.await;
                },
            ));
            (stop, served)
        });
        http::serve::serve(self.listener, self.router, self.header_timeout, graceful).await;
        if let Some((stop, served)) = metrics {
            let _ = stop.send(());
            let _ = served.await;
        }
        let worker = async {
            if let Some(worker) = self.worker {
                worker.stop(WORKER_DRAIN_LIMIT).await;
            }
        };
        tokio::join!(self.retention.stop(Duration::from_secs(2)), worker);
        let closed = self.log.close();
        if store_failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(AppError::StoreFailed);
        }
        closed?;
        tracing::info!("stopped; the store is flushed");
        Ok(())
    }
}

fn cors(settings: &CorsSettings) -> CorsLayer {
    let origin = match &settings.origins {
        AllowedOrigins::Any => AllowOrigin::mirror_request(),
        AllowedOrigins::List(origins) => AllowOrigin::list(origins.iter().cloned()),
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
        ])
        .allow_credentials(settings.credentials)
}
