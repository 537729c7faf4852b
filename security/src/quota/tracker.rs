//! The broker-wide quota sensors: one measurement per (sensor entity, key), recorded and
//! checked as Kafka's quota managers do, and dropped after an hour without records.
//!
//! Kafka records first and checks after (`Sensor.record(value, now, checkQuotas = true)`): a
//! request over the quota is served, and the client is throttled afterwards. The throttle
//! differs per key (see [`QuotaTracker::record_and_throttle`]).

use std::collections::HashMap;

use super::rate::{
    bounded_throttle_time_ms, throttle_time_ms, token_bucket_throttle_time_ms, TokenBucket,
    WindowedRate,
};
use super::{QuotaEntity, QuotaKey};

/// Kafka's expiry of an idle quota sensor (`INACTIVE_SENSOR_EXPIRATION_TIME_SECONDS`, 1 hour).
pub const INACTIVE_SENSOR_EXPIRATION_MS: u64 = 3_600_000;

/// The samples of a quota measurement: `quota.window.num` and `quota.window.size.seconds` (or
/// their `controller.quota.window.*` counterparts for controller mutations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindowConfig {
    pub samples: usize,
    pub window_ms: u64,
}

impl Default for QuotaWindowConfig {
    /// Kafka's defaults: 11 samples of 1 s.
    fn default() -> Self {
        QuotaWindowConfig {
            samples: 11,
            window_ms: 1000,
        }
    }
}

#[derive(Debug, Clone)]
enum Stat {
    Rate(WindowedRate),
    Bucket(TokenBucket),
}

#[derive(Debug, Clone)]
struct Sensor {
    stat: Stat,
    last_record_ms: u64,
}

/// Every quota sensor of the broker, keyed by the sensor entity a [`super::ResolvedQuota`]
/// names and the quota key (Kafka keeps one quota manager per key).
#[derive(Debug, Clone)]
pub struct QuotaTracker {
    client_window: QuotaWindowConfig,
    controller_window: QuotaWindowConfig,
    sensors: HashMap<(QuotaEntity, QuotaKey), Sensor>,
}

impl QuotaTracker {
    /// No sensors yet. `client_window` measures the byte rates, request percentage and
    /// connection rate; `controller_window` sizes the controller mutation token bucket.
    pub fn new(client_window: QuotaWindowConfig, controller_window: QuotaWindowConfig) -> Self {
        for w in [client_window, controller_window] {
            assert!(
                w.samples >= 1 && w.window_ms >= 1,
                "quota windows are at least 1"
            );
        }
        QuotaTracker {
            client_window,
            controller_window,
            sensors: HashMap::new(),
        }
    }

    /// Records `value` for the sensor `entity` under `quota` and answers the throttle time
    /// (0 when within the quota), as Kafka's manager for `key` does:
    /// - byte rates: `(O - T) / T * W` over the measured window, not capped;
    /// - `request_percentage`: the same, capped at one window (`quota.window.size.seconds`);
    /// - `connection_creation_rate`: the same, capped at one window, and a throttled
    ///   connection is unrecorded (Kafka refuses it, so it does not count);
    /// - `controller_mutation_rate`: Kafka's permissive mode (requests of older versions):
    ///   the mutations are taken from the token bucket, and the client waits for the
    ///   bucket to refill to zero. See [`Self::check_and_record_strict`] for the strict mode.
    pub fn record_and_throttle(
        &mut self,
        entity: &QuotaEntity,
        key: QuotaKey,
        quota: f64,
        value: f64,
        now_ms: u64,
    ) -> u64 {
        let one_window = self.client_window.window_ms;
        let sensor = self.sensor(entity, key, now_ms);
        sensor.last_record_ms = now_ms;
        let rate = match &mut sensor.stat {
            Stat::Bucket(bucket) => {
                bucket.record(quota, value, now_ms);
                return token_bucket_throttle_time_ms(bucket.tokens(quota, now_ms), quota);
            }
            Stat::Rate(rate) => rate,
        };
        rate.record(value, now_ms);
        let observed = rate.rate(now_ms);
        if observed <= quota {
            return 0;
        }
        let window_ms = rate.window_ms(now_ms);
        match key {
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate => {
                throttle_time_ms(observed, quota, window_ms)
            }
            QuotaKey::RequestPercentage => {
                bounded_throttle_time_ms(observed, quota, window_ms, one_window)
            }
            QuotaKey::ConnectionCreationRate => {
                rate.record(-value, now_ms);
                bounded_throttle_time_ms(observed, quota, window_ms, one_window)
            }
            QuotaKey::ControllerMutationRate => unreachable!("a token bucket sensor"),
        }
    }

    /// Kafka's strict controller mutation quota (CreateTopics v6+, CreatePartitions v3+,
    /// DeleteTopics v5+): if the bucket is already below zero, nothing is taken and the
    /// answer is the time until it refills (the request fails THROTTLING_QUOTA_EXCEEDED);
    /// otherwise all `permits` are taken, however many, and the answer is 0.
    pub fn check_and_record_strict(
        &mut self,
        entity: &QuotaEntity,
        quota: f64,
        permits: f64,
        now_ms: u64,
    ) -> u64 {
        let sensor = self.sensor(entity, QuotaKey::ControllerMutationRate, now_ms);
        let Stat::Bucket(bucket) = &mut sensor.stat else {
            unreachable!("controller mutations are measured by a token bucket")
        };
        let throttle = token_bucket_throttle_time_ms(bucket.tokens(quota, now_ms), quota);
        if throttle == 0 {
            bucket.record(quota, permits, now_ms);
            sensor.last_record_ms = now_ms;
        }
        throttle
    }

    /// Records without checking (Kafka's `recordNoThrottle`: the network-thread time of a
    /// request, counted against `request_percentage` for the next request).
    pub fn record_no_throttle(
        &mut self,
        entity: &QuotaEntity,
        key: QuotaKey,
        quota: f64,
        value: f64,
        now_ms: u64,
    ) {
        let sensor = self.sensor(entity, key, now_ms);
        sensor.last_record_ms = now_ms;
        match &mut sensor.stat {
            Stat::Rate(rate) => rate.record(value, now_ms),
            Stat::Bucket(bucket) => bucket.record(quota, value, now_ms),
        }
    }

    /// Takes back a recorded value (Kafka's `unrecordQuotaSensor`): a fetch throttled by any
    /// quota answers an empty response, so its bytes must not count.
    pub fn unrecord(
        &mut self,
        entity: &QuotaEntity,
        key: QuotaKey,
        quota: f64,
        value: f64,
        now_ms: u64,
    ) {
        self.record_no_throttle(entity, key, quota, -value, now_ms);
    }

    /// The measurement of a sensor, if it exists: the rate per second, or the tokens left for
    /// `controller_mutation_rate`.
    pub fn observed(
        &mut self,
        entity: &QuotaEntity,
        key: QuotaKey,
        quota: f64,
        now_ms: u64,
    ) -> Option<f64> {
        let sensor = self.sensors.get_mut(&(entity.clone(), key))?;
        Some(match &mut sensor.stat {
            Stat::Rate(rate) => rate.rate(now_ms),
            Stat::Bucket(bucket) => bucket.tokens(quota, now_ms),
        })
    }

    /// The largest value that a client without history may record without being throttled
    /// (Kafka's `maxValueInQuotaWindow`, which caps a fetch's size):
    /// `quota * (samples - 1) * window`.
    pub fn max_value_in_quota_window(&self, quota: f64) -> f64 {
        let w = self.client_window;
        quota * (w.samples as f64 - 1.0) * (w.window_ms as f64 / 1000.0)
    }

    /// Drops the sensors without a record for more than an hour (Kafka's sensor expiry);
    /// answers how many were dropped. A client coming back starts afresh.
    pub fn expire_idle(&mut self, now_ms: u64) -> usize {
        let before = self.sensors.len();
        self.sensors.retain(|_, s| {
            now_ms.saturating_sub(s.last_record_ms) <= INACTIVE_SENSOR_EXPIRATION_MS
        });
        before - self.sensors.len()
    }

    /// The number of live sensors.
    pub fn len(&self) -> usize {
        self.sensors.len()
    }

    /// Whether no sensor is live.
    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }

    fn sensor(&mut self, entity: &QuotaEntity, key: QuotaKey, now_ms: u64) -> &mut Sensor {
        let (client, controller) = (self.client_window, self.controller_window);
        self.sensors
            .entry((entity.clone(), key))
            .or_insert_with(|| {
                let stat = if key == QuotaKey::ControllerMutationRate {
                    Stat::Bucket(TokenBucket::new(controller.samples, controller.window_ms))
                } else {
                    Stat::Rate(WindowedRate::new(client.samples, client.window_ms))
                };
                Sensor {
                    stat,
                    last_record_ms: now_ms,
                }
            })
    }
}

impl Default for QuotaTracker {
    /// Kafka's default windows for both.
    fn default() -> Self {
        QuotaTracker::new(QuotaWindowConfig::default(), QuotaWindowConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{request_time_percentage, EntityName, QuotaConfigs};
    use super::*;

    fn user(name: &str) -> QuotaEntity {
        QuotaEntity::user(EntityName::named(name))
    }

    /// A producer sending `request_bytes` requests back to back for `duration_ms` of virtual
    /// time: each takes `latency_ms`, then the client waits out the throttle time before the
    /// next (as clients do since KIP-219). Answers bytes per second and the largest throttle.
    fn simulate(key: QuotaKey, quota: f64, value: f64, latency_ms: u64) -> (f64, u64) {
        let mut tracker = QuotaTracker::default();
        let entity = user("alice");
        let duration_ms = 60_000;
        let (mut now, mut total, mut max_throttle) = (0, 0.0, 0);
        while now < duration_ms {
            let throttle = tracker.record_and_throttle(&entity, key, quota, value, now);
            total += value;
            max_throttle = max_throttle.max(throttle);
            now += latency_ms + throttle;
        }
        (total / (duration_ms as f64 / 1000.0), max_throttle)
    }

    fn assert_within(achieved: f64, quota: f64, tolerance: f64) {
        let ratio = achieved / quota;
        assert!(
            (1.0 - tolerance..=1.0 + tolerance).contains(&ratio),
            "achieved {ratio} x quota"
        );
    }

    #[test]
    fn producer_of_100_kb_requests_holds_1_mb_per_s() {
        let quota = 1_048_576.0;
        let (achieved, max_throttle) = simulate(QuotaKey::ProducerByteRate, quota, 102_400.0, 1);
        assert_within(achieved, quota, 0.2);
        assert!(max_throttle > 0, "the producer was throttled");
    }

    #[test]
    fn producer_of_1_kb_requests_holds_1_mb_per_s() {
        let quota = 1_048_576.0;
        let (achieved, _) = simulate(QuotaKey::ProducerByteRate, quota, 1024.0, 1);
        assert_within(achieved, quota, 0.2);
        let (achieved, _) = simulate(QuotaKey::ConsumerByteRate, quota, 1024.0, 0);
        assert_within(achieved, quota, 0.2);
    }

    #[test]
    fn request_percentage_holds_and_throttles_at_most_one_window() {
        // 5 ms of thread time per request, back to back, would be 100 % of a thread.
        let value = request_time_percentage(5_000_000);
        let (achieved, max_throttle) = simulate(QuotaKey::RequestPercentage, 10.0, value, 5);
        assert_within(achieved, 10.0, 0.2);
        assert!(
            max_throttle > 0 && max_throttle <= 1000,
            "throttle {max_throttle}"
        );
    }

    #[test]
    fn a_large_request_is_served_then_throttled() {
        let mut tracker = QuotaTracker::default();
        let e = user("alice");
        // 20 MB against 1 MB/s over the first 10 windows: measured 2 MB/s, so 10 s.
        let t = tracker.record_and_throttle(&e, QuotaKey::ProducerByteRate, 1e6, 20e6, 0);
        assert_eq!(t, 10_000);
        let observed = tracker
            .observed(&e, QuotaKey::ProducerByteRate, 1e6, 0)
            .unwrap();
        assert_eq!(observed, 2e6, "the request was recorded");
        // The request quota caps the same excess at one window.
        let t = tracker.record_and_throttle(&e, QuotaKey::RequestPercentage, 1.0, 20.0, 0);
        assert_eq!(t, 1000);
        assert_eq!(tracker.max_value_in_quota_window(1e6), 10e6);
    }

    #[test]
    fn throttled_connections_are_not_counted() {
        let mut tracker = QuotaTracker::default();
        let ip = QuotaEntity::ip(EntityName::named("10.0.0.1"));
        let c = QuotaKey::ConnectionCreationRate;
        for _ in 0..50 {
            assert_eq!(tracker.record_and_throttle(&ip, c, 5.0, 1.0, 0), 0);
        }
        // The 51st makes 5.1/s over 10 s: 200 ms, and it is taken back.
        assert_eq!(tracker.record_and_throttle(&ip, c, 5.0, 1.0, 0), 200);
        assert_eq!(tracker.observed(&ip, c, 5.0, 0), Some(5.0));
        // At 200 ms the window is 10.2 s: one more fits.
        assert_eq!(tracker.record_and_throttle(&ip, c, 5.0, 1.0, 200), 0);
    }

    #[test]
    fn connection_attempts_hold_the_ip_rate() {
        let mut tracker = QuotaTracker::default();
        let ip = QuotaEntity::ip(EntityName::named("10.0.0.1"));
        let (mut now, mut accepted) = (0, 0u32);
        while now < 60_000 {
            let throttle =
                tracker.record_and_throttle(&ip, QuotaKey::ConnectionCreationRate, 5.0, 1.0, now);
            if throttle == 0 {
                accepted += 1;
            }
            assert!(throttle <= 1000);
            now += 1 + throttle;
        }
        assert_within(f64::from(accepted) / 60.0, 5.0, 0.2);
    }

    #[test]
    fn controller_mutations_strict_and_permissive() {
        let mut tracker = QuotaTracker::default();
        let (a, b) = (user("a"), user("b"));
        let m = QuotaKey::ControllerMutationRate;
        // Burst 11 * 1 s * 2/s = 22: a strict request of 30 passes while tokens remain.
        assert_eq!(tracker.check_and_record_strict(&a, 2.0, 30.0, 0), 0);
        assert_eq!(tracker.observed(&a, m, 2.0, 0), Some(-8.0));
        // The next is refused for the 4 s the bucket needs to reach zero; nothing is taken.
        assert_eq!(tracker.check_and_record_strict(&a, 2.0, 1.0, 0), 4000);
        assert_eq!(tracker.check_and_record_strict(&a, 2.0, 1.0, 1000), 3000);
        assert_eq!(tracker.check_and_record_strict(&a, 2.0, 1.0, 4000), 0);
        // Permissive: taken, then throttled for the deficit.
        assert_eq!(tracker.record_and_throttle(&b, m, 2.0, 22.0, 0), 0);
        assert_eq!(tracker.record_and_throttle(&b, m, 2.0, 8.0, 0), 4000);
    }

    #[test]
    fn clients_resolved_to_one_sensor_share_its_rate() {
        let mut configs = QuotaConfigs::new();
        let p = QuotaKey::ProducerByteRate;
        configs.set(&user("alice"), p, Some(1e6)).unwrap();
        configs
            .set(&QuotaEntity::user(EntityName::Default), p, Some(1e6))
            .unwrap();
        let mut tracker = QuotaTracker::default();
        let mut send = |u: &str, c: &str, bytes: f64| {
            let r = configs.resolve(u, c, p).unwrap();
            tracker.record_and_throttle(&r.sensor, p, r.quota, bytes, 0)
        };
        // alice's two client ids share /users/alice: 6 MB + 6 MB over 10 s is over 1 MB/s.
        assert_eq!(send("alice", "one", 6e6), 0);
        assert!(send("alice", "two", 6e6) > 0);
        // bob and carol each have their own sensor under /users/<default>.
        assert_eq!(send("bob", "one", 6e6), 0);
        assert_eq!(send("carol", "one", 6e6), 0);
    }

    #[test]
    fn idle_sensors_expire_after_an_hour() {
        let mut tracker = QuotaTracker::default();
        let p = QuotaKey::ProducerByteRate;
        tracker.record_and_throttle(&user("a"), p, 1e6, 1.0, 0);
        tracker.record_no_throttle(&user("b"), p, 1e6, 1.0, 1000);
        assert_eq!(tracker.expire_idle(INACTIVE_SENSOR_EXPIRATION_MS), 0);
        assert_eq!(tracker.expire_idle(INACTIVE_SENSOR_EXPIRATION_MS + 1), 1);
        assert_eq!(tracker.len(), 1);
        assert!(tracker.observed(&user("a"), p, 1e6, 0).is_none());
        assert_eq!(tracker.expire_idle(INACTIVE_SENSOR_EXPIRATION_MS + 1001), 1);
        assert!(tracker.is_empty());
    }

    #[test]
    fn unrecord_takes_back_a_throttled_fetch() {
        let mut tracker = QuotaTracker::default();
        let (e, f) = (user("a"), QuotaKey::ConsumerByteRate);
        tracker.record_and_throttle(&e, f, 1e6, 4e6, 0);
        let t = tracker.record_and_throttle(&e, f, 1e6, 8e6, 10);
        assert!(t > 0);
        tracker.unrecord(&e, f, 1e6, 8e6, 10);
        let rate = tracker.observed(&e, f, 1e6, 10).unwrap();
        assert!((rate - 4e6 / 10.01).abs() < 1e-6, "rate {rate}");
    }
}
