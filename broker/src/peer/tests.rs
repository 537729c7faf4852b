//! [`PeerClient`] against a hand-rolled responder on 127.0.0.1:0, both on one real shard.
//!
//! The responder parses request headers with the wire crate (so a header the client gets
//! wrong fails here), decodes ApiVersions and BrokerHeartbeat with kafka-protocol after the
//! request guard, and echoes a private key's body. Behaviours cover pipelining, a peer that
//! drops a connection mid-request, an oversized response, a peer that never answers and a
//! late answer to an abandoned request. Timeouts are generous except where a timeout is the
//! outcome under test; assertions are on outcomes, never on durations.

use super::*;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse,
    BrokerId,
};
use millrace_shard::net::{listen, TcpStream};
use millrace_wire::frame::{encode_response, parse_request_header, peek_fixed, skip_tagged_fields};
use std::future::Future;

/// A key kafka-protocol does not know, standing in for the Raft messages' private key.
const PRIVATE_KEY: i16 = 9_000;
const CLIENT_ID: &str = "peer-test";
/// Long enough that it only passes when something is broken.
const GENEROUS: Duration = Duration::from_secs(20);

#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers each request as it arrives.
    Answer,
    /// Reads this many requests before answering any, then answers them in order.
    AnswerInBatches(usize),
    /// On the first connection: reads part of a request and closes. Later ones: `Answer`.
    FirstConnectionDropsMidRequest,
    /// Answers with a frame declaring this size (and sends only its correlation id).
    Oversize(i32),
    /// Reads requests, never answers.
    Silent,
    /// Answers the first request on a connection after this delay, the rest at once.
    DelayFirst(Duration),
}

struct Server {
    addr: SocketAddr,
    accepted: Rc<Cell<u32>>,
    closed: Rc<Cell<u32>>,
    _accepts: Task<()>,
}

fn start(behaviour: Behaviour) -> Server {
    let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Rc::new(Cell::new(0));
    let closed = Rc::new(Cell::new(0));
    let (a, c) = (accepted.clone(), closed.clone());
    let accepts = millrace_shard::spawn(async move {
        while let Ok(stream) = listener.accept().await {
            a.set(a.get() + 1);
            let first = a.get() == 1;
            let c = c.clone();
            millrace_shard::spawn_detached(async move {
                serve(stream, behaviour, first).await;
                c.set(c.get() + 1);
            });
        }
    });
    Server {
        addr,
        accepted,
        closed,
        _accepts: accepts,
    }
}

/// A parsed request: key, version, correlation id, body.
type Received = (i16, i16, i32, Bytes);

async fn serve(mut stream: TcpStream, behaviour: Behaviour, first: bool) {
    if first && matches!(behaviour, Behaviour::FirstConnectionDropsMidRequest) {
        let mut part = [0u8; 6];
        let _ = stream.read_exact(&mut part).await;
        return; // closes the connection with the request half read
    }
    let mut held = Vec::new();
    let mut answered = 0;
    while let Some(request) = read_request(&mut stream).await {
        let reply = match behaviour {
            Behaviour::Answer | Behaviour::FirstConnectionDropsMidRequest => vec![request],
            Behaviour::AnswerInBatches(n) => {
                held.push(request);
                if held.len() < n {
                    continue;
                }
                std::mem::take(&mut held)
            }
            Behaviour::Oversize(size) => {
                let mut frame = size.to_be_bytes().to_vec();
                frame.extend_from_slice(&request.2.to_be_bytes());
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
                continue;
            }
            Behaviour::Silent => continue,
            Behaviour::DelayFirst(delay) => {
                if answered == 0 {
                    millrace_shard::time::sleep(delay).await;
                }
                vec![request]
            }
        };
        for request in reply {
            answered += 1;
            if stream.write_all(&answer(request)).await.is_err() {
                return;
            }
        }
    }
}

/// Reads one request frame and parses its header; None when the client closed.
async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await.ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut frame).await.ok()?;
    let (key, version, correlation_id) = peek_fixed(&frame).unwrap();
    let (client_id, body_at) = if ApiKey::try_from(key).is_ok() {
        let (header, at) = parse_request_header(&frame).unwrap();
        assert_eq!(header.header_version, header_versions(key, version).0);
        (header.client_id.unwrap(), at)
    } else {
        // Private key: request header v2 (client id, then a tagged-field section).
        let len = i16::from_be_bytes([frame[8], frame[9]]) as usize;
        let id = String::from_utf8(frame[10..10 + len].to_vec()).unwrap();
        let tags = skip_tagged_fields(&frame[10 + len..], 10 + len).unwrap();
        (id, 10 + len + tags)
    };
    assert_eq!(client_id, CLIENT_ID);
    let body = Bytes::copy_from_slice(&frame[body_at..]);
    Some((key, version, correlation_id, body))
}

/// The response frame for a request: ApiVersions and BrokerHeartbeat decoded and answered,
/// a private key's body echoed after a response header v1 that carries one tagged field.
fn answer((key, version, correlation_id, mut body): Received) -> Bytes {
    if key == PRIVATE_KEY {
        let mut frame = BytesMut::new();
        let header = [&correlation_id.to_be_bytes()[..], &[1, 5, 2, 0xaa, 0xbb]].concat();
        let size = (header.len() + body.len()) as i32;
        frame.extend_from_slice(&size.to_be_bytes());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(&body);
        return frame.freeze();
    }
    millrace_wire::guard::check_request_body(key, version, &body).unwrap();
    let api_key = ApiKey::try_from(key).unwrap();
    let header_version = response_header_version(api_key, version);
    match api_key {
        ApiKey::ApiVersions => {
            ApiVersionsRequest::decode(&mut body, version).unwrap();
            let response =
                ApiVersionsResponse::default().with_api_keys(vec![ApiVersion::default()
                    .with_api_key(18)
                    .with_min_version(0)
                    .with_max_version(4)]);
            encode_response(correlation_id, header_version, &response, version).unwrap()
        }
        ApiKey::BrokerHeartbeat => {
            let request = BrokerHeartbeatRequest::decode(&mut body, version).unwrap();
            let response = BrokerHeartbeatResponse::default()
                .with_throttle_time_ms(request.broker_id.0)
                .with_is_caught_up(true)
                .with_is_fenced(request.want_fence)
                .with_should_shut_down(request.want_shut_down);
            encode_response(correlation_id, header_version, &response, version).unwrap()
        }
        other => panic!("the test server does not answer {other:?}"),
    }
}

fn config() -> PeerConfig {
    PeerConfig {
        client_id: CLIENT_ID.to_string(),
        request_timeout: GENEROUS,
        connect_timeout: GENEROUS,
        reconnect_backoff: Duration::from_millis(5),
        reconnect_backoff_max: Duration::from_millis(50),
        ..PeerConfig::default()
    }
}

/// Runs `test` on a one-shard production runtime (real sockets, real timers).
fn on_shard<Fut: Future<Output = ()> + 'static>(test: fn() -> Fut) {
    let runtime = millrace_shard::ShardRuntimeConfig {
        shards: 1,
        io_memory_bytes: 1 << 20,
        ring_depth: 64,
        pin: false,
    };
    millrace_shard::run_shards(&runtime, move |_| async move {
        test().await;
        Ok(())
    })
    .expect("the test shard panicked; its message is above");
}

#[test]
fn typed_and_raw_requests_round_trip_on_one_connection() {
    on_shard(|| async {
        let server = start(Behaviour::Answer);
        let client = PeerClient::new(server.addr, config());
        for version in [0, 3, 4] {
            let response = client
                .request(version, &ApiVersionsRequest::default())
                .await
                .unwrap_or_else(|e| panic!("ApiVersions v{version}: {e}"));
            assert_eq!(response.api_keys.len(), 1);
            assert_eq!(response.api_keys[0].max_version, 4);
        }
        // A controller API: request header v2, response header v1.
        let heartbeat = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(7))
            .with_broker_epoch(3)
            .with_want_shut_down(true);
        let response: BrokerHeartbeatResponse = client.send(63, 1, &heartbeat).await.unwrap();
        assert_eq!(response.throttle_time_ms, 7);
        assert!(response.is_caught_up && response.should_shut_down && !response.is_fenced);
        // A private key: the body comes back with the response header's tags skipped.
        let echoed = client
            .send_raw(PRIVATE_KEY, 0, b"raft message")
            .await
            .unwrap();
        assert_eq!(&echoed[..], b"raft message");
        assert_eq!(server.accepted.get(), 1);
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    on_shard(|| async {
        // The server answers nothing until it holds three requests: a client that waited for
        // each response before sending the next would time out here.
        let server = start(Behaviour::AnswerInBatches(3));
        let client = PeerClient::new(server.addr, config());
        let (a, (b, c)) = futures_lite::future::zip(
            client.send_raw(PRIVATE_KEY, 0, b"first"),
            futures_lite::future::zip(
                client.send_raw(PRIVATE_KEY, 0, b"second"),
                client.send_raw(PRIVATE_KEY, 0, b"third"),
            ),
        )
        .await;
        assert_eq!(&a.unwrap()[..], b"first");
        assert_eq!(&b.unwrap()[..], b"second");
        assert_eq!(&c.unwrap()[..], b"third");
        assert_eq!(server.accepted.get(), 1);
    });
}

#[test]
fn a_connection_closed_mid_request_fails_it_and_the_next_request_reconnects() {
    on_shard(|| async {
        let server = start(Behaviour::FirstConnectionDropsMidRequest);
        let client = PeerClient::new(server.addr, config());
        let lost = client.send_raw(PRIVATE_KEY, 0, b"lost").await;
        assert!(
            matches!(lost, Err(PeerError::Disconnected { .. })),
            "{lost:?}"
        );
        let echoed = client.send_raw(PRIVATE_KEY, 0, b"again").await.unwrap();
        assert_eq!(&echoed[..], b"again");
        assert_eq!(server.accepted.get(), 2);
    });
}

#[test]
fn a_response_over_the_size_limit_is_refused() {
    on_shard(|| async {
        let server = start(Behaviour::Oversize(1 << 20));
        let client = PeerClient::new(
            server.addr,
            PeerConfig {
                response_bytes_max: 4096,
                ..config()
            },
        );
        let result = client.send_raw(PRIVATE_KEY, 0, b"x").await;
        assert_eq!(
            result,
            Err(PeerError::ResponseTooLarge {
                addr: client.addr(),
                size: 1 << 20,
                limit: 4096
            })
        );
    });
}

#[test]
fn a_peer_that_never_answers_times_out_and_the_connection_is_replaced() {
    on_shard(|| async {
        let server = start(Behaviour::Silent);
        let client = PeerClient::new(server.addr, config());
        let timeout = Duration::from_millis(200);
        for _ in 0..2 {
            let result = client
                .send_raw_within(PRIVATE_KEY, 0, b"hello?", timeout)
                .await;
            assert_eq!(
                result,
                Err(PeerError::Timeout {
                    addr: server.addr,
                    api_key: PRIVATE_KEY,
                    timeout_ms: 200
                })
            );
        }
        // Each timeout closed its connection; the second request opened a new one.
        assert_eq!(server.accepted.get(), 2);
    });
}

#[test]
fn the_late_answer_to_an_abandoned_request_is_dropped() {
    on_shard(|| async {
        let server = start(Behaviour::DelayFirst(Duration::from_millis(300)));
        let client = PeerClient::new(server.addr, config());
        // The caller stops waiting (drops the future) long before the answer comes.
        let gave_up = millrace_shard::time::timeout(
            Duration::from_millis(20),
            client.send_raw(PRIVATE_KEY, 0, b"abandoned"),
        )
        .await;
        assert!(gave_up.is_none());
        // The next request on the same connection gets its own answer, not the late one.
        let echoed = client.send_raw(PRIVATE_KEY, 0, b"wanted").await.unwrap();
        assert_eq!(&echoed[..], b"wanted");
        assert_eq!(server.accepted.get(), 1);
    });
}

#[test]
fn dropping_the_client_closes_its_connection() {
    on_shard(|| async {
        let server = start(Behaviour::Answer);
        let client = PeerClient::new(server.addr, config());
        client.send_raw(PRIVATE_KEY, 0, b"hi").await.unwrap();
        assert_eq!(server.closed.get(), 0);
        drop(client);
        let start = Instant::now();
        while server.closed.get() == 0 && start.elapsed() < GENEROUS {
            millrace_shard::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            server.closed.get(),
            1,
            "the server never saw the connection close"
        );
    });
}

#[test]
fn a_refused_connect_is_reported_and_backs_off() {
    on_shard(|| async {
        // A port that was just free: nothing listens there.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = PeerClient::new(
            addr,
            PeerConfig {
                reconnect_backoff: Duration::from_secs(60),
                reconnect_backoff_max: Duration::from_secs(60),
                ..config()
            },
        );
        let first = client.send_raw(PRIVATE_KEY, 0, b"x").await;
        assert!(matches!(first, Err(PeerError::Connect { .. })), "{first:?}");
        // The backoff (60 s) outlasts this request's timeout: it fails at once, unsent.
        let second = client
            .send_raw_within(PRIVATE_KEY, 0, b"x", Duration::from_secs(5))
            .await;
        match second {
            Err(PeerError::Disconnected { reason, .. }) => {
                assert!(reason.contains("reconnecting"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn an_unencodable_request_is_refused_before_anything_is_sent() {
    on_shard(|| async {
        let client = PeerClient::new("127.0.0.1:9".parse().unwrap(), config());
        let result: Result<BrokerHeartbeatResponse, _> =
            client.send(63, 9, &BrokerHeartbeatRequest::default()).await;
        assert!(matches!(
            result,
            Err(PeerError::Encode {
                api_key: 63,
                api_version: 9,
                ..
            })
        ));
    });
}

#[test]
fn backoff_doubles_and_is_capped() {
    let base = Duration::from_millis(50);
    let max = Duration::from_secs(1);
    let waits: Vec<u128> = (1..=8).map(|n| backoff(base, max, n).as_millis()).collect();
    assert_eq!(waits, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
    assert_eq!(backoff(base, max, u32::MAX), max);
}

#[test]
fn header_versions_follow_kafka_protocol_and_private_keys_are_flexible() {
    assert_eq!(header_versions(18, 3), (2, 0)); // ApiVersions answers with header v0
    assert_eq!(header_versions(18, 2), (1, 0));
    assert_eq!(header_versions(63, 0), (2, 1)); // BrokerHeartbeat
    assert_eq!(header_versions(3, 8), (1, 0)); // Metadata before flexible versions
    assert_eq!(header_versions(PRIVATE_KEY, 0), (2, 1));
}
