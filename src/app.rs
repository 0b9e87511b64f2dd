//! Building the whole service from its settings, then running it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderValue, Method};
use serde_json::json;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{SecretError, TokenAuthority};
use crate::bus::nats::{ConsumerHandle, NatsBus, NatsError, NatsSettings};
use crate::bus::{EventBus, InProcessBus, Publisher};
use crate::config::ServeArgs;
use crate::domain::Timestamp;
use crate::http::{self, AppState};
use crate::ingest::Ingest;
use crate::realtime::{self, Hub, HubOptions, Realtime};
use crate::retention::{RetentionError, RetentionScheduler};
use crate::store::{EventLog, StoreError, StoreOptions};
use crate::telemetry;

/// Why the hub could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The event log could not be opened or closed.
    #[error("event log: {0}")]
    Store(#[from] StoreError),
    /// The token secret could not be loaded.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Binding or serving the listener failed.
    #[error("listener {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The retention schedule is invalid or could not start.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// A setting is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The NATS bus cannot be used (bad settings, or a conflicting stream or consumer).
    #[error(transparent)]
    Nats(#[from] NatsError),
}

/// How long the hub waits for NATS at start before serving without it.
const NATS_START_WAIT: Duration = Duration::from_secs(2);

/// How long shutdown waits for the NATS consumer to store and ack its last batch.
const NATS_DRAIN_LIMIT: Duration = Duration::from_secs(2);

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
    log: EventLog,
    ingest: Ingest,
    bus: Bus,
    retention: RetentionScheduler,
}

impl Application {
    /// Opens the store, loads the token secret, binds the listener and wires everything.
    pub async fn build(args: &ServeArgs) -> Result<Self, AppError> {
        let store_options = StoreOptions {
            cache_capacity_bytes: args.store_cache_mb * 1024 * 1024,
            ..StoreOptions::default()
        };
        crate::retention::validate_schedule(&args.prune_schedule)?;
        let log = EventLog::open_with(args.data.data_dir.join("store"), store_options)?;
        let (tokens, generated) =
            TokenAuthority::load(args.data.jwt_secret.as_deref(), &args.data.data_dir)?;
        if generated {
            tracing::info!(
                path = %args.data.data_dir.join("jwt-secret").display(),
                "generated a token secret; mint a token with `socket-bridge token --user <id> --permission read:photos`"
            );
        }
        if args.insecure_dev_auth {
            tracing::warn!(
                "--insecure-dev-auth: sockets may connect with a bare userId and no token; never use this in production"
            );
        }
        let (bus, shared_bus): (Bus, Arc<dyn EventBus>) = match &args.nats_url {
            None => {
                let bus = InProcessBus::default();
                (Bus::InProcess(bus.clone()), Arc::new(bus))
            }
            Some(url) => {
                let settings = nats_settings(args, url);
                let bus = NatsBus::connect(&settings).await?;
                bus.prepare(&settings, NATS_START_WAIT).await?;
                (Bus::Nats(bus.clone(), Box::new(settings)), Arc::new(bus))
            }
        };
        let hub = Hub::new(
            log.clone(),
            HubOptions {
                slow_client_timeout: args.slow_client_timeout,
            },
        );
        let realtime = Realtime {
            log: log.clone(),
            hub: hub.clone(),
            tokens: tokens.clone(),
            bus: Publisher::spawn(Arc::clone(&shared_bus)),
            insecure_dev_auth: args.insecure_dev_auth,
        };
        let (socket_layer, io) = SocketIo::builder()
            .ping_interval(Duration::from_millis(args.ping_interval_ms))
            .ping_timeout(Duration::from_millis(args.ping_timeout_ms))
            .max_payload(args.max_buffer_size)
            .ws_max_message_size(usize::try_from(args.max_buffer_size).unwrap_or(usize::MAX))
            .max_buffer_size(args.socket_queue_packets)
            .with_state(realtime)
            .build_layer();
        realtime::register(&io);
        hub.start();

        let ingest = Ingest::new(log.clone(), io.clone());
        let state = AppState {
            log: log.clone(),
            hub,
            ingest: ingest.clone(),
            tokens,
            bus: shared_bus,
            metrics: telemetry::metrics_handle(),
            started: Instant::now(),
        };
        let max_body = usize::try_from(args.max_buffer_size).unwrap_or(usize::MAX);
        let router = http::router(state, max_body)
            .layer(socket_layer)
            .layer(cors(args)?);
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|source| AppError::Listen {
                addr: args.listen.to_string(),
                source,
            })?;
        let retention =
            RetentionScheduler::start(log.clone(), args.retention.policy(), &args.prune_schedule)
                .await?;
        Ok(Self {
            listener,
            router,
            io,
            log,
            ingest,
            bus,
            retention,
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

    /// The in-process bus, to observe what the hub publishes (`None` when it uses NATS).
    pub fn bus(&self) -> Option<InProcessBus> {
        match &self.bus {
            Bus::InProcess(bus) => Some(bus.clone()),
            Bus::Nats(..) => None,
        }
    }

    /// Serves (and consumes NATS, when configured) until `shutdown` resolves; then stores and acks
    /// the NATS batch in hand, sends `system.shutdown` to every client, closes the sockets, stops
    /// accepting, waits for in-flight requests and flushes the store.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, epoch = self.log.epoch(), "socket-bridge listening");
        let (io, ingest) = (self.io.clone(), self.ingest.clone());
        let consumer: Option<ConsumerHandle> = match &self.bus {
            Bus::Nats(bus, settings) => {
                Some(bus.start_consumer(settings, self.log.clone(), self.ingest.clone()))
            }
            Bus::InProcess(_) => None,
        };
        let graceful = async move {
            shutdown.await;
            tracing::info!("shutting down");
            if let Some(consumer) = consumer {
                consumer.stop(NATS_DRAIN_LIMIT).await;
            }
            ingest.close();
            let notice = json!({ "message": "Server is shutting down", "timestamp": Timestamp::now().to_rfc3339() });
            if let Err(e) = io.emit("system.shutdown", &notice).await {
                tracing::debug!(error = %e, "system.shutdown did not reach every socket");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            io.close().await;
        };
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(graceful)
            .await
            .map_err(|source| AppError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        self.retention.stop(Duration::from_secs(2)).await;
        self.log.close()?;
        tracing::info!("stopped; the store is flushed");
        Ok(())
    }
}

fn nats_settings(args: &ServeArgs, url: &str) -> NatsSettings {
    NatsSettings {
        url: url.to_owned(),
        stream: args.nats.stream.clone(),
        consumer: args.nats.consumer.clone(),
        dead_letter_subject: args.nats.dead_letter_subject.clone(),
        batch_size: args.nats.batch_size,
        ack_wait: args.nats.ack_wait,
        max_message_bytes: usize::try_from(args.max_buffer_size).unwrap_or(usize::MAX),
    }
}

fn cors(args: &ServeArgs) -> Result<CorsLayer, AppError> {
    let any = args.allowed_origins.iter().any(|o| o.trim() == "*");
    let origin = if any {
        AllowOrigin::mirror_request()
    } else {
        let origins = args
            .allowed_origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim())
                    .map_err(|_| AppError::Config(format!("ALLOWED_ORIGINS: invalid origin `{o}`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(origins)
    };
    Ok(CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
        ])
        .allow_credentials(args.cors_credentials))
}
