//! Start-up and shutdown of the shards.

use crate::config::Config;
use crate::handlers::Listener;
use crate::mesh::MeshMsg;
use crate::metadata::MetadataImage;
use crate::shard::Shard;
use millrace_shard::disk::DmaDisk;
use millrace_shard::mesh::MeshSpec;
use millrace_shard::{run_shards, ShardRuntimeConfig};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use crate::stop::STOP;

/// `millrace-tune probe DATA_DIR` writes this; the broker reads it at start.
const PROBE_PROFILE_FILE: &str = ".millrace-probe.properties";

/// Sizes `millrace.log.pending.bytes.max` from the device probe's profile unless the key was
/// set explicitly.
fn size_write_behind(config: &mut Config) {
    if config.log_pending_bytes_max_set {
        return;
    }
    let path = config.data_dir.join(PROBE_PROFILE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring the device probe");
            return;
        }
    };
    match crate::config::write_behind_from_probe(&text, config.message_max_bytes) {
        Ok(bytes) => {
            config.log_pending_bytes_max = bytes;
            tracing::info!(path = %path.display(), pending_bytes_max = bytes, "sized write-behind from the device probe");
        }
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring the device probe"),
    }
}

/// Runs the broker until SIGINT/SIGTERM.
pub fn run(mut config: Config) -> Result<(), String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("creating data dir {}: {e}", config.data_dir.display()))?;
    size_write_behind(&mut config);
    let runtime = ShardRuntimeConfig {
        shards: config.cores,
        io_memory_bytes: config.io_memory_bytes,
        ring_depth: 128,
        pin: config.pin_cores,
    };
    runtime.check()?;
    // Fail early and clearly if a port is taken, before the shards start: every listener is
    // bound at once (and then let go), so two keys naming one address are caught too (the
    // shards' own sockets share ports with SO_REUSEPORT, which would hide it).
    let mut held = Vec::new();
    if config.cluster.is_broker() {
        for (name, addr) in client_listen(&config)? {
            held.push(
                std::net::TcpListener::bind(addr)
                    .map_err(|e| format!("listening on {name} {addr}: {e}"))?,
            );
        }
    }
    if let Some(addr) = config.cluster.controller_listen {
        held.push(
            std::net::TcpListener::bind(addr)
                .map_err(|e| format!("listening on the controller listener {addr}: {e}"))?,
        );
    }
    for (key, addr) in [
        ("millrace.metrics.listen", config.metrics_listen),
        ("millrace.rest.listen", rest_listen(&config)),
        (
            "millrace.schema.registry.listen",
            schema_registry_listen(&config),
        ),
    ] {
        if let Some(addr) = addr {
            held.push(
                std::net::TcpListener::bind(addr)
                    .map_err(|e| format!("listening on {key} {addr}: {e}"))?,
            );
        }
    }
    drop(held);
    // TLS keys and SASL users are read once, before the shards start: a bad file stops here.
    let listeners = Arc::new(crate::auth::Listeners::build(&config)?);
    crate::dial::install(&config)?;
    let mesh = MeshSpec::<MeshMsg<Shard>>::new(config.cores, config.mesh_channel_capacity);
    let config = Arc::new(config);
    tracing::info!(listen = %config.listen, data_dir = %config.data_dir.display(), cores = config.cores,
        fsync = config.fsync, "millrace starting");
    // Shards listen only once every shard has opened its logs: a connection on a ready shard
    // could otherwise forward work to a peer still opening the partition. No shard opens a
    // partition before the controller's shard has loaded the metadata and published it.
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let connections = crate::connection_limit::ConnectionLimit::with_per_ip(
        config.max_connections,
        config.max_connections_per_ip,
        config.max_connections_per_ip_overrides.clone(),
    );
    run_shards(&runtime, move |_| {
        let connections = connections.clone();
        shard_main(
            config.clone(),
            mesh.clone(),
            ready.clone(),
            (connections, listeners.clone()),
        )
    })
    .map_err(|e| e.to_string())
}

async fn shard_main(
    config: Arc<Config>,
    mesh: MeshSpec<MeshMsg<Shard>>,
    ready: Arc<std::sync::atomic::AtomicUsize>,
    (connections, listeners): (
        crate::connection_limit::ConnectionLimit,
        Arc<crate::auth::Listeners>,
    ),
) -> std::io::Result<()> {
    let mut mesh = mesh.join().await?;
    let inboxes = mesh.take_inboxes();
    let disk = crate::disk::BrokerDisk::Device(DmaDisk);
    let shard = Shard::new(
        config.clone(),
        disk,
        mesh,
        Arc::new(MetadataImage::default()),
    );
    if let Err(e) = open_shard(&shard, &config, inboxes).await {
        // Stop the other shards too: they would otherwise wait for this one forever.
        crate::stop::stop_all();
        return Err(e);
    }
    millrace_shard::spawn_detached(crate::coordinator::tick_loop(shard.clone()));
    millrace_shard::spawn_detached(crate::coordinator::watch(shard.clone()));
    millrace_shard::spawn_detached(crate::txn::watch(shard.clone()));
    millrace_shard::spawn_detached(crate::share_manager::tick_loop(shard.clone()));
    millrace_shard::spawn_detached(crate::share_state::watch(shard.clone()));
    if config.cluster.is_broker() {
        millrace_shard::spawn_detached(crate::follower::run(shard.clone()));
        millrace_shard::spawn_detached(crate::isr::run(shard.clone()));
    }
    if let Err(e) = crate::maintenance::start(&shard) {
        crate::stop::stop_all();
        return Err(std::io::Error::other(e));
    }
    let stop = crate::stop::ShardStop::start(Duration::from_millis(50));
    ready.fetch_add(1, Ordering::AcqRel);
    while ready.load(Ordering::Acquire) < shard.shards && !STOP.load(Ordering::Relaxed) {
        millrace_shard::time::sleep(Duration::from_millis(1)).await;
    }
    if shard.id == Shard::controller_shard() {
        if let Some(addr) = config.cluster.controller_listen {
            let runtime = listeners
                .1
                .as_ref()
                .map(|setup| Rc::new(crate::auth::ListenerRuntime::new(setup.clone())));
            serve_controller_listener(shard.clone(), addr, runtime, stop.wait())?;
        }
        if let Some(addr) = config.metrics_listen {
            let (serving, open) = (shard.clone(), connections.clone());
            let handler: crate::http::Handler = Rc::new(move |req| {
                let connections = open.open();
                Box::pin(crate::metrics::handle(serving.clone(), req, connections))
            });
            crate::http::serve("metrics", addr, handler, stop.wait())?;
        }
        if let Some(addr) = rest_listen(&config) {
            // A client of this broker's own listener unless told another cluster.
            let (bootstrap, route) = if config.rest_bootstrap.is_empty() {
                (
                    vec![config.advertise.clone()],
                    crate::dial::Route::InterBroker,
                )
            } else {
                (config.rest_bootstrap.clone(), crate::dial::Route::Plain)
            };
            let rest = Rc::new(crate::rest::Rest::new(
                bootstrap,
                format!("millrace-rest-{}", config.node_id),
                config.socket_request_max_bytes,
                config.rest_consumer.clone(),
                route,
            ));
            let handler: crate::http::Handler =
                Rc::new(move |req| Box::pin(crate::rest::handle(rest.clone(), req)));
            crate::http::serve("rest", addr, handler, stop.wait())?;
        }
        // The registry exists on every broker (produce validation asks it), its HTTP listener
        // where configured.
        let listen = schema_registry_listen(&config);
        if config.cluster.is_broker() || listen.is_some() {
            let (bootstrap, route) = if config.schema_registry_bootstrap.is_empty() {
                (
                    vec![config.advertise.clone()],
                    crate::dial::Route::InterBroker,
                )
            } else {
                (
                    config.schema_registry_bootstrap.clone(),
                    crate::dial::Route::Plain,
                )
            };
            let registry = Rc::new(crate::registry::Registry::new(
                bootstrap,
                format!("millrace-schema-registry-{}", config.node_id),
                config.socket_request_max_bytes,
                route,
            ));
            crate::registry::install(registry.clone());
            if let Some(addr) = listen {
                let handler: crate::http::Handler =
                    Rc::new(move |req| Box::pin(crate::registry::handle(registry.clone(), req)));
                crate::http::serve("schema registry", addr, handler, stop.wait())?;
            }
        }
    }
    if !config.cluster.is_broker() {
        // A controller-only node: no client listener, no partitions; its work is on the
        // controller listener and the quorum's tasks.
        tracing::info!(shard = shard.id, "shard ready (controller only)");
        stop.wait().await;
        return stop_shard(&shard).await;
    }
    let mut accepting = Vec::new();
    let addresses = client_listen(&config).map_err(std::io::Error::other)?;
    for ((name, addr), setup) in addresses.into_iter().zip(listeners.0.iter()) {
        assert_eq!(
            name, setup.name,
            "listeners and their security in one order"
        );
        let listener = millrace_shard::net::listen(addr)?;
        let (serving, connections) = (shard.clone(), connections.clone());
        let endpoint: Rc<str> = Rc::from(name.as_str());
        let runtime = Rc::new(crate::auth::ListenerRuntime::new(setup.clone()));
        accepting.push(millrace_shard::spawn(
            millrace_shard::net::accept_until_signal(listener, stop.wait(), move |stream| {
                let (shard, connections) = (serving.clone(), connections.clone());
                let (endpoint, runtime) = (endpoint.clone(), Some(runtime.clone()));
                async move {
                    let ip_slot = match admit(&shard, &connections, &stream).await {
                        Admission::Serve(ip_slot) => ip_slot,
                        // Shut down explicitly: dropping an unread stream does not close it
                        // at once.
                        Admission::Close => {
                            let _ = stream.shutdown(std::net::Shutdown::Both).await;
                            return;
                        }
                        // Held open without being read, then closed, off the accept loop.
                        Admission::CloseAfter(delay) => {
                            millrace_shard::spawn_detached(async move {
                                millrace_shard::time::sleep(delay).await;
                                let _ = stream.shutdown(std::net::Shutdown::Both).await;
                            });
                            return;
                        }
                    };
                    let slot = connections.acquire().await; // max.connections: wait for a close
                    millrace_shard::spawn_detached(async move {
                        crate::connection::serve(
                            shard,
                            stream,
                            Listener::Client,
                            endpoint,
                            runtime,
                        )
                        .await;
                        drop((slot, ip_slot));
                    });
                }
            }),
        ));
    }
    tracing::info!(
        shard = shard.id,
        partitions = shard.partitions().len(),
        "shard ready"
    );
    for task in accepting {
        task.await;
    }
    stop_shard(&shard).await
}

/// What happens to a new client connection.
enum Admission {
    /// Serve it, counted against its address's bound when the address is known.
    Serve(Option<crate::connection_limit::IpSlot>),
    /// Close it now.
    Close,
    /// Close it after this delay, so the client does not come straight back.
    CloseAfter(Duration),
}

/// Kafka's per-address checks on a new client connection: `max.connections.per.ip` (and its
/// overrides) closes it at once, the address's `connection_creation_rate` quota after the
/// throttle time; each with a log line.
async fn admit(
    shard: &Rc<Shard>,
    connections: &crate::connection_limit::ConnectionLimit,
    stream: &millrace_shard::net::TcpStream,
) -> Admission {
    let Ok(peer) = stream.peer_addr() else {
        return Admission::Serve(None);
    };
    let ip = peer.ip();
    let Some(slot) = connections.try_ip(ip) else {
        tracing::warn!(%ip, "closing connection: max.connections.per.ip reached");
        return Admission::Close;
    };
    let throttle_ms = crate::quotas::record_connection(shard, ip).await;
    if throttle_ms > 0 {
        tracing::warn!(%ip, throttle_ms, "closing connection: connection_creation_rate exceeded");
        return Admission::CloseAfter(Duration::from_millis(throttle_ms));
    }
    Admission::Serve(Some(slot))
}

/// Every client listener's name and address to bind, in `listeners`' order.
fn client_listen(config: &Config) -> Result<Vec<(String, std::net::SocketAddr)>, String> {
    config
        .cluster
        .client_listeners
        .iter()
        .map(|l| {
            crate::config::cluster::socket_addr("listeners", &l.host, l.port)
                .map(|addr| (l.name.clone(), addr))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Where the REST proxy listens: a controller-only node has no client listener to front, so
/// it serves one only when told another cluster (`millrace.rest.bootstrap.servers`).
fn rest_listen(config: &Config) -> Option<std::net::SocketAddr> {
    config
        .rest_listen
        .filter(|_| config.cluster.is_broker() || !config.rest_bootstrap.is_empty())
}

/// Where the schema registry listens: like the REST proxy, on a broker node, or on a
/// controller-only node told another cluster.
fn schema_registry_listen(config: &Config) -> Option<std::net::SocketAddr> {
    config
        .schema_registry_listen
        .filter(|_| config.cluster.is_broker() || !config.schema_registry_bootstrap.is_empty())
}

async fn stop_shard(shard: &Rc<Shard>) -> std::io::Result<()> {
    shard.stopping.set(true);
    shard.stopped.notify_all();
    shard.data_arrived.notify_all();
    shard.close_partitions().await;
    tracing::info!(shard = shard.id, "shard stopped");
    Ok(())
}

/// Accepts connections on the controller listener (on the controller's shard only) until the
/// broker stops. They are few (the other controllers and brokers), so `max.connections`,
/// which bounds clients, does not count them.
fn serve_controller_listener(
    shard: Rc<Shard>,
    addr: std::net::SocketAddr,
    runtime: Option<Rc<crate::auth::ListenerRuntime>>,
    stopped: impl std::future::Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let listener = millrace_shard::net::listen(addr)?;
    tracing::info!(%addr, "controller listener ready");
    millrace_shard::spawn_detached(async move {
        millrace_shard::net::accept_until_signal(listener, stopped, move |stream| {
            let (shard, runtime) = (shard.clone(), runtime.clone());
            async move {
                let endpoint = Rc::from(shard.config.cluster.client_listener_name.as_str());
                millrace_shard::spawn_detached(crate::connection::serve(
                    shard,
                    stream,
                    Listener::Controller,
                    endpoint,
                    runtime,
                ));
            }
        })
        .await;
    });
    Ok(())
}

/// Opens this shard's logs and rebuilds its consumer groups. The controller's shard loads the
/// metadata and publishes it to every shard (itself included); the others wait for it.
async fn open_shard(
    shard: &Rc<Shard>,
    config: &Config,
    inboxes: Vec<(usize, millrace_shard::mesh::Inbox<MeshMsg<Shard>>)>,
) -> std::io::Result<()> {
    // Probe before taking mesh work: the controller's publish opens partitions here.
    DmaDisk::probe_device(&config.data_dir, shard.id).await?;
    for (peer, inbox) in inboxes {
        millrace_shard::spawn_detached(crate::mesh::inbox_loop(shard.clone(), peer, inbox));
    }
    if shard.id == Shard::controller_shard() {
        crate::controller::start(shard)
            .await
            .map_err(std::io::Error::other)?;
    }
    while shard.applied_version() == 0 {
        if STOP.load(Ordering::Relaxed) {
            return Err(std::io::Error::other(
                "stopped before the metadata was loaded",
            ));
        }
        millrace_shard::time::sleep(Duration::from_millis(1)).await;
    }
    crate::coordinator::load(shard).await?;
    Ok(())
}
