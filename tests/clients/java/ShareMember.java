// One share-group consumer with the Java client (KafkaShareConsumer, kafka-clients 4.x, KIP-932),
// for test_share_groups.py. It subscribes to TOPIC in share group GROUP with explicit
// acknowledgement and prints one JSON line per event on stdout (logging goes to stderr):
//
//   {"got": [partition, offset, delivery_count, "value"]}   a record delivered to this consumer
//   {"acked": [partition, offset, "ACCEPT"]}   its acknowledgement is durable (commitSync said so)
//   {"ack_failed": [partition, offset, "why"]}  commitSync reported an error for its partition
//   {"holding": n}   HOLD_AFTER records were received: stop polling and acknowledging (the test
//                    then kills this JVM, which still holds the records' acquisition locks)
//   {"closed": true}  close() returned
//
// Each record is acknowledged by its value: a value starting with "release" is RELEASEd (a
// record that always fails, so it comes back until the delivery-count limit archives it), one
// starting with "reject" is REJECTed (archived at once), anything else ACCEPTed. DELAY_MS is
// spent per record before acknowledging, so that two consumers interleave on one partition.
// SIGTERM closes the consumer (its acquired, unacknowledged records are released).
//
//   java -cp '.deps/java/*:CLASSES' ShareMember BOOTSTRAP GROUP TOPIC DELAY_MS HOLD_AFTER
//   (HOLD_AFTER 0: never hold)

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class ShareMember {
    private static volatile boolean stopping = false;

    static synchronized void emit(String json) {
        System.out.println(json);
        System.out.flush();
    }

    static String quote(String s) {
        return "\"" + String.valueOf(s).replace("\\", "\\\\").replace("\"", "\\\"")
                .replace("\n", " ") + "\"";
    }

    static AcknowledgeType decide(String value) {
        if (value.startsWith("release")) {
            return AcknowledgeType.RELEASE;
        }
        if (value.startsWith("reject")) {
            return AcknowledgeType.REJECT;
        }
        return AcknowledgeType.ACCEPT;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: ShareMember BOOTSTRAP GROUP TOPIC DELAY_MS HOLD_AFTER");
            System.exit(2);
        }
        long delayMs = Long.parseLong(args[3]);
        int holdAfter = Integer.parseInt(args[4]);
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("group.id", args[1]);
        props.put("share.acknowledgement.mode", "explicit");
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        props.put("max.poll.records", "50");

        KafkaShareConsumer<byte[], byte[]> consumer = new KafkaShareConsumer<>(props);
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping = true;
            consumer.wakeup();
            try {
                main.join(20_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
        consumer.subscribe(List.of(args[2]));
        int received = 0;
        try {
            while (!stopping) {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
                List<ConsumerRecord<byte[], byte[]>> pending = new ArrayList<>();
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    String value = new String(r.value());
                    short count = r.deliveryCount().orElse((short) -1);
                    emit("{\"got\": [" + r.partition() + ", " + r.offset() + ", " + count + ", "
                            + quote(value) + "]}");
                    received++;
                    pending.add(r);
                }
                if (holdAfter > 0 && received >= holdAfter) {
                    emit("{\"holding\": " + received + "}");
                    Thread.sleep(Long.MAX_VALUE);
                }
                for (ConsumerRecord<byte[], byte[]> r : pending) {
                    if (delayMs > 0) {
                        Thread.sleep(delayMs);
                    }
                    consumer.acknowledge(r, decide(new String(r.value())));
                }
                if (pending.isEmpty()) {
                    continue;
                }
                Map<TopicIdPartition, Optional<KafkaException>> out = consumer.commitSync();
                for (ConsumerRecord<byte[], byte[]> r : pending) {
                    Optional<KafkaException> failed = Optional.empty();
                    for (Map.Entry<TopicIdPartition, Optional<KafkaException>> e : out.entrySet()) {
                        if (e.getKey().partition() == r.partition()
                                && e.getKey().topic().equals(r.topic())) {
                            failed = e.getValue();
                        }
                    }
                    String type = decide(new String(r.value())).name();
                    if (failed.isPresent()) {
                        emit("{\"ack_failed\": [" + r.partition() + ", " + r.offset() + ", "
                                + quote(failed.get().toString()) + "]}");
                    } else {
                        emit("{\"acked\": [" + r.partition() + ", " + r.offset() + ", "
                                + quote(type) + "]}");
                    }
                }
            }
        } catch (WakeupException e) {
            // SIGTERM: fall through to close.
        } finally {
            consumer.close();
            emit("{\"closed\": true}");
        }
    }
}
