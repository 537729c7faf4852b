// Share-group (KIP-932) consume-and-acknowledge throughput, for share_bench.py. A measurement for
// reports, not a test.
//
//   java -cp '.deps/java/*:CLASSES' ShareBench BOOTSTRAP GROUP TOPIC CONSUMERS RECORDS COMMIT
//        TIMEOUT_S
//
// CONSUMERS KafkaShareConsumers (kafka-clients 4.4), one thread each, in share group GROUP,
// subscribed to TOPIC (one partition, offsets 0..RECORDS-1, the group's share.auto.offset.reset
// already set to earliest), share.acknowledgement.mode=explicit. Every record of a poll is
// acknowledged ACCEPT, then the poll's acknowledgements are committed:
//
//   COMMIT=sync   commitSync() after each poll; a record counts as acknowledged when commitSync
//                 returns without an error for its partition;
//   COMMIT=async  commitAsync() after each poll; a record counts when the acknowledgement commit
//                 callback reports its offset without an exception (the client runs the callback
//                 on the consumer's thread, within a later poll).
//
// The run ends when RECORDS distinct offsets are acknowledged (or TIMEOUT_S passes). One JSON line
// on stdout: consumers, records (distinct offsets acknowledged), seconds (from the first record
// any consumer received to the confirmation that completed the set), records_per_s, per-consumer
// received/acknowledged counts, non-empty polls, first record (ms after the first of any
// consumer; null: none) and longest gap between two non-empty polls (max_gap_ms), duplicates
// (deliveries of an offset already delivered, to the same or another consumer), ack_failed
// (records whose acknowledgement the broker refused), complete.

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class ShareBench {
    /** A set of offsets 0..size-1, safe to update from several threads. */
    static final class OffsetSet {
        private final AtomicLongArray words;

        OffsetSet(long size) {
            words = new AtomicLongArray((int) ((size + 63) / 64));
        }

        /** Adds the offset; true if it was not there before. */
        boolean add(long offset) {
            int i = (int) (offset >>> 6);
            long bit = 1L << (offset & 63);
            while (true) {
                long w = words.get(i);
                if ((w & bit) != 0) {
                    return false;
                }
                if (words.compareAndSet(i, w, w | bit)) {
                    return true;
                }
            }
        }
    }

    static long records;
    static OffsetSet delivered;
    static OffsetSet confirmed;
    static final AtomicLong acknowledged = new AtomicLong();
    static final AtomicLong duplicates = new AtomicLong();
    static final AtomicLong ackFailed = new AtomicLong();
    static final AtomicLong outOfRange = new AtomicLong();
    static final AtomicLong firstNs = new AtomicLong();
    static final AtomicLong lastNs = new AtomicLong();
    static volatile boolean done = false;

    /** Counts one confirmed offset; the one that completes the set stops every consumer. */
    static boolean confirm(long offset) {
        if (offset < 0 || offset >= records || !confirmed.add(offset)) {
            return false;
        }
        if (acknowledged.incrementAndGet() == records) {
            lastNs.set(System.nanoTime());
            done = true;
        }
        return true;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            System.err.println("usage: ShareBench BOOTSTRAP GROUP TOPIC CONSUMERS RECORDS "
                    + "sync|async TIMEOUT_S");
            System.exit(2);
        }
        int consumers = Integer.parseInt(args[3]);
        records = Long.parseLong(args[4]);
        boolean async = switch (args[5]) {
            case "sync" -> false;
            case "async" -> true;
            default -> throw new IllegalArgumentException("COMMIT must be sync or async");
        };
        long timeoutNs = Long.parseLong(args[6]) * 1_000_000_000L;
        delivered = new OffsetSet(records);
        confirmed = new OffsetSet(records);
        long[] received = new long[consumers];
        long[] acked = new long[consumers];
        long[] polls = new long[consumers];
        long[] firstOwnNs = new long[consumers];
        long[] maxGapNs = new long[consumers];
        Throwable[] failures = new Throwable[consumers];
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < consumers; c++) {
            final int id = c;
            Thread t = new Thread(() -> {
                try {
                    consume(args[0], args[1], args[2], async, id, received, acked, polls,
                            firstOwnNs, maxGapNs);
                } catch (Throwable e) {
                    failures[id] = e;
                    done = true;
                }
            }, "share-bench-" + c);
            threads.add(t);
            t.start();
        }
        long startNs = System.nanoTime();
        for (Thread t : threads) {
            long left = timeoutNs - (System.nanoTime() - startNs);
            t.join(Math.max(1, left / 1_000_000));
            if (t.isAlive()) {
                done = true;  // timed out: the others stop at their next poll
            }
        }
        for (Thread t : threads) {
            t.join(60_000);
        }
        for (Throwable e : failures) {
            if (e != null) {
                e.printStackTrace();
            }
        }
        report(consumers, async, received, acked, polls, firstOwnNs, maxGapNs);
    }

    static void consume(String bootstrap, String group, String topic, boolean async, int id,
                        long[] received, long[] acked, long[] polls, long[] firstOwnNs,
                        long[] maxGapNs) {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", group);
        props.put("client.id", "share-bench-" + id);
        props.put("share.acknowledgement.mode", "explicit");
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        try (KafkaShareConsumer<byte[], byte[]> consumer = new KafkaShareConsumer<>(props)) {
            if (async) {
                consumer.setAcknowledgementCommitCallback((offsets, exception) ->
                        onCommitted(offsets, exception, id, acked));
            }
            consumer.subscribe(List.of(topic));
            long previousNs = 0;
            while (!done) {
                ConsumerRecords<byte[], byte[]> polled = consumer.poll(Duration.ofMillis(100));
                if (polled.isEmpty()) {
                    continue;
                }
                long now = System.nanoTime();
                firstNs.compareAndSet(0, now);
                if (polls[id]++ == 0) {
                    firstOwnNs[id] = now;
                } else {
                    maxGapNs[id] = Math.max(maxGapNs[id], now - previousNs);
                }
                previousNs = now;
                List<Long> offsets = new ArrayList<>(polled.count());
                for (ConsumerRecord<byte[], byte[]> r : polled) {
                    received[id]++;
                    noteDelivery(r.offset());
                    consumer.acknowledge(r, AcknowledgeType.ACCEPT);
                    offsets.add(r.offset());
                }
                if (async) {
                    consumer.commitAsync();
                } else {
                    commitSync(consumer, offsets, id, acked);
                }
            }
        }
    }

    static void noteDelivery(long offset) {
        if (offset < 0 || offset >= records) {
            outOfRange.incrementAndGet();
        } else if (!delivered.add(offset)) {
            duplicates.incrementAndGet();
        }
    }

    static void commitSync(KafkaShareConsumer<byte[], byte[]> consumer, List<Long> offsets,
                           int id, long[] acked) {
        Map<TopicIdPartition, Optional<KafkaException>> out = consumer.commitSync();
        // One partition: the poll's records are all in it.
        boolean failed = out.values().stream().anyMatch(Optional::isPresent);
        if (failed) {
            ackFailed.addAndGet(offsets.size());
            return;
        }
        for (long offset : offsets) {
            if (confirm(offset)) {
                acked[id]++;
            }
        }
    }

    static void onCommitted(Map<TopicIdPartition, Set<Long>> offsets, Exception exception, int id,
                            long[] acked) {
        for (Set<Long> set : offsets.values()) {
            if (exception != null) {
                ackFailed.addAndGet(set.size());
                continue;
            }
            for (long offset : set) {
                if (confirm(offset)) {
                    acked[id]++;
                }
            }
        }
    }

    static void report(int consumers, boolean async, long[] received, long[] acked,
                       long[] polls, long[] firstOwnNs, long[] maxGapNs) {
        long n = acknowledged.get();
        boolean complete = n == records;
        long end = complete ? lastNs.get() : System.nanoTime();
        double seconds = firstNs.get() == 0 ? 0 : (end - firstNs.get()) / 1e9;
        StringBuilder per = new StringBuilder();
        for (int c = 0; c < consumers; c++) {
            per.append(c == 0 ? "" : ", ").append("{\"received\": ").append(received[c])
                    .append(", \"acknowledged\": ").append(acked[c])
                    .append(", \"polls\": ").append(polls[c])
                    .append(", \"first_record_ms\": ")
                    .append(polls[c] == 0 ? "null" : String.format("%.1f",
                            (firstOwnNs[c] - firstNs.get()) / 1e6))
                    .append(", \"max_gap_ms\": ").append(String.format("%.1f", maxGapNs[c] / 1e6))
                    .append("}");
        }
        System.out.printf("{\"consumers\": %d, \"commit\": \"%s\", \"records\": %d, "
                + "\"seconds\": %.3f, \"records_per_s\": %.0f, \"per_consumer\": [%s], "
                + "\"duplicates\": %d, \"ack_failed\": %d, \"out_of_range\": %d, "
                + "\"complete\": %b}%n",
                consumers, async ? "async" : "sync", n, seconds, seconds > 0 ? n / seconds : 0.0,
                per, duplicates.get(), ackFailed.get(), outOfRange.get(), complete);
        System.out.flush();
    }
}
