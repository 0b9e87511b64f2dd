//! The app in-process ([`TestHub`]): on port 0 with the kit's token secret, in a temp data dir it
//! owns (or one its caller keeps), with the in-process bus or NATS; stopped gracefully and
//! started again on the same data dir ([`StoppedHub`]). `TEST_LOG` turns the app's logs on.

use std::ops::Deref;
use std::path::Path;

use socket_bridge::app::{AppError, Application};
use socket_bridge::bus::InProcessBus;
use socket_bridge::settings::Settings;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::api::Api;
use super::{SECRET, WAIT};

/// Settings of a test hub: the defaults, with the data in `data_dir`, port 0 and the kit's
/// token secret.
pub fn settings(data_dir: &Path) -> Settings {
    let mut settings = Settings::new(data_dir);
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    settings.jwt_secret = Some(SECRET.into());
    settings
}

/// The app running in this process; its [`Api`] is reached through `Deref`.
pub struct TestHub {
    api: Api,
    bus: Option<InProcessBus>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), AppError>>,
    stopped: StoppedHub,
}

impl Deref for TestHub {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestHub {
    /// Starts a hub with the test [`settings`] in a temp data dir of its own.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a hub in a temp data dir of its own, with the test [`settings`] changed by `tune`.
    pub async fn spawn_with(tune: impl FnOnce(&mut Settings)) -> Self {
        Self::try_spawn_with(tune).await.expect("the app builds")
    }

    /// [`spawn_with`](Self::spawn_with), returning the error when the app does not build.
    pub async fn try_spawn_with(tune: impl FnOnce(&mut Settings)) -> Result<Self, AppError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = settings(dir.path());
        tune(&mut settings);
        StoppedHub {
            settings,
            dir: Some(dir),
        }
        .try_start()
        .await
    }

    /// Starts a hub with `settings` as given (the caller keeps their data dir).
    pub async fn start(settings: Settings) -> Self {
        StoppedHub {
            settings,
            dir: None,
        }
        .start()
        .await
    }

    /// Runs `app`, already built from `settings` (kept for a restart), on this runtime.
    pub fn run(app: Application, settings: Settings) -> Self {
        Self::serve(
            app,
            StoppedHub {
                settings,
                dir: None,
            },
        )
    }

    fn serve(app: Application, stopped: StoppedHub) -> Self {
        let addr = app.local_addr().expect("addr");
        let bus = app.bus();
        let (stop, stop_requested) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stop_requested.await;
        }));
        Self {
            api: Api::new(format!("http://{addr}")),
            bus,
            stop,
            task,
            stopped,
        }
    }

    /// The in-process bus, to observe what the hub publishes (a hub on NATS has none).
    pub fn bus(&self) -> &InProcessBus {
        self.bus.as_ref().expect("the in-process bus")
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        self.stopped.data_dir()
    }

    /// Stops the hub gracefully and waits until the store is flushed; returns what starts it
    /// again.
    pub async fn stop(self) -> StoppedHub {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("stops in time")
            .expect("task")
            .expect("clean stop");
        self.stopped
    }

    /// Waits (up to three [`WAIT`]s) until the hub stops by itself, without being asked to;
    /// returns how its run ended.
    pub async fn ended(self) -> Result<(), AppError> {
        tokio::time::timeout(WAIT * 3, self.task)
            .await
            .expect("the hub stops by itself in time")
            .expect("task")
    }

    /// Stops the hub gracefully and starts it again on the same settings and data dir.
    pub async fn restart(self) -> Self {
        self.stop().await.start().await
    }
}

/// A hub's settings and data dir while it is not running.
pub struct StoppedHub {
    settings: Settings,
    /// The temp data dir the hub owns, if it does.
    dir: Option<tempfile::TempDir>,
}

impl StoppedHub {
    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }

    /// Starts the hub again with its settings changed by `tune`.
    pub async fn start_with(mut self, tune: impl FnOnce(&mut Settings)) -> TestHub {
        tune(&mut self.settings);
        self.start().await
    }

    /// Starts the hub (again).
    pub async fn start(self) -> TestHub {
        self.try_start().await.expect("the app builds")
    }

    async fn try_start(self) -> Result<TestHub, AppError> {
        if std::env::var("TEST_LOG").is_ok() {
            socket_bridge::telemetry::init_logging();
        }
        let app = Application::build(&self.settings).await?;
        Ok(TestHub::serve(app, self))
    }
}
